"""RaplMeter: CPU package energy from Linux powercap (Intel RAPL, also AMD Zen).

Each top-level zone `/sys/class/powercap/intel-rapl:N/energy_uj` is a microjoule counter that
wraps around at `max_energy_range_uj`; a call's energy is the difference of two reads, summed
over packages, with one wrap per zone allowed. Where a `psys` zone exists (the whole SoC on
recent laptops) it is used alone, since it already contains the packages. The counter updates
about every millisecond; it measures the whole package, so other processes' work is included.

Since Linux 5.10 (CVE-2020-8694) `energy_uj` is readable by root only; the error says how to
grant read access.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from edgefmp.cost.meters import DEFAULT_JOULES_PER_BYTE, HardwareMeter, MeterUnavailable

log = logging.getLogger(__name__)

POWERCAP_ROOT = Path("/sys/class/powercap")
_TOP_ZONE = re.compile(r"intel-rapl:\d+")


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name


class RaplMeter(HardwareMeter):
    """Energy of the CPU package(s) from the powercap RAPL counters under `root`."""

    name = "rapl"

    def __init__(self, root: Path = POWERCAP_ROOT, joules_per_byte: float = DEFAULT_JOULES_PER_BYTE) -> None:
        super().__init__(joules_per_byte)
        root = Path(root)
        if not root.is_dir():
            raise MeterUnavailable(
                f"rapl: {root} does not exist; RAPL needs Linux on an x86 CPU with the "
                "intel_rapl driver (sudo modprobe intel_rapl_common)"
            )
        zones = sorted(p for p in root.iterdir() if _TOP_ZONE.fullmatch(p.name))
        if not zones:
            raise MeterUnavailable(f"rapl: no intel-rapl:N zone under {root}; this CPU or kernel exposes no RAPL")
        names = {z: _read_name(z) for z in zones}
        psys = [z for z in zones if names[z] == "psys"]
        self._zones = psys or zones
        self._names = [names[z] for z in self._zones]
        self._ranges: list[int | None] = []
        for zone in self._zones:
            counter = zone / "energy_uj"
            try:
                _read_int(counter)
            except PermissionError as exc:
                raise MeterUnavailable(
                    f"rapl: cannot read {counter}: permission denied (root-only since Linux "
                    f"5.10); grant read access with `sudo chmod a+r {root}/intel-rapl:*/energy_uj` "
                    "(until reboot) or run as root"
                ) from exc
            except (OSError, ValueError) as exc:
                raise MeterUnavailable(f"rapl: cannot read {counter} ({exc})") from exc
            try:
                self._ranges.append(_read_int(zone / "max_energy_range_uj"))
            except (OSError, ValueError):
                log.debug("rapl: %s has no max_energy_range_uj; a wrap-around will be estimated", zone)
                self._ranges.append(None)

    def _sample(self) -> object:
        return tuple(_read_int(z / "energy_uj") for z in self._zones)

    def _joules(self, start: object, stop: object, latency_s: float) -> float:
        if not isinstance(start, tuple) or not isinstance(stop, tuple):
            return 0.0
        total_uj = 0
        for before, after, wrap in zip(start, stop, self._ranges, strict=True):
            delta = after - before
            if delta < 0:
                if wrap is None:
                    return 0.0  # cannot tell: the caller estimates and labels it
                delta += wrap
            total_uj += delta
        return total_uj / 1e6

    def describe(self) -> str:
        return "powercap RAPL energy counter of " + ", ".join(
            f"{z.name} ({n})" for z, n in zip(self._zones, self._names, strict=True)
        )
