"""Camera-like test videos with per-frame ground truth.

A video is a run of scenes, each lasting a few seconds (a camera panning to a new view, or a
new scene arriving in front of it). Within a scene the same objects drift slowly, bouncing off
the frame's edges and off each other, while the sensor noise changes every frame, so
consecutive frames are similar but not identical: what a router that caches or learns online
meets in deployment. An optional corruption schedule degrades chosen frame ranges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from edgefmp.errors import ConfigError
from edgefmp.scenes.background import add_sensor_noise, make_background
from edgefmp.scenes.compose import Placement, SceneObject, layout, overlap, render
from edgefmp.scenes.corrupt import CORRUPTIONS, corrupt
from edgefmp.scenes.pool import ShapeSample, Split, load_shape_pool

# Either a function of the frame index, or segments (start frame, kind or None, severity)
# sorted by start frame; a segment lasts until the next one starts.
CorruptionSchedule: TypeAlias = "Callable[[int], tuple[str, int] | None] | Sequence[tuple[int, str | None, int]]"


@dataclass
class FrameTruth:
    """What frame `index` shows: its objects, which scene it belongs to, and its corruption."""

    index: int
    time_s: float
    scene: int
    objects: list[SceneObject] = field(default_factory=list)
    corruption: str | None = None
    severity: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.index,
            "time_s": round(self.time_s, 4),
            "scene": self.scene,
            "corruption": self.corruption,
            "severity": self.severity,
            "objects": [o.to_dict() for o in self.objects],
        }


def _lookup(schedule: CorruptionSchedule | None, index: int) -> tuple[str, int] | None:
    if schedule is None:
        return None
    if callable(schedule):
        return schedule(index)
    current: tuple[str, int] | None = None
    for start, kind, severity in schedule:
        if start > index:
            break
        current = None if kind is None else (kind, int(severity))
    return current


def _check_schedule(schedule: CorruptionSchedule | None) -> None:
    if schedule is None or callable(schedule):
        return
    starts = [s[0] for s in schedule]
    if starts != sorted(starts):
        raise ConfigError(f"corruption_schedule: segments must be sorted by start frame, got starts {starts}")
    for start, kind, severity in schedule:
        if kind is not None and (kind not in CORRUPTIONS or not 1 <= int(severity) <= 5):
            raise ConfigError(
                f"corruption_schedule: segment at frame {start} has ({kind!r}, {severity!r}); "
                f"kinds: {', '.join(CORRUPTIONS)}, severities 1..5"
            )


def _drift(placements: list[Placement], size: tuple[int, int], max_overlap: float) -> None:
    """Move every object by its velocity; bounce off the frame edges, and off another object
    instead of moving into it (so objects never hide each other)."""
    h, w = size
    for i, p in enumerate(placements):
        sh, sw = p.alpha.shape
        old = (p.x, p.y)
        p.x += p.vx
        p.y += p.vy
        if p.x < 0 or p.x > w - sw:
            p.vx = -p.vx
            p.x = float(np.clip(p.x, 0, w - sw))
        if p.y < 0 or p.y > h - sh:
            p.vy = -p.vy
            p.y = float(np.clip(p.y, 0, h - sh))
        if any(overlap(p.box, q.box) > max_overlap for j, q in enumerate(placements) if j != i):
            p.x, p.y = old
            p.vx, p.vy = -p.vx, -p.vy


def scene_frames(
    n_frames: int,
    seed: int,
    fps: float = 10.0,
    size: tuple[int, int] = (240, 320),
    split: Split = "test",
    corruption_schedule: CorruptionSchedule | None = None,
    *,
    pool: Sequence[ShapeSample] | None = None,
    scene_seconds: tuple[float, float] = (3.0, 6.0),
    n_objects: tuple[int, int] = (1, 4),
    scale: tuple[float, float] = (0.12, 0.32),
    speed: float = 1.5,
    max_overlap: float = 0.1,
) -> Iterator[tuple[np.ndarray, FrameTruth]]:
    """Frames (RGB uint8) and their truth, without writing a file; deterministic for `seed`.

    `speed` bounds the drift in pixels per frame; `scene_seconds` bounds how long a scene lasts.
    """
    if n_frames < 0:
        raise ConfigError(f"scene video: n_frames must be >= 0, got {n_frames}")
    if fps <= 0:
        raise ConfigError(f"scene video: fps must be > 0, got {fps}")
    _check_schedule(corruption_schedule)
    shapes = list(pool) if pool is not None else load_shape_pool(split)
    rng = np.random.default_rng(seed)
    scene = -1
    frames_left = 0
    background = np.zeros((*size, 3), np.float32)
    placements: list[Placement] = []
    for index in range(n_frames):
        if frames_left <= 0:
            scene += 1
            frames_left = max(1, int(round(rng.uniform(*scene_seconds) * fps)))
            background = make_background(rng, size)
            placements = layout(rng, shapes, size, n_objects, scale, max_overlap)
            for p in placements:
                angle = rng.uniform(0, 2 * np.pi)
                v = rng.uniform(0.2, 1.0) * speed
                p.vx, p.vy = float(v * np.cos(angle)), float(v * np.sin(angle))
        else:
            _drift(placements, size, max_overlap)
        frames_left -= 1
        image = add_sensor_noise(render(background, placements), rng)
        truth = FrameTruth(index, index / fps, scene, [p.to_object() for p in placements])
        applied = _lookup(corruption_schedule, index)
        if applied is not None:
            kind, severity = applied
            image = corrupt(image, kind, severity, rng)
            truth.corruption, truth.severity = kind, int(severity)
        yield image, truth


def write_scene_video(
    path: str | Path,
    n_frames: int,
    seed: int,
    fps: float = 10.0,
    size: tuple[int, int] = (240, 320),
    split: Split = "test",
    corruption_schedule: CorruptionSchedule | None = None,
    **options: Any,
) -> list[FrameTruth]:
    """Write a camera-like MP4 (mp4v) of `n_frames` frames to `path` and return each frame's
    truth. `options` go to `scene_frames` (pool, scene_seconds, n_objects, scale, speed).

    The pixels of the file differ from `scene_frames` by the codec's loss; the truth does not.
    """
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(path), fourcc, float(fps), (w, h))
    if not writer.isOpened():
        raise ConfigError(f"cannot open {path} for writing an mp4v video; check the folder and the extension (.mp4)")
    truths: list[FrameTruth] = []
    try:
        for image, truth in scene_frames(n_frames, seed, fps, size, split, corruption_schedule, **options):
            writer.write(np.ascontiguousarray(image[:, :, ::-1]))
            truths.append(truth)
    finally:
        writer.release()
    return truths


def truth_to_jsonl(truths: Sequence[FrameTruth], path: str | Path) -> Path:
    """Write one JSON object per frame (see `FrameTruth.to_dict`), versioned by its first
    line's keys; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for t in truths:
            f.write(json.dumps(t.to_dict()) + "\n")
    tmp.replace(path)
    return path
