"""Camera corruptions at five severities: what edge cameras do to images.

Severity tables follow the spirit of ImageNet-C (Hendrycks & Dietterich, 2019): level 1 is a
good camera on a bad day, level 5 is barely usable. Levels are set for 240x320 frames that a
model sees downscaled (to 96x128 for the zoo's detector), which averages mild noise and blur
away, so the levels are stronger than ImageNet-C's at the same number. `low_light` is darkening with a gamma curve
plus the shot noise that comes with it, because a dark frame from a real sensor is never clean.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgefmp.errors import ConfigError

CORRUPTIONS: tuple[str, ...] = ("noise", "blur", "low_light", "jpeg", "downscale")

_NOISE_SIGMA = (10.0, 20.0, 35.0, 55.0, 80.0)
_BLUR_SIGMA = (1.0, 2.0, 3.5, 5.0, 7.0)
_LOW_LIGHT = (
    (0.6, 3.0),
    (0.45, 5.0),
    (0.32, 7.0),
    (0.22, 9.0),
    (0.15, 11.0),
)  # (brightness, noise sigma)
_JPEG_QUALITY = (30, 18, 10, 6, 3)
_DOWNSCALE = (3.0, 4.0, 6.0, 8.0, 12.0)


def corrupt(image: np.ndarray, kind: str, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """`image` (RGB uint8) corrupted by `kind` at `severity` 1..5, same shape and dtype.

    `rng` draws the noise of `noise` and `low_light`; without one they use a fixed seed, so a
    call is always reproducible.
    """
    if kind not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {kind!r}; available: {', '.join(CORRUPTIONS)}")
    if not isinstance(severity, (int, np.integer)) or not 1 <= int(severity) <= 5:
        raise ConfigError(f"corruption {kind!r}: severity must be an integer 1..5, got {severity!r}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"corrupt: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    gen = rng if rng is not None else np.random.default_rng(0)
    s = int(severity) - 1
    out: np.ndarray
    if kind == "noise":
        noise = gen.normal(0.0, _NOISE_SIGMA[s], image.shape).astype(np.float32)
        out = image.astype(np.float32) + noise
    elif kind == "blur":
        out = cv2.GaussianBlur(image, (0, 0), _BLUR_SIGMA[s]).astype(np.float32)
    elif kind == "low_light":
        gain, sigma = _LOW_LIGHT[s]
        x = image.astype(np.float32) / 255.0
        out = 255.0 * gain * np.power(x, 1.2) + gen.normal(0.0, sigma, image.shape).astype(np.float32)
    elif kind == "jpeg":
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY[s]])
        if not ok:
            raise ConfigError("corrupt: OpenCV could not JPEG-encode the image")
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None:
            raise ConfigError("corrupt: OpenCV could not decode its own JPEG")
        return np.ascontiguousarray(decoded[:, :, ::-1])
    else:  # downscale
        h, w = image.shape[:2]
        f = _DOWNSCALE[s]
        small = cv2.resize(
            image,
            (max(1, int(round(w / f))), max(1, int(round(h / f)))),
            interpolation=cv2.INTER_AREA,
        )
        restored: np.ndarray = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return restored
    result: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result
