"""Compose camera-like scenes from easy-VQA shapes, with exact ground truth.

A scene is a background (`background.py`) with a few shapes pasted through their soft masks at
random sizes and places, never overlapping much, so every object stays identifiable. The layout
(`Placement`) is kept apart from the pixels so a video can move the same objects frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgefmp.errors import ConfigError
from edgefmp.scenes.background import add_sensor_noise, make_background
from edgefmp.scenes.pool import ShapeSample


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: its shape, colour and box (x1, y1, x2, y2 pixels, float)."""

    shape: str
    color: str
    box: tuple[float, float, float, float]

    @property
    def label(self) -> str:
        """The detector class name, e.g. "red circle"."""
        return f"{self.color} {self.shape}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "label": self.label,
            "box": [round(v, 1) for v in self.box],
        }


@dataclass
class Scene:
    """An RGB uint8 image (H, W, 3) and the objects in it."""

    image: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)


@dataclass
class Placement:
    """A shape's sprite (colour and alpha at its drawn size) and its top-left corner.

    `x`, `y` are floats so slow drift accumulates; drawing rounds them. `vx`, `vy` are the
    per-frame velocity a video uses.
    """

    sample: ShapeSample
    alpha: np.ndarray
    rgb: np.ndarray
    offset: tuple[int, int, int, int]
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0

    @property
    def box(self) -> tuple[float, float, float, float]:
        ox1, oy1, ox2, oy2 = self.offset
        x, y = float(round(self.x)), float(round(self.y))
        return (x + ox1, y + oy1, x + ox2, y + oy2)

    def to_object(self) -> SceneObject:
        return SceneObject(self.sample.shape, self.sample.color, self.box)


def make_sprite(
    sample: ShapeSample, long_side: float, brightness: float = 1.0
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The sample's shape scaled so its box's longer side is `long_side` pixels.

    Returns alpha (h, w), colour (3,) and the object's box inside the sprite (the alpha > 0.5
    region), which is the ground-truth box once placed.
    """
    x1, y1, x2, y2 = sample.box
    h0, w0 = sample.alpha.shape
    m = 1
    crop = sample.alpha[max(0, y1 - m) : min(h0, y2 + m), max(0, x1 - m) : min(w0, x2 + m)]
    f = float(long_side) / max(x2 - x1, y2 - y1)
    new_w = max(2, int(round(crop.shape[1] * f)))
    new_h = max(2, int(round(crop.shape[0] * f)))
    alpha = cv2.resize(crop, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(alpha > 0.5)
    if ys.size == 0:
        raise ConfigError(f"shape {sample.image_id} vanished when scaled to {long_side:.1f} px; use a larger scale")
    offset = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    rgb = np.clip(np.asarray(sample.rgb, np.float32) * brightness, 0, 255)
    return alpha.astype(np.float32), rgb, offset


def overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the smaller box's area: 1.0 when one box hides inside the other."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih / max(smaller, 1e-6))


def layout(
    rng: np.random.Generator,
    pool: Sequence[ShapeSample],
    size: tuple[int, int],
    n_objects: tuple[int, int],
    scale: tuple[float, float],
    max_overlap: float,
    attempts: int = 50,
) -> list[Placement]:
    """Pick shapes and place them fully inside the frame, rejecting placements that overlap an
    earlier one by more than `max_overlap` (a crowded frame ends up with fewer objects)."""
    if not pool:
        raise ConfigError("compose_scene: the shape pool is empty; load it with load_shape_pool()")
    lo, hi = n_objects
    if lo < 0 or hi < lo:
        raise ConfigError(f"compose_scene: n_objects must be (lo, hi) with 0 <= lo <= hi, got {n_objects}")
    if not 0 < scale[0] <= scale[1] < 1:
        raise ConfigError(f"compose_scene: scale must be (lo, hi) with 0 < lo <= hi < 1, got {scale}")
    h, w = size
    n = int(rng.integers(lo, hi + 1))
    placed: list[Placement] = []
    for _ in range(n):
        sample = pool[int(rng.integers(len(pool)))]
        long_side = rng.uniform(*scale) * min(h, w)
        alpha, rgb, offset = make_sprite(sample, long_side, brightness=float(rng.uniform(0.8, 1.08)))
        sh, sw = alpha.shape
        if sh >= h or sw >= w:
            continue
        for _ in range(attempts):
            p = Placement(
                sample,
                alpha,
                rgb,
                offset,
                float(rng.integers(0, w - sw + 1)),
                float(rng.integers(0, h - sh + 1)),
            )
            if all(overlap(p.box, q.box) <= max_overlap for q in placed):
                placed.append(p)
                break
    return placed


def render(background: np.ndarray, placements: Sequence[Placement]) -> np.ndarray:
    """Paste the sprites onto a float32 background (a copy), clipping at the frame's edges."""
    img = background.astype(np.float32, copy=True)
    h, w = img.shape[:2]
    for p in placements:
        sh, sw = p.alpha.shape
        x, y = int(round(p.x)), int(round(p.y))
        x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + sw), min(h, y + sh)
        if x2 <= x1 or y2 <= y1:
            continue
        a = p.alpha[y1 - y : y2 - y, x1 - x : x2 - x, None]
        region = img[y1:y2, x1:x2]
        img[y1:y2, x1:x2] = region * (1.0 - a) + p.rgb[None, None, :] * a
    return img


def compose_scene(
    rng: np.random.Generator,
    pool: Sequence[ShapeSample],
    size: tuple[int, int] = (240, 320),
    n_objects: tuple[int, int] = (1, 4),
    scale: tuple[float, float] = (0.12, 0.32),
    max_overlap: float = 0.1,
    noise_sigma: float = 2.5,
) -> Scene:
    """A camera-like scene of `size` (height, width) with `n_objects` shapes from `pool`.

    `scale` bounds each object's longer side as a fraction of the frame's shorter side;
    `max_overlap` bounds how much of a smaller box another box may cover. Deterministic for the
    state of `rng`.

    >>> import numpy as np
    >>> from edgefmp.scenes import compose_scene, load_shape_pool
    >>> scene = compose_scene(np.random.default_rng(0), load_shape_pool("test", limit=50))
    >>> scene.image.shape
    (240, 320, 3)
    """
    background = make_background(rng, size)
    placements = layout(rng, pool, size, n_objects, scale, max_overlap)
    image = add_sensor_noise(render(background, placements), rng, noise_sigma)
    return Scene(image, [p.to_object() for p in placements])
