"""A real MJPEG-over-HTTP server on 127.0.0.1 for tests of live sources.

Why a real server: the live source must be tested against the same wire format an IP camera
sends (``multipart/x-mixed-replace`` with one JPEG per part), through the same reader (OpenCV's
FFMPEG backend), including a camera that drops the connection mid-stream and comes back.

Everything is bounded so a failing test cannot hang the suite: each connection serves at most
``max_frames_per_conn`` frames, the server refuses new streams after ``max_connections``, and it
shuts itself down after ``lifetime_s`` seconds even if nobody calls `stop()`.

Example::

    with MjpegServer(drop_after=5) as server:
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG)
        ok, frame = cap.read()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

BOUNDARY = "edgefmpframe"

FrameFactory = Callable[[int], np.ndarray]


def counter_frame(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """An RGB frame whose brightness and text encode `index`, so tests can tell frames apart."""
    image = np.full((height, width, 3), (index * 7) % 200 + 30, dtype=np.uint8)
    cv2.putText(image, str(index), (8, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    return image


class MjpegServer:
    """An MJPEG stream served from a background thread.

    `frame_factory(i)` returns the RGB image of the i-th frame of the whole server (the index
    keeps counting across connections). `fps` paces the stream (0 = as fast as possible).
    `drop_after=N` makes each of the first `drops` connections close after N frames, the way a
    flaky camera does; later connections stream normally. Counters (`connections`,
    `frames_sent`) let tests check what happened on the wire.
    """

    def __init__(
        self,
        frame_factory: FrameFactory = counter_frame,
        *,
        fps: float = 30.0,
        drop_after: int | None = None,
        drops: int = 1,
        max_frames_per_conn: int = 300,
        max_connections: int = 20,
        lifetime_s: float = 30.0,
        jpeg_quality: int = 80,
    ) -> None:
        self.frame_factory = frame_factory
        self.fps = fps
        self.drop_after = drop_after
        self.drops = drops
        self.max_frames_per_conn = max_frames_per_conn
        self.max_connections = max_connections
        self.lifetime_s = lifetime_s
        self.jpeg_quality = jpeg_quality
        self.connections = 0
        self.frames_sent = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, name="mjpeg-server", daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/stream.mjpg"

    def start(self) -> MjpegServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving; open streams end at their next frame. Safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def _next_connection(self) -> tuple[int, int] | None:
        """Register a new stream; return (connection number, frame limit) or None to refuse."""
        with self._lock:
            if self.connections >= self.max_connections or self._stopping.is_set():
                return None
            self.connections += 1
            conn = self.connections
        limit = self.max_frames_per_conn
        if self.drop_after is not None and conn <= self.drops:
            limit = min(limit, self.drop_after)
        return conn, limit

    def _next_frame_jpeg(self) -> bytes:
        with self._lock:
            index = self.frames_sent
            self.frames_sent += 1
        bgr = cv2.cvtColor(self.frame_factory(index), cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"cannot encode MJPEG test frame {index}")
        return buf.tobytes()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt: str, *args: Any) -> None:
                logger.debug("mjpeg server: " + fmt, *args)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                slot = server._next_connection()
                if slot is None:
                    self.send_error(503, "test server refuses more connections")
                    return
                conn, limit = slot
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                period = 1.0 / server.fps if server.fps > 0 else 0.0
                try:
                    for _ in range(limit):
                        if server._stopping.is_set():
                            break
                        jpeg = server._next_frame_jpeg()
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode(
                                "ascii"
                            )
                        )
                        self.wfile.write(jpeg)
                        self.wfile.write(b"\r\n")
                        self.wfile.flush()
                        if period:
                            time.sleep(period)
                except ConnectionError:  # the client went away (closed its capture)
                    logger.debug("mjpeg server: client left connection %d", conn)
                self.close_connection = True

        return Handler
