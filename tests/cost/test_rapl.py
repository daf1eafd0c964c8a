"""RaplMeter on a fake powercap folder: counter differences, wrap-around, permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.cost import rapl
from edgefmp.cost.meters import MeterUnavailable, describe_meters, select_meter
from edgefmp.cost.rapl import RaplMeter

MAX_RANGE = 262_143_328_850


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_range: int | None = MAX_RANGE) -> Path:
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    if max_range is not None:
        (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    return path


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


def test_sums_packages_and_ignores_subzones(tmp_path: Path) -> None:
    p0 = make_zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    p1 = make_zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000)
    core = make_zone(tmp_path, "intel-rapl:0:0", "core", 0)
    meter = RaplMeter(tmp_path)
    token = meter.begin()
    set_energy(p0, 3_500_000)
    set_energy(p1, 6_000_000)
    set_energy(core, 99_000_000)
    reading = meter.end(token, latency_s=0.2, power_w=15.0, bytes_moved=0)
    assert reading.source == "rapl" and reading.joules == pytest.approx(3.5)
    assert "intel-rapl:0 (package-0)" in meter.describe()


def test_wrap_around(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", MAX_RANGE - 1_000_000)
    meter = RaplMeter(tmp_path)
    token = meter.begin()
    set_energy(zone, 2_000_000)
    assert meter.end(token, latency_s=1.0, power_w=15.0, bytes_moved=0).joules == pytest.approx(3.0)


def test_wrap_without_range_is_estimated(tmp_path: Path) -> None:
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", 9_000_000, max_range=None)
    meter = RaplMeter(tmp_path)
    token = meter.begin()
    set_energy(zone, 1_000)
    reading = meter.end(token, latency_s=1.0, power_w=4.0, bytes_moved=0)
    assert reading.source == "estimated" and reading.joules == pytest.approx(4.0)


def test_unchanged_counter_is_estimated(tmp_path: Path) -> None:
    make_zone(tmp_path, "intel-rapl:0", "package-0", 7)
    meter = RaplMeter(tmp_path)
    reading = meter.end(meter.begin(), latency_s=0.001, power_w=15.0, bytes_moved=0)
    assert reading.source == "estimated" and reading.joules == pytest.approx(0.015)


def test_psys_alone_when_present(tmp_path: Path) -> None:
    pkg = make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    psys = make_zone(tmp_path, "intel-rapl:1", "psys", 0)
    meter = RaplMeter(tmp_path)
    token = meter.begin()
    set_energy(pkg, 1_000_000)
    set_energy(psys, 2_500_000)
    assert meter.end(token, latency_s=0.1, power_w=1.0, bytes_moved=0).joules == pytest.approx(2.5)


def test_permission_denied_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    real = rapl._read_int

    def deny(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "_read_int", deny)
    with pytest.raises(MeterUnavailable, match=r"sudo chmod a\+r .*intel-rapl:\*/energy_uj"):
        select_meter("rapl", rapl_root=tmp_path)
    status = {s.name: s for s in describe_meters(rapl_root=tmp_path)}["rapl"]
    assert not status.available and "permission denied" in status.reason


def test_no_zones(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no intel-rapl:N zone"):
        RaplMeter(tmp_path)


def test_auto_picks_rapl_when_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "jtop", None)
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    assert select_meter("auto", rapl_root=tmp_path).name == "rapl"
