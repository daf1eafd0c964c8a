"""Whole-frame questions (function `answer`) answered from a scene of shapes.

The shared logic is checked on hand-built scenes; the detector answerers are checked against
the real committed ONNX detectors of models/ on composed scenes whose truth comes from the
objects they were composed from (skipped in a checkout without built models).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.catalog import BackendSpec, Catalog, default_catalog_path, load_catalog
from edgefmp.backends.classical_shapes import Shape
from edgefmp.backends.onnx import OnnxBackend, OnnxOptions
from edgefmp.backends.processing import parse_question
from edgefmp.backends.scene_questions import GROUPS, NONE_ANSWER, answer_question
from edgefmp.errors import BackendError, ConfigError
from edgefmp.results import AnswerRequest, Detections, DetectRequest, VQARequest
from edgefmp.scenes import Scene, SceneObject, compose_scene, load_shape_pool

MODELS = Path(__file__).resolve().parents[2] / "models"
ZOO_CATALOG = MODELS / "catalog.yaml"
needs_zoo = pytest.mark.skipif(not ZOO_CATALOG.is_file(), reason="models/ not built (edgefmp zoo build)")


def shape(color: str, kind: str, x: float, y: float = 50.0, strength: float = 0.9) -> Shape:
    """A 20-pixel shape with its top-left corner at (x, y), sure of its colour and shape."""
    return Shape((x, y, x + 20.0, y + 20.0), kind, color, {kind: 1.0}, {color: 1.0}, strength, 400.0)


# ------------------------------------------------------------------------ the shared logic

SCENE = [shape("red", "circle", 10), shape("blue", "triangle", 100), shape("red", "circle", 200, 150),
         shape("green", "rectangle", 60, 120)]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Is there a red circle?", "yes"),
        ("Is there a yellow circle?", "no"),
        ("Is there not a yellow circle?", "yes"),
        ("Is there a red circle to the left of a blue triangle?", "yes"),
        ("Is there a blue triangle to the left of a green rectangle?", "no"),
        ("Is there a green rectangle below a blue triangle?", "yes"),
        ("Is there a blue triangle below a green rectangle?", "no"),
        ("Is there a green rectangle above a red circle?", "yes"),  # above the one at y=150
        ("Are there exactly two circles?", "yes"),
        ("Are there exactly three circles?", "no"),
        ("Are there at least two red shapes?", "yes"),
        ("Are there at least 3 red shapes?", "no"),
        ("How many circles are there?", "2"),
        ("How many red circles are there?", "2"),
        ("How many circles are to the right of the blue triangle?", "1"),
        ("What color is the triangle?", "blue"),
        ("What shape is the green object?", "rectangle"),
        ("What color is the circle to the right of the blue triangle?", "red"),
        ("What shape is the red object to the left of the green rectangle?", "circle"),
    ],
)
def test_whole_frame_questions(question: str, expected: str) -> None:
    assert answer_question(SCENE, question, whole_frame=True).text == expected


@pytest.mark.parametrize(
    "question",
    ["What color is the yellow object?", "What color is the rectangle to the right of the blue triangle?",
     "What shape is the teal object?"],
)  # fmt: skip
def test_absent_subject_is_none_for_a_frame_but_described_for_a_patch(question: str) -> None:
    """A whole frame without the thing asked about answers "none"; a patch a program chose
    describes its main shape anyway (the crop-level `vqa` behaviour programs rely on)."""
    assert answer_question(SCENE, question, whole_frame=True).text == NONE_ANSWER
    assert answer_question(SCENE, question, whole_frame=False).text != NONE_ANSWER


def test_parse_question_splits_subject_relation_anchor_and_counts() -> None:
    q = parse_question("Is there a red circle to the left of a blue triangle?", GROUPS)
    assert (q.kind, q.subject, q.relation, q.anchor) == ("yesno", ("red", "circle"), "left_of", ("blue", "triangle"))
    assert q.mentioned == ("red", "circle", "blue", "triangle")  # what relation-blind backends read
    assert parse_question("Are there at least three blue shapes?", GROUPS).compare == ("ge", 3)
    assert parse_question("Are there exactly 2 circles?", GROUPS).compare == ("eq", 2)
    assert parse_question("Is there a red circle?", GROUPS).compare is None
    plain = parse_question("What color is the triangle?", GROUPS)
    assert (plain.relation, plain.subject, plain.anchor) == (None, ("triangle",), ())


def test_unknown_questions_are_errors() -> None:
    with pytest.raises(BackendError, match="template questions"):
        answer_question(SCENE, "Why is the sky blue?", whole_frame=True)


# ------------------------------------------------------------- the real detectors in models/


def _truth(objects: list[SceneObject], question: str) -> str | None:
    """The answer from the scene's objects for the few question forms the test asks."""
    q = parse_question(question, GROUPS)

    def hits(words: tuple[str, ...]) -> list[SceneObject]:
        return [o for o in objects if all(w in (o.color, o.shape) for w in words)]

    def cx(o: SceneObject) -> float:
        return (o.box[0] + o.box[2]) / 2

    if q.kind == "count":
        return str(len(hits(q.subject)))
    if q.kind == "what":
        found = hits(q.subject)
        if len(found) > 1:
            return None  # ambiguous: not asked
        return NONE_ANSWER if not found else getattr(found[0], q.group or "color")
    if q.relation == "left_of":
        pairs = [(a, b) for a in hits(q.subject) for b in hits(q.anchor) if a is not b]
        if any(abs(cx(a) - cx(b)) < 24 for a, b in pairs):
            return None  # too close to call
        return "yes" if any(cx(a) < cx(b) for a, b in pairs) else "no"
    return "yes" if hits(q.subject) else "no"


def _questions(objects: list[SceneObject], rng: np.random.Generator) -> list[str]:
    a, b = objects[0], objects[1]
    other_color = next(c for c in ("teal", "brown", "gray", "black", "yellow") if c != a.color)
    return [
        f"Is there a {a.color} {a.shape}?",
        f"Is there a {other_color} {a.shape}?",
        f"How many {('circles', 'rectangles', 'triangles')[int(rng.integers(3))]} are there?",
        f"What color is the {a.shape}?",
        f"What shape is the {other_color} object?",
        f"Is there a {a.color} {a.shape} to the left of a {b.color} {b.shape}?",
    ]


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    pool = load_shape_pool("test", limit=300)
    rng = np.random.default_rng(11)
    return [compose_scene(rng, pool, n_objects=(2, 5), scale=(0.14, 0.30), max_overlap=0.05) for _ in range(40)]


@pytest.fixture(scope="module")
def zoo() -> Iterator[Catalog]:
    if not ZOO_CATALOG.is_file():
        pytest.skip("models/ not built (edgefmp zoo build)")
    with Catalog.open(load_catalog(ZOO_CATALOG), warmup=False) as catalog:
        yield catalog


def _accuracy(answer: Callable[[np.ndarray, str], str], scenes: list[Scene]) -> tuple[float, float]:
    """(share right, share right of the constant answer that is most often right)."""
    rng = np.random.default_rng(3)
    right, total, answers = 0, 0, []
    for scene in scenes:
        for question in _questions(scene.objects, rng):
            truth = _truth(scene.objects, question)
            if truth is None:
                continue
            right += answer(scene.image, question) == truth
            total += 1
            answers.append(truth)
    constant = max(answers.count(a) for a in set(answers)) / total
    return right / total, constant


@needs_zoo
def test_zoo_answer_function_lists_cv_then_detectors_by_size(zoo: Catalog) -> None:
    backends = zoo.backends("answer")
    assert [b.name for b in backends] == [b.name for b in zoo.backends("detect")]
    assert [b.name.split("-")[:2] for b in backends[1:]] == [["shapedet", size] for size in ("s", "m", "l", "xl")]
    assert [b.spec.model for b in backends[1:]] == [b.spec.model for b in zoo.backends("detect")[1:]]
    assert all(b.spec.accuracy is None for b in backends)  # a detector's F1 is no answer accuracy
    vqa = {b.name for b in zoo.backends("vqa")}
    assert not vqa & {b.name for b in backends[1:]}, "whole-frame answerers must not be choices of `query`"


@needs_zoo
def test_detector_answerers_answer_whole_frame_questions(zoo: Catalog, scenes: list[Scene]) -> None:
    """Every size answers most whole-frame questions right, well above a constant answer; the
    largest at least as well as the smallest (sizes are real choices, not copies)."""
    scores = {}
    for backend in zoo.backends("answer")[1:]:

        def ask(image: np.ndarray, question: str, backend: OnnxBackend = backend) -> str:  # type: ignore[assignment]
            return backend.infer(AnswerRequest(image, question)).text

        scores[backend.name], constant = _accuracy(ask, scenes)
    assert min(scores.values()) >= 0.75, scores
    assert min(scores.values()) >= constant + 0.3, (scores, constant)
    smallest, largest = (b.name for b in zoo.backends("answer")[1::3])
    assert scores[largest] >= scores[smallest], scores


@needs_zoo
def test_detector_answer_agrees_with_its_own_detections(zoo: Catalog, scenes: list[Scene]) -> None:
    """The answerer reads exactly what the same detector detects: a count equals the number of
    boxes `detect` returns for that label."""
    detector = zoo.backends("detect")[-1]
    answerer = zoo.backends("answer")[-1]
    for scene in scenes[:10]:
        for label in ("red circle", "blue triangle", "circle"):
            boxes = detector.infer(DetectRequest(scene.image, (label,)))
            assert isinstance(boxes, Detections)
            count = answerer.infer(AnswerRequest(scene.image, f"How many {label}s are there?")).text
            assert count == str(len(boxes)), (label, count, len(boxes))


@needs_zoo
def test_a_detector_under_answer_needs_colour_shape_labels() -> None:
    attrnet = BackendSpec(name="a", kind="onnx", function="answer", model=str(MODELS / "attrnet-s" / "model.onnx"))
    with pytest.raises(ConfigError, match="cannot serve 'answer'"):
        OnnxBackend(attrnet, OnnxOptions(providers=["CPU"]))


def test_a_detector_with_other_labels_cannot_serve_answer(make_model, toy_manifest, onnx_spec) -> None:  # type: ignore[no-untyped-def]
    path = make_model("yolo", sidecar=toy_manifest("yolo"))  # labels "a", "b"
    OnnxBackend(onnx_spec(path, "detect"), OnnxOptions(providers=["CPU"]))  # fine as a detector
    with pytest.raises(ConfigError, match=r"model\.onnx.*'<colour> <shape>'"):
        OnnxBackend(onnx_spec(path, "answer"), OnnxOptions(providers=["CPU"]))


def test_demo_catalog_answers_whole_frames_with_opencv(scenes: list[Scene]) -> None:
    """The bundled catalog's `answer` is the OpenCV tier, with the same logic as the zoo's."""
    with Catalog.open(load_catalog(default_catalog_path()), warmup=False) as catalog:
        (cv,) = catalog.backends("answer")
        right, constant = _accuracy(lambda image, q: cv.infer(AnswerRequest(image, q)).text, scenes)
        assert right >= 0.75 and right >= constant + 0.3, (right, constant)
        # the same backend asked through `vqa` describes what is there instead of "none"
        image = scenes[0].image
        absent = next(c for c in ("teal", "brown", "gray", "black") if c not in {o.color for o in scenes[0].objects})
        question = f"What shape is the {absent} object?"
        assert cv.infer(AnswerRequest(image, question)).text == NONE_ANSWER
        assert cv.infer(VQARequest(image, question)).text != NONE_ANSWER
