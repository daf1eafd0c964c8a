"""Turning a large model's free-text answer into edgefmp's result types.

A chat model answers in prose; the program needs a bool, one of its options, or boxes. These
parsers are deliberately tolerant of the usual decorations (punctuation, "Yes, it is.",
markdown code fences) but refuse to guess: an answer they cannot read raises ValueError, which
the backend turns into a BackendError so the executor falls back instead of acting on noise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgefmp.results import Detections

_YES = {"yes", "y", "yeah", "yep", "true", "correct", "affirmative"}
_NO = {"no", "n", "nope", "false", "incorrect", "negative", "not"}
_WORD = re.compile(r"[a-z]+")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def parse_yes_no(text: str) -> bool:
    """Read a yes/no answer: the first word decides; otherwise a lone 'yes' or 'no' in it."""
    words = _WORD.findall(text.lower())
    if not words:
        raise ValueError(f"expected 'yes' or 'no', got an empty answer {text[:80]!r}")
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes != has_no:
        return has_yes
    raise ValueError(f"expected 'yes' or 'no', got {text[:80]!r}")


def match_option(text: str, options: Sequence[str]) -> str:
    """The one option the answer names (case and punctuation ignored).

    An exact match wins; otherwise the options that appear as whole words in the answer, the
    longest first ('dark red' over 'red'). Zero or several unrelated matches raise ValueError.
    """
    answer = _norm(text)
    normed = [(_norm(o), o) for o in options]
    for n, original in normed:
        if n and n == answer:
            return original
    found = [(n, o) for n, o in normed if n and re.search(rf"\b{re.escape(n)}\b", answer)]
    if not found:
        raise ValueError(f"the answer {text[:80]!r} names none of the options {list(options)}")
    found.sort(key=lambda item: len(item[0]), reverse=True)
    best = found[0][0]
    if any(n not in best for n, _ in found[1:]):
        raise ValueError(f"the answer {text[:80]!r} names several options: {[o for _, o in found]}")
    return found[0][1]


def extract_json(text: str) -> Any:
    """The JSON value in a reply, allowing a markdown code fence or prose around it."""
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    candidate = candidate.strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    start = min((i for i in (candidate.find("["), candidate.find("{")) if i >= 0), default=-1)
    end = max(candidate.rfind("]"), candidate.rfind("}"))
    if start < 0 or end <= start:
        raise ValueError(f"expected a JSON list of boxes, got {text[:120]!r}")
    try:
        return json.loads(candidate[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply holds no valid JSON ({exc.msg}): {text[:120]!r}") from exc


def boxes_from_items(
    items: Any,
    labels: Sequence[str],
    *,
    scale_x: float,
    scale_y: float,
    width: int,
    height: int,
) -> Detections:
    """Detections from `[{"label": str, "box": [x1, y1, x2, y2], "score": float}, ...]`.

    Boxes are in pixels of the image that was sent; they are multiplied by `scale_x/scale_y`
    into the request image's pixels and clipped to its `width` x `height`. Labels are matched
    to the requested ones case-insensitively and objects of other labels are dropped (the
    program asked only for these). A missing score counts as 1.0.
    """
    if isinstance(items, dict):
        for key in ("objects", "detections", "boxes", "results"):
            if isinstance(items.get(key), list):
                items = items[key]
                break
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON list of boxes, got {type(items).__name__}")
    wanted = {_norm(lab): lab for lab in labels}
    boxes: list[list[float]] = []
    scores: list[float] = []
    out_labels: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"box {i}: expected an object with label and box, got {item!r:.80}")
        label = wanted.get(_norm(str(item.get("label", ""))))
        if label is None:
            if len(labels) == 1 and "label" not in item:
                label = labels[0]
            else:
                continue
        box = item.get("box", item.get("bbox"))
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ValueError(f"box {i}: expected 'box': [x1, y1, x2, y2], got {box!r:.80}")
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
            score = float(item.get("score", 1.0))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"box {i}: non-numeric coordinates or score in {item!r:.80}") from exc
        xs = sorted((x1 * scale_x, x2 * scale_x))
        ys = sorted((y1 * scale_y, y2 * scale_y))
        boxes.append(
            [
                float(np.clip(xs[0], 0, width)),
                float(np.clip(ys[0], 0, height)),
                float(np.clip(xs[1], 0, width)),
                float(np.clip(ys[1], 0, height)),
            ]
        )
        scores.append(float(np.clip(score, 0.0, 1.0)))
        out_labels.append(label)
    return Detections(
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        scores=np.asarray(scores, np.float32),
        labels=out_labels,
    )
