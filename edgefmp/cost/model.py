"""Turning a measured Cost into one number, for policies that want a scalar."""

from __future__ import annotations

from dataclasses import dataclass

from edgefmp.trace import Cost


@dataclass(frozen=True)
class CostModel:
    """A weighted sum of cost components.

    The defaults make one millisecond, one tenth of a joule and 10 kB of traffic about equal,
    which suits a battery-powered device on a metered link; set your own weights to taste.
    """

    latency_ms: float = 1.0
    energy_j: float = 10.0
    kbytes: float = 0.1
    money: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("latency_ms", "energy_j", "kbytes", "money"):
            if getattr(self, name) < 0:
                raise ValueError(f"CostModel.{name} must be >= 0, got {getattr(self, name)}")

    def scalar(self, cost: Cost) -> float:
        return (
            self.latency_ms * cost.latency_ms
            + self.energy_j * cost.energy_j
            + self.kbytes * (cost.bytes_up + cost.bytes_down) / 1000.0
            + self.money * cost.money
        )
