"""The shape pool: easy-VQA images with their shape and colour, cut out from their background.

easy-VQA ships 64x64 images, each of one solid shape in one of 8 colours on a light uniform
background, and questions about them. It has no per-image label file, so labels are read from
the answers: "what is the blue shape?" -> "rectangle" names both attributes, "is there not a red
shape?" -> "no" says the shape is red. Every image has several questions; the labels are the
union of what they state, checked for contradictions so a bad parse fails loudly.

About one image in ten has questions about only one attribute. The other one is then read from
the pixels: easy-VQA draws exact palette colours (`PALETTE`), and the three shapes differ in how
much of their box they fill and whether the box corners are covered. On the images whose labels
the answers give, these pixel rules agree with the answers on all 4466 of them (tested).

Shapes are anti-aliased, so the cut-out is a soft alpha mask: each pixel's position on the line
from the background colour to the shape colour. Pasting with that alpha keeps clean edges at
any background.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

# easy-VQA's shapes and colours with its exact palette: the ones the OpenCV detector knows
from edgefmp.backends.classical_shapes import COLORS as COLORS
from edgefmp.backends.classical_shapes import PALETTE as PALETTE
from edgefmp.backends.classical_shapes import SHAPES as SHAPES
from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)

Split = Literal["train", "test"]

_COLOR_RE = "|".join(COLORS)
_SHAPE_RE = "|".join(SHAPES)


@dataclass(frozen=True)
class ShapeSample:
    """One easy-VQA image and its cut-out.

    `alpha` (float32 in [0, 1]) and `box` (x1, y1, x2, y2 in the 64x64 image, exclusive end)
    describe the shape; `rgb` is its solid colour as drawn by easy-VQA.
    """

    image_id: int
    shape: str
    color: str
    image: np.ndarray
    alpha: np.ndarray
    rgb: tuple[int, int, int]
    box: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        """The detector's class name: colour then shape, e.g. "red circle"."""
        return f"{self.color} {self.shape}"


def _statements(question: str, answer: str) -> list[tuple[str, str, bool]]:
    """What one question/answer pair says, as (attribute kind, value, holds) triples."""
    q = question.strip().lower().rstrip("?").strip()
    a = answer.strip().lower()
    out: list[tuple[str, str, bool]] = []
    if q.startswith("what"):
        if a in SHAPES:
            out.append(("shape", a, True))
        elif a in COLORS:
            out.append(("color", a, True))
        m = re.search(rf"\b({_COLOR_RE})\b", q)
        if m:
            out.append(("color", m.group(1), True))
        m = re.search(rf"\b({_SHAPE_RE})\b", q)
        if m:
            out.append(("shape", m.group(1), True))
        return out
    if a not in ("yes", "no"):
        return out
    negated = bool(re.search(r"\bnot\b|\bis no\b", q))
    holds = (a == "yes") != negated
    m = re.search(rf"\b({_COLOR_RE})\b", q)
    if m:
        out.append(("color", m.group(1), holds))
    m = re.search(rf"\b({_SHAPE_RE})\b", q)
    if m:
        out.append(("shape", m.group(1), holds))
    return out


def labels_from_questions(
    questions: Sequence[str], answers: Sequence[str], image_ids: Sequence[int]
) -> dict[int, dict[str, str]]:
    """Each image's attributes ({"shape": ..., "color": ...}, either may be absent), derived
    from its questions and answers.

    Positive statements name a value; negative ones exclude values, which settles an attribute
    when all but one value is excluded. Raises ConfigError on a contradiction.
    """
    pos: dict[int, dict[str, set[str]]] = {}
    neg: dict[int, dict[str, set[str]]] = {}
    for q, a, i in zip(questions, answers, image_ids, strict=True):
        for kind, value, holds in _statements(q, a):
            target = pos if holds else neg
            target.setdefault(int(i), {"shape": set(), "color": set()})[kind].add(value)
    out: dict[int, dict[str, str]] = {}
    for i in sorted(set(pos) | set(neg)):
        p = pos.get(i, {"shape": set(), "color": set()})
        n = neg.get(i, {"shape": set(), "color": set()})
        values: dict[str, str] = {}
        for kind, choices in (("shape", SHAPES), ("color", COLORS)):
            if p[kind] & n[kind] or len(p[kind]) > 1:
                raise ConfigError(
                    f"easy-VQA image {i}: answers contradict about its {kind}: "
                    f"says {sorted(p[kind])}, denies {sorted(n[kind])}"
                )
            if p[kind]:
                values[kind] = next(iter(p[kind]))
            else:
                left = [c for c in choices if c not in n[kind]]
                if len(left) == 1:
                    values[kind] = left[0]
        out[i] = values
    return out


def shape_from_alpha(alpha: np.ndarray, box: tuple[int, int, int, int]) -> str:
    """Tell the shape from its mask: a triangle fills about half its box, a circle about 0.8
    with empty box corners, a rectangle nearly all of it with covered corners."""
    x1, y1, x2, y2 = box
    a = alpha[y1:y2, x1:x2]
    if float(a.mean()) < 0.68:
        return "triangle"
    corners = float(np.mean([a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]]))
    return "rectangle" if corners > 0.2 else "circle"


def color_from_rgb(rgb: tuple[int, int, int]) -> str:
    """The palette colour nearest to `rgb`."""
    v = np.asarray(rgb, np.float32)
    return min(PALETTE, key=lambda c: float(np.sum((np.asarray(PALETTE[c], np.float32) - v) ** 2)))


def cut_out(
    image: np.ndarray,
) -> tuple[np.ndarray, tuple[int, int, int], tuple[int, int, int, int]]:
    """The shape's soft alpha, its solid colour and its tight box in a 64x64 easy-VQA image.

    The background is uniform, so the corner pixel is its colour; the shape colour is the
    median of the pixels farthest from it (its interior, free of anti-aliasing).
    """
    img = image.astype(np.float32)
    bg = img[0, 0]
    dist = np.abs(img - bg).max(axis=-1)
    far = dist >= 0.9 * float(dist.max())
    fg = np.median(img[far], axis=0)
    d = fg - bg
    denom = float(np.dot(d, d))
    if denom < 1.0:
        raise ConfigError("easy-VQA image: shape colour equals the background; cannot cut it out")
    alpha = np.clip(((img - bg) @ d) / denom, 0.0, 1.0).astype(np.float32)
    ys, xs = np.nonzero(alpha > 0.5)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    rgb = (int(round(fg[0])), int(round(fg[1])), int(round(fg[2])))
    return alpha, rgb, box


def load_shape_pool(split: Split = "train", limit: int | None = None) -> list[ShapeSample]:
    """The easy-VQA images of `split` as labelled cut-outs, ordered by image id (so anything
    sampled from the pool with a seeded generator is reproducible). `limit` keeps the first
    images only (tests). Loading takes about a second per 2000 images.
    """
    import easy_vqa

    if split == "train":
        questions, answers, ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    elif split == "test":
        questions, answers, ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    else:
        raise ConfigError(f"unknown shape pool split {split!r}; available: train, test")
    labels = labels_from_questions(questions, answers, ids)
    pool: list[ShapeSample] = []
    from_pixels = 0
    for image_id in sorted(int(k) for k in paths):
        if limit is not None and len(pool) >= limit:
            break
        path = paths[image_id]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConfigError(f"easy-VQA {split}: cannot read image {image_id} at {path}")
        rgb_img = np.ascontiguousarray(bgr[:, :, ::-1])
        alpha, rgb, box = cut_out(rgb_img)
        known = labels.get(image_id, {})
        shape = known.get("shape") or shape_from_alpha(alpha, box)
        color = known.get("color") or color_from_rgb(rgb)
        from_pixels += len(known) < 2
        pool.append(ShapeSample(image_id, shape, color, rgb_img, alpha, rgb, box))
    log.debug(
        "easy-VQA %s: %d shapes loaded, %d with an attribute read from pixels",
        split,
        len(pool),
        from_pixels,
    )
    return pool
