"""What every frame source shares: options, status events, counters and the iteration contract.

A source is a single-pass iterable of `Frame | SourceEvent`. Frames go to the executor; events
(opened, reconnect, drop, error, end) go to sinks and the progress display, so a run records why
frames are missing instead of silently having fewer of them. A frame that cannot be decoded is
still yielded, as `Frame(image=None, error=...)`, so the executor can count it as failed.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import cv2
import numpy as np

from edgefmp.errors import SourceError
from edgefmp.frame import Frame

logger = logging.getLogger(__name__)

EventKind = Literal["opened", "reconnect", "drop", "error", "end"]
EVENT_KINDS: tuple[str, ...] = ("opened", "reconnect", "drop", "error", "end")


@dataclass
class SourceStats:
    """Counters of one source; the loop and the summary read them, only the source writes them.

    `frames_read`: frames the device/file delivered; `frames_yielded`: frames handed to the
    consumer (after stride, drops and max_frames); `dropped`: live frames discarded because the
    consumer was slower than the camera; `errors`: unreadable frames and failed (re)connections.
    """

    frames_read: int = 0
    frames_yielded: int = 0
    dropped: int = 0
    reconnects: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class SourceEvent:
    """A status change of a source, yielded between frames.

    `counters` is a snapshot of the source's `SourceStats` (plus event-specific numbers such as
    `attempt` or `delay_s`), so a JSONL line is self-contained.
    """

    kind: EventKind
    message: str
    counters: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    ts: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown source event kind {self.kind!r}; expected one of {', '.join(EVENT_KINDS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "source": self.source,
            "message": self.message,
            "counters": dict(self.counters),
            "ts": round(self.ts, 6),
        }


@dataclass(frozen=True)
class SourceOptions:
    """Options shared by all sources; each source uses the ones that apply to it.

    max_frames: stop after this many frames (None = until the source ends or stop()).
    stride: keep every k-th frame of the source (1 = all).
    resize: downscale so the longer side is at most this many pixels (never upscales).
    loop: restart files and folders at their end (ignored by live sources).
    fps: nominal rate for timestamps when the source has none (image folders; default 1 fps).
    queue_size: live sources keep at most this many undelivered frames, the freshest.
    max_reconnects: live sources give up after this many failed reconnections in a row.
    backoff_s / backoff_max_s: first and largest wait between reconnections (doubling).
    open_timeout_s / read_timeout_s: network streams give up a stalled open / read after this.
    max_read_failures: a video file ends after this many unreadable frames in a row.
    """

    max_frames: int | None = None
    stride: int = 1
    resize: int | None = None
    loop: bool = False
    fps: float | None = None
    queue_size: int = 2
    max_reconnects: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    max_read_failures: int = 5

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("max_frames", self.max_frames is None or self.max_frames >= 1, "an integer >= 1"),
            ("stride", self.stride >= 1, "an integer >= 1"),
            ("resize", self.resize is None or self.resize >= 8, "None or a side length >= 8"),
            ("fps", self.fps is None or self.fps > 0, "None or a positive number"),
            ("queue_size", self.queue_size >= 1, "an integer >= 1"),
            ("max_reconnects", self.max_reconnects >= 0, "an integer >= 0"),
            ("backoff_s", self.backoff_s >= 0, "a number of seconds >= 0"),
            ("backoff_max_s", self.backoff_max_s >= self.backoff_s, "a number >= backoff_s"),
            ("open_timeout_s", self.open_timeout_s > 0, "a positive number of seconds"),
            ("read_timeout_s", self.read_timeout_s > 0, "a positive number of seconds"),
            ("max_read_failures", self.max_read_failures >= 1, "an integer >= 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise SourceError(f"source option {name}={getattr(self, name)!r} is invalid; expected {expected}")

    @classmethod
    def from_kwargs(cls, spec: str, opts: dict[str, Any]) -> SourceOptions:
        """Build options from keyword arguments, naming the unknown ones and the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise SourceError(
                f"unknown source option(s) {', '.join(unknown)} for {spec!r}; available: {', '.join(sorted(known))}"
            )
        return cls(**opts)


def prepare_image(bgr: np.ndarray, resize: int | None) -> np.ndarray:
    """OpenCV 8-bit BGR (or gray/BGRA) -> contiguous RGB uint8, downscaled to `resize` max side."""
    if bgr.ndim == 2:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    elif bgr.shape[2] == 4:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if resize is not None:
        h, w = rgb.shape[:2]
        scale = resize / max(h, w)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


class Source(ABC):
    """A single-pass stream of `Frame | SourceEvent`.

    Subclasses implement `_items()`; this base adds the "opened"/"end" events, `max_frames`,
    `stop()` (callable from any thread, e.g. a signal handler) and closing on exhaustion, so every
    kind of source ends the same way. Use as a context manager or call `close()`.
    """

    kind: str = "source"

    def __init__(self, spec: str, options: SourceOptions) -> None:
        self.spec = spec
        self.options = options
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._started = False
        self._closed = False

    @abstractmethod
    def _items(self) -> Iterator[Frame | SourceEvent]:
        """Yield frames and events until the source is exhausted or `self._stop` is set."""

    def _release(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Free the underlying device/file; called once by `close()`."""

    def describe(self) -> str:
        return f"{self.kind} {self.spec}"

    def event(self, kind: EventKind, message: str, **extra: Any) -> SourceEvent:
        """Make an event carrying the current counters (and `extra` ones)."""
        counters: dict[str, Any] = self.stats.as_dict()
        counters.update(extra)
        return SourceEvent(kind=kind, message=message, counters=counters, source=self.spec)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[Frame | SourceEvent]:
        if self._started:
            raise SourceError(f"source {self.spec!r} can be iterated only once; open it again to restart")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Frame | SourceEvent]:
        yield self.event("opened", f"opened {self.describe()}")
        limit = self.options.max_frames
        items = self._items()
        reason = "source exhausted"
        try:
            for item in items:
                if self._stop.is_set():
                    reason = "stopped"
                    break
                if isinstance(item, Frame):
                    self.stats.frames_yielded += 1
                yield item
                if limit is not None and self.stats.frames_yielded >= limit:
                    reason = f"max_frames={limit} reached"
                    break
            else:
                if self._stop.is_set():
                    reason = "stopped"
        finally:
            close_items = getattr(items, "close", None)
            if close_items is not None:
                close_items()
            self.close()
        logger.info("%s ended: %s (%s)", self.describe(), reason, self.stats.as_dict())
        yield self.event("end", f"{self.describe()} ended: {reason}", reason=reason)

    def stop(self) -> None:
        """Ask the source to end after the current frame; safe from any thread."""
        self._stop.set()

    def close(self) -> None:
        """Stop and release the device/file. Idempotent."""
        self._stop.set()
        if self._closed:
            return
        self._closed = True
        self._release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
