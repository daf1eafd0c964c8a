"""The zoo's models by name: family, size, width and training recipe (no torch here).

Sizes follow the width multiplier `base`; FLOPs grow with its square, so s/m/l at base
6/12/24 are 1:4:16, and xl (base 32 / 40, the model the remote tier serves) goes further.
Small models get the recipe of a cheap edge model (clean data, fewer steps); larger ones train
longer on clean plus corrupted scenes, which is why they are more robust to camera
corruptions, as in real deployments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgefmp.errors import ConfigError

Family = Literal["shapedet", "attrnet"]

DET_INPUT_HW = (96, 128)
ATTR_INPUT_HW = (64, 64)


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo and how to train it."""

    family: Family
    size: str
    base: int
    steps: int
    robust: bool
    lr: float = 4e-3
    batch: int = 32
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.family}-{self.size}"

    @property
    def widths(self) -> tuple[int, int, int]:
        return (self.base, 2 * self.base, 4 * self.base)

    @property
    def function(self) -> str:
        return "detect" if self.family == "shapedet" else "verify"


ZOO: tuple[ZooModel, ...] = (
    ZooModel("shapedet", "s", 6, 600, robust=False, seed=11),
    ZooModel("shapedet", "m", 12, 900, robust=False, seed=12),
    ZooModel("shapedet", "l", 24, 1000, robust=True, seed=13),
    ZooModel("shapedet", "xl", 32, 1200, robust=True, seed=14),
    ZooModel("attrnet", "s", 6, 800, robust=False, seed=21),
    ZooModel("attrnet", "m", 12, 800, robust=False, seed=22),
    ZooModel("attrnet", "l", 24, 1500, robust=True, seed=23),
    ZooModel("attrnet", "xl", 40, 1500, robust=True, seed=24),
)


def zoo_model(name: str) -> ZooModel:
    """The model called `name`; the error lists the zoo."""
    for m in ZOO:
        if m.name == name:
            return m
    raise ConfigError(f"unknown zoo model {name!r}; available: {', '.join(m.name for m in ZOO)}")


def select(names: str | None) -> list[ZooModel]:
    """Models named in a comma-separated list (all when None or empty)."""
    if not names:
        return list(ZOO)
    return [zoo_model(n.strip()) for n in names.split(",") if n.strip()]
