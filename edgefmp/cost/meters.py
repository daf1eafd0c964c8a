"""Energy meters: how many joules a backend call used, and which meter said so.

A meter brackets a call with `begin()` / `end()`. Hardware meters read an energy counter
(NVML, RAPL) or a power sensor (Jetson rails) before and after; where none is readable the
EstimatedMeter multiplies the call's latency by a documented device power model
(docs/COSTS.md) and every output labels that figure `estimated`.

Hardware meters see the GPU, the CPU package or the board, not the radio, so the network part
of a call (bytes moved x joules per byte) is always an estimate: a reading that includes it is
labelled `<meter>+estimated`. A counter that did not move during a call too short for its
update period yields a pure estimate labelled `estimated`, never a zero labelled as measured.

`select_meter` picks the best readable meter; `describe_meters` says for `edgefmp doctor`
which meters this machine offers and, for the others, why not and how to enable them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)

# Power while a backend is busy, when the catalog gives no `power_w` for it (watts).
DEFAULT_BUSY_POWER_W = {"device": 15.0, "remote": 2.0}
# Energy the device's network interface spends per byte moved (joules), Wi-Fi class.
DEFAULT_JOULES_PER_BYTE = 5e-8

METER_NAMES: tuple[str, ...] = ("auto", "jetson", "nvml", "rapl", "estimated")
# Order tried by "auto": whole-board rails first, then the GPU, then the CPU package.
AUTO_ORDER: tuple[str, ...] = ("jetson", "nvml", "rapl")


@dataclass(frozen=True)
class Reading:
    joules: float
    source: str


class MeterUnavailable(ConfigError):
    """A meter that was asked for cannot be read on this machine; the message says how to fix it."""


class MeterStatus(NamedTuple):
    """One line of `edgefmp doctor`: a meter, whether it can be read, and why (not)."""

    name: str
    available: bool
    reason: str


def busy_power_w(location: str, power_w: float | None = None) -> float:
    """The catalog's `power_w` for a backend, else the default for its location."""
    if power_w is not None:
        return power_w
    return DEFAULT_BUSY_POWER_W.get(location, DEFAULT_BUSY_POWER_W["device"])


class EnergyMeter(ABC):
    """Measures the energy of one call."""

    name: str = "none"

    @abstractmethod
    def begin(self) -> object:
        """Take a reading before the call; the token goes back to `end`."""

    @abstractmethod
    def end(self, token: object, *, latency_s: float, power_w: float, bytes_moved: int) -> Reading:
        """Energy used since `begin`."""

    def describe(self) -> str:
        """What this meter reads, for `doctor` and run headers."""
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook, most meters hold nothing
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

    def describe(self) -> str:
        return "busy power x latency + joules per byte x bytes moved (docs/COSTS.md)"


class HardwareMeter(EnergyMeter):
    """A meter backed by a device reading, with the labelled fallbacks described above.

    Subclasses implement `_sample()` (a token, raising OSError or the engine's error when the
    device cannot be read) and `_joules(start, stop, latency_s)`.
    """

    def __init__(self, joules_per_byte: float = DEFAULT_JOULES_PER_BYTE) -> None:
        self._estimate = EstimatedMeter(joules_per_byte)

    @abstractmethod
    def _sample(self) -> object:
        """Read the device now."""

    @abstractmethod
    def _joules(self, start: object, stop: object, latency_s: float) -> float:
        """Energy between two samples; <= 0 when the reading cannot tell."""

    def begin(self) -> object:
        try:
            return self._sample()
        except Exception as exc:  # noqa: BLE001 - any read failure falls back to an estimate
            log.warning(
                "%s meter could not be read (%s); this call's energy will be estimated",
                self.name,
                exc,
            )
            return None

    def end(self, token: object, *, latency_s: float, power_w: float, bytes_moved: int) -> Reading:
        joules = 0.0
        if token is not None:
            try:
                joules = self._joules(token, self._sample(), latency_s)
            except Exception as exc:  # noqa: BLE001
                log.warning(
                    "%s meter could not be read (%s); this call's energy will be estimated",
                    self.name,
                    exc,
                )
        if joules <= 0.0:
            # Too short for the counter's update period (or unreadable): say so.
            return self._estimate.end(token, latency_s=latency_s, power_w=power_w, bytes_moved=bytes_moved)
        if bytes_moved > 0:
            return Reading(joules + self._estimate.joules_per_byte * bytes_moved, f"{self.name}+estimated")
        return Reading(joules, self.name)


# ------------------------------------------------------------------------------- selection


def _open(name: str, rapl_root: Path | None) -> EnergyMeter:
    """Open the named hardware meter or raise MeterUnavailable (heavy imports stay lazy)."""
    if name == "nvml":
        from edgefmp.cost.nvml import NvmlMeter

        return NvmlMeter()
    if name == "rapl":
        from edgefmp.cost.rapl import RaplMeter

        return RaplMeter() if rapl_root is None else RaplMeter(rapl_root)
    if name == "jetson":
        from edgefmp.cost.jetson import JetsonMeter

        return JetsonMeter()
    if name == "estimated":
        return EstimatedMeter()
    raise ConfigError(f"unknown energy meter {name!r}; available: {', '.join(METER_NAMES)}")


def select_meter(prefer: str = "auto", *, rapl_root: Path | None = None) -> EnergyMeter:
    """The best meter this machine offers (`prefer` names one to force).

    "auto" tries jetson, nvml, rapl in turn and falls back to the estimate; naming a hardware
    meter that cannot be read raises MeterUnavailable saying why and how to enable it.
    `rapl_root` replaces /sys/class/powercap (tests, containers with a bind mount).
    """
    if prefer not in METER_NAMES:
        raise ConfigError(f"unknown energy meter {prefer!r}; available: {', '.join(METER_NAMES)}")
    if prefer != "auto":
        meter = _open(prefer, rapl_root)
        log.info("energy meter: %s (%s)", meter.name, meter.describe())
        return meter
    reasons = []
    for name in AUTO_ORDER:
        try:
            meter = _open(name, rapl_root)
        except MeterUnavailable as exc:
            reasons.append(str(exc))
            continue
        log.info("energy meter: %s (%s)", meter.name, meter.describe())
        return meter
    log.info("energy meter: estimated; no hardware meter is readable: %s", "; ".join(reasons))
    return EstimatedMeter()


def describe_meters(*, rapl_root: Path | None = None) -> list[MeterStatus]:
    """Every meter kind with whether it can be read here and why (not), for `edgefmp doctor`."""
    out: list[MeterStatus] = []
    for name in AUTO_ORDER:
        try:
            meter = _open(name, rapl_root)
        except MeterUnavailable as exc:
            out.append(MeterStatus(name, False, str(exc)))
            continue
        try:
            out.append(MeterStatus(name, True, meter.describe()))
        finally:
            meter.close()
    out.append(MeterStatus("estimated", True, EstimatedMeter().describe()))
    return out
