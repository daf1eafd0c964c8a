"""The overlapped stream loop: frames really run concurrently, traces come out in frame order
(files) or freshest first (live), nothing is lost, hooks run on the calling thread, and the
number of frames in flight stays bounded. Ordering is forced with events, not timing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog
from edgefmp.errors import ConfigError, SourceError
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.program import compile_program
from edgefmp.results import Request, Verdict
from edgefmp.runtime.executor import Executor
from edgefmp.runtime.loop import LoopHooks
from edgefmp.runtime.overlap import run_stream_overlapped
from edgefmp.runtime.source_base import SourceEvent
from edgefmp.trace import Trace

PROGRAM = 'def execute_command(image):\n    return image.verify_property("thing", "odd")\n'
WAIT_S = 10.0  # bound on any wait, so a broken loop fails instead of hanging


def frame(i: int, prefix: str = "f") -> Frame:
    image = np.zeros((8, 8, 3), np.uint8)
    image[0, 0, 0] = i  # the backend reads the frame index from the pixels
    return Frame(f"{prefix}{i}", float(i), image)


def index_of(request: Request) -> int:
    return int(request.image[0, 0, 0])  # type: ignore[union-attr]


class Recorder:
    """A sink that records what it got, and on which thread."""

    def __init__(self, on_write: Callable[[Trace], None] | None = None) -> None:
        self.items: list[Any] = []
        self.threads: set[int] = set()
        self.closed = False
        self.on_write = on_write

    def write(self, trace: Trace, image: Any = None) -> None:
        self.threads.add(threading.get_ident())
        self.items.append(trace)
        if self.on_write is not None:
            self.on_write(trace)

    def event(self, event: Any) -> None:
        self.threads.add(threading.get_ident())
        self.items.append(event)

    def close(self) -> None:
        self.closed = True

    @property
    def traces(self) -> list[Trace]:
        return [x for x in self.items if isinstance(x, Trace)]


def executor_with(fn: Callable[[Request], Verdict]) -> Executor:
    backend = CallableBackend.wrap("fake-verify", "verify", fn)
    catalog = Catalog.from_backends({"verify": [backend]})
    return Executor(compile_program(PROGRAM), catalog, create("static:0"))


def _blocked_first(release: threading.Event, waited: list[bool]) -> Callable[[Request], Verdict]:
    """Frame 0 waits until `release` is set (by a later frame or by the sink)."""

    def fn(request: Request) -> Verdict:
        i = index_of(request)
        if i == 0:
            waited.append(release.wait(WAIT_S))
        return Verdict(value=bool(i % 2), confidence=0.9)

    return fn


def test_frame_order_holds_later_frames_while_an_earlier_one_waits() -> None:
    release = threading.Event()
    waited: list[bool] = []
    base = _blocked_first(release, waited)

    def fn(request: Request) -> Verdict:
        if index_of(request) == 3:
            release.set()  # frame 3 runs while frame 0 is still pending: they overlap
        return base(request)

    sink = Recorder()
    done = run_stream_overlapped([frame(i) for i in range(8)], executor_with(fn), [sink], inflight=4, order="frame")
    assert done == 8 and waited == [True]
    assert [t.frame_id for t in sink.traces] == [f"f{i}" for i in range(8)]
    assert [t.answer for t in sink.traces] == [bool(i % 2) for i in range(8)]
    assert all(t.meta["staleness_ms"] >= 0 and t.meta["superseded"] is False for t in sink.traces)
    assert sink.closed


@pytest.mark.parametrize(
    ("prefix", "order", "fresh_first"),
    [("f", "freshest", True), ("live:", "auto", True), ("f", "auto", False), ("live:", "frame", False)],
)
def test_freshest_order_emits_fresh_results_first_and_marks_the_stale_one(
    prefix: str, order: str, fresh_first: bool
) -> None:
    release = threading.Event()
    waited: list[bool] = []

    def after_write(trace: Trace) -> None:
        if trace.frame_id == f"{prefix}3":
            release.set()  # frame 0 can finish only once frame 3 was emitted (if it can be)

    if not fresh_first:
        release.set()
    sink = Recorder(after_write)
    frames = [frame(i, prefix) for i in range(6)]
    run_stream_overlapped(frames, executor_with(_blocked_first(release, waited)), [sink], inflight=4, order=order)
    ids = [t.frame_id for t in sink.traces]
    assert sorted(ids) == sorted(f.frame_id for f in frames)  # nothing lost
    first = next(t for t in sink.traces if t.frame_id == f"{prefix}0")
    if fresh_first:
        assert ids.index(f"{prefix}3") < ids.index(f"{prefix}0")
        assert first.meta["superseded"] is True
    else:
        assert ids == [f.frame_id for f in frames] and first.meta["superseded"] is False


def test_hooks_run_on_the_calling_thread_and_events_keep_their_place() -> None:
    release = threading.Event()
    waited: list[bool] = []
    base = _blocked_first(release, waited)

    def fn(request: Request) -> Verdict:
        if index_of(request) == 2:
            release.set()
        return base(request)

    caller = threading.get_ident()
    seen: dict[str, set[int]] = {"feedback": set(), "on_frame": set(), "on_event": set(), "save": set()}
    locks: list[object] = []

    class Feedback:
        def after_frame(self, trace: Trace, frame: Frame, lock: Any = None) -> None:
            seen["feedback"].add(threading.get_ident())
            locks.append(lock)

    hooks = LoopHooks(
        feedback=Feedback(),
        save_state=lambda: seen["save"].add(threading.get_ident()),
        save_every=2,
        on_frame=lambda t: seen["on_frame"].add(threading.get_ident()),
        on_event=lambda e: seen["on_event"].add(threading.get_ident()),
    )
    source = [
        SourceEvent("opened", "a"),
        frame(0),
        frame(1),
        SourceEvent("drop", "b"),
        frame(2),
        SourceEvent("end", "c"),
    ]
    sink = Recorder()
    executor = executor_with(fn)
    run_stream_overlapped(source, executor, [sink], hooks, inflight=3, order="frame")
    kinds = [x.kind if isinstance(x, SourceEvent) else x.frame_id for x in sink.items]
    assert kinds == ["opened", "f0", "f1", "drop", "f2", "end"]
    assert all(threads == {caller} for threads in seen.values()), seen
    assert sink.threads == {caller}
    assert locks and all(lock is executor.policy_lock for lock in locks)


def test_frames_in_flight_stay_bounded_and_max_frames_stops_reading() -> None:
    inflight = 3
    lock = threading.Lock()
    running = [0, 0]  # now, most
    pulled = [0]
    emitted = [0]
    ahead: list[int] = []

    def fn(request: Request) -> Verdict:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        threading.Event().wait(0.002)
        with lock:
            running[0] -= 1
        return Verdict(value=True)

    def endless() -> Iterator[Frame]:
        i = 0
        while True:
            pulled[0] += 1
            ahead.append(pulled[0] - emitted[0])
            yield frame(i % 200)
            i += 1

    sink = Recorder(lambda t: emitted.__setitem__(0, emitted[0] + 1))
    done = run_stream_overlapped(endless(), executor_with(fn), [sink], max_frames=40, inflight=inflight)
    assert done == 40 and len(sink.traces) == 40 and pulled[0] == 40
    assert running[1] <= inflight
    assert max(ahead) <= inflight  # read but not yet emitted


def test_an_executor_crash_costs_a_trace_not_a_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    executor = executor_with(lambda r: Verdict(value=True))
    real = executor.run_frame

    def crashing(f: Frame, index: int = 0) -> Trace:
        if f.frame_id == "f2":
            raise RuntimeError("boom")
        return real(f, index)

    monkeypatch.setattr(executor, "run_frame", crashing)
    sink = Recorder()
    assert run_stream_overlapped([frame(i) for i in range(5)], executor, [sink], inflight=2) == 5
    assert [t.frame_id for t in sink.traces] == ["f0", "f1", "f2", "f3", "f4"]
    assert "boom" in (sink.traces[2].error or "") and sink.traces[3].error is None


def test_a_source_error_is_raised_after_the_frames_before_it() -> None:
    def broken() -> Iterator[Frame]:
        yield from (frame(i) for i in range(3))
        raise SourceError("camera unplugged")

    sink = Recorder()
    with pytest.raises(SourceError, match="unplugged"):
        run_stream_overlapped(broken(), executor_with(lambda r: Verdict(value=True)), [sink], inflight=2)
    assert [t.frame_id for t in sink.traces] == ["f0", "f1", "f2"] and sink.closed


@pytest.mark.parametrize(("inflight", "order"), [(0, "auto"), (2, "newest"), (1.5, "frame")])
def test_bad_arguments_name_the_choices(inflight: Any, order: str) -> None:
    with pytest.raises(ConfigError, match="inflight|available: auto, frame, freshest"):
        run_stream_overlapped([], executor_with(lambda r: Verdict(value=True)), [], inflight=inflight, order=order)


def test_edgefmp_run_with_inflight(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgefmp.cli import app

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        image = np.full((120, 160, 3), 235, np.uint8)
        cv2.circle(image, (40 + 10 * i, 60), 18, (0, 0, 220), -1)  # red (BGR)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    program = tmp_path / "prog.py"
    program.write_text("def execute_command(image):\n    return bool_to_yesno(image.exists('circle'))\n")
    traces = tmp_path / "traces.jsonl"
    from edgefmp.backends.catalog import default_catalog_path

    result = CliRunner().invoke(
        app,
        [
            "run",
            str(program),
            "--source",
            str(folder),
            "--out",
            str(traces),
            "--catalog",
            str(default_catalog_path()),
            "--policy",
            "static:0",
            "--inflight",
            "3",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in traces.read_text().splitlines()]
    frames = [x for x in lines if "frame_id" in x]
    assert [f["frame_id"] for f in frames] == [f"{i:03d}.png" for i in range(6)]
    assert all(f["answer"] == "yes" and "staleness_ms" in f["meta"] for f in frames)
