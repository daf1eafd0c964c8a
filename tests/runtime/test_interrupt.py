"""Ctrl-C during `edgefmp run`: the frames done are summarised (and written to --summary-out),
and frames still waiting on a backend are dropped, not waited for."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from edgefmp.backends.base import Backend
from edgefmp.backends.registry import BACKEND_KINDS
from edgefmp.results import Detections, Request, Result
from edgefmp.runtime.session import RunInterrupted, RunOptions, run_program

PROGRAM = "def execute_command(image):\n    return image.exists('circle')\n"


class InterruptingBackend(Backend):
    """A detector that answers, until its `stop_at`-th call, where the user presses Ctrl-C.
    Calls made after that (other frames in flight) wait until the backend is closed, as a
    remote call waits on a slow link, and record whether the close released them. With
    `in_flight_first`, the interrupt waits until one such call is waiting."""

    kind = "test-interrupting"
    stop_at: ClassVar[int] = 3
    in_flight_first: ClassVar[bool] = False
    calls: ClassVar[list[int]] = []
    released_by_close: ClassVar[list[bool]] = []
    closed = threading.Event()
    waiting = threading.Event()
    lock = threading.Lock()

    def infer(self, request: Request) -> Result:
        cls = type(self)
        with cls.lock:
            cls.calls.append(len(cls.calls) + 1)
            n = len(cls.calls)
        if n == self.stop_at:
            if self.in_flight_first:
                assert cls.waiting.wait(timeout=10.0), "no other frame came in flight"
            raise KeyboardInterrupt
        if n > self.stop_at:
            cls.waiting.set()
            cls.released_by_close.append(self.closed.wait(timeout=10.0))
        return Detections()

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("inflight", [1, 4])
def test_ctrl_c_keeps_the_summary_and_drops_frames_in_flight(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, inflight: int
) -> None:
    monkeypatch.setitem(BACKEND_KINDS, "test-interrupting", f"{__name__}:InterruptingBackend")
    InterruptingBackend.calls.clear()
    InterruptingBackend.released_by_close.clear()
    InterruptingBackend.closed.clear()
    InterruptingBackend.waiting.clear()
    monkeypatch.setattr(InterruptingBackend, "in_flight_first", inflight > 1)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("functions:\n  detect: [{name: det, kind: test-interrupting}]\n")
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    summary_out = tmp_path / "summary.json"
    options = RunOptions(
        program=program,
        source=str(make_video(frames=12)),
        catalog=catalog,
        policy="static:0",
        summary_out=summary_out,
        progress=False,
        inflight=inflight,
        order="frame",
    )
    with pytest.raises(RunInterrupted) as info:
        run_program(options)
    summary = info.value.summary
    written = json.loads(summary_out.read_text())
    assert written["frames"] == summary.frames < 12
    assert any("interrupted (Ctrl-C)" in note for note in written["notes"])
    if inflight == 1:
        assert summary.frames == 2  # the two frames before the interrupted one
    # every frame that was still waiting on the backend was let go by the catalog's close,
    # not by its 10 s wait running out (the runtime did not wait for it first)
    assert all(InterruptingBackend.released_by_close), InterruptingBackend.released_by_close
    if inflight > 1:
        assert InterruptingBackend.released_by_close  # a frame was in flight at the interrupt


def test_the_run_command_shows_the_summary_and_exits_130(
    tmp_path: Path, make_video: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from edgefmp.cli import app

    monkeypatch.setitem(BACKEND_KINDS, "test-interrupting", f"{__name__}:InterruptingBackend")
    monkeypatch.setattr(InterruptingBackend, "in_flight_first", False)
    InterruptingBackend.calls.clear()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("functions:\n  detect: [{name: det, kind: test-interrupting}]\n")
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    args = ["run", str(program), "--source", str(make_video(frames=6)), "--catalog", str(catalog)]
    result = CliRunner().invoke(app, [*args, "--policy", "static:0", "--quiet"], env={"COLUMNS": "200"})
    assert result.exit_code == 130, result.output
    assert "2 (2 ok, 0 failed)" in result.output and "interrupted after 2 frames" in result.output
