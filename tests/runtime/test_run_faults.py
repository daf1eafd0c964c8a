"""Faults with real parts, through the same path as `edgefmp run`: a real HTTP model server on
127.0.0.1 that fails in every way, a real MJPEG stream that drops, corrupt frames and files.
No frame may be lost; every fallback must be in the trace."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefmp.runtime.session import RunOptions, run_program
from tests.helpers.fake_model_server import FakeModelServer
from tests.helpers.mjpeg_server import MjpegServer

PROGRAM = """
def execute_command(image):
    for circle in image.find("circle"):
        if circle.verify_property("circle", "red"):
            return "yes"
    return "no"
"""


def _scene(i: int) -> np.ndarray:
    """RGB frame with one red circle that moves."""
    frame = np.full((120, 160, 3), 235, np.uint8)
    cv2.circle(frame, (40 + 5 * (i % 10), 60), 18, (220, 0, 0), -1)
    return frame


def _video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(n):
        writer.write(cv2.cvtColor(_scene(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _catalog(path: Path, url: str, **remote: object) -> Path:
    options = {
        "protocol": "openai",
        "url": url,
        "model": "fake-large",
        "timeout_s": 0.5,
        "retries": 0,
        "failure_threshold": 100,
        "cooldown_s": 0.0,
        **remote,
    }
    text = f"""
version: 1
name: faults
functions:
  detect:
    - {{name: shapes-cv, kind: classical, options: {{detector: shapes}}}}
  verify:
    - {{name: shapes-cv, kind: classical, options: {{detector: shapes}}}}
    - {{name: big-remote, kind: remote, options: {json.dumps(options)}}}
"""
    path.write_text(text)
    return path


def _run(tmp_path: Path, source: str, catalog: Path | None, **kw: object) -> list[dict]:
    program = tmp_path / "prog.py"
    program.write_text(PROGRAM)
    out = tmp_path / "traces.jsonl"
    run_program(
        RunOptions(program=program, source=source, out=out, catalog=catalog, policy="static:-1", progress=False, **kw)
    )  # type: ignore[arg-type]
    return [json.loads(line) for line in out.read_text().splitlines()]


def _frames(lines: list[dict]) -> list[dict]:
    return [x for x in lines if "frame_id" in x]


def test_remote_500_malformed_hang_truncated_reset_lose_no_frame(tmp_path: Path) -> None:
    n = 9
    video = _video(tmp_path / "clip.mp4", n)
    with FakeModelServer("openai", answer="yes", hang_s=3.0) as server:
        server.script("ok", "http500", "malformed", "hang", "truncate", "reset", "close", "ok", "ok")
        frames = _frames(_run(tmp_path, str(video), _catalog(tmp_path / "c.yaml", server.url)))
    assert len(frames) == n
    assert all(f["error"] is None and f["answer"] == "yes" for f in frames), frames
    verify_calls = [next(c for c in f["calls"] if c["function"] == "verify") for f in frames]
    used = [c["backend"] for c in verify_calls]
    assert used == ["big-remote"] + ["shapes-cv"] * 6 + ["big-remote"] * 2
    for call in verify_calls[1:7]:
        assert [a["backend"] for a in call["attempts"]] == ["big-remote"]
    errors = " | ".join(c["attempts"][0]["error"] for c in verify_calls[1:7])
    for kind in ("500", "Timeout"):
        assert kind in errors, errors
    assert verify_calls[0]["cost"]["bytes_up"] > 0 and verify_calls[0]["cost"]["bytes_down"] > 0


def test_remote_server_killed_mid_stream_opens_circuit_and_stream_goes_on(tmp_path: Path) -> None:
    n = 10
    video = _video(tmp_path / "clip.mp4", n)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.fake_model_server", "--protocol", "openai", "--answer", "yes"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])

        def kill_after_three_hits() -> None:
            hits = 0
            for line in proc.stdout:  # type: ignore[union-attr]
                hits += line.strip() == "hit"
                if hits == 3:
                    proc.kill()
                    return

        killer = threading.Thread(target=kill_after_three_hits, daemon=True)
        killer.start()
        catalog = _catalog(tmp_path / "c.yaml", f"http://127.0.0.1:{port}/v1", failure_threshold=2, cooldown_s=60)
        frames = _frames(_run(tmp_path, str(video), catalog))
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert len(frames) == n
    assert all(f["error"] is None and f["answer"] == "yes" for f in frames)
    verify_calls = [next(c for c in f["calls"] if c["function"] == "verify") for f in frames]
    backends = [c["backend"] for c in verify_calls]
    # The third answer may or may not make it back before the kill; after it, the two failed
    # attempts open the circuit, and later frames never try the dead server.
    assert backends[:2] == ["big-remote"] * 2 and backends[-1] == "shapes-cv"
    tried = [bool(c.get("attempts")) for c in verify_calls[2:]]
    assert 1 <= sum(tried) <= 2, verify_calls


def test_mjpeg_stream_drop_reconnects_and_run_goes_on(tmp_path: Path) -> None:
    with MjpegServer(frame_factory=_scene, fps=30, drop_after=5, drops=1, lifetime_s=30) as server:
        lines = _run(tmp_path, server.url, None, max_frames=10, source_options={"backoff_s": 0.05, "max_reconnects": 5})
    frames = _frames(lines)
    events = [x["event"] for x in lines if "event" in x]
    assert len(frames) == 10
    assert "reconnect" in events, events
    assert sum(f["answer"] == "yes" for f in frames) >= 8


def test_corrupt_file_in_folder_is_recorded_and_run_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(_scene(i), cv2.COLOR_RGB2BGR))
    (folder / "002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    frames = _frames(_run(tmp_path, str(folder), None))
    assert [f["frame_id"] for f in frames] == ["000.png", "001.png", "002.png", "003.png"]
    assert frames[2]["error"] is not None and "002.png" in frames[2]["error"]
    assert [f["answer"] for f in frames if f["error"] is None] == ["yes"] * 3


@pytest.mark.parametrize(
    ("catalog_text", "expected"),
    [
        ("version: 1\nfunctions:\n  detect:\n    - {name: a, kind: onx}\n", "functions.detect[0].kind"),
        ("version: 1\nfunctions:\n  detect:\n    - {kind: classical}\n", "functions.detect[0].name"),
        ("version: 1\nfunctions:\n  dettect:\n    - {name: a, kind: classical}\n", "unknown function 'dettect'"),
        (
            "version: 1\nfunctions:\n  detect:\n    - {name: a, kind: classical, options: {detectr: x}}\n",
            "functions.detect[0].options.detectr",
        ),
        ("version: 2\nfunctions: {}\n", "version"),
        ("functions: [oops\n", "not valid YAML"),
    ],
)
def test_bad_catalog_names_file_and_field(tmp_path: Path, catalog_text: str, expected: str) -> None:
    catalog = tmp_path / "bad_catalog.yaml"
    catalog.write_text(catalog_text)
    program = tmp_path / "prog.py"
    program.write_text(PROGRAM)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefmp.cli",
            "run",
            str(program),
            "--source",
            str(tmp_path),
            "--catalog",
            str(catalog),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "bad_catalog.yaml" in message and expected in message, message
