"""What a program may answer: a str, bool, int or float, a patch, or a flat list of those.
Returns that can never be an answer are rejected by the validator; any other non-answer fails
its frame, naming the line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog
from edgefmp.errors import ProgramError
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.program import compile_program
from edgefmp.results import Detections
from edgefmp.runtime.executor import Executor
from edgefmp.trace import Trace

from .conftest import FakeCaller, Scene

ADVICE = "return a str, bool or number (int or float), a patch, or a list of those"


def program(body: str) -> str:
    """`body` inside execute_command; its first line is line 2."""
    return "def execute_command(image):\n" + "".join(f"    {line}\n" for line in body.splitlines())


# (case id, body, line the message must name, what the message must say)
REJECTED = [
    ("dict", "return {'n': len(image.find('circle'))}", 2, "execute_command returns a dict"),
    ("set", "return {1}", 2, "execute_command returns a set"),
    ("dict-comprehension", "return {p.label: 1 for p in image.find('circle')}", 2, "execute_command returns a dict"),
    ("generator", "return (p for p in image.find('circle'))", 2, "execute_command returns a generator"),
    ("lambda", "return lambda: 1", 2, "execute_command returns a function"),
    ("none", "x = 1\nreturn None", 3, "execute_command returns None"),
    ("bare-return", "if image.exists('circle'):\n    return\nreturn 'no'", 3, "returns nothing (a bare return)"),
    ("no-return", "x = image.find('circle')", 1, "execute_command has no return statement"),
    (
        "nested-branch",
        "for p in image.find('circle'):\n    if p.score > 0.5:\n        return {p}\nreturn 'no'",
        4,
        "a set",
    ),
]


@pytest.mark.parametrize(("body", "line", "expected"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_returns_that_can_never_be_answers_are_rejected(body: str, line: int, expected: str) -> None:
    with pytest.raises(ProgramError) as info:
        compile_program(program(body))
    message = str(info.value)
    assert message.startswith(f"line {line}: "), message
    assert expected in message and ADVICE in message, message
    assert info.value.line == line


def test_helper_functions_may_return_anything(scene: Scene, caller: FakeCaller) -> None:
    """Only execute_command's own returns are answers; its helpers return lists and None freely."""
    source = (
        "def circles(image):\n"
        "    return [p for p in image.find('circle')]\n"
        "def nothing():\n"
        "    return None\n"
        "def execute_command(image):\n"
        "    label = lambda p: [p.label]\n"
        "    found = circles(image)\n"
        "    return found[0].label if found and nothing() is None else label(image)[0]\n"
    )
    assert compile_program(source).run(scene.image(), caller) == "circle"


# (case id, body, line the message must name, what the message must say); they pass the
# validator because their value is only known when they run.
FAILED = [
    ("nested-list", "return [image.find('circle')]", 2, "the program returned a list of lists"),
    ("list-of-dicts", "return [{'n': 1}]", 2, "returned a dict: " + ADVICE + " (an item of the list it returned)"),
    ("too-many-items", "return [1] * 101", 2, "the program returned 101 items; an answer holds at most 100"),
    ("dict-variable", "counts = {}\ncounts['circle'] = image.count('circle')\nreturn counts", 4, "returned a dict"),
    ("none-variable", "answer = None\nreturn answer", 3, "the program returned None"),
    ("range", "return range(3)", 2, "the program returned a range"),
    ("falls-off-the-end", "if image.exists('star'):\n    return 'yes'\nx = 1", 4, "ended without returning an answer"),
    ("nan", "return float('nan')", 2, "the program returned nan: return a finite number"),
    ("infinity", "return -float('inf')", 2, "the program returned -inf: return a finite number"),
]


@pytest.mark.parametrize(("body", "line", "expected"), [c[1:] for c in FAILED], ids=[c[0] for c in FAILED])
def test_a_non_answer_fails_the_frame_naming_its_line(
    body: str, line: int, expected: str, scene: Scene, caller: FakeCaller
) -> None:
    compiled = compile_program(program(body))
    with pytest.raises(ProgramError) as info:
        compiled.run(scene.image(), caller)
    message = str(info.value)
    assert message.startswith(f"line {line}: "), message
    assert expected in message, message
    assert info.value.line == line


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("return image.exists('circle')", True),
        ("return image.count('circle')", 1),
        ("return image.find('circle')[0].label", "circle"),
        ("return image.find('circle')[0].horizontal_center", 25.0),
        ("return bool_to_yesno(image.count('shape') > 2)", "yes"),
    ],
)
def test_scalar_answers_keep_their_type(body: str, answer: object, scene: Scene, caller: FakeCaller) -> None:
    result = compile_program(program(body)).run(scene.image(), caller)
    assert result == answer and type(result) is type(answer)
    assert not isinstance(result, float) or math.isfinite(result)


def test_patches_and_lists_are_answers(scene: Scene, caller: FakeCaller) -> None:
    """Grounding programs answer with patches (ViperGPT's referring expressions); a tuple is
    answered as a list."""
    found = compile_program(program("return image.find('circle')")).run(scene.image(), caller)
    assert isinstance(found, list) and [p.label for p in found] == ["circle"]
    one = compile_program(program("return image.find('circle')[0]")).run(scene.image(), caller)
    assert one.label == "circle" and one.right > one.left
    pair = compile_program(program("n = image.count('circle')\nreturn n, 'circle'")).run(scene.image(), caller)
    assert pair == [1, "circle"]


def run_one_frame(body: str) -> Trace:
    def detect(request: object) -> Detections:
        return Detections(boxes=[[2, 2, 10, 10]], scores=[0.9], labels=["circle"])

    catalog = Catalog.from_backends({"detect": [CallableBackend.wrap("one-circle", "detect", detect)]})
    executor = Executor(compile_program(program(body)), catalog, create("static:0"))
    return executor.run_frame(Frame(frame_id="f0", ts=0.0, image=np.zeros((16, 16, 3), np.uint8)))


def test_the_runtime_records_a_non_answer_as_the_frames_error() -> None:
    """Through the real executor: the frame fails with the message, the stream goes on."""
    trace = run_one_frame("found = {'n': len(image.find('circle'))}\nreturn found")
    assert trace.answer is None
    assert trace.error is not None and "line 3: the program returned a dict" in trace.error
    assert [call.function for call in trace.calls] == ["detect"]


def test_the_runtime_records_patches_as_boxes() -> None:
    trace = run_one_frame("return image.find('circle')")
    assert trace.error is None
    assert trace.answer == [{"box": [2.0, 2.0, 10.0, 10.0], "label": "circle"}]
