"""An annotated video of a run: detection boxes, the answer and the frame id drawn on each frame.

Why: a video is the fastest way to see whether a program answered right and where routing sent
the hard frames. Boxes come from the trace's "detect" calls, whose result is a list of
``{"label", "score", "box": [x1, y1, x2, y2]}`` in frame pixel coordinates; malformed entries
are skipped rather than failing the run. Source events (reconnect, drop...) show as a banner for
a few frames, so gaps in the video explain themselves.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgefmp.errors import ConfigError
from edgefmp.runtime.source_base import SourceEvent
from edgefmp.trace import Trace

logger = logging.getLogger(__name__)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MAX_TEXT = 90


def label_color(label: str) -> tuple[int, int, int]:
    """A stable, saturated BGR colour per label (crc32, not hash(): same across runs)."""
    hue = zlib.crc32(label.encode("utf-8")) % 180
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def detections(trace: Trace) -> Iterator[tuple[str, float | None, tuple[int, int, int, int]]]:
    """(label, score, box) of every well-formed detection in the trace's detect calls."""
    for call in trace.calls:
        if call.function != "detect" or not isinstance(call.result, list):
            continue
        for det in call.result:
            if not isinstance(det, Mapping):
                continue
            box = det.get("box")
            if not isinstance(box, (list, tuple)) or len(box) != 4:
                continue
            try:
                x1, y1, x2, y2 = (int(round(float(v))) for v in box)
                score = None if det.get("score") is None else float(det["score"])
            except (TypeError, ValueError):
                continue
            yield str(det.get("label", "?")), score, (x1, y1, x2, y2)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    """Text on a dark box so it stays readable on any background."""
    thickness = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 4), (x + w + 2, y + base), (0, 0, 0), cv2.FILLED)
    cv2.putText(img, text, (x, y), _FONT, scale, color, thickness, cv2.LINE_AA)


def annotate(image: np.ndarray, trace: Trace, banner: str | None = None) -> np.ndarray:
    """Draw the trace on a copy of the RGB `image`; return BGR, ready for cv2 writers."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    h, w = bgr.shape[:2]
    scale = max(0.45, min(w, h) / 700)
    for label, score, (x1, y1, x2, y2) in detections(trace):
        color = label_color(label)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), color, max(2, round(scale * 3)))
        caption = label if score is None else f"{label} {score:.2f}"
        _text(bgr, caption, (max(x1, 2), max(y1 - 4, 14)), scale, color)
    line = int(30 * scale) + 6
    _text(bgr, trace.frame_id, (6, line), scale, (255, 255, 255))
    if banner:
        _text(bgr, _short(banner), (6, 2 * line), scale, (0, 215, 255))
    if trace.error is not None:
        _text(bgr, f"error: {_short(trace.error)}", (6, h - 8), scale, (60, 60, 255))
    else:
        _text(bgr, f"answer: {_short(trace.answer)}", (6, h - 8), scale, (120, 255, 120))
    return bgr


class AnnotatedVideoSink:
    """Writes each frame, annotated, to a video file (cv2.VideoWriter, mp4v by default).

    The frame size is fixed by the first image (or `size=(width, height)`); later images of
    another size are resized to it, since a video cannot change size. A trace without an image
    (a frame that failed to decode) becomes a grey placeholder frame with its error, so the video
    keeps one frame per trace; before the size is known such traces are skipped and counted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: float = 10.0,
        fourcc: str = "mp4v",
        size: tuple[int, int] | None = None,
        banner_frames: int = 30,
    ) -> None:
        if fps <= 0:
            raise ConfigError(f"annotated video fps must be positive, got {fps!r}")
        if len(fourcc) != 4:
            raise ConfigError(f"fourcc must be 4 characters such as 'mp4v', got {fourcc!r}")
        self.path = Path(path)
        self.fps = fps
        self.fourcc = fourcc
        self.size = size
        self.banner_frames = banner_frames
        self.frames_written = 0
        self.frames_skipped = 0
        self._banner: str | None = None
        self._banner_left = 0
        self._writer: cv2.VideoWriter | None = None
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            self._open(size)

    def _open(self, size: tuple[int, int]) -> cv2.VideoWriter:
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, size)
        if not writer.isOpened():
            raise ConfigError(
                f"cannot write video {self.path} with codec {self.fourcc!r} at {size[0]}x{size[1]}:"
                " OpenCV's VideoWriter refused it; check the folder is writable and use .mp4 "
                "with mp4v or .avi with MJPG"
            )
        self.size = size
        self._writer = writer
        return writer

    def write(self, trace: Trace, image: np.ndarray | None = None) -> None:
        if self._closed:
            raise ValueError(f"annotated video sink {self.path} is closed")
        if image is None:
            if self.size is None:
                self.frames_skipped += 1
                logger.debug("frame %s has no image and the video size is unknown yet; skipped", trace.frame_id)
                return
            w, h = self.size
            image = np.full((h, w, 3), 64, dtype=np.uint8)
        writer = self._writer or self._open((image.shape[1], image.shape[0]))
        banner = self._banner if self._banner_left > 0 else None
        self._banner_left = max(0, self._banner_left - 1)
        bgr = annotate(image, trace, banner)
        if self.size is not None and (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        writer.write(bgr)
        self.frames_written += 1

    def event(self, ev: SourceEvent | Mapping[str, Any]) -> None:
        """Show the event as a banner on the next `banner_frames` frames ("opened" is not shown)."""
        kind = ev.kind if isinstance(ev, SourceEvent) else str(ev.get("event", ""))
        message = ev.message if isinstance(ev, SourceEvent) else str(ev.get("message", ""))
        if kind in ("opened", "end"):
            return
        self._banner = f"[{kind}] {message}"
        self._banner_left = self.banner_frames

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        logger.info("wrote %d annotated frames to %s (%d skipped)", self.frames_written, self.path, self.frames_skipped)

    def __enter__(self) -> AnnotatedVideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
