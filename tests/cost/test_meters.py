"""Energy meters: the estimate's arithmetic, selection, and the labelled fallbacks."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from edgefmp.cost.meters import (
    DEFAULT_BUSY_POWER_W,
    DEFAULT_JOULES_PER_BYTE,
    EstimatedMeter,
    HardwareMeter,
    MeterUnavailable,
    busy_power_w,
    describe_meters,
    select_meter,
)
from edgefmp.errors import ConfigError


def test_estimate_is_power_times_latency_plus_bytes() -> None:
    meter = EstimatedMeter()
    reading = meter.end(meter.begin(), latency_s=0.5, power_w=10.0, bytes_moved=2_000_000)
    assert reading.source == "estimated"
    assert reading.joules == pytest.approx(10.0 * 0.5 + DEFAULT_JOULES_PER_BYTE * 2_000_000)
    assert EstimatedMeter(joules_per_byte=0.0).end(None, latency_s=2, power_w=3, bytes_moved=99).joules == 6.0


def test_busy_power_defaults() -> None:
    assert busy_power_w("device") == DEFAULT_BUSY_POWER_W["device"]
    assert busy_power_w("remote") == DEFAULT_BUSY_POWER_W["remote"]
    assert busy_power_w("remote", 7.5) == 7.5


class CounterMeter(HardwareMeter):
    """A hardware meter over a list of counter values, to test the shared fallbacks."""

    name = "fake"

    def __init__(self, values: list[float | Exception]) -> None:
        super().__init__()
        self.values = values

    def _sample(self) -> object:
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    def _joules(self, start: object, stop: object, latency_s: float) -> float:
        return float(stop) - float(start)  # type: ignore[arg-type]


def test_hardware_reading_is_labelled_with_its_meter() -> None:
    meter = CounterMeter([10.0, 13.5])
    reading = meter.end(meter.begin(), latency_s=0.1, power_w=15.0, bytes_moved=0)
    assert reading.joules == pytest.approx(3.5) and reading.source == "fake"


def test_network_energy_is_added_and_labelled_estimated() -> None:
    meter = CounterMeter([10.0, 13.5])
    reading = meter.end(meter.begin(), latency_s=0.1, power_w=15.0, bytes_moved=1000)
    assert reading.joules == pytest.approx(3.5 + 1000 * DEFAULT_JOULES_PER_BYTE)
    assert reading.source == "fake+estimated"


@pytest.mark.parametrize("values", [[5.0, 5.0], [OSError("gone"), 6.0], [5.0, OSError("gone")]])
def test_zero_delta_or_unreadable_falls_back_to_a_labelled_estimate(
    values: list[float | Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    meter = CounterMeter(values)
    reading = meter.end(meter.begin(), latency_s=0.01, power_w=20.0, bytes_moved=0)
    assert reading.source == "estimated" and reading.joules == pytest.approx(0.2)


def test_unknown_meter_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown energy meter 'nvidia'; available: auto, jetson, nvml, rapl"):
        select_meter("nvidia")


def test_auto_without_hardware_is_estimated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: as if not installed
    monkeypatch.setitem(sys.modules, "jtop", None)
    caplog.set_level(logging.INFO, logger="edgefmp.cost.meters")
    meter = select_meter("auto", rapl_root=tmp_path / "missing")
    assert isinstance(meter, EstimatedMeter)
    assert "energy meter: estimated" in caplog.text and "nvidia-ml-py" in caplog.text


def test_estimated_on_request() -> None:
    assert isinstance(select_meter("estimated"), EstimatedMeter)


def test_describe_meters_gives_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "jtop", None)
    statuses = {s.name: s for s in describe_meters(rapl_root=tmp_path / "missing")}
    assert list(statuses) == ["jetson", "nvml", "rapl", "estimated"]
    assert not statuses["nvml"].available and "pip install 'edgefmp[gpu]'" in statuses["nvml"].reason
    assert not statuses["jetson"].available and "jetson-stats" in statuses["jetson"].reason
    assert not statuses["rapl"].available and "does not exist" in statuses["rapl"].reason
    assert statuses["estimated"].available
    name, available, reason = statuses["nvml"]  # plain tuples for the doctor table
    assert (name, available) == ("nvml", False)


@pytest.mark.parametrize("name", ["nvml", "jetson"])
def test_asking_for_an_absent_meter_says_how_to_get_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "jtop", None)
    with pytest.raises(MeterUnavailable, match="install"):
        select_meter(name)
