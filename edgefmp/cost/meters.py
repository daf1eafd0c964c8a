"""Energy meters: how many joules a backend call used, and which meter said so.

A meter brackets a call with `begin()` / `end()`. Hardware meters read an energy counter
(NVML, Jetson rails, RAPL) before and after; where none is readable the EstimatedMeter
multiplies the call's latency by a documented device power model (docs/COSTS.md) and every
output labels that figure `estimated`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

# Power while a backend is busy, when the catalog gives no `power_w` for it (watts).
DEFAULT_BUSY_POWER_W = {"device": 15.0, "remote": 2.0}
# Energy the device's network interface spends per byte moved (joules), Wi-Fi class.
DEFAULT_JOULES_PER_BYTE = 5e-8


@dataclass(frozen=True)
class Reading:
    joules: float
    source: str


class EnergyMeter(ABC):
    """Measures the energy of one call."""

    name: str = "none"

    @abstractmethod
    def begin(self) -> object:
        """Take a reading before the call; the token goes back to `end`."""

    @abstractmethod
    def end(self, token: object, *, latency_s: float, power_w: float, bytes_moved: int) -> Reading:
        """Energy used since `begin`."""

    def close(self) -> None:
        """Release the meter's handles."""


class EstimatedMeter(EnergyMeter):
    """No hardware counter: power model x latency, plus network bytes x joules per byte."""

    name = "estimated"

    def __init__(self, joules_per_byte: float = DEFAULT_JOULES_PER_BYTE) -> None:
        self.joules_per_byte = joules_per_byte

    def begin(self) -> object:
        return None

    def end(self, token: object, *, latency_s: float, power_w: float, bytes_moved: int) -> Reading:
        return Reading(power_w * latency_s + self.joules_per_byte * bytes_moved, self.name)


def select_meter(prefer: str = "auto") -> EnergyMeter:
    """The best meter this machine offers (`prefer` names one to force)."""
    if prefer not in ("auto", "estimated"):
        raise ValueError(f"unknown energy meter {prefer!r}; available: auto, estimated")
    return EstimatedMeter()
