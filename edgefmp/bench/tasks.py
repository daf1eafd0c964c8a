"""Tasks: the truth of a query, computed from a scene's objects, and how to build scenes for it.

The truth never comes from pixels or from a model: it is a function of the objects a scene was
composed from (shape, colour, box). Each task also says which objects make a frame positive
(`targets`), which other objects may stand beside them without changing the answer
(`filler_ok`), which one-step changes turn a positive into a *lookalike* (`mutations`: one
attribute of one target, or the relation reversed), and which frames are too ambiguous to
score (`valid`: two subjects where the question presumes one, objects a few pixels apart
where a relation is asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgefmp.backends.scene_questions import box_center, boxes_related
from edgefmp.bench.suite import (
    AttributeTask,
    CountTask,
    ExistsTask,
    ObjectSpec,
    PropertyTask,
    RelationTask,
    RelativeTask,
)
from edgefmp.scenes import COLORS, SHAPES, SceneObject

NONE_ANSWER = "none"  # the answer of an open question about something the frame does not show


@dataclass(frozen=True)
class Attr:
    """A shape and a colour, before the object is placed."""

    shape: str
    color: str


@dataclass(frozen=True)
class Mutation:
    """A one-step change of a positive: target `index` gets `attr`, or (with `swap`) targets
    `index` and `other` trade places."""

    index: int
    attr: Attr | None = None
    swap: bool = False
    other: int = -1


def matches(obj: SceneObject | Attr, spec: ObjectSpec) -> bool:
    return (spec.color is None or obj.color == spec.color) and (spec.shape is None or obj.shape == spec.shape)


def fill(spec: ObjectSpec, rng: np.random.Generator) -> Attr:
    """An object that matches `spec`, its unspecified attribute drawn at random."""
    shape = spec.shape or SHAPES[int(rng.integers(len(SHAPES)))]
    color = spec.color or COLORS[int(rng.integers(len(COLORS)))]
    return Attr(shape, color)


def random_attr(rng: np.random.Generator) -> Attr:
    return Attr(SHAPES[int(rng.integers(len(SHAPES)))], COLORS[int(rng.integers(len(COLORS)))])


def related(x: SceneObject, y: SceneObject, relation: str) -> bool:
    """Whether `x` is `relation` of `y`: the rule the answerers use (`boxes_related`)."""
    return boxes_related(x.box, y.box, relation)


def gap(x: SceneObject, y: SceneObject, relation: str) -> float:
    """Distance between the centres along the relation's axis (pixels)."""
    (xx, xy), (yx, yy) = box_center(x.box), box_center(y.box)
    return abs(xx - yx) if relation in ("left_of", "right_of") else abs(xy - yy)


def _spec_mutations(spec: ObjectSpec, base: Attr, index: int) -> list[Mutation]:
    """Every change of one attribute `spec` names, so the object no longer matches it."""
    out = []
    if spec.color is not None:
        out += [Mutation(index, Attr(base.shape, c)) for c in COLORS if c != base.color]
    if spec.shape is not None:
        out += [Mutation(index, Attr(s, base.color)) for s in SHAPES if s != base.shape]
    return out


class TaskLogic:
    """The interface every task implements; see the module docstring."""

    open_answer = False

    def truth(self, objects: Sequence[SceneObject]) -> Any:
        raise NotImplementedError

    def is_positive(self, truth: Any) -> bool:
        if self.open_answer:
            return truth not in (NONE_ANSWER, "0")
        return bool(truth)

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        raise NotImplementedError

    def negative_targets(self, rng: np.random.Generator) -> list[Attr]:
        return []

    def filler_ok(self, attr: Attr) -> bool:
        return True

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        raise NotImplementedError

    def valid(self, objects: Sequence[SceneObject], min_gap: float) -> bool:
        return True


class ExistsLogic(TaskLogic):
    def __init__(self, task: ExistsTask) -> None:
        self.spec = task.object

    def truth(self, objects: Sequence[SceneObject]) -> bool:
        return any(matches(o, self.spec) for o in objects)

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        return [fill(self.spec, rng)]

    def filler_ok(self, attr: Attr) -> bool:
        return not matches(attr, self.spec)

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        return _spec_mutations(self.spec, targets[0], 0)


class CountLogic(TaskLogic):
    def __init__(self, task: CountTask, open_answer: bool) -> None:
        self.task = task
        self.spec = task.object
        self.open_answer = open_answer

    def count(self, objects: Sequence[SceneObject]) -> int:
        return sum(matches(o, self.spec) for o in objects)

    def truth(self, objects: Sequence[SceneObject]) -> Any:
        n = self.count(objects)
        if self.open_answer:
            return str(n)
        return n == self.task.n if self.task.op == "eq" else n >= self.task.n

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        k = int(rng.integers(1, self.task.max + 1)) if self.open_answer else self.task.n
        return [fill(self.spec, rng) for _ in range(k)]

    def negative_targets(self, rng: np.random.Generator) -> list[Attr]:
        if self.open_answer:
            return []
        # A count question's natural negatives are near misses in number, not empty frames.
        k = (
            int(rng.integers(0, self.task.n))
            if self.task.op == "ge"
            else int(rng.choice([self.task.n - 1, self.task.n + 1]))
        )
        return [fill(self.spec, rng) for _ in range(max(0, k))]

    def filler_ok(self, attr: Attr) -> bool:
        return not matches(attr, self.spec)

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        return [m for i, t in enumerate(targets) for m in _spec_mutations(self.spec, t, i)]


class RelationLogic(TaskLogic):
    def __init__(self, task: RelationTask) -> None:
        self.task = task

    def truth(self, objects: Sequence[SceneObject]) -> bool:
        t = self.task
        return any(
            related(x, y, t.relation)
            for x in objects
            if matches(x, t.a)
            for y in objects
            if y is not x and matches(y, t.b)
        )

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        return [fill(self.task.a, rng), fill(self.task.b, rng)]

    def filler_ok(self, attr: Attr) -> bool:
        return not matches(attr, self.task.a) and not matches(attr, self.task.b)

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        t = self.task
        swaps = [Mutation(0, swap=True, other=1)] * 4  # as likely as an attribute change
        return swaps + _spec_mutations(t.a, targets[0], 0) + _spec_mutations(t.b, targets[1], 1)

    def valid(self, objects: Sequence[SceneObject], min_gap: float) -> bool:
        t = self.task
        return all(
            gap(x, y, t.relation) >= min_gap
            for x in objects
            if matches(x, t.a)
            for y in objects
            if y is not x and matches(y, t.b)
        )


class PropertyLogic(TaskLogic):
    """Every frame shows exactly one subject; the question is whether it has the property."""

    def __init__(self, task: PropertyTask) -> None:
        self.task = task
        merged = {**task.subject.model_dump(exclude_none=True), **task.property.model_dump(exclude_none=True)}
        self.both = ObjectSpec(**merged)

    def truth(self, objects: Sequence[SceneObject]) -> bool:
        subjects = [o for o in objects if matches(o, self.task.subject)]
        return len(subjects) == 1 and matches(subjects[0], self.task.property)

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        return [fill(self.both, rng)]

    def negative_targets(self, rng: np.random.Generator) -> list[Attr]:
        for _ in range(100):
            a = fill(self.task.subject, rng)
            if not matches(a, self.task.property):
                return [a]
        return [fill(self.task.subject, rng)]  # the truth check rejects it

    def filler_ok(self, attr: Attr) -> bool:
        return not matches(attr, self.task.subject)

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        return _spec_mutations(self.task.property, targets[0], 0)

    def valid(self, objects: Sequence[SceneObject], min_gap: float) -> bool:
        return sum(matches(o, self.task.subject) for o in objects) == 1


class AttributeLogic(TaskLogic):
    open_answer = True

    def __init__(self, task: AttributeTask) -> None:
        self.task = task

    def truth(self, objects: Sequence[SceneObject]) -> str:
        subjects = [o for o in objects if matches(o, self.task.subject)]
        if len(subjects) != 1:
            return NONE_ANSWER
        return str(getattr(subjects[0], self.task.ask))

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        return [fill(self.task.subject, rng)]

    def filler_ok(self, attr: Attr) -> bool:
        return not matches(attr, self.task.subject)

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        return _spec_mutations(self.task.subject, targets[0], 0)

    def valid(self, objects: Sequence[SceneObject], min_gap: float) -> bool:
        return sum(matches(o, self.task.subject) for o in objects) <= 1


class RelativeLogic(TaskLogic):
    open_answer = True

    def __init__(self, task: RelativeTask) -> None:
        self.task = task

    def _anchor(self, objects: Sequence[SceneObject]) -> SceneObject | None:
        anchors = [o for o in objects if matches(o, self.task.anchor)]
        return anchors[0] if len(anchors) == 1 else None

    def truth(self, objects: Sequence[SceneObject]) -> str:
        t = self.task
        anchor = self._anchor(objects)
        if anchor is None:
            return NONE_ANSWER
        hits = [o for o in objects if o is not anchor and matches(o, t.target) and related(o, anchor, t.relation)]
        return str(getattr(hits[0], t.ask)) if len(hits) == 1 else NONE_ANSWER

    def targets(self, rng: np.random.Generator) -> list[Attr]:
        return [fill(self.task.target, rng), fill(self.task.anchor, rng)]

    def filler_ok(self, attr: Attr) -> bool:
        return not matches(attr, self.task.anchor) and not matches(attr, self.task.target)

    def mutations(self, targets: Sequence[Attr]) -> list[Mutation]:
        t = self.task
        swaps = [Mutation(0, swap=True, other=1)] * 4
        return swaps + _spec_mutations(t.target, targets[0], 0) + _spec_mutations(t.anchor, targets[1], 1)

    def valid(self, objects: Sequence[SceneObject], min_gap: float) -> bool:
        t = self.task
        anchors = [o for o in objects if matches(o, t.anchor)]
        if len(anchors) > 1:
            return False
        if not anchors:
            return True
        anchor = anchors[0]
        others = [o for o in objects if o is not anchor and matches(o, t.target)]
        if any(gap(o, anchor, t.relation) < min_gap for o in others):
            return False
        return sum(related(o, anchor, t.relation) for o in others) <= 1


def task_logic(task: Any, answer: str) -> TaskLogic:
    """The logic of a validated task spec for an answer type."""
    if isinstance(task, ExistsTask):
        return ExistsLogic(task)
    if isinstance(task, CountTask):
        return CountLogic(task, open_answer=answer == "open")
    if isinstance(task, RelationTask):
        return RelationLogic(task)
    if isinstance(task, PropertyTask):
        return PropertyLogic(task)
    if isinstance(task, AttributeTask):
        return AttributeLogic(task)
    if isinstance(task, RelativeTask):
        return RelativeLogic(task)
    raise TypeError(f"unknown task {type(task).__name__}")


__all__ = ["NONE_ANSWER", "Attr", "Mutation", "TaskLogic", "matches", "related", "task_logic"]
