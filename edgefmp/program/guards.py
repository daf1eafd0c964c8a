"""The checks a rewritten program runs through: every call, loop step, operator and format.

The rewriter (rewrite.py) turns `f(x)` into `__efmp_call(site, line, f, x)`, `a * b` into
`__efmp_binop('*', a, b, line)` and so on. Each helper checks, BEFORE the work happens, that
it fits the budget: the interpreter cannot interrupt one long C-level operation (`9**9**9`,
`'a' * 10**10`, sorting a list of a million aliased lists), so a check after the fact would
come too late. Work that is linear in an already-checked size is charged after it is done.
"""

from __future__ import annotations

import operator
import re
import types
from collections.abc import Callable
from typing import Any

from edgefmp.errors import ProgramError
from edgefmp.program import allowlist as names
from edgefmp.program.context import ExecutionContext
from edgefmp.program.dsl import ImagePatch
from edgefmp.program.sizes import SIZED_TYPES, power_bits, product_bits, shift_bits

BINARY_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "|": operator.or_,
    "^": operator.xor,
    "&": operator.and_,
}

INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.iadd,
    "-": operator.isub,
    "*": operator.imul,
    "/": operator.itruediv,
    "//": operator.ifloordiv,
    "%": operator.imod,
    "**": operator.ipow,
    "<<": operator.ilshift,
    ">>": operator.irshift,
    "|": operator.ior,
    "^": operator.ixor,
    "&": operator.iand,
}


def _not_in(container: Any, item: Any) -> bool:
    return not operator.contains(container, item)


COMPARE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "is": operator.is_,
    "is not": operator.is_not,
    "in": lambda item, container: operator.contains(container, item),
    "not in": lambda item, container: _not_in(container, item),
}

# Values whose comparison and repr cost O(1) or O(len) with len already checked.
_SCALARS: frozenset[type] = frozenset({int, float, bool, str, type(None), ImagePatch})
# Operators that hash or walk the elements of containers (set algebra, dict views).
_SET_OPERATORS = frozenset({"-", "|", "^", "&"})
_SEQUENCES = (str, list, tuple)

# %-format specifiers: flags, width, precision, conversion.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")
_DIGITS = re.compile(r"\d+")

# Scanning characters (str methods, `in`, ==) is far cheaper per item than building lists.
STR_CHARS_PER_STEP = 1024

_BUILTIN_METHOD: type = type([].append)  # a method bound to a str/list/dict: "abc".replace
_METHOD_DESCRIPTOR: type = type(str.join)  # the same method taken from the type: str.join


class Guards:
    """The runtime helpers of one execution, bound to its context."""

    def __init__(self, context: ExecutionContext) -> None:
        self.context = context
        self._method_checks: dict[
            tuple[type, str], Callable[[Any, tuple[Any, ...], dict[str, Any], int], tuple[Any, ...]]
        ] = {
            (str, "replace"): self._check_replace,
            (str, "join"): self._check_join,
            (list, "extend"): self._check_extend,
            (list, "append"): self._check_append,
            (list, "sort"): self._check_sort,
            (list, "index"): self._check_search,
            (list, "count"): self._check_search,
            (tuple, "index"): self._check_search,
            (tuple, "count"): self._check_search,
            (dict, "get"): self._check_lookup,
            (dict, "pop"): self._check_lookup,
        }

    def namespace(self) -> dict[str, Any]:
        """The helper names the rewriter uses, bound to this execution."""
        return {
            names.HELPER_CALL: self.call,
            names.HELPER_TICK: self.context.tick,
            names.HELPER_BINOP: self.binop,
            names.HELPER_AUGOP: self.augop,
            names.HELPER_COMPARE: self.compare,
            names.HELPER_COMPARE_CHAIN: self.compare_chain,
            names.HELPER_KEY: self.key,
            names.HELPER_FORMAT: self.format,
            names.HELPER_JOINED: self.joined,
            names.HELPER_SLICE: self.slice,
        }

    # ----------------------------------------------------------------------------- calls

    def call(self, site: str | None, line: int, func: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call `func` as the program's call at `line`: one step, one level of depth, the
        size checks of risky builtin methods, and the current call site for neural calls."""
        ctx = self.context
        ctx.tick(line)
        if ctx.depth >= ctx.budget.max_depth:
            raise ctx.over("max_depth", line, "calls nest too deep (runaway recursion?)")
        program_function = type(func) is types.FunctionType
        if not program_function:
            args = self._check_method(func, args, kwargs, line)
        saved = ctx.site, ctx.line
        ctx.site, ctx.line = site, line
        ctx.depth += 1
        try:
            result = func(*args, **kwargs)
        finally:
            ctx.depth -= 1
            ctx.site, ctx.line = saved
        if not program_function and type(result) in SIZED_TYPES:
            ctx.charge(len(result), line)
        return result

    def callback(self, func: Any, line: int) -> Callable[[Any], Any]:
        """Wrap a `key=` function so the calls C code makes to it are guarded too."""
        return lambda value: self.call(None, line, func, value)

    def materialize(self, iterable: Any, line: int) -> list[Any] | tuple[Any, ...]:
        """A list of `iterable`'s items (generators tick as they run), size-checked and
        charged when a new list had to be built."""
        if type(iterable) in (list, tuple):
            return iterable  # type: ignore[no-any-return]
        items = list(iterable)
        self.context.charge(len(items), line)
        return items

    def _check_method(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], line: int) -> tuple[Any, ...]:
        kind = type(func)
        if kind is _BUILTIN_METHOD:
            owner = getattr(func, "__self__", None)
            if type(owner) is str and len(owner) >= STR_CHARS_PER_STEP:  # every str method scans its string
                self.context.tick(line, len(owner) // STR_CHARS_PER_STEP)
            check = self._method_checks.get((type(owner), getattr(func, "__name__", "")))
            if check is not None:
                return check(owner, args, kwargs, line)
        elif kind is _METHOD_DESCRIPTOR and args:
            check = self._method_checks.get((func.__objclass__, func.__name__))
            if check is not None and type(args[0]) is func.__objclass__:
                return (args[0], *check(args[0], args[1:], kwargs, line))
        return args

    def _check_replace(self, text: str, args: tuple[Any, ...], kwargs: dict[str, Any], line: int) -> tuple[Any, ...]:
        if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            old, new = args[0], args[1]
            hits = text.count(old) if old else len(text) + 1
            limit = args[2] if len(args) > 2 and isinstance(args[2], int) else kwargs.get("count", -1)
            if isinstance(limit, int) and limit >= 0:
                hits = min(hits, limit)
            self.context.check_size(len(text) + hits * max(0, len(new) - len(old)), line, "str.replace() result")
        return args

    def _check_join(self, sep: str, args: tuple[Any, ...], kwargs: dict[str, Any], line: int) -> tuple[Any, ...]:
        if len(args) != 1:
            return args
        items = self.materialize(args[0], line)
        total = sum(len(item) for item in items if type(item) is str) + len(sep) * max(0, len(items) - 1)
        self.context.check_size(total, line, "str.join() result")
        return (items,)

    def _check_extend(
        self, target: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any], line: int
    ) -> tuple[Any, ...]:
        if len(args) != 1:
            return args
        items = args[0] if type(args[0]) in SIZED_TYPES else self.materialize(args[0], line)
        self.context.check_size(len(target) + len(items), line, "list.extend() result")
        return (items,)

    def _check_append(
        self, target: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any], line: int
    ) -> tuple[Any, ...]:
        self.context.check_size(len(target) + 1, line, "list.append() result")
        return args

    def _check_sort(
        self, target: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any], line: int
    ) -> tuple[Any, ...]:
        self.context.check_value(target, line, "the sorted list")
        if kwargs.get("key") is not None:
            kwargs["key"] = self.callback(kwargs["key"], line)
        return args

    def _check_search(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], line: int) -> tuple[Any, ...]:
        self.context.check_value(target, line, "the searched sequence")
        if args:
            self.context.check_value(args[0], line, "the searched value")
        return args

    def _check_lookup(
        self, target: dict[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], line: int
    ) -> tuple[Any, ...]:
        if args:
            self.key(args[0], line)
        return args

    # ------------------------------------------------------------------------- operators

    def binop(self, op: str, left: Any, right: Any, line: int) -> Any:
        """`left op right`, refused before it runs if the result would be too big."""
        right = self._check_operands(op, left, right, line, inplace=False)
        result = BINARY_OPERATORS[op](left, right)
        self._check_result(result, line)
        return result

    def augop(self, op: str, left: Any, right: Any, line: int) -> Any:
        """`left op= right` with Python's in-place semantics (a list `+=` extends it)."""
        right = self._check_operands(op, left, right, line, inplace=True)
        before = len(left) if type(left) in SIZED_TYPES else 0
        result = INPLACE_OPERATORS[op](left, right)
        if result is left and type(result) in SIZED_TYPES:  # grown in place: charge what was added
            self.context.check_size(len(result), line, f"a grown {type(result).__name__}")
            self.context.charge(max(0, len(result) - before), line)
        else:
            self._check_result(result, line)
        return result

    def _check_operands(self, op: str, left: Any, right: Any, line: int, inplace: bool) -> Any:
        ctx = self.context
        left_int = isinstance(left, int)
        right_int = isinstance(right, int)
        if op == "**":
            if left_int and right_int:
                ctx.check_int(power_bits(left, right), line)
        elif op == "*":
            if left_int and right_int:
                ctx.check_int(product_bits(left, right), line)
            elif isinstance(left, _SEQUENCES) and right_int:
                ctx.check_size(len(left) * max(right, 0), line, f"a repeated {type(left).__name__}")
            elif left_int and isinstance(right, _SEQUENCES):
                ctx.check_size(len(right) * max(left, 0), line, f"a repeated {type(right).__name__}")
        elif op == "<<":
            if left_int and right_int:
                ctx.check_int(shift_bits(left, right), line)
        elif op == "+":
            if inplace and type(left) is list and type(right) not in SIZED_TYPES:
                right = self.materialize(right, line)
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                ctx.check_size(len(left) + len(right), line, f"a joined {type(left).__name__}")
        elif op == "%":
            if type(left) is str:
                self._check_percent_format(left, right, line)
        elif op in _SET_OPERATORS and not (type(left) in _SCALARS and type(right) in _SCALARS):
            ctx.check_value(left, line)
            ctx.check_value(right, line)
        return right

    def _check_percent_format(self, template: str, values: Any, line: int) -> None:
        specs = _PERCENT_SPEC.findall(template)
        padding = 0
        for width, precision, _ in specs:
            if width == "*" or precision == "*":
                raise ProgramError(f"line {line}: '*' widths in %-formatting are not supported; use an f-string", line)
            padding += sum(int(n) if len(n) < 10 else 10**9 for n in (width, precision) if n)
        size = self.context.check_value(values, line, "the %-format arguments")
        if type(values) is dict:  # %(name)s may repeat one value many times
            size *= max(len(specs), 1)
        self.context.check_size(len(template) + padding + size, line, "a %-formatted string")

    def _check_result(self, result: Any, line: int) -> None:
        kind = type(result)
        if kind is int:
            if result.bit_length() > self.context.budget.max_int_bits:
                self.context.check_int(result.bit_length(), line)
        elif kind in SIZED_TYPES:
            self.context.charge(len(result), line)

    def compare(self, op: str, left: Any, right: Any, line: int) -> Any:
        """One comparison; containers are measured first (== and `in` walk them in C)."""
        if type(left) in _SCALARS and type(right) in _SCALARS:
            if type(right) is str and len(right) >= STR_CHARS_PER_STEP:  # `in` and == scan the string
                self.context.tick(line, len(right) // STR_CHARS_PER_STEP)
        elif op not in ("is", "is not"):
            self.context.check_value(left, line)
            self.context.check_value(right, line)
        return COMPARE_OPERATORS[op](left, right)

    def compare_chain(self, line: int, left: Any, ops: tuple[str, ...], rights: tuple[Callable[[], Any], ...]) -> Any:
        """`a < b < c`: each right side is a thunk, evaluated once and only if needed."""
        result: Any = True
        for op, right_thunk in zip(ops, rights, strict=True):
            right = right_thunk()
            result = self.compare(op, left, right, line)
            if not result:
                return result
            left = right
        return result

    def key(self, key: Any, line: int) -> Any:
        """A dict key or set element: hashing a tuple walks it in C, so measure it first."""
        if type(key) is tuple:
            self.context.check_value(key, line, "a key")
        return key

    def slice(self, obj: Any, lower: Any, upper: Any, step: Any, line: int) -> Any:
        """`obj[lower:upper:step]`, charged for the copy it makes."""
        result = obj[lower:upper:step]
        if type(result) in SIZED_TYPES:
            self.context.charge(len(result), line)
        return result

    # ---------------------------------------------------------------------------- strings

    def format(self, value: Any, conversion: int, spec: str, line: int) -> str:
        """One `{value!conversion:spec}` of an f-string, with its size checked first."""
        ctx = self.context
        ctx.check_value(value, line, "a formatted value")
        for digits in _DIGITS.findall(spec):
            if len(digits) > 9 or int(digits) > ctx.budget.max_sequence:
                raise ctx.over("max_sequence", line, f"a format width or precision of {digits[:12]}")
        if conversion == ord("r"):
            value = repr(value)
        elif conversion == ord("s"):
            value = str(value)
        elif conversion == ord("a"):
            value = ascii(value)
        text = format(value, spec)
        ctx.charge(len(text), line, "a formatted string")
        return text

    def joined(self, text: str, line: int) -> str:
        """A whole f-string, charged for its length."""
        self.context.charge(len(text), line, "an f-string")
        return text
