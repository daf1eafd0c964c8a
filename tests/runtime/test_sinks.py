"""Sinks: JSONL traces (flushed per line) and the annotated video (one frame per trace)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefmp.errors import ConfigError
from edgefmp.runtime.sinks import AnnotatedVideoSink, JsonlTraceSink, Sink, annotate
from edgefmp.runtime.sources import SourceEvent
from edgefmp.trace import CallRecord, Cost, Trace


def detect_trace(i: int, box: list[float] | None = None, answer: object = "yes") -> Trace:
    dets = [{"label": "cat", "score": np.float32(0.9), "box": box or [10, 10, 60, 50]}]
    call = CallRecord(
        site="detect#1",
        function="detect",
        backend="det-int8",
        backend_index=0,
        args={"label": "cat"},
        result=dets,
        confidence=0.9,
        cost=Cost(latency_ms=3.0, energy_j=0.01),
    )
    return Trace(frame_id=f"f:{i}", ts=i / 10, calls=[call], answer=answer, wall_ms=4.0)


def test_sinks_satisfy_the_sink_protocol(tmp_path: Path) -> None:
    with JsonlTraceSink(tmp_path / "t.jsonl") as jsonl:
        assert isinstance(jsonl, Sink)
    with AnnotatedVideoSink(tmp_path / "v.mp4") as video:
        assert isinstance(video, Sink)


def test_jsonl_lines_are_valid_and_flushed_while_the_file_is_open(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "traces.jsonl"
    sink = JsonlTraceSink(path)
    sink.event(SourceEvent("opened", "opened video x.mp4", {"frames_read": 0}, source="x.mp4"))
    sink.write(detect_trace(0))
    sink.write(Trace(frame_id="f:1", ts=0.1, error="cannot decode f1.png: truncated"))

    lines = path.read_text(encoding="utf-8").splitlines()  # sink still open: nothing buffered
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert records[0]["event"] == "opened" and records[0]["source"] == "x.mp4"
    back = Trace.from_json(records[1])
    assert back.frame_id == "f:0" and back.calls[0].result[0]["score"] == pytest.approx(0.9)
    assert records[2]["error"].startswith("cannot decode")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        sink.write(detect_trace(3))


def test_jsonl_append_and_unwritable_path(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    for _ in range(2):
        with JsonlTraceSink(path, append=True) as sink:
            sink.write(detect_trace(0))
    assert len(path.read_text().splitlines()) == 2
    with pytest.raises(ConfigError, match="cannot write traces to"):
        JsonlTraceSink(tmp_path)  # a folder, not a file


def test_annotated_video_has_one_readable_frame_per_trace(tmp_path: Path) -> None:
    path = tmp_path / "out" / "annotated.mp4"
    image = np.full((120, 160, 3), 40, np.uint8)
    with AnnotatedVideoSink(path, fps=10) as sink:
        sink.write(Trace(frame_id="f:none", ts=0.0, error="no image yet"))  # size unknown: skipped
        for i in range(11):
            sink.write(detect_trace(i), image)
        sink.event(SourceEvent("reconnect", "lost the camera; reconnecting"))
        sink.write(Trace(frame_id="f:bad", ts=1.2, error="cannot decode"), None)  # placeholder
    assert sink.frames_written == 12 and sink.frames_skipped == 1

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    count = 0
    first = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        first = frame if first is None else first
        count += 1
    cap.release()
    assert count == 12
    assert first is not None and first.shape == (120, 160, 3)


def test_annotate_draws_boxes_and_skips_malformed_detections() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    trace = detect_trace(0, box=[20, 30, 80, 90])
    trace.calls[0].result.extend([{"label": "x", "box": [1, 2]}, "junk", {"box": ["a", 1, 2, 3]}])
    out = annotate(image, trace)
    assert out.shape == image.shape and not np.shares_memory(out, image)
    assert image.max() == 0  # the input is untouched
    assert out[60, 20].max() > 100 and out[60, 80].max() > 100  # left and right box edges
    assert out[60, 50].max() == 0  # inside the box stays clear


def test_video_sink_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fps"):
        AnnotatedVideoSink(tmp_path / "v.mp4", fps=0)
    with pytest.raises(ConfigError, match="fourcc"):
        AnnotatedVideoSink(tmp_path / "v.mp4", fourcc="h264x")
