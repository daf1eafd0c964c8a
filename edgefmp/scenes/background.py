"""Camera-like backgrounds: a muted surface under uneven light, with texture and sensor noise.

The easy-VQA shapes sit on a flat pastel colour, which no camera ever sees. A scene background
is a muted base colour (walls, floors, tables), an illumination gradient in a random direction,
a vignette, low-frequency texture and mild per-pixel noise, so that detectors cannot find
shapes by looking for the only non-flat pixels.
"""

from __future__ import annotations

import cv2
import numpy as np


def make_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A float32 RGB background in [0, 255] of `size` (height, width), without sensor noise
    (`add_sensor_noise` adds it per frame, so video frames of one scene differ like a camera's)."""
    h, w = size
    hue = rng.uniform(0, 180)
    sat = rng.uniform(10, 70)
    val = rng.uniform(110, 225)
    base = cv2.cvtColor(np.array([[[hue, sat, val]]], np.float32).astype(np.uint8), cv2.COLOR_HSV2RGB)
    base_rgb = base.reshape(3).astype(np.float32)

    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (xx / max(w - 1, 1) - 0.5) + np.sin(angle) * (yy / max(h - 1, 1) - 0.5)
    light = 1.0 + rng.uniform(0.15, 0.45) * ramp
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5
    light = light * (1.0 - rng.uniform(0.05, 0.3) * r2)

    gh, gw = max(2, h // 24), max(2, w // 24)
    # Mostly luminance texture with a little colour, as real surfaces have.
    coarse = rng.normal(0.0, 1.0, (gh, gw, 1)) + 0.3 * rng.normal(0.0, 1.0, (gh, gw, 3))
    texture = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), 1.2)
    tex = np.float32(rng.uniform(4, 14)) * texture + np.float32(rng.uniform(2, 8)) * fine[..., None]

    img = base_rgb[None, None, :] * light[..., None].astype(np.float32) + tex
    out: np.ndarray = np.clip(img, 0, 255).astype(np.float32)
    return out


def add_sensor_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 2.5) -> np.ndarray:
    """Mild Gaussian sensor noise, then rounding to uint8 RGB."""
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noise += image
    out: np.ndarray = np.clip(noise + 0.5, 0, 255).astype(np.uint8)
    return out
