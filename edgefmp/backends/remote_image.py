"""Shrinking and encoding an image before it leaves the device.

Upload bytes are the dominant network cost of a remote call, and on a metered or slow link
also its latency; `max_side` and `jpeg_quality` trade them against the remote model's
accuracy. The scale factors are kept so boxes found in the sent image map back to the
request's pixels.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np

from edgefmp.errors import BackendError


@dataclass(frozen=True)
class SentImage:
    """The image as sent: RGB uint8, plus request-pixels-per-sent-pixel on each axis."""

    rgb: np.ndarray
    scale_x: float
    scale_y: float

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def downscale(image: np.ndarray, max_side: int | None) -> SentImage:
    """Resize so the longer side is at most `max_side` (never upscale; aspect kept)."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return SentImage(image, 1.0, 1.0)
    factor = max_side / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    # INTER_AREA averages pixels, which keeps thin text and edges readable when shrinking.
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return SentImage(small, w / new_w, h / new_h)


def encode_jpeg(rgb: np.ndarray, quality: int, where: str) -> bytes:
    """JPEG bytes of an RGB image; `where` names the backend in the error."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BackendError(f"{where}: OpenCV could not JPEG-encode an image of shape {rgb.shape}")
    return bytes(buf.tobytes())


def jpeg_data_url(rgb: np.ndarray, quality: int, where: str) -> str:
    """`data:image/jpeg;base64,...` for OpenAI-style image_url content parts."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(rgb, quality, where)).decode("ascii")
