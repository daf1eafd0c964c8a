"""Live sources: the freshest-frame queue, reconnection against a real MJPEG server, stop/close.

Nothing here asserts on timing: servers and fakes are driven by counts and events, and the
backoff is set to a few milliseconds so reconnection tests stay fast.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgefmp.errors import SourceError
from edgefmp.frame import Frame
from edgefmp.runtime.source_live import FreshestQueue, LiveSource, redact_url
from edgefmp.runtime.sources import SourceEvent, SourceOptions, open_source
from tests.helpers.mjpeg_server import MjpegServer

FAST: dict[str, Any] = {
    "backoff_s": 0.01,
    "backoff_max_s": 0.05,
    "open_timeout_s": 5.0,
    "read_timeout_s": 5.0,
}


class FakeCapture:
    """A capture that returns `frames` images, then fails; `exhausted` is set at the failure."""

    def __init__(self, frames: int | None, crash: bool = False) -> None:
        self.frames = frames
        self.crash = crash
        self.served = 0
        self.exhausted = threading.Event()
        self.released = False
        self._tick = threading.Event()

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV naming)
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.crash:
            raise RuntimeError("driver exploded")
        if self.frames is not None and self.served >= self.frames:
            self.exhausted.set()
            return False, None
        if self.frames is None:
            self._tick.wait(0.001)  # an endless camera: do not spin the CPU
        self.served += 1
        return True, np.full((8, 8, 3), self.served % 256, np.uint8)

    def release(self) -> None:
        self.released = True


def fake_source(cap: FakeCapture, **opts: Any) -> LiveSource:
    return LiveSource("fake-cam", SourceOptions(**{**FAST, **opts}), lambda: cap)


def kinds(items: list[Frame | SourceEvent]) -> list[str]:
    return [i.frame_id if isinstance(i, Frame) else i.kind for i in items]


# --- freshest-frame queue ------------------------------------------------------------------


def frame(i: int) -> Frame:
    return Frame(f"live:{i}", float(i), np.zeros((2, 2, 3), np.uint8))


def test_freshest_queue_keeps_newest_frames_counts_drops_and_never_drops_events() -> None:
    queue = FreshestQueue(2)
    dropped = [queue.put_frame(frame(0)), queue.put_frame(frame(1))]
    queue.put_event(SourceEvent("reconnect", "lost it"))
    dropped += [queue.put_frame(frame(i)) for i in range(2, 5)]
    assert dropped == [False, False, True, True, True]

    queue.close()
    got = []
    while (item := queue.get(timeout=0)) is not None:
        got.append(item.frame_id if isinstance(item, Frame) else item.kind)
    assert got == ["reconnect", "live:3", "live:4"]
    assert queue.finished
    assert queue.put_frame(frame(9)) is False and len(queue) == 0  # closed: ignored


def test_slow_consumer_gets_the_freshest_frames_and_a_drop_event() -> None:
    cap = FakeCapture(frames=10)
    source = fake_source(cap, max_reconnects=0, queue_size=2)
    source.start()
    assert cap.exhausted.wait(5), "the reader should drain the fake camera"

    items = list(source)

    assert kinds(items) == ["opened", "drop", "live:8", "live:9", "error", "end"]
    drop = items[1]
    assert isinstance(drop, SourceEvent) and drop.counters["new"] == 8
    assert source.stats.dropped == 8 and source.stats.frames_read == 10
    assert "giving up" in items[4].message  # type: ignore[union-attr]
    assert cap.released


def test_stride_applies_before_the_queue() -> None:
    cap = FakeCapture(frames=10)
    source = fake_source(cap, max_reconnects=0, queue_size=10, stride=3)
    source.start()
    assert cap.exhausted.wait(5)
    frames = [i.frame_id for i in source if isinstance(i, Frame)]
    assert frames == ["live:0", "live:3", "live:6", "live:9"]
    assert source.stats.dropped == 0


def test_stop_from_the_consumer_ends_cleanly_and_joins_the_reader() -> None:
    cap = FakeCapture(frames=None)
    source = fake_source(cap)
    seen = []
    for item in source:
        seen.append(item)
        if isinstance(item, Frame) and len([s for s in seen if isinstance(s, Frame)]) == 3:
            source.stop()
    assert kinds(seen)[-1] == "end" and "stopped" in seen[-1].message  # type: ignore[union-attr]
    assert source._thread is not None and not source._thread.is_alive()
    assert cap.released


def test_max_frames_ends_a_live_stream() -> None:
    source = fake_source(FakeCapture(frames=None), max_frames=5, queue_size=8)
    frames = [i for i in source if isinstance(i, Frame)]
    assert len(frames) == 5
    assert source._thread is not None and not source._thread.is_alive()


def test_a_crashing_reader_becomes_an_error_event() -> None:
    source = fake_source(FakeCapture(frames=1, crash=True))
    items = list(source)
    assert kinds(items) == ["opened", "error", "end"]
    assert "driver exploded" in items[1].message  # type: ignore[union-attr]


def test_close_without_iterating_releases_the_capture() -> None:
    cap = FakeCapture(frames=3)
    source = fake_source(cap)
    source.close()
    assert cap.released


# --- real MJPEG over HTTP ------------------------------------------------------------------


def test_mjpeg_stream_reconnects_after_the_server_drops_it(
    mjpeg_server: Callable[..., MjpegServer],
) -> None:
    server = mjpeg_server(drop_after=5, fps=60)
    source = open_source(server.url, max_frames=12, queue_size=16, **FAST)
    assert isinstance(source, LiveSource)

    items = list(source)

    names = kinds(items)
    assert names[0] == "opened" and names[-1] == "end"
    assert "reconnect" in names
    after = names[names.index("reconnect") + 1 :]
    assert sum(n.startswith("live:") for n in after) >= 1, "frames keep coming after reconnecting"
    frames = [i for i in items if isinstance(i, Frame)]
    assert len(frames) == 12
    assert frames[0].image is not None and frames[0].image.shape == (120, 160, 3)
    ids = [int(f.frame_id.split(":")[1]) for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert source.stats.reconnects >= 1 and server.connections >= 2


def test_mjpeg_gives_up_after_max_reconnects(mjpeg_server: Callable[..., MjpegServer]) -> None:
    server = mjpeg_server(drop_after=3, max_connections=1, fps=60)  # refuses to come back
    items = list(open_source(server.url, max_reconnects=2, **FAST))
    names = kinds(items)
    assert names.count("reconnect") == 2
    assert names[-2:] == ["error", "end"]
    assert "after 2 failed reconnection(s)" in items[-2].message  # type: ignore[union-attr]


def test_unreachable_stream_raises_source_error_naming_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/none.mjpg"
    with pytest.raises(SourceError, match=f"cannot open stream {url}"):
        open_source(url, open_timeout_s=2.0)


def test_passwords_never_reach_messages() -> None:
    assert redact_url("rtsp://admin:hunter2@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert redact_url("http://cam.local/video.mjpg") == "http://cam.local/video.mjpg"
