"""Decoding the images clients upload: data URLs (OpenAI), base64 or raw JPEG/PNG (KServe).

Only data URLs are accepted, never http(s) URLs: the server must not fetch what a client
points it at. Image dimensions are read from the header before decoding, so a small file that
would decode to gigabytes (a decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import base64
import binascii
import struct

import cv2
import numpy as np

from edgefmp.serve.errors import RequestRejected, bad_request

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8"
# JPEG start-of-frame markers that carry the dimensions
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header; None for other formats."""
    if data.startswith(_PNG) and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data.startswith(_JPEG):
        return _jpeg_size(data)
    return None


def decode_image(data: bytes, max_pixels: int, where: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from encoded image bytes; `where` names the field in errors."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise RequestRejected(
            413,
            f"{where}: the image is {size[0]}x{size[1]} pixels; this server accepts at most {max_pixels}",
            param=where,
        )
    buf = np.frombuffer(data, np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise bad_request(f"{where}: not a decodable image (expected JPEG or PNG bytes)", where)
    if bgr.shape[0] * bgr.shape[1] > max_pixels:
        raise RequestRejected(413, f"{where}: the image has more than {max_pixels} pixels", param=where)
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def decode_base64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"{where}: not valid base64 ({exc})", where) from exc


def decode_data_url(url: str, max_pixels: int, where: str) -> np.ndarray:
    """RGB image from `data:image/<type>;base64,<data>`."""
    if not url.startswith("data:"):
        scheme = url.split(":", 1)[0][:16] if ":" in url else "none"
        raise bad_request(
            f"{where}: only data URLs (data:image/jpeg;base64,...) are accepted, got scheme {scheme!r}; "
            "this server does not fetch remote URLs",
            where,
        )
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64") or not header[5:].startswith("image/"):
        raise bad_request(f"{where}: expected data:image/<type>;base64,<data>", where)
    return decode_image(decode_base64(payload, where), max_pixels, where)
