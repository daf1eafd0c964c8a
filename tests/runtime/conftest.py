"""Fixtures for runtime tests: small real media written on the fly, and MJPEG servers.

Media are generated with OpenCV in tmp_path rather than committed, so tests show exactly what
they feed the sources (a counter video whose brightness rises with the frame index, images with
known colours) and corrupt them in controlled ways.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.helpers.mjpeg_server import MjpegServer

VIDEO_W, VIDEO_H = 160, 120


def counter_image(index: int, width: int = VIDEO_W, height: int = VIDEO_H) -> np.ndarray:
    """BGR frame: brightness 20 + 7*index (so order is checkable) and the index as text."""
    image = np.full((height, width, 3), 20 + 7 * index, dtype=np.uint8)
    cv2.putText(image, str(index), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    return image


def write_video(
    path: Path,
    frames: int = 30,
    fps: float = 10.0,
    fourcc: str = "mp4v",
    image: Callable[[int], np.ndarray] = counter_image,
) -> Path:
    first = image(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (first.shape[1], first.shape[0]))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc} to {path}"
    for i in range(frames):
        writer.write(image(i))
    writer.release()
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """`make_video(name="clip.mp4", frames=30, fps=10, fourcc="mp4v")` -> path of a new video."""

    def make(name: str = "clip.mp4", **kwargs: Any) -> Path:
        return write_video(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def mjpeg_server() -> Iterator[Callable[..., MjpegServer]]:
    """`mjpeg_server(**MjpegServer kwargs)` -> a started server; all are stopped at test end."""
    servers: list[MjpegServer] = []

    def start(**kwargs: Any) -> MjpegServer:
        kwargs.setdefault("lifetime_s", 20.0)
        server = MjpegServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
