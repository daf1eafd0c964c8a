"""The variant matrix: sizes x precisions x batch axes, each variant in its own folder.

A user writes comma lists (`--precision fp32,fp16,int8 --batch 1,dynamic`); this module
turns them into concrete `Variant`s with stable folder names, so re-running an export
overwrites the same folders and a status table can name each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefmp.errors import ConfigError

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int8-dynamic", "int8-static")
DYNAMIC = "dynamic"


@dataclass(frozen=True)
class Variant:
    """One cell of the matrix. `batch` None means a dynamic batch axis."""

    size: str
    precision: str
    batch: int | None = None

    @property
    def name(self) -> str:
        """Folder name: `<size>-<precision>[-b<batch>]`, e.g. `s-int8-static`, `fp16-b4`."""
        parts = [p for p in (self.size, self.precision) if p]
        if self.batch is not None:
            parts.append(f"b{self.batch}")
        return "-".join(parts)


def parse_csv(text: str | list[str] | tuple[str, ...] | None, what: str) -> list[str]:
    """`a,b , c` -> ['a', 'b', 'c']; duplicates dropped, order kept; empty is an error."""
    if text is None:
        return []
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        if item and item not in out:
            out.append(item)
    if not out:
        raise ConfigError(f"{what}: the list is empty")
    return out


def parse_precisions(text: str | list[str] | None, what: str = "--precision") -> list[str]:
    """`fp32,int8` -> ['fp32', 'int8']; `what` names where the list came from in errors
    (the flag, or a recipe's file and field)."""
    items = parse_csv(text or "fp32", what)
    bad = [p for p in items if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"{what}: unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)}")
    return items


def parse_batches(text: str | list[str] | None, what: str = "--batch") -> list[int | None]:
    """`1,4,dynamic` -> [1, 4, None]."""
    out: list[int | None] = []
    for item in parse_csv(text or DYNAMIC, what):
        if item.lower() in (DYNAMIC, "dyn", "-1"):
            value: int | None = None
        else:
            try:
                value = int(item)
            except ValueError:
                raise ConfigError(f"{what}: {item!r} is neither a positive integer nor 'dynamic'") from None
            if value < 1:
                raise ConfigError(f"{what}: {value} must be >= 1 (or 'dynamic')")
        if value not in out:
            out.append(value)
    return out


def resolve_precision(precision: str, has_calibration: bool) -> str:
    """`int8` means static when calibration frames are given, dynamic otherwise."""
    if precision == "int8":
        return "int8-static" if has_calibration else "int8-dynamic"
    return precision


def expand(
    sizes: list[str],
    precisions: list[str],
    batches: list[int | None],
    has_calibration: bool,
) -> list[Variant]:
    """The full matrix in a stable order (size, then batch, then precision)."""
    out: list[Variant] = []
    for size in sizes or [""]:
        for batch in batches or [None]:
            for precision in precisions:
                variant = Variant(size, resolve_precision(precision, has_calibration), batch)
                if variant not in out:
                    out.append(variant)
    return out
