"""From source text to a runnable, budgeted program: parse, validate, find sites, rewrite.

```python
from edgefmp.program import compile_program
program = compile_program("def execute_command(image):\n    return image.exists('circle')\n")
list(program.sites)             # ['exists@2:17']
program.run(frame_rgb, caller)  # caller.call(site_id, request) -> result
```

Each `run` builds a fresh namespace whose `__builtins__` holds only the safe builtins and the
DSL, so nothing survives from one frame to the next and a program can reach nothing else.
"""

from __future__ import annotations

import ast
import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any

import numpy as np

from edgefmp.errors import BudgetExceeded, EdgeFMPError, ProgramError
from edgefmp.program import allowlist as names
from edgefmp.program.answers import ProgramAnswer, check_answer
from edgefmp.program.api import CallSite, NeuralCaller, WorkBudget
from edgefmp.program.context import ExecutionContext
from edgefmp.program.dsl import ImagePatch, dsl_functions
from edgefmp.program.guards import Guards
from edgefmp.program.rewrite import rewrite
from edgefmp.program.safe_builtins import SafeBuiltins
from edgefmp.program.sites import collect_sites
from edgefmp.program.validate import validate
from edgefmp.results import check_image

log = logging.getLogger(__name__)

# Programs are short; a bound keeps parsing and validation cheap even on hostile input.
MAX_SOURCE_CHARS = 100_000
DEFAULT_BUDGET = WorkBudget()  # frozen, so one shared default is safe
_MAX_MESSAGE = 300


class CompiledProgram:
    """A validated program, ready to run on frames.

    `sites` maps each site id to its CallSite, in source order. `run` may be called any number
    of times, from several threads: each call has its own context and namespace.
    """

    def __init__(self, source: str, filename: str, sites: dict[str, CallSite], code: CodeType, entry_line: int) -> None:
        self.source = source
        self.filename = filename
        self.sites = sites
        self._code = code
        self._entry_line = entry_line

    def __repr__(self) -> str:
        return f"CompiledProgram({self.filename!r}, {len(self.sites)} sites)"

    def run(
        self,
        image: np.ndarray,
        caller: NeuralCaller,
        budget: WorkBudget = DEFAULT_BUDGET,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> ProgramAnswer:
        """Run `execute_command(image)` on one RGB uint8 frame and return its answer: a str,
        bool, int or float, a patch, or a list of those (answers.py).

        Neural calls go to `caller.call(site_id, request)`. Raises BudgetExceeded when the
        program exceeds `budget`, ProgramError (with the line) when it fails or returns
        something that is not an answer, and lets the caller's own EdgeFMPError through
        unchanged. `clock` is for tests.
        """
        try:
            check_image(image, f"{self.filename}: run()")
        except ValueError as exc:
            raise ProgramError(str(exc)) from exc
        context = ExecutionContext(caller, budget, clock)
        guards = Guards(context)
        namespace: dict[str, Any] = {
            "__builtins__": {**SafeBuiltins(guards).mapping(), **dsl_functions(context)},
            "__name__": "edgefmp_program",
            **guards.namespace(),
            names.HELPER_ANSWER: check_answer,
        }
        try:
            exec(self._code, namespace)  # the validated, guarded code object, in its own namespace
            entry = namespace[names.ENTRY_POINT]
            answer = guards.call(None, self._entry_line, entry, ImagePatch(image, context))
            context.check_value(answer, self._entry_line, "the answer")
            return check_answer(answer, self._entry_line)  # each return was checked already
        except EdgeFMPError as exc:
            if isinstance(exc, ProgramError) and exc.line is None:
                line = self._line_of(exc)
                raise type(exc)(f"line {line}: {exc}", line) from exc
            raise
        except RecursionError as exc:
            line = self._line_of(exc)
            raise BudgetExceeded(
                f"line {line}: the program recursed past the interpreter's limit: over the work budget max_depth",
                line,
            ) from exc
        except MemoryError as exc:
            line = self._line_of(exc)
            raise BudgetExceeded(
                f"line {line}: the program ran out of memory: over the work budget max_sequence", line
            ) from exc
        except Exception as exc:  # any error of the program's own making ends its frame
            line = self._line_of(exc)
            detail = f"{type(exc).__name__}: {exc}"
            if len(detail) > _MAX_MESSAGE:
                detail = detail[:_MAX_MESSAGE] + "..."
            raise ProgramError(f"line {line}: the program failed with {detail}", line) from exc

    def _line_of(self, exc: BaseException) -> int:
        """The program line where `exc` was raised (the innermost frame of this program)."""
        line = self._entry_line
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == self.filename:
                line = lineno
        return line


def _parse(source: str, filename: str) -> ast.Module:
    if not isinstance(source, str):
        raise ProgramError(f"{filename}: a program is source text (str), got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise ProgramError(
            f"{filename}: the program has {len(source)} characters; at most {MAX_SOURCE_CHARS} are accepted"
        )
    try:
        return ast.parse(source, filename=filename, mode="exec")
    except SyntaxError as exc:
        line = exc.lineno or None
        where = f"line {line}: " if line else ""
        raise ProgramError(f"{where}syntax error: {exc.msg} (col {exc.offset})", line) from exc
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ProgramError(
            f"{filename}: the program cannot be parsed ({type(exc).__name__}); it nests too deeply or holds a NUL byte"
        ) from exc


def compile_program(source: str, filename: str = "<program>") -> CompiledProgram:
    """Parse, validate and prepare `source`; raise ProgramError naming the line on rejection."""
    tree = _parse(source, filename)
    try:
        validate(tree, filename)
        sites = collect_sites(tree, source)
        entry_line = next(s.lineno for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == names.ENTRY_POINT)
        code = compile(rewrite(tree), filename, "exec", dont_inherit=True)
    except RecursionError as exc:
        raise ProgramError(f"{filename}: the program nests too deeply to be checked; simplify its expressions") from exc
    except SyntaxError as exc:  # e.g. `break` outside a loop, found only by the compiler
        line = exc.lineno or None
        raise ProgramError(f"line {line}: {exc.msg}" if line else f"{filename}: {exc.msg}", line) from exc
    log.debug("compiled %s: %d neural call sites", filename, len(sites))
    return CompiledProgram(source, filename, sites, code, entry_line)


def load_program(path: str | os.PathLike[str]) -> CompiledProgram:
    """Read and compile a program file; errors name the file."""
    file = Path(path)
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(f"{file}: cannot read the program: {exc}") from exc
    try:
        return compile_program(source, filename=str(file))
    except ProgramError as exc:
        message = str(exc)
        raise ProgramError(message if message.startswith(str(file)) else f"{file}: {message}", exc.line) from exc
