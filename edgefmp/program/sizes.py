"""How big a program value really is, measured without building anything.

A single C-level operation (repr, ==, hash, sort) on a value walks every reference inside it,
and aliasing makes that far larger than memory suggests: `b = [a] * 1000` holds a thousand
references to one list `a`. The runtime cannot interrupt C code, so before such an operation
it measures the value here and refuses it when the walk would be too long. The walk itself
stops as soon as it passes the cap, so measuring costs at most O(cap).
"""

from __future__ import annotations

import math
from typing import Any

_DICT_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
CONTAINER_TYPES: frozenset[type] = frozenset({list, tuple, dict, set, frozenset, *_DICT_VIEWS})
SIZED_TYPES: frozenset[type] = frozenset({str, list, tuple, dict, set})
_DEEP_TYPES: frozenset[type] = CONTAINER_TYPES | {str}


def measure(value: Any, cap: int, max_nesting: int) -> tuple[int, bool]:
    """Return (size, too_deep) for `value`.

    `size` counts every reference inside containers plus the characters of every string, as
    many times as they are reachable (that is what repr and == walk); it stops growing soon
    after passing `cap`. `too_deep` is True when containers nest more than `max_nesting`
    levels, which also catches cycles (a list that contains itself).
    """
    kind = type(value)
    if kind is str:
        return len(value), False
    if kind not in CONTAINER_TYPES:
        return 1, False
    total = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        obj, level = stack.pop()
        if level > max_nesting:
            return total, True
        parts = (obj.keys(), obj.values()) if type(obj) is dict else (obj,)
        for part in parts:
            total += len(part)
            if total > cap:
                return total, False
            if set(map(type, part)).isdisjoint(_DEEP_TYPES):
                continue  # only atoms: counted by len, no need to look inside
            for item in part:
                item_kind = type(item)
                if item_kind is str:
                    total += len(item)
                elif item_kind in CONTAINER_TYPES:
                    stack.append((item, level + 1))
            if total > cap:
                return total, False
    return total, False


def power_bits(base: int, exponent: int) -> float:
    """About how many bits `base ** exponent` has (0 when the result is small or a float)."""
    if exponent <= 0 or abs(base) <= 1:
        return 0.0
    return exponent * math.log2(abs(base))


def product_bits(left: int, right: int) -> int:
    """An upper bound on the bits of `left * right`."""
    return left.bit_length() + right.bit_length()


def shift_bits(value: int, shift: int) -> int:
    """The bits of `value << shift` (0 when nothing grows)."""
    if value == 0 or shift <= 0:
        return 0
    return value.bit_length() + shift
