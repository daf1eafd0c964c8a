"""Template questions about a scene of coloured shapes, answered from the shapes found in it.

One question logic for every backend that sees shapes: the OpenCV tier (`classical.py`, shapes
from `find_shapes`) and any detector whose labels are "<colour> <shape>" (`processing.py`, shapes
from its detections). Keeping one logic means the backends of a function differ only in what
they see, never in how they read the question, so a router choosing between them trades
perception against cost, not parsers against each other. Questions are parsed once, by
`processing.parse_question`.

Two readings of the same question, by the function asked:
- `vqa` asks about a patch a program already chose (a detection's crop): when no shape there
  matches the question's words, the patch's main shape is described anyway (the program's
  detector and the recogniser may disagree about, say, the shape, and the program wants the
  colour);
- `answer` asks about a whole frame (a monolithic VQA model, the routing baseline): what is not
  there is not there, so "what colour is the triangle?" without a triangle answers `none`.

Relations compare box centres (y grows downwards), as the bench's truth does
(`edgefmp/bench/tasks.py`): "the triangle to the left of the red circle" is a triangle whose
centre lies left of the red circle's.

```python
>>> from edgefmp.backends.classical_shapes import Shape
>>> def shape(color, kind, x):
...     return Shape((x, 10.0, x + 20.0, 30.0), kind, color, {kind: 1.0}, {color: 1.0}, 0.9, 400.0)
>>> scene = [shape("red", "circle", 0.0), shape("blue", "triangle", 100.0)]
>>> answer_question(scene, "Is there a red circle to the left of a blue triangle?", whole_frame=True).text
'yes'
>>> answer_question(scene, "What color is the rectangle?", whole_frame=True).text
'none'
```
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from edgefmp.backends.classical_shapes import COLORS, SHAPES, Shape
from edgefmp.backends.processing import TemplateQuestion, parse_question
from edgefmp.errors import BackendError, ConfigError
from edgefmp.results import Answer, Detections

GENERIC = frozenset({"shape", "shapes", "object", "objects", "thing", "things", "item", "items", "figure"})
_WORD_SYNONYMS = {
    "colour": "color",
    "grey": "gray",
    "square": "rectangle",
    "squares": "rectangle",
    "circles": "circle",
    "rectangles": "rectangle",
    "triangles": "triangle",
    "rect": "rectangle",
}
GROUPS: dict[str, list[str]] = {"color": list(COLORS), "shape": list(SHAPES)}
NONE_ANSWER = "none"  # a whole-frame question about something the frame does not show
WHOLE_FRAME_FUNCTION = "answer"  # the catalog function whose questions are about whole frames


def label_words(label: str) -> list[str] | None:
    """The colour/shape words a label constrains ([] = any shape); None if it names something
    else (a label the shapes detector can never find)."""
    words = [_WORD_SYNONYMS.get(t, t) for t in re.findall(r"[a-z]+", label.lower())]
    out = [w for w in words if w not in GENERIC and w not in ("a", "an", "the")]
    return out if all(w in COLORS or w in SHAPES for w in out) else None


def matches(shape: Shape, words: Sequence[str]) -> bool:
    """True when the shape's best colour and shape agree with every word."""
    return all(w in (shape.color, shape.shape) for w in words)


def score(shape: Shape, words: Sequence[str]) -> float:
    """How sure we are that `shape` is what `words` say: stands out x attribute probabilities."""
    p = shape.strength
    for w in words:
        p *= shape.prob(w)
    return float(min(max(p, 0.0), 1.0))


def box_center(box: Sequence[float]) -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2


def related(x: Shape, y: Shape, relation: str) -> bool:
    """Whether `x` is `relation` (left_of, right_of, above, below) of `y`, by box centres."""
    return boxes_related(x.box, y.box, relation)


def boxes_related(x: Sequence[float], y: Sequence[float], relation: str) -> bool:
    """Whether box `x` is `relation` of box `y`, by centres (image coordinates, y grows
    downwards); the bench's ground truth uses the same rule, so answers and truth agree."""
    (xx, xy), (yx, yy) = box_center(x), box_center(y)
    if relation == "left_of":
        return xx < yx
    if relation == "right_of":
        return xx > yx
    if relation == "above":
        return xy < yy
    return xy > yy


def _compare(n: int, compare: tuple[str, int]) -> bool:
    op, k = compare
    return {"eq": n == k, "ge": n >= k, "le": n <= k, "gt": n > k, "lt": n < k}[op]


def _clip(p: float) -> float:
    return float(min(max(p, 0.0), 1.0))


def _subjects(shapes: Sequence[Shape], q: TemplateQuestion) -> list[Shape]:
    """The shapes the question is about: matching its subject words and, when it names a
    relation, standing in that relation to some shape matching the anchor words."""
    hits = [s for s in shapes if matches(s, q.subject)]
    if q.relation is None:
        return hits
    anchors = [a for a in shapes if matches(a, q.anchor)]
    return [s for s in hits if any(a is not s and related(s, a, q.relation) for a in anchors)]


def _pair_score(shapes: Sequence[Shape], q: TemplateQuestion, relation: str, only_matching: bool) -> float:
    """The best joint score of a (subject, anchor) pair in `relation` (the question's): over the
    matching shapes, how sure a "yes" is; over all shapes, how close a "no" came to a "yes"."""
    subj = [s for s in shapes if matches(s, q.subject)] if only_matching else list(shapes)
    anch = [a for a in shapes if matches(a, q.anchor)] if only_matching else list(shapes)
    return max(
        (
            min(score(s, q.subject), score(a, q.anchor))
            for s in subj
            for a in anch
            if a is not s and related(s, a, relation)
        ),
        default=0.0,
    )


def _what(shapes: Sequence[Shape], q: TemplateQuestion, group: str, whole_frame: bool) -> Answer:
    """The `group` (color or shape) of the shape the question is about."""
    candidates = _subjects(shapes, q)
    if q.relation is not None and len(candidates) > 1:
        # several subjects in the relation to some anchor: keep those beside the likeliest one
        anchor = max((a for a in shapes if matches(a, q.anchor)), key=lambda a: (score(a, q.anchor), a.area))
        candidates = [s for s in candidates if s is not anchor and related(s, anchor, q.relation)] or candidates
    if not candidates:
        if whole_frame:
            return Answer(
                text=NONE_ANSWER, confidence=_clip(1.0 - max((score(s, q.subject) for s in shapes), default=0.0))
            )
        if not shapes:
            raise BackendError("found no shape in the image")
        candidates = list(shapes)  # a patch the program chose: describe its main shape
    main = max(candidates, key=lambda s: (score(s, q.subject), s.area))
    value = main.color if group == "color" else main.shape
    return Answer(text=value, confidence=score(main, [value]))


def answer_question(shapes: Sequence[Shape], question: str, *, whole_frame: bool = False) -> Answer:
    """Answer a template question about the scene `shapes` were found in.

    `whole_frame`: the question is about a whole frame (`answer`), so an absent subject makes
    the answer `none` instead of the main shape's attribute (see the module docstring).
    Understood: "what color/shape is the <x> [<relation> the <y>]?", "how many <x> [<relation>
    the <y>] are there?", "is there [not] a <x> [<relation> a <y>]?", "are there exactly / at
    least / at most / more than / fewer than <n> <x>?", "is the <x> <attribute>?".
    """
    q = parse_question(question, GROUPS)
    if q.kind == "what" and q.group is not None:
        return _what(shapes, q, q.group, whole_frame)
    if q.kind == "count":
        hits = _subjects(shapes, q)
        conf = float(np.mean([score(s, q.subject) for s in hits])) if hits else 0.5
        return Answer(text=str(len(hits)), confidence=_clip(conf))
    if q.kind == "yesno":
        hits = _subjects(shapes, q)
        if q.compare is not None:
            present = _compare(len(hits), q.compare)
            conf = float(np.mean([score(s, q.subject) for s in hits])) if hits else 0.5
        elif q.relation is not None:
            present = bool(hits)
            best = _pair_score(shapes, q, q.relation, only_matching=present)
            conf = best if present else 1.0 - best
        elif hits:
            present, conf = True, max(score(s, q.subject) for s in hits)
        else:
            present, conf = False, 1.0 - max((score(s, q.subject) for s in shapes), default=0.0)
        return Answer(text="yes" if present != q.negated else "no", confidence=_clip(conf))
    raise BackendError(
        f"cannot answer {question!r}: the shapes logic answers only template questions about color and shape "
        f"(what color/shape ...?, is there a <color> <shape> [left of / above ... a <color> <shape>]?, "
        f"how many ...?, are there exactly <n> ...?)"
    )


# --------------------------------------------------------------------------------- detectors


def check_labels(labels: Sequence[str], source: str) -> None:
    """ConfigError unless every label names one colour and one shape ("red circle"): the only
    detectors whose detections the shapes logic can read as a scene."""
    bad = [lab for lab in labels if sorted(_kinds(label_words(lab))) != ["color", "shape"]]
    if bad or not labels:
        raise ConfigError(
            f"{source}: function {WHOLE_FRAME_FUNCTION!r} answers from a detector whose labels are "
            f"'<colour> <shape>' (colours {', '.join(COLORS)}; shapes {', '.join(SHAPES)}); "
            f"labels {bad[:3] or list(labels)} are not. List this model under 'detect' instead"
        )


def _kinds(words: list[str] | None) -> list[str]:
    return [] if words is None else ["color" if w in COLORS else "shape" for w in words]


def shapes_from_detections(detections: Detections) -> list[Shape]:
    """A detector's boxes as scene shapes: the label gives colour and shape, the score how
    clearly the object stands out (so `score` of a matching shape is the detector's score)."""
    out = []
    for box, s, label in zip(detections.boxes.tolist(), detections.scores.tolist(), detections.labels, strict=True):
        words = label_words(label) or []
        color = next((w for w in words if w in COLORS), "")
        kind = next((w for w in words if w in SHAPES), "")
        x1, y1, x2, y2 = (float(v) for v in box)
        out.append(
            Shape(
                (x1, y1, x2, y2),
                kind,
                color,
                {kind: 1.0},
                {color: 1.0},
                float(s),
                max(x2 - x1, 0.0) * max(y2 - y1, 0.0),
            )
        )
    return out


def answer_from_detections(detections: Detections, question: str, *, whole_frame: bool) -> Answer:
    """answer_question on a detector's detections (all of its labels, in image pixels)."""
    return answer_question(shapes_from_detections(detections), question, whole_frame=whole_frame)


__all__ = [
    "GROUPS",
    "NONE_ANSWER",
    "WHOLE_FRAME_FUNCTION",
    "answer_from_detections",
    "answer_question",
    "check_labels",
    "label_words",
    "matches",
    "related",
    "score",
    "shapes_from_detections",
]
