"""Deterministic streams: a query's frames and their ground truth, from the suite file alone.

Each frame is an independent scene (the paper's streams are image streams, not videos), built
from its own generator seeded by (stream seed, frame index), so frame i does not depend on
how frames before it were drawn. The order of positive, lookalike and negative frames is a
seeded permutation with exact counts, so a stream has exactly `max(1, round(frames x positives))`
positives (`kind_counts`). Corruptions follow the suite's schedule over frame indices.

Scenes reuse the scene toolkit's pieces (easy-VQA test-split sprites, camera-like background,
sensor noise, corruptions); placement is done here because a benchmark must control what a
frame contains (one red circle, left of one blue triangle) rather than draw it at random.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefmp.bench.suite import Bursts, Cycle, Query, SceneSpec, Segment, Suite
from edgefmp.bench.tasks import Attr, Mutation, TaskLogic, random_attr, task_logic
from edgefmp.errors import ConfigError
from edgefmp.scenes import SceneObject, ShapeSample, corrupt, load_shape_pool
from edgefmp.scenes.background import add_sensor_noise, make_background
from edgefmp.scenes.compose import Placement, make_sprite, overlap, render

log = logging.getLogger(__name__)

FRAME_KINDS = ("positive", "lookalike", "negative")
_ATTEMPTS = 400


@dataclass
class StreamFrame:
    """One frame of a stream: its pixels, its label, what kind of frame it is, and why."""

    index: int
    frame_id: str
    image: np.ndarray
    label: Any
    kind: str
    objects: list[SceneObject] = field(default_factory=list)
    corruption: str | None = None
    severity: int = 0

    def truth_json(self) -> dict[str, Any]:
        return {
            "frame": self.index,
            "frame_id": self.frame_id,
            "label": self.label,
            "kind": self.kind,
            "corruption": self.corruption,
            "severity": self.severity,
            "objects": [o.to_dict() for o in self.objects],
        }


@dataclass
class Stream:
    """A query's frames, in order."""

    query: Query
    seed: int
    frames: list[StreamFrame]

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[StreamFrame]:
        return iter(self.frames)

    def truth_digest(self) -> str:
        """A hash of every frame's truth (labels, objects, corruptions): same suite, same digest."""
        h = hashlib.blake2b(digest_size=16)
        for f in self.frames:
            h.update(json.dumps(f.truth_json(), sort_keys=True).encode())
        return h.hexdigest()

    def pixel_digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for f in self.frames:
            h.update(f.image.tobytes())
        return h.hexdigest()


class ShapeIndex:
    """The test-split shapes grouped by (shape, colour), for drawing a sprite of a given kind."""

    def __init__(self, pool: Sequence[ShapeSample]) -> None:
        self.by_attr: dict[tuple[str, str], list[ShapeSample]] = {}
        for s in pool:
            self.by_attr.setdefault((s.shape, s.color), []).append(s)

    def draw(self, attr: Attr, rng: np.random.Generator) -> ShapeSample:
        options = self.by_attr.get((attr.shape, attr.color))
        if not options:
            raise ConfigError(f"the shape pool has no {attr.color} {attr.shape}; raise images.limit (or remove it)")
        return options[int(rng.integers(len(options)))]


# ------------------------------------------------------------------------------ corruptions


def corruption_plan(suite: Suite, n_frames: int, seed: int) -> list[tuple[str | None, int]]:
    """(kind, severity) per frame index; later schedule items override earlier ones."""
    plan: list[tuple[str | None, int]] = [(None, 0)] * n_frames
    rng = np.random.default_rng([seed, 0xC0])
    for item in suite.spec.corruptions:
        if isinstance(item, Segment):
            end = n_frames if item.end is None else min(item.end, n_frames)
            for i in range(min(item.start, n_frames), end):
                plan[i] = (item.kind, item.severity if item.kind else 0)
        elif isinstance(item, Cycle):
            end = n_frames if item.end is None else min(item.end, n_frames)
            steps = len(item.severities)
            for i in range(min(item.start, n_frames), end):
                phase = ((i - item.start) % item.period) * steps // item.period
                sev = item.severities[phase]
                plan[i] = (item.kind, sev) if sev > 0 else (None, 0)
        elif isinstance(item, Bursts):
            i = int(rng.integers(0, item.every))
            while i < n_frames:
                length = int(rng.integers(item.length[0], item.length[1] + 1))
                kind = item.kinds[int(rng.integers(len(item.kinds)))]
                sev = int(rng.integers(item.severity[0], item.severity[1] + 1))
                for j in range(i, min(i + length, n_frames)):
                    plan[j] = (kind, sev)
                i += length + int(rng.integers(1, 2 * item.every))
    return plan


# ------------------------------------------------------------------------------ scenes


class _Composer:
    """Places, checks and renders the objects of one frame."""

    def __init__(self, scene: SceneSpec, shapes: ShapeIndex, logic: TaskLogic) -> None:
        self.scene = scene
        self.shapes = shapes
        self.logic = logic

    def sprite(self, attr: Attr, long_side: float, rng: np.random.Generator, x: float = 0, y: float = 0) -> Placement:
        sample = self.shapes.draw(attr, rng)
        alpha, rgb, offset = make_sprite(sample, long_side, brightness=float(rng.uniform(0.85, 1.05)))
        return Placement(sample, alpha, rgb, offset, x, y)

    def fits(self, p: Placement, others: Sequence[Placement]) -> bool:
        h, w = self.scene.size
        sh, sw = p.alpha.shape
        if p.x < 0 or p.y < 0 or p.x + sw > w or p.y + sh > h:
            return False
        return all(overlap(p.box, q.box) <= self.scene.max_overlap for q in others)

    def place(self, attrs: Sequence[Attr], rng: np.random.Generator) -> list[Placement] | None:
        """Random places for `attrs`, none overlapping much; None when they do not fit."""
        h, w = self.scene.size
        placed: list[Placement] = []
        for attr in attrs:
            long_side = rng.uniform(*self.scene.scale) * min(h, w)
            p = self.sprite(attr, long_side, rng)
            sh, sw = p.alpha.shape
            if sh >= h or sw >= w:
                return None
            for _ in range(60):
                p.x, p.y = float(rng.integers(0, w - sw + 1)), float(rng.integers(0, h - sh + 1))
                if self.fits(p, placed):
                    placed.append(p)
                    break
            else:
                return None
        return placed

    def mutate(self, placed: list[Placement], m: Mutation, rng: np.random.Generator) -> list[Placement] | None:
        """A copy of `placed` with mutation `m` applied to the targets at its indices."""
        out = list(placed)
        if m.swap:
            a, b = out[m.index], out[m.other]
            ca = (a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2
            cb = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
            out[m.index] = _moved(a, cb)
            out[m.other] = _moved(b, ca)
            changed = [m.index, m.other]
        elif m.attr is not None:
            old = out[m.index]
            x1, y1, x2, y2 = old.box
            new = self.sprite(m.attr, max(x2 - x1, y2 - y1), rng)
            out[m.index] = _moved(new, ((x1 + x2) / 2, (y1 + y2) / 2))
            changed = [m.index]
        else:
            return None
        for i in changed:
            if not self.fits(out[i], [q for j, q in enumerate(out) if j != i]):
                return None
        return out

    def fillers(self, n: int, rng: np.random.Generator, restricted: bool) -> list[Attr]:
        out: list[Attr] = []
        for _ in range(n):
            for _ in range(100):
                a = random_attr(rng)
                if not restricted or self.logic.filler_ok(a):
                    out.append(a)
                    break
        return out


def _moved(p: Placement, center: tuple[float, float]) -> Placement:
    """A copy of placement `p` whose box is centred on `center`."""
    ox1, oy1, ox2, oy2 = p.offset
    x = center[0] - (ox1 + ox2) / 2
    y = center[1] - (oy1 + oy2) / 2
    return Placement(p.sample, p.alpha, p.rgb, p.offset, float(round(x)), float(round(y)))


def _objects(placed: Sequence[Placement]) -> list[SceneObject]:
    return [p.to_object() for p in placed]


def _frame_objects(composer: _Composer, kind: str, rng: np.random.Generator, where: str) -> tuple[list[Placement], Any]:
    """Placements and label of one frame of `kind` (positive, lookalike or negative)."""
    logic = composer.logic
    lo, hi = composer.scene.objects
    min_gap = composer.scene.min_gap
    for _ in range(_ATTEMPTS):
        n_total = int(rng.integers(lo, hi + 1))
        if kind == "negative":
            targets = logic.negative_targets(rng)
            attrs = targets + composer.fillers(max(0, n_total - len(targets)), rng, restricted=bool(targets))
        else:
            targets = logic.targets(rng)
            attrs = targets + composer.fillers(max(0, n_total - len(targets)), rng, restricted=True)
        placed = composer.place(attrs, rng)
        if placed is None:
            continue
        objects = _objects(placed)
        label = logic.truth(objects)
        if not logic.valid(objects, min_gap):
            continue
        if kind == "negative":
            if not logic.is_positive(label):
                return placed, label
            continue
        if not logic.is_positive(label):
            continue
        if kind == "positive":
            return placed, label
        mutations = logic.mutations(targets)
        for j in rng.permutation(len(mutations))[:8]:
            changed = composer.mutate(placed, mutations[int(j)], rng)
            if changed is None:
                continue
            objs = _objects(changed)
            new_label = logic.truth(objs)
            if (
                new_label != label
                and logic.valid(objs, min_gap)
                and (logic.open_answer or not logic.is_positive(new_label))
            ):
                return changed, new_label
    raise ConfigError(
        f"{where}: could not compose a {kind} frame in {_ATTEMPTS} tries; the task may be impossible "
        f"with scene.objects {list(composer.scene.objects)}, scene.scale or scene.min_gap"
    )


def kind_counts(query: Query) -> tuple[int, int]:
    """(positives, lookalikes) of a query's full stream: `max(1, round(frames x positives))`
    positives (at least one, so a stream always has something to find, also at a share too
    small to round to one) and `round(rest x lookalikes)` lookalikes; the rest are negatives."""
    n_pos = min(query.frames, max(1, round(query.frames * query.positives)))
    return n_pos, round((query.frames - n_pos) * query.lookalikes)


def frame_kinds(query: Query, rng: np.random.Generator) -> list[str]:
    """Exact counts of positive / lookalike / negative frames (`kind_counts`), in a seeded order."""
    n = query.frames
    n_pos, n_look = kind_counts(query)
    kinds = ["positive"] * n_pos + ["lookalike"] * n_look + ["negative"] * (n - n_pos - n_look)
    order = rng.permutation(n)
    return [kinds[int(i)] for i in order]


def build_stream(
    suite: Suite,
    query: Query,
    pool: Sequence[ShapeSample] | None = None,
    max_frames: int | None = None,
) -> Stream:
    """Every frame of `query`'s stream with its truth; deterministic for the suite file.

    `max_frames` keeps a prefix (quick runs); the prefix is the same frames as in the full
    stream. `pool` skips reloading easy-VQA when a caller already has the test split.
    """
    spec = suite.spec
    shapes = ShapeIndex(pool if pool is not None else load_shape_pool("test", limit=spec.images.limit))
    logic = task_logic(query.task, query.answer)
    composer = _Composer(spec.scene, shapes, logic)
    seed = suite.stream_seed(query)
    kinds = frame_kinds(query, np.random.default_rng([seed, 0xF0]))
    plan = corruption_plan(suite, query.frames, seed)
    n = query.frames if max_frames is None else min(max_frames, query.frames)
    where = f"{suite.source}: queries[{query.index}] ({query.id})"
    h, w = spec.scene.size
    frames: list[StreamFrame] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        placed, label = _frame_objects(composer, kinds[i], rng, where)
        image = add_sensor_noise(render(make_background(rng, (h, w)), placed), rng, spec.scene.noise_sigma)
        kind, sev = plan[i]
        if kind is not None:
            image = corrupt(image, kind, sev, rng)
        frames.append(StreamFrame(i, f"{query.id}:{i:05d}", image, label, kinds[i], _objects(placed), kind, sev))
    log.debug("stream %s: %d frames, %d positives", query.id, n, sum(f.kind == "positive" for f in frames))
    return Stream(query, seed, frames)


__all__ = [
    "FRAME_KINDS",
    "ShapeIndex",
    "Stream",
    "StreamFrame",
    "build_stream",
    "corruption_plan",
    "frame_kinds",
    "kind_counts",
]
