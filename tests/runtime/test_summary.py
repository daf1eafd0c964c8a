"""RunSummary on hand-built traces: every number checked against a hand computation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from edgefmp.runtime.sources import SourceEvent, SourceStats
from edgefmp.runtime.summary import RunSummary, human_bytes
from edgefmp.trace import Attempt, CallRecord, Cost, Trace


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def call(site: str, function: str, backend: str | None, cost: Cost, **kw: object) -> CallRecord:
    return CallRecord(site=site, function=function, backend=backend, backend_index=0, args={}, cost=cost, **kw)  # type: ignore[arg-type]


def traces() -> list[Trace]:
    t1 = Trace(
        "v:0",
        0.0,
        wall_ms=50.0,
        answer="yes",
        calls=[
            call("detect#1", "detect", "det-int8", Cost(latency_ms=10, energy_j=0.5)),
            call(
                "vqa#2",
                "vqa",
                "remote-vlm",
                Cost(latency_ms=30, energy_j=0.0, bytes_up=1000, bytes_down=200, money=0.002),
            ),
        ],
    )
    t2 = Trace(
        "v:1",
        0.1,
        wall_ms=40.0,
        answer="no",
        calls=[
            call(
                "detect#1",
                "detect",
                "det-fp32",
                Cost(latency_ms=20, energy_j=1.0, energy_source="nvml"),
                attempts=[Attempt("det-int8", "timeout", Cost(latency_ms=5, energy_j=0.1))],
            ),
        ],
    )
    t3 = Trace("v:2", 0.2, wall_ms=1.0, error="cannot decode frame 2 of v.mp4")
    return [t1, t2, t3]


def filled(clock: FakeClock, stats: SourceStats | None = None) -> RunSummary:
    summary = RunSummary(clock=clock, source_stats=stats)
    for t in traces():
        summary.write(t, None)
    for kind in ("opened", "reconnect", "drop", "drop", "end"):
        summary.event(SourceEvent(kind, "x"))
    clock.now = 110.0
    summary.close()
    clock.now = 500.0  # after close, fps no longer moves
    return summary


def test_summary_numbers() -> None:
    s = filled(FakeClock())
    assert (s.frames, s.ok, s.failed) == (3, 2, 1)
    assert s.elapsed_s == pytest.approx(10.0) and s.fps == pytest.approx(0.3)
    assert s.backend_ms_total == pytest.approx(65.0)  # 10 + 30 + 20 + the failed attempt's 5
    assert s.overhead_ratio == pytest.approx((91.0 - 65.0) / 65.0)
    assert s.energy_by_source == pytest.approx({"estimated": 0.6, "nvml": 1.0})
    assert s.energy_label == "estimated+nvml"
    assert (s.calls, s.fallbacks, s.failed_attempts, s.call_errors) == (3, 1, 1, 0)

    data = s.to_json()
    json.dumps(data)  # plain JSON
    assert data["version"] == 1
    per = data["cost"]["per_frame"]
    assert per["latency_ms"] == pytest.approx(65 / 3, abs=1e-3)
    assert per["energy_j"] == pytest.approx(1.6 / 3, abs=1e-6)
    assert per["bytes_up"] == pytest.approx(333.3, abs=0.1)
    assert data["cost"]["total"]["bytes_down"] == 200
    assert data["cost"]["total"]["money"] == pytest.approx(0.002)
    assert data["cost"]["energy_estimated"] is True
    assert data["wall_ms"] == {"total": 91.0, "mean": pytest.approx(30.333, abs=1e-3), "max": 50.0}
    assert data["backend_mix"] == {
        "detect#1": {
            "function": "detect",
            "calls": 2,
            "backends": {"det-int8": {"count": 1, "share": 0.5}, "det-fp32": {"count": 1, "share": 0.5}},
        },
        "vqa#2": {"function": "vqa", "calls": 1, "backends": {"remote-vlm": {"count": 1, "share": 1.0}}},
    }
    assert data["source_events"] == {"drop": 2, "end": 1, "opened": 1, "reconnect": 1}


def test_empty_summary_has_no_division_by_zero() -> None:
    clock = FakeClock()
    s = RunSummary(clock=clock)
    data = s.to_json()
    assert data["frames"] == 0 and data["fps"] is None and data["overhead_ratio"] is None
    assert data["cost"]["per_frame"]["latency_ms"] is None
    render_text(s)


def render_text(summary: RunSummary) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(summary.render())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_render_shows_estimated_energy_mix_and_events() -> None:
    stats = SourceStats(frames_read=3, dropped=2, reconnects=1)
    text = render_text(filled(FakeClock(), stats))
    assert "3 (2 ok, 1 failed)" in text
    assert "0.30 fps" in text
    assert "(estimated)" in text and "(nvml)" in text
    assert "det-int8 1 (50%)" in text and "remote-vlm 1 (100%)" in text
    assert "reconnect 1" in text and "2 dropped" in text
    assert "40.0%" in text  # runtime overhead: 26 / 65


def test_write_json_is_atomic_and_readable(tmp_path: Path) -> None:
    s = filled(FakeClock())
    out = s.write_json(tmp_path / "run" / "summary.json")
    assert json.loads(out.read_text())["frames"] == 3
    assert not list(out.parent.glob("*.tmp"))


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (12, 1536, 2_500_000)] == ["12 B", "1.5 kB", "2.5 MB"]


def test_fps_covers_the_stream_and_setup_is_reported_apart() -> None:
    clock = FakeClock(100.0)
    s = RunSummary(clock=clock)
    clock.now = 130.0  # 30 s of loading models and opening the source
    s.start()
    for t in traces():
        s.write(t, None)
    clock.now = 140.0
    s.close()
    assert s.setup_s == pytest.approx(30.0) and s.elapsed_s == pytest.approx(10.0)
    assert s.to_json()["setup_s"] == pytest.approx(30.0) and s.fps == pytest.approx(0.3)
    text = render_text(s)
    assert "0.30 fps over 10.00 s of stream" in text and "not counted: 30.00 s" in text


def test_site_rows_are_sorted_by_line_then_column() -> None:
    s = RunSummary(clock=FakeClock())
    for site in ("find@14:27", "find@8:20", "verify@8:3", "exists@100:1"):
        s.write(Trace("v:0", 0.0, calls=[call(site, "detect", "b", Cost(latency_ms=1))]))
    assert list(s.backend_mix()) == ["verify@8:3", "find@8:20", "find@14:27", "exists@100:1"]
    text = render_text(s)
    assert text.index("find@8:20") < text.index("find@14:27") < text.index("exists@100:1")


def test_energy_from_one_meter_is_said_once() -> None:
    s = RunSummary(clock=FakeClock())
    s.write(Trace("v:0", 0.0, calls=[call("a@1:1", "detect", "b", Cost(latency_ms=1, energy_j=10.3))]))
    (row,) = [line for line in render_text(s).splitlines() if "energy" in line]
    assert "10.3 J total (estimated), 10.3 J/frame" in row and row.count("10.3 J") == 2, row


def test_energy_labels_of_metered_frames_name_each_meter_once() -> None:
    """A metered call adds the radio's estimate ("nvml+estimated"): the run's label names the
    meters, and the estimated part is flagged."""
    s = RunSummary(clock=FakeClock())
    for i, label in enumerate(("nvml+estimated", "nvml", "nvml+estimated")):
        s.write(Trace(f"v:{i}", 0.0, calls=[call("a@1:1", "detect", "b", Cost(energy_j=1.0, energy_source=label))]))
    assert s.energy_label == "estimated+nvml"
    assert s.to_json()["cost"]["energy_estimated"] is True


def test_failed_frames_are_grouped_by_error_with_their_first_frame() -> None:
    s = RunSummary(clock=FakeClock())
    for i in range(3):
        s.write(Trace(f"v:{i}", 0.1 * i, error=f"cannot decode frame {i} of v.mp4"))
    s.write(Trace("v:3", 0.3, error="ProgramError: line 2: boom"))
    s.write(Trace("v:4", 0.4, error="ProgramError: line 5: boom"))  # another line: another error
    errors = s.to_json()["errors"]
    assert errors[0] == {"error": "cannot decode frame 0 of v.mp4", "first_frame": "v:0", "frames": 3}
    assert sorted(e["first_frame"] for e in errors[1:]) == ["v:3", "v:4"]
    assert "3 × cannot decode frame 0 of v.mp4 (first: frame v:0)" in render_text(s)


def test_summary_names_policy_and_catalog_and_keeps_brackets() -> None:
    s = RunSummary(clock=FakeClock())
    s.policy, s.catalog = "adaptive (target: x)", "cat[zoo].yaml"
    data = s.to_json()
    assert data["policy"] == "adaptive (target: x)" and data["catalog"] == "cat[zoo].yaml"
    text = render_text(s)
    assert "adaptive (target: x)" in text and "cat[zoo].yaml" in text
