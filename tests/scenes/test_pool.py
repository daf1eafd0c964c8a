"""The shape pool: labels parsed from easy-VQA answers, cut-outs, pixel fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.errors import ConfigError
from edgefmp.scenes import COLORS, SHAPES, load_shape_pool
from edgefmp.scenes.pool import color_from_rgb, labels_from_questions, shape_from_alpha


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        ("what is the blue shape?", "rectangle", {"shape": "rectangle", "color": "blue"}),
        ("what color is the circle?", "red", {"shape": "circle", "color": "red"}),
        ("what shape is in the image?", "triangle", {"shape": "triangle"}),
        ("is there not a teal shape?", "no", {"color": "teal"}),
        ("is no triangle present?", "no", {"shape": "triangle"}),
        ("does the image contain a gray shape?", "yes", {"color": "gray"}),
    ],
)
def test_labels_from_one_answer(question: str, answer: str, expected: dict[str, str]) -> None:
    assert labels_from_questions([question], [answer], [7]) == {7: expected}


def test_exclusions_settle_an_attribute() -> None:
    qs = ["is there a circle?", "is there not a rectangle?"]
    assert labels_from_questions(qs, ["no", "yes"], [1, 1]) == {1: {"shape": "triangle"}}


def test_contradiction_names_the_image() -> None:
    with pytest.raises(ConfigError, match="image 3"):
        labels_from_questions(["is there a red shape?", "what color is the shape?"], ["no", "red"], [3, 3])


def test_pool_cut_outs_are_labelled_and_consistent() -> None:
    pool = load_shape_pool("test", limit=60)
    assert len(pool) == 60
    assert [s.image_id for s in pool] == sorted(s.image_id for s in pool)
    for s in pool:
        assert s.shape in SHAPES and s.color in COLORS
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        x1, y1, x2, y2 = s.box
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        assert shape_from_alpha(s.alpha, s.box) == s.shape
        assert color_from_rgb(s.rgb) == s.color


def test_unknown_split() -> None:
    with pytest.raises(ConfigError, match="available: train, test"):
        load_shape_pool("val")  # type: ignore[arg-type]
