"""The builtins a program sees: the harmless ones as they are, the risky ones checked.

A program's `__builtins__` is exactly the dict `safe_builtins` returns, so a name that is not
in it does not exist for the program, whatever the validator missed. Checked versions:
- `range` refuses more than `max_range` items;
- `sorted`, `min`, `max`, `set`, `dict`, `str` measure their input first, because comparing,
  hashing or printing nested values walks them in C where no budget can interrupt;
  `key=` functions are guarded like any other call;
- `sum` adds numbers only (adding lists one by one is quadratic);
- `any` and `all` are charged for the items they scan;
- `int` and `round` refuse integers over `max_int_bits`;
- `isinstance` accepts only the plain value types, so checked versions still match;
- `print` does nothing but log at DEBUG (programs from an LLM often print as they work).

Each checked builtin is a bound method, not a plain function, so the call guard can tell the
program's own functions (plain functions) from the runtime's.
"""

from __future__ import annotations

import builtins
import logging
import reprlib
from typing import Any

from edgefmp.errors import ProgramError
from edgefmp.program.guards import Guards
from edgefmp.program.sizes import SIZED_TYPES

log = logging.getLogger(__name__)

_MISSING = object()
_PLAIN: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in ("len", "abs", "float", "bool", "list", "tuple", "enumerate", "zip", "reversed")
}
_NUMBERS = (int, float)
_PRINT_REPR = reprlib.Repr()
_PRINT_REPR.maxstring = 200
_PRINT_REPR.maxother = 200


class SafeBuiltins:
    """The checked builtins of one execution."""

    def __init__(self, guards: Guards) -> None:
        self.guards = guards
        self.context = guards.context

    def mapping(self) -> dict[str, Any]:
        """Name -> callable, the whole builtins namespace of a program."""
        checked = {
            "range": self.safe_range,
            "sorted": self.safe_sorted,
            "min": self.safe_min,
            "max": self.safe_max,
            "sum": self.safe_sum,
            "round": self.safe_round,
            "int": self.safe_int,
            "str": self.safe_str,
            "dict": self.safe_dict,
            "set": self.safe_set,
            "isinstance": self.safe_isinstance,
            "print": self.safe_print,
            "any": self.safe_any,
            "all": self.safe_all,
        }
        return {**_PLAIN, **checked}

    @property
    def _line(self) -> int:
        return self.context.line

    def safe_range(self, *args: Any) -> range:
        """range(), refused beyond max_range items."""
        numbers = builtins.range(*args)
        try:
            size = len(numbers)
        except OverflowError:
            size = self.context.budget.max_range + 1
        if size > self.context.budget.max_range:
            raise self.context.over(
                "max_range", self._line, f"range() of {size if size < 10**15 else 'too many'} items"
            )
        return numbers

    def _items(self, args: tuple[Any, ...], name: str) -> Any:
        if not args:
            raise ProgramError(f"{name}() expects at least one argument")
        items = self.guards.materialize(args[0], self._line) if len(args) == 1 else args
        self.context.check_value(items, self._line, f"the items given to {name}()")
        return items

    def _key(self, key: Any) -> Any:
        return None if key is None else self.guards.callback(key, self._line)

    def safe_sorted(self, iterable: Any, /, *, key: Any = None, reverse: bool = False) -> list[Any]:
        """sorted(), measuring the items first (sorting compares them in C)."""
        items = self._items((iterable,), "sorted")
        return builtins.sorted(items, key=self._key(key), reverse=reverse)

    def safe_min(self, *args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        items = self._items(args, "min")
        if default is _MISSING:
            return builtins.min(items, key=self._key(key))
        return builtins.min(items, key=self._key(key), default=default)

    def safe_max(self, *args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        items = self._items(args, "max")
        if default is _MISSING:
            return builtins.max(items, key=self._key(key))
        return builtins.max(items, key=self._key(key), default=default)

    def safe_sum(self, iterable: Any, /, start: Any = 0) -> Any:
        """sum() of numbers; other items would be concatenated one by one (quadratic)."""
        items = self.guards.materialize(iterable, self._line)
        for item in (start, *items):
            if not isinstance(item, _NUMBERS):
                raise ProgramError(
                    f"sum() adds numbers only, got {type(item).__name__}; build lists with + or extend()"
                )
        total = builtins.sum(items, start)
        if isinstance(total, int):
            self.context.check_int(total.bit_length(), self._line)
        return total

    def safe_round(self, number: Any, ndigits: Any = None) -> Any:
        """round(); rounding an int to -n digits computes 10**n, so n is bounded."""
        if isinstance(ndigits, int) and ndigits < 0 and isinstance(number, int):
            self.context.check_int(-ndigits * 3.33, self._line)
        return builtins.round(number, ndigits)

    def safe_int(self, *args: Any) -> int:
        """int(), refusing results over max_int_bits."""
        value = int(*args)
        self.context.check_int(value.bit_length(), self._line)
        return value

    def safe_str(self, *args: Any) -> str:
        """str(), measuring the value first (printing a container walks all of it)."""
        if args:
            self.context.check_value(args[0], self._line, "the value given to str()")
        return str(*args)

    def safe_dict(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        """dict(), measuring the items first (building it hashes every key)."""
        if args:
            source = args[0] if type(args[0]) is dict else self.guards.materialize(args[0], self._line)
            self.context.check_value(source, self._line, "the items given to dict()")
            args = (source, *args[1:])
        return dict(*args, **kwargs)

    def safe_set(self, *args: Any) -> set[Any]:
        """set(), measuring the items first (building it hashes every item)."""
        if not args:
            return set()
        items = self.guards.materialize(args[0], self._line)
        self.context.check_value(items, self._line, "the items given to set()")
        return set(items)

    def safe_isinstance(self, obj: Any, classinfo: Any) -> bool:
        """isinstance() against the plain value types (int, float, str, bool, list, dict,
        tuple, set), named by their builtin names."""
        types_by_callable = {
            self.safe_int: int,
            self.safe_str: str,
            self.safe_dict: dict,
            self.safe_set: set,
        }
        allowed = {int, float, str, bool, list, dict, tuple, set}
        infos = classinfo if isinstance(classinfo, tuple) else (classinfo,)
        resolved = []
        for info in infos:
            kind = types_by_callable.get(info, info)
            if kind not in allowed:
                raise ProgramError(
                    "isinstance() accepts only int, float, str, bool, list, dict, tuple and set (or a tuple of them)"
                )
            resolved.append(kind)
        return isinstance(obj, tuple(resolved))

    def _charge_scan(self, iterable: Any) -> None:
        if type(iterable) in SIZED_TYPES:
            self.context.charge(len(iterable), self._line)

    def safe_any(self, iterable: Any, /) -> bool:
        """any(), charged for the items it scans (generators tick by themselves)."""
        self._charge_scan(iterable)
        return any(iterable)

    def safe_all(self, iterable: Any, /) -> bool:
        """all(), charged for the items it scans."""
        self._charge_scan(iterable)
        return all(iterable)

    def safe_print(self, *args: Any, **kwargs: Any) -> None:
        """A no-op that logs at DEBUG; programs answer by returning a value."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("program print at line %s: %s", self._line, " ".join(_PRINT_REPR.repr(a) for a in args))
