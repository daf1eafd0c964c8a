"""The example programs are accepted and answer correctly against the fake caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.program import load_program

from .conftest import EXAMPLES, FakeCaller, Scene, Shape

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.py"))


def test_there_are_examples() -> None:
    assert len(EXAMPLE_FILES) >= 5


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_example_is_accepted_and_its_sites_point_at_their_calls(path: Path) -> None:
    compiled = load_program(path)
    assert compiled.sites, f"{path.name} makes no neural call"
    lines = compiled.source.splitlines()
    for site_id, site in compiled.sites.items():
        assert site_id == f"{site.method}@{site.line}:{site.col}"
        assert lines[site.line - 1][site.col :].startswith(site.method + "(")


def run(name: str, scene: Scene) -> object:
    return load_program(EXAMPLES / name).run(scene.image(), FakeCaller(scene))


def test_is_there_a_red_circle(scene: Scene) -> None:
    assert run("is_there_a_red_circle.py", scene) == "yes"
    assert run("is_there_a_red_circle.py", Scene([Shape("circle", "blue", (5, 5, 30, 30))])) == "no"


def test_count_blue_shapes(scene: Scene) -> None:
    assert run("count_blue_shapes.py", scene) == 2


def test_shape_left_of_circle(scene: Scene) -> None:
    assert run("shape_left_of_circle.py", scene) == "nothing"
    scene.shapes.append(Shape("rectangle", "green", (0, 90, 8, 100)))
    scene.shapes.append(Shape("triangle", "gray", (2, 60, 30, 80)))
    assert run("shape_left_of_circle.py", scene) == "triangle"


def test_what_color_is_the_triangle(scene: Scene) -> None:
    assert run("what_color_is_the_triangle.py", scene) == "blue"


def test_what_color_falls_back_to_best_text_match(scene: Scene) -> None:
    caller = FakeCaller(scene, vqa_answer="sort of bluish")
    answer = load_program(EXAMPLES / "what_color_is_the_triangle.py").run(scene.image(), caller)
    assert answer == "blue"
    assert [request.function for _, request in caller.calls] == ["detect", "vqa", "classify"]


def test_is_circle_above_rectangle(scene: Scene) -> None:
    assert run("is_circle_above_rectangle.py", scene) == "yes"
    flipped = Scene([Shape("circle", "red", (10, 80, 40, 110)), Shape("rectangle", "blue", (60, 5, 90, 30))])
    assert run("is_circle_above_rectangle.py", flipped) == "no"


def test_read_text_demo(scene: Scene) -> None:
    assert run("read_text_demo.py", scene) == "2 words: stop here"
