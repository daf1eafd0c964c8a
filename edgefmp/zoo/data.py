"""Training and evaluation sets for the zoo, made from composed scenes (no torch here).

Every scene is composed at camera resolution (240x320), optionally corrupted there (a camera
corrupts the full frame, not the model input), then turned into what each model sees: the
frame stretched to the detector's input size with boxes scaled alike, and one 64x64 crop per
object for the attribute classifier. Crops are jittered (margins from a tight box to a loose
one, small shifts) because at run time the crop comes from a detector's imperfect box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgefmp.scenes import COLORS, CORRUPTIONS, SHAPES, ShapeSample, compose_scene, corrupt

FRAME_HW = (240, 320)
CROP_HW = (64, 64)

# A corruption applied to a whole set: None (clean), "random" (a random kind and severity per
# scene, for training), or (kind, severity) for one evaluation condition.
Condition = None | str | tuple[str, int]


@dataclass
class DetSet:
    """Detector inputs (N, H, W, 3) uint8 and, per image, boxes xyxy in input pixels (K, 4)
    with shape and colour indices (K,)."""

    images: np.ndarray
    boxes: list[np.ndarray]
    shapes: list[np.ndarray]
    colors: list[np.ndarray]

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class AttrSet:
    """Object crops (M, 64, 64, 3) uint8 with shape and colour indices (M,)."""

    images: np.ndarray
    shapes: np.ndarray
    colors: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def jittered_crop(frame: np.ndarray, box: Sequence[float], rng: np.random.Generator, jitter: bool) -> np.ndarray:
    """A 64x64 crop around `box`: with `jitter`, margins of -5%..+30% and shifts of up to 10%
    of the box size; without, a fixed 10% margin (what evaluation uses)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if jitter:
        mx = rng.uniform(-0.05, 0.3, 2) * w
        my = rng.uniform(-0.05, 0.3, 2) * h
        dx, dy = rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.1, 0.1) * h
    else:
        mx, my, dx, dy = np.full(2, 0.1 * w), np.full(2, 0.1 * h), 0.0, 0.0
    fh, fw = frame.shape[:2]
    a = int(np.clip(np.floor(x1 - mx[0] + dx), 0, fw - 1))
    b = int(np.clip(np.floor(y1 - my[0] + dy), 0, fh - 1))
    c = int(np.clip(np.ceil(x2 + mx[1] + dx), a + 1, fw))
    d = int(np.clip(np.ceil(y2 + my[1] + dy), b + 1, fh))
    crop: np.ndarray = cv2.resize(frame[b:d, a:c], (CROP_HW[1], CROP_HW[0]), interpolation=cv2.INTER_LINEAR)
    return crop


def _apply(condition: Condition, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if condition is None:
        return frame
    if condition == "random":
        kind = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
        return corrupt(frame, kind, int(rng.integers(1, 6)), rng)
    if isinstance(condition, tuple):
        kind, severity = condition
        return corrupt(frame, kind, severity, rng)
    raise ValueError(f"unknown condition {condition!r}")


def make_sets(
    pool: Sequence[ShapeSample],
    n_scenes: int,
    seed: int,
    det_hw: tuple[int, int],
    condition: Condition = None,
    jitter: bool = True,
    on_scene: Callable[[], None] | None = None,
) -> tuple[DetSet, AttrSet]:
    """`n_scenes` scenes as a detector set and an attribute set; deterministic for `seed`.

    The scene layout depends only on `seed` (the corruption draws from a separate stream), so
    the same seed with different conditions gives the same scenes, differently corrupted:
    accuracy differences between conditions are then due to the corruption alone.
    """
    scene_rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, 1])
    shape_index = {s: i for i, s in enumerate(SHAPES)}
    color_index = {c: i for i, c in enumerate(COLORS)}
    h, w = det_hw
    sx, sy = w / FRAME_HW[1], h / FRAME_HW[0]
    det_images = np.zeros((n_scenes, h, w, 3), np.uint8)
    boxes: list[np.ndarray] = []
    d_shapes: list[np.ndarray] = []
    d_colors: list[np.ndarray] = []
    crops: list[np.ndarray] = []
    a_shapes: list[int] = []
    a_colors: list[int] = []
    for i in range(n_scenes):
        scene = compose_scene(scene_rng, pool, size=FRAME_HW)
        frame = _apply(condition, scene.image, noise_rng)
        det_images[i] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        b = np.asarray([o.box for o in scene.objects], np.float32).reshape(-1, 4)
        boxes.append(b * np.asarray([sx, sy, sx, sy], np.float32))
        d_shapes.append(np.asarray([shape_index[o.shape] for o in scene.objects], np.int64))
        d_colors.append(np.asarray([color_index[o.color] for o in scene.objects], np.int64))
        for o in scene.objects:
            crops.append(jittered_crop(frame, o.box, scene_rng, jitter))
            a_shapes.append(shape_index[o.shape])
            a_colors.append(color_index[o.color])
        if on_scene is not None:
            on_scene()
    crop_arr = np.stack(crops) if crops else np.zeros((0, *CROP_HW, 3), np.uint8)
    det = DetSet(det_images, boxes, d_shapes, d_colors)
    attr = AttrSet(crop_arr, np.asarray(a_shapes, np.int64), np.asarray(a_colors, np.int64))
    return det, attr
