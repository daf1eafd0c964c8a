"""The DSL: requests it sends, coordinates it maps back, and what it keeps private."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.errors import ProgramError
from edgefmp.program import ImagePatch, compile_program
from edgefmp.program.allowlist import ALLOWED_ATTRIBUTES
from edgefmp.results import DetectRequest, LLMRequest, VQARequest

from .conftest import FakeCaller, Scene


def run(source: str, scene: Scene, caller: FakeCaller | None = None) -> object:
    return compile_program(source).run(scene.image(), caller or FakeCaller(scene))


def test_find_maps_boxes_to_frame_coordinates_and_sorts_by_score(scene: Scene) -> None:
    source = (
        "def execute_command(image):\n"
        "    found = image.find('shape')\n"
        "    return str([(p.label, p.left, p.upper, p.right, p.lower, round(p.score, 3)) for p in found])\n"
    )
    assert run(source, scene) == str(
        [
            ("triangle", 60, 10, 90, 40, 0.95),
            ("circle", 10, 20, 40, 50, 0.8),
            ("rectangle", 100, 70, 150, 110, 0.7),
        ]
    )


def test_find_inside_a_crop_keeps_frame_coordinates(scene: Scene) -> None:
    caller = FakeCaller(scene)
    source = (
        "def execute_command(image):\n"
        "    right_half = image.crop(50, image.lower, image.right, 0)\n"
        "    shapes = right_half.find('shape')\n"
        "    return str((right_half.left, [(p.label, p.left, p.upper, p.right, p.lower) for p in shapes]))\n"
    )
    assert run(source, scene, caller) == str((50, [("triangle", 60, 10, 90, 40), ("rectangle", 100, 70, 150, 110)]))
    ((_, request),) = caller.calls
    assert isinstance(request, DetectRequest)
    assert request.origin == (50.0, 0.0)
    assert request.image.shape == (120, 110, 3)
    assert not request.image.flags.writeable


def test_found_patches_are_sent_with_a_context_margin(scene: Scene, caller: FakeCaller) -> None:
    """Recognisers need the edge around a detection (ViperGPT's crop_larger_margin): a found
    patch is sent grown by 10 px, clipped to the frame, while its coordinates stay tight."""
    source = (
        "def execute_command(image):\n"
        "    circle = image.find('circle')[0]\n"
        "    inner = circle.find('shape')\n"
        "    return str([(p.label, p.left, p.upper, p.right, p.lower) for p in inner])\n"
    )
    assert run(source, scene, caller) == str([("circle", 10, 20, 40, 50)])
    _, nested = caller.calls[1]
    assert isinstance(nested, DetectRequest)
    assert nested.origin == (0.0, 10.0)  # (10, 20) minus the margin, clipped at x = 0
    assert nested.image.shape == (50, 50, 3)  # rows 10..60, columns 0..50


def test_crop_accepts_both_row_orders_and_clips_to_the_patch(scene: Scene) -> None:
    source = (
        "def execute_command(image):\n"
        "    a = image.crop(10, 50, 40, 20)\n"
        "    b = image.crop(10, 20, 40, 50)\n"
        "    inner = a.crop(0, 0, 1000, 1000)\n"
        "    return str([(p.left, p.upper, p.right, p.lower, p.width, p.height, p.area) for p in (a, b, inner)])\n"
    )
    assert run(source, scene) == str([(10, 20, 40, 50, 30, 30, 900)] * 3)


def test_empty_crop_is_a_clear_error(scene: Scene) -> None:
    source = "def execute_command(image):\n    x = 1\n    return image.crop(30, 10, 30, 40)\n"
    with pytest.raises(ProgramError, match=r"^line 3: crop\(30, 10, 30, 40\) is empty"):
        run(source, scene)


def test_positions_of_the_whole_image(scene: Scene) -> None:
    source = (
        "def execute_command(image):\n"
        "    return str((image.left, image.upper, image.right, image.lower, image.horizontal_center, "
        "image.vertical_center, image.label, image.score))\n"
    )
    assert run(source, scene) == str((0, 0, 160, 120, 80.0, 60.0, "image", 1.0))


def test_neural_methods_build_their_requests(scene: Scene) -> None:
    caller = FakeCaller(scene, classify_answer="Red.")
    source = (
        "def execute_command(image):\n"
        "    circle = image.find('circle')[0]\n"
        "    return str([\n"
        "        image.exists('triangle'), image.count('rectangle'), image.exists('star'),\n"
        "        circle.verify_property('circle', 'red'), circle.query('what color is it?'),\n"
        "        circle.simple_query('what color?'), circle.best_text_match(['red', 'blue']),\n"
        "        image.read_text(), llm_query('capital of France?'),\n"
        "        bool_to_yesno(True), bool_to_yesno(0), distance(circle, circle), distance(3, 5),\n"
        "    ])\n"
    )
    assert run(source, scene, caller) == str([
        True, 1, False, True, "red", "red", "red", "  Stop HERE  ", "llm says: capital of France?",
        "yes", "no", 0.0, 2.0,
    ])  # fmt: skip
    functions = [request.function for _, request in caller.calls]
    assert functions == ["detect", "detect", "detect", "detect", "verify", "vqa", "vqa", "classify", "ocr", "llm"]
    sites = [site for site, _ in caller.calls]
    assert sites[0] == "find@2:19" and sites[-1] == "llm_query@7:27"
    vqa = caller.calls[5][1]
    assert isinstance(vqa, VQARequest) and vqa.image.shape == (50, 50, 3)  # 30x30 box + 10 px margin
    assert isinstance(caller.calls[-1][1], LLMRequest)


def test_wrong_argument_types_name_the_method_and_line(scene: Scene) -> None:
    with pytest.raises(ProgramError, match=r"^line 2: find\(\) expects the object name as a string, got int"):
        run("def execute_command(image):\n    return image.find(3)\n", scene)
    with pytest.raises(ProgramError, match=r"^line 2: best_text_match\(\) expects a non-empty list"):
        run("def execute_command(image):\n    return image.best_text_match([])\n", scene)


# (call, the message after "line 2: ")
TEXT_ARGUMENT_ERRORS = [
    ('image.find("")', "find() got an empty object name; pass some text"),
    ('image.exists("  ")', "exists() got an empty object name; pass some text"),
    ('image.verify_property("circle", "")', "verify_property() got an empty property; pass some text"),
    ('image.verify_property(1, "red")', "verify_property() expects the object name as a string, got int"),
    ('image.query("")', "query() got an empty question; pass some text"),
    ('llm_query("")', "llm_query() got an empty question; pass some text"),
    ('image.best_text_match(["red", ""])', "best_text_match() got an empty option; pass some text"),
    ('image.best_text_match(["red", 3])', "best_text_match() expects each option as a string, got int"),
]


@pytest.mark.parametrize(("call", "expected"), TEXT_ARGUMENT_ERRORS, ids=[c[0] for c in TEXT_ARGUMENT_ERRORS])
def test_bad_text_arguments_read_as_sentences(call: str, expected: str, scene: Scene) -> None:
    with pytest.raises(ProgramError) as info:
        run(f"def execute_command(image):\n    return str({call})\n", scene)
    assert str(info.value) == f"line 2: {expected}"


def test_a_caller_answering_the_wrong_type_is_a_program_error(scene: Scene) -> None:
    class Wrong:
        def call(self, site_id: str, request: object) -> object:
            return "yes"

    with pytest.raises(ProgramError, match="expected Detections"):
        compile_program("def execute_command(image):\n    return image.exists('x')\n").run(scene.image(), Wrong())  # type: ignore[arg-type]


def test_the_patch_exposes_no_public_attribute_beyond_the_dsl(scene: Scene) -> None:
    patch = ImagePatch(scene.image())
    public = {name for name in dir(patch) if not name.startswith("_")}
    assert public <= ALLOWED_ATTRIBUTES
    assert not hasattr(patch, "__dict__")


def test_a_patch_outside_a_program_has_no_caller(scene: Scene) -> None:
    with pytest.raises(ProgramError, match="needs a running program"):
        ImagePatch(scene.image()).find("circle")


def test_a_bad_frame_is_refused() -> None:
    compiled = compile_program("def execute_command(image):\n    return 1\n")
    with pytest.raises(ProgramError, match="RGB uint8"):
        compiled.run(np.zeros((4, 4), np.float32), None)  # type: ignore[arg-type]
