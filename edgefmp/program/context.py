"""The state of one program execution: its caller, its budget and what it has used so far.

One `ExecutionContext` is made per frame and dropped afterwards, so nothing a program does
can leak into the next frame or into another thread's execution (no global state). The DSL
reads the caller and the current call site from here; the runtime guards charge work here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgefmp.errors import BudgetExceeded, ProgramError
from edgefmp.program.api import NEURAL_CALLS, NeuralCaller, WorkBudget
from edgefmp.program.sizes import CONTAINER_TYPES, measure
from edgefmp.results import RESULT_TYPES, Request, Result

# Building a sequence of n items costs n / ITEMS_PER_STEP steps: copying an item is about
# that much cheaper than one interpreted loop iteration, and the charge bounds how much
# memory a frame can allocate in total (max_steps * ITEMS_PER_STEP items).
ITEMS_PER_STEP = 16

# Values may nest this many times max_depth levels: deeper ones would recurse in C (repr,
# hash, ==) past what the interpreter can check.
NESTING_PER_DEPTH = 4


class ExecutionContext:
    """Counters and limits of one execution; every limit raises BudgetExceeded naming itself.

    `site` and `line` are set by the call guard around each call, so a DSL method knows
    which textual call site it is serving and errors can name the line.
    """

    def __init__(
        self,
        caller: NeuralCaller,
        budget: WorkBudget,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.caller = caller
        self.budget = budget
        self.clock = clock
        self.deadline = clock() + budget.max_seconds
        self.max_nesting = max(8, budget.max_depth * NESTING_PER_DEPTH)
        self.steps = 0
        self.neural_calls = 0
        self.depth = 0
        self.site: str | None = None
        self.line = 0

    # ------------------------------------------------------------------------ budget errors

    def over(self, limit: str, line: int, what: str) -> BudgetExceeded:
        """The error for `what` going past budget field `limit`, located at `line`."""
        value = getattr(self.budget, limit)
        return BudgetExceeded(
            f"line {line}: {what}: over the work budget {limit}={value} "
            f"(raise WorkBudget.{limit} only if the program really needs more)",
            line,
        )

    # ------------------------------------------------------------------------- accounting

    def tick(self, line: int, steps: int = 1) -> bool:
        """Count `steps` of work and check the step and wall-clock limits; returns True so
        the rewriter can put it in a comprehension's conditions."""
        self.steps += steps
        if self.steps > self.budget.max_steps:
            raise self.over("max_steps", line, "the program ran too many steps (loop iterations, calls, data built)")
        if self.clock() > self.deadline:
            raise self.over("max_seconds", line, "the program ran too long")
        return True

    def check_size(self, size: int, line: int, what: str) -> None:
        """Refuse, before it is built, a sequence of `size` items."""
        if size > self.budget.max_sequence:
            raise self.over("max_sequence", line, f"{what} of {size} items")

    def charge(self, size: int, line: int, what: str = "a sequence") -> None:
        """Account for a sequence of `size` items that was just built."""
        self.check_size(size, line, what)
        if size >= ITEMS_PER_STEP:
            self.tick(line, size // ITEMS_PER_STEP)

    def check_int(self, bits: float, line: int) -> None:
        """Refuse, before it is computed, an integer of about `bits` bits."""
        if bits > self.budget.max_int_bits:
            raise self.over("max_int_bits", line, f"an integer of about {int(bits)} bits")

    def check_value(self, value: Any, line: int, what: str = "a value") -> int:
        """Refuse a value whose deep walk (repr, ==, hash, sort) would be too long; return
        its measured size (see sizes.measure)."""
        if type(value) not in CONTAINER_TYPES:
            if type(value) is str:
                self.check_size(len(value), line, what)
                return len(value)
            return 1
        size, too_deep = measure(value, self.budget.max_sequence, self.max_nesting)
        if too_deep:
            raise self.over("max_depth", line, f"{what} nests containers more than {self.max_nesting} levels deep")
        if size > self.budget.max_sequence:
            raise self.over("max_sequence", line, f"{what} holds {size} items, counting nested ones")
        if size >= ITEMS_PER_STEP:
            self.tick(line, size // ITEMS_PER_STEP)
        return size

    # ------------------------------------------------------------------------ neural calls

    def call_neural(self, method: str, request: Request) -> Result:
        """Send `request` for DSL `method` to the caller under the current call site."""
        site, self.site = self.site, None
        if site is None or not site.startswith(method + "@"):
            raise ProgramError(
                f"{method}() was called without its call site; call it directly in the program, "
                f"as in image.{method}(...)"
            )
        self.neural_calls += 1
        if self.neural_calls > self.budget.max_neural_calls:
            raise self.over("max_neural_calls", self.line, "the program made too many neural calls")
        result = self.caller.call(site, request)
        expected = RESULT_TYPES[NEURAL_CALLS[method]]
        if not isinstance(result, expected):
            raise ProgramError(
                f"{site}: the caller answered {type(result).__name__} to a {request.function} request; "
                f"expected {expected.__name__}"
            )
        return result
