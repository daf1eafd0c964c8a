"""NvmlMeter and JetsonMeter: selection when absent, arithmetic through stand-in modules, and
the real GPU path where one exists."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from edgefmp.cost.meters import MeterUnavailable, select_meter


class FakeNVMLError(Exception):
    pass


def fake_pynvml(energies_mj: list[list[int]], supported: bool = True, count: int = 1) -> types.ModuleType:
    """A stand-in for nvidia-ml-py with scripted counter values per read, per GPU."""
    mod = types.ModuleType("pynvml")
    state: dict[str, Any] = {"reads": 0, "shutdown": 0}

    def energy(handle: int) -> int:
        if not supported:
            raise FakeNVMLError("Not Supported")
        value = energies_mj[min(state["reads"] // count, len(energies_mj) - 1)][handle]
        state["reads"] += 1
        return value

    mod.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    mod.nvmlInit = lambda: None  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: count  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: b"Fake GPU"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetTotalEnergyConsumption = energy  # type: ignore[attr-defined]
    mod.state = state  # type: ignore[attr-defined]
    return mod


def test_nvml_difference_in_joules_summed_over_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # reads: probe at open, begin, end (two GPUs each)
    mod = fake_pynvml([[0, 0], [1000, 2000], [1500, 4250]], count=2)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = select_meter("nvml")
    token = meter.begin()
    reading = meter.end(token, latency_s=0.1, power_w=50.0, bytes_moved=0)
    assert reading.source == "nvml" and reading.joules == pytest.approx(0.5 + 2.25)
    assert "GPU 0 (Fake GPU), GPU 1 (Fake GPU)" in meter.describe()
    meter.close()
    meter.close()
    assert mod.state["shutdown"] == 1  # type: ignore[attr-defined]


def test_nvml_short_call_is_estimated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([[0], [700], [700]]))
    meter = select_meter("nvml")
    reading = meter.end(meter.begin(), latency_s=0.002, power_w=50.0, bytes_moved=0)
    assert reading.source == "estimated" and reading.joules == pytest.approx(0.1)


def test_nvml_without_energy_counter_is_not_selected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([[0]], supported=False))
    with pytest.raises(MeterUnavailable, match="Volta or newer"):
        select_meter("nvml")


def test_nvml_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MeterUnavailable, match=r"nvidia-ml-py .*edgefmp\[gpu\]"):
        select_meter("nvml")


class FakeJtop:
    def __init__(self, powers_mw: list[float], fail: bool = False, interval: float = 0.5) -> None:
        self.powers = powers_mw
        self.fail = fail
        self.closed = False

    def start(self) -> None:
        if self.fail:
            raise RuntimeError("The jtop.service is not active")

    @property
    def power(self) -> dict[str, Any]:
        value = self.powers.pop(0) if len(self.powers) > 1 else self.powers[0]
        return {
            "rail": {"VDD_CPU_GPU_CV": {"power": value / 2}},
            "tot": {"power": value, "name": "VDD_IN"},
        }

    def close(self) -> None:
        self.closed = True


def _jtop_module(instance: FakeJtop) -> types.ModuleType:
    mod = types.ModuleType("jtop")
    mod.jtop = lambda interval=0.5: instance  # type: ignore[attr-defined]
    return mod


def test_jetson_integrates_mean_power(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeJtop([5000.0, 6000.0, 8000.0])  # probe, begin, end (mW)
    monkeypatch.setitem(sys.modules, "jtop", _jtop_module(fake))
    meter = select_meter("jetson")
    reading = meter.end(meter.begin(), latency_s=2.0, power_w=15.0, bytes_moved=0)
    assert reading.source == "jetson" and reading.joules == pytest.approx(7.0 * 2.0)
    meter.close()
    assert fake.closed


def test_jetson_service_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", _jtop_module(FakeJtop([1.0], fail=True)))
    with pytest.raises(MeterUnavailable, match="systemctl restart jtop.service"):
        select_meter("jetson")


def test_jetson_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)
    with pytest.raises(MeterUnavailable, match="jetson-stats"):
        select_meter("jetson")


@pytest.mark.gpu
def test_real_nvml_counter_moves() -> None:
    pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed: no GPU path here")
    try:
        meter = select_meter("nvml")
    except MeterUnavailable as exc:
        pytest.skip(f"no NVML energy counter on this machine: {exc}")
    import time

    token = meter.begin()
    time.sleep(0.3)  # longer than the counter's 20-100 ms update period
    reading = meter.end(token, latency_s=0.3, power_w=50.0, bytes_moved=0)
    meter.close()
    assert reading.joules > 0 and reading.source in ("nvml", "estimated")
