"""Live sources (camera index, RTSP / HTTP MJPEG URL): a reader thread and a freshest-frame queue.

Why a thread: a camera produces frames whether or not we are ready. If the consumer (the
executor) is slower, reading on demand would hand it ever older buffered frames, so answers
would lag reality more and more. The reader thread drains the device continuously and keeps
only the `queue_size` newest frames; the consumer always gets the freshest one, and every frame
discarded is counted (`stats.dropped`) and reported ("drop" events, at most one per second).

Disconnects are normal for network cameras: the reader reconnects with exponential backoff
(`backoff_s` doubling up to `backoff_max_s`) and gives up after `max_reconnects` failed attempts
in a row with an "error" event, after which the stream ends. Frame ids are ``live:<n>`` with n
counting captured frames since open (across reconnects), so gaps show drops and stride; `ts` is
the wall-clock time (time.time()) at capture.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edgefmp.errors import SourceError
from edgefmp.frame import Frame
from edgefmp.runtime.source_base import Source, SourceEvent, SourceOptions, prepare_image

logger = logging.getLogger(__name__)

DROP_EVENT_INTERVAL_S = 1.0
_POLL_S = 0.2


class Capture(Protocol):
    """The part of cv2.VideoCapture a live source uses (tests may pass a fake)."""

    def isOpened(self) -> bool: ...  # noqa: N802 (OpenCV naming)

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


CaptureOpener = Callable[[], Capture]


def redact_url(url: str) -> str:
    """Hide the password of ``rtsp://user:pass@host`` so it never reaches logs or traces."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class FreshestQueue:
    """A bounded buffer that keeps the newest frames and never drops events.

    `put_frame` discards the oldest queued frame when `maxsize` frames are waiting and returns
    True, so the producer can count the drop. Events do not count towards `maxsize` and are never
    discarded: a reconnect or error must reach the sinks even when frames are being shed.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[Frame | SourceEvent] = deque()
        self._frames = 0
        self._closed = False
        self._cond = threading.Condition()

    def put_frame(self, frame: Frame) -> bool:
        """Queue `frame`; return True if an older frame was discarded to make room."""
        with self._cond:
            if self._closed:
                return False
            dropped = False
            if self._frames >= self.maxsize:
                for i, item in enumerate(self._items):
                    if isinstance(item, Frame):
                        del self._items[i]
                        self._frames -= 1
                        dropped = True
                        break
            self._items.append(frame)
            self._frames += 1
            self._cond.notify()
            return dropped

    def put_event(self, event: SourceEvent) -> None:
        with self._cond:
            if self._closed:
                return
            self._items.append(event)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Frame | SourceEvent | None:
        """The oldest queued item, or None after `timeout` or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if isinstance(item, Frame):
                self._frames -= 1
            return item

    def close(self) -> None:
        """No more puts; getters drain what is left, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class LiveSource(Source):
    """A camera or network stream read by a background thread (see the module docstring).

    `opener` returns an opened capture or one whose isOpened() is False; it is called once here
    (a failure raises SourceError at once, so a wrong URL is reported before the run starts) and
    again for each reconnection, from the reader thread.
    """

    kind = "live"

    def __init__(self, spec: str, options: SourceOptions, opener: CaptureOpener, *, kind: str = "live") -> None:
        super().__init__(redact_url(spec), options)
        self.kind = kind
        self._opener = opener
        self._queue = FreshestQueue(options.queue_size)
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        cap = self._try_open()
        if cap is None:
            raise SourceError(
                f"cannot open {kind} {self.spec}: no video could be read from it within "
                f"{options.open_timeout_s:g}s; check the device index or URL, that the camera or "
                "server is up, and that it streams MJPEG/H.264 (RTSP or HTTP)"
            )
        self._cap: Capture | None = cap

    def _try_open(self) -> Capture | None:
        try:
            cap = self._opener()
        except Exception as exc:  # an opener may raise anything (cv2.error, OSError...)
            logger.warning("opening %s failed: %r", self.spec, exc)
            return None
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def start(self) -> None:
        """Start the reader thread (iteration does it too); idempotent."""
        with self._thread_lock:
            if self._thread is not None or self.stopped:
                return
            self._thread = threading.Thread(target=self._reader, name=f"edgefmp-source {self.spec}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        super().stop()
        self._queue.close()

    def _items(self) -> Iterator[Frame | SourceEvent]:
        self.start()
        reported = 0
        last_report: float | None = None
        while True:
            item = self._queue.get(timeout=_POLL_S)
            if item is None:
                if self._queue.finished or self.stopped:
                    return
                continue
            dropped = self.stats.dropped
            if isinstance(item, Frame) and dropped > reported:
                now = time.monotonic()
                if last_report is None or now - last_report >= DROP_EVENT_INTERVAL_S:
                    yield self.event(
                        "drop",
                        f"dropped {dropped - reported} stale frame(s) of {self.spec}: frames "
                        f"arrive faster than they are processed (queue_size="
                        f"{self.options.queue_size}); the freshest are kept",
                        new=dropped - reported,
                    )
                    reported = dropped
                    last_report = now
            yield item

    # --- reader thread -------------------------------------------------------------------

    def _reader(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # a crashed reader must end the stream visibly, not hang it
            logger.exception("reader of %s crashed", self.spec)
            self.stats.errors += 1
            self._queue.put_event(self.event("error", f"reader of {self.spec} crashed: {exc!r}"))
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._queue.close()

    def _read_loop(self) -> None:
        opts = self.options
        captured = 0
        attempts = 0  # failed reconnections in a row
        reason = ""
        while not self.stopped:
            if self._cap is None:
                attempts += 1
                if attempts > opts.max_reconnects:
                    self.stats.errors += 1
                    self._queue.put_event(
                        self.event(
                            "error",
                            f"giving up on {self.spec} after {opts.max_reconnects} failed "
                            f"reconnection(s) ({reason}); check that the camera or server is up",
                        )
                    )
                    return
                delay = min(opts.backoff_s * 2 ** (attempts - 1), opts.backoff_max_s)
                self.stats.reconnects += 1
                self._queue.put_event(
                    self.event(
                        "reconnect",
                        f"{reason}; reconnecting to {self.spec} in {delay:.2f}s "
                        f"(attempt {attempts}/{opts.max_reconnects})",
                        attempt=attempts,
                        delay_s=round(delay, 3),
                    )
                )
                if self._stop.wait(delay):
                    return
                self._cap = self._try_open()
                if self._cap is None:
                    reason = f"cannot reopen {self.spec}"
                continue
            ok, bgr = self._cap.read()
            if self.stopped:
                return
            if not ok or bgr is None:
                self.stats.errors += 1
                reason = f"lost {self.spec} after frame {captured - 1}: read failed"
                logger.warning("%s", reason)
                self._cap.release()
                self._cap = None
                continue
            attempts = 0
            self.stats.frames_read += 1
            index = captured
            captured += 1
            if index % opts.stride:
                continue
            frame = Frame(
                f"live:{index}", time.time(), prepare_image(bgr, opts.resize), {"source": self.spec, "index": index}
            )
            if self._queue.put_frame(frame):
                self.stats.dropped += 1

    def _release(self) -> None:
        self._queue.close()
        thread = self._thread
        if thread is None:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            return
        if thread is not threading.current_thread():
            thread.join(timeout=self.options.read_timeout_s + 2.0)
            if thread.is_alive():
                logger.warning(
                    "reader of %s still blocked in read() after close; it exits when the read returns",
                    self.spec,
                )


def camera_opener(index: int, options: SourceOptions) -> CaptureOpener:
    """Opener of a local camera; asks for a 1-frame driver buffer so frames are fresh."""

    def open_camera() -> Any:
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    return open_camera


def stream_opener(url: str, options: SourceOptions) -> CaptureOpener:
    """Opener of an RTSP / HTTP(S) stream through FFMPEG, with open and read timeouts."""
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(options.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(options.read_timeout_s * 1000),
    ]

    def open_stream() -> Any:
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    return open_stream
