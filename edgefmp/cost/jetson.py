"""JetsonMeter: board power from the Jetson's INA3221 rails, read through jtop (jetson-stats).

Jetson rails report power, not energy, so a call's energy is the mean of the total input power
(`VDD_IN` / `POM_5V_IN`, else the sum of the rails) read at its start and end, times its
latency. jtop refreshes its readings every `interval` seconds, so this is a coarse
integration: good for calls of about the interval or longer, and a sampled figure rather than
a counter difference. A zero reading is estimated and labelled so.
"""

from __future__ import annotations

import logging
from typing import Any

from edgefmp.cost.meters import DEFAULT_JOULES_PER_BYTE, HardwareMeter, MeterUnavailable

log = logging.getLogger(__name__)

_INSTALL = "install jetson-stats (sudo pip3 install -U jetson-stats, or pip install 'edgefmp[jetson]')"


def total_power_w(power: Any) -> float:
    """Watts from jtop's `power` dict ({'rail': {name: {'power': mW}}, 'tot': {'power': mW}})."""
    if not isinstance(power, dict):
        return 0.0
    tot = power.get("tot")
    if isinstance(tot, dict) and "power" in tot:
        return float(tot["power"]) / 1000.0
    rails = power.get("rail", {})
    return sum(float(r.get("power", 0)) for r in rails.values() if isinstance(r, dict)) / 1000.0


class JetsonMeter(HardwareMeter):
    """Board energy of an NVIDIA Jetson from jtop's power readings."""

    name = "jetson"

    def __init__(self, interval: float = 0.5, joules_per_byte: float = DEFAULT_JOULES_PER_BYTE) -> None:
        super().__init__(joules_per_byte)
        try:
            from jtop import jtop
        except ImportError as exc:
            raise MeterUnavailable(f"jetson: jtop is not installed; {_INSTALL}") from exc
        self._jtop: Any = jtop(interval=interval)
        try:
            self._jtop.start()
        except Exception as exc:  # noqa: BLE001 - JtopException and socket errors alike
            raise MeterUnavailable(
                f"jetson: cannot reach the jtop service ({exc}); start it with "
                "`sudo systemctl restart jtop.service` (this is only possible on a Jetson)"
            ) from exc
        if total_power_w(self._jtop.power) <= 0.0:
            self._jtop.close()
            raise MeterUnavailable("jetson: jtop reports no power rails on this board")

    def _sample(self) -> object:
        return total_power_w(self._jtop.power)

    def _joules(self, start: object, stop: object, latency_s: float) -> float:
        if not isinstance(start, float) or not isinstance(stop, float):
            return 0.0
        return (start + stop) / 2.0 * latency_s

    def describe(self) -> str:
        return "jtop board input power x latency (sampled)"

    def close(self) -> None:
        try:
            self._jtop.close()
        except Exception as exc:  # noqa: BLE001
            log.debug("jtop close failed: %s", exc)
