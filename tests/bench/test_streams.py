"""Streams: the truth comes from the composed objects, exact class counts, same file -> same stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgefmp.bench.streams import build_stream, corruption_plan
from edgefmp.bench.suite import (
    AttributeTask,
    CountTask,
    ExistsTask,
    ObjectSpec,
    PropertyTask,
    RelationTask,
    RelativeTask,
    load_suite,
)
from edgefmp.bench.tasks import NONE_ANSWER, matches, task_logic
from edgefmp.scenes import SceneObject, load_shape_pool


def obj(label: str, x: float, y: float = 50.0, size: float = 20.0) -> SceneObject:
    color, shape = label.split()
    return SceneObject(shape, color, (x, y, x + size, y + size))


RED = ObjectSpec(color="red", shape="circle")
TRI = ObjectSpec(shape="triangle")

TRUTHS = [
    (ExistsTask(kind="exists", object=RED), "binary", [obj("red circle", 0)], True),
    (ExistsTask(kind="exists", object=RED), "binary", [obj("brown circle", 0), obj("red triangle", 50)], False),
    (
        CountTask(kind="count", object=TRI, op="eq", n=2),
        "binary",
        [obj("red triangle", 0), obj("blue triangle", 50)],
        True,
    ),
    (CountTask(kind="count", object=TRI, op="ge", n=3), "binary", [obj("red triangle", 0)], False),
    (CountTask(kind="count", object=TRI), "open", [obj("red triangle", 0), obj("red circle", 50)], "1"),
    (
        RelationTask(kind="relation", a=RED, b=TRI, relation="left_of"),
        "binary",
        [obj("red circle", 0), obj("blue triangle", 100)],
        True,
    ),
    (
        RelationTask(kind="relation", a=RED, b=TRI, relation="left_of"),
        "binary",
        [obj("red circle", 100), obj("blue triangle", 0)],
        False,
    ),
    (
        RelationTask(kind="relation", a=RED, b=TRI, relation="above"),
        "binary",
        [obj("red circle", 0, y=10), obj("blue triangle", 0, y=90)],
        True,
    ),
    (
        PropertyTask(kind="property", subject=ObjectSpec(shape="circle"), property=ObjectSpec(color="red")),
        "binary",
        [obj("red circle", 0)],
        True,
    ),
    (
        PropertyTask(kind="property", subject=ObjectSpec(shape="circle"), property=ObjectSpec(color="red")),
        "binary",
        [obj("blue circle", 0), obj("red triangle", 50)],
        False,
    ),
    (AttributeTask(kind="attribute", subject=TRI, ask="color"), "open", [obj("teal triangle", 0)], "teal"),
    (AttributeTask(kind="attribute", subject=TRI, ask="color"), "open", [obj("teal rectangle", 0)], NONE_ANSWER),
    (
        RelativeTask(kind="relative", anchor=RED, target=TRI, relation="right_of", ask="color"),
        "open",
        [obj("red circle", 0), obj("gray triangle", 100)],
        "gray",
    ),
    (
        RelativeTask(kind="relative", anchor=RED, target=TRI, relation="right_of", ask="color"),
        "open",
        [obj("red circle", 100), obj("gray triangle", 0)],
        NONE_ANSWER,
    ),
]


@pytest.mark.parametrize(("task", "answer", "objects", "expected"), TRUTHS)
def test_truth_from_objects(task: object, answer: str, objects: list[SceneObject], expected: object) -> None:
    assert task_logic(task, answer).truth(objects) == expected


@pytest.fixture(scope="module")
def pool() -> list[object]:
    return list(load_shape_pool("test", limit=150))


def test_same_file_same_stream_and_prefixes(write_suite: Callable[..., Path], pool: list[object]) -> None:
    suite = load_suite(write_suite())
    for q in suite.queries:
        a = build_stream(suite, q, pool)
        b = build_stream(load_suite(write_suite()), q, pool)
        assert a.truth_digest() == b.truth_digest() and a.pixel_digest() == b.pixel_digest()
        prefix = build_stream(suite, q, pool, max_frames=5)
        assert [f.truth_json() for f in prefix] == [f.truth_json() for f in a.frames[:5]]


def test_kinds_counts_and_labels(write_suite: Callable[..., Path], pool: list[object]) -> None:
    suite = load_suite(write_suite(frames=20))
    binary = build_stream(suite, suite.queries[0], pool)
    kinds = [f.kind for f in binary]
    assert kinds.count("positive") == 5 and kinds.count("lookalike") == 8 and len(kinds) == 20
    logic = task_logic(suite.queries[0].task, "binary")
    spec = suite.queries[0].task.object
    for f in binary:
        assert f.label is (f.kind == "positive")
        assert f.label == logic.truth(f.objects)
        if f.kind == "lookalike":  # one object differs from the target in exactly one attribute
            near = [o for o in f.objects if (o.color == spec.color) != (o.shape == spec.shape)]
            assert near and not any(matches(o, spec) for o in f.objects)
    open_ = build_stream(suite, suite.queries[1], pool)
    for f in open_:
        assert (f.label == NONE_ANSWER) == (f.kind != "positive")


def test_changed_seed_changes_the_stream(write_suite: Callable[..., Path], pool: list[object]) -> None:
    a = load_suite(write_suite())
    b = load_suite(write_suite(name="other.yaml", seed=8))
    assert build_stream(a, a.queries[0], pool).truth_digest() != build_stream(b, b.queries[0], pool).truth_digest()


def test_corruption_plan(write_suite: Callable[..., Path]) -> None:
    suite = load_suite(write_suite())
    plan = corruption_plan(suite, 40, seed=1)
    assert plan == corruption_plan(suite, 40, seed=1)
    assert all(p[0] in (None, "blur") for p in plan[:4])  # clean start, bursts may still come
    dark = [i for i, p in enumerate(plan) if p == ("low_light", 2)]
    assert dark and all((i % 8) >= 4 for i in dark)  # second half of every 8-frame cycle
    assert any(p[0] == "blur" for p in plan)
