"""Parsing free-text answers and preparing images for remote backends (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.backends.remote_answers import (
    boxes_from_items,
    extract_json,
    match_option,
    parse_yes_no,
)
from edgefmp.backends.remote_image import downscale, encode_jpeg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("Yes.", True),
        ("YES, it is red.", True),
        ("no", False),
        ("No, the ball is blue.", False),
        ("True", True),
        ("false", False),
        ("I think the answer is yes", True),
        ("Not really.", False),
    ],
)
def test_parse_yes_no(text: str, expected: bool) -> None:
    assert parse_yes_no(text) is expected


@pytest.mark.parametrize("text", ["", "maybe", "well, yes and no", "..."])
def test_parse_yes_no_refuses_to_guess(text: str) -> None:
    with pytest.raises(ValueError, match="yes' or 'no"):
        parse_yes_no(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cat", "cat"),
        ("Cat.", "cat"),
        ("It is a dog", "dog"),
        ("dark red", "dark red"),
        ("The colour is dark red.", "dark red"),
    ],
)
def test_match_option(text: str, expected: str) -> None:
    assert match_option(text, ["cat", "dog", "red", "dark red"]) == expected


@pytest.mark.parametrize("text", ["a horse", "a cat and a dog"])
def test_match_option_refuses_none_or_several(text: str) -> None:
    with pytest.raises(ValueError, match="names"):
        match_option(text, ["cat", "dog"])


def test_extract_json_from_fenced_and_chatty_replies() -> None:
    assert extract_json('```json\n[{"label": "cat"}]\n```') == [{"label": "cat"}]
    assert extract_json('Here you go: [{"label": "cat"}] Hope it helps.') == [{"label": "cat"}]
    assert extract_json("[]") == []
    with pytest.raises(ValueError):
        extract_json("I see no boxes")


def test_boxes_rescaled_clipped_and_filtered() -> None:
    items = [
        {"label": "Cat", "box": [10, 5, 20, 15], "score": 0.9},
        {"label": "dog", "box": [30, 20, 10, 5]},  # corners swapped, no score
        {"label": "horse", "box": [0, 0, 1, 1], "score": 0.5},  # not asked for: dropped
        {"label": "cat", "box": [90, 40, 120, 60], "score": 1.7},  # spills out, score > 1
    ]
    det = boxes_from_items(items, ["cat", "dog"], scale_x=2.0, scale_y=2.0, width=200, height=100)
    assert det.labels == ["cat", "dog", "cat"]
    np.testing.assert_allclose(det.boxes[0], [20, 10, 40, 30])
    np.testing.assert_allclose(det.boxes[1], [20, 10, 60, 40])
    np.testing.assert_allclose(det.boxes[2], [180, 80, 200, 100])
    np.testing.assert_allclose(det.scores, [0.9, 1.0, 1.0])


def test_boxes_bad_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="box 0"):
        boxes_from_items([{"label": "cat", "box": [1, 2, 3]}], ["cat"], scale_x=1, scale_y=1, width=9, height=9)


def test_downscale_keeps_aspect_and_never_upscales() -> None:
    image = np.zeros((100, 400, 3), np.uint8)
    sent = downscale(image, 200)
    assert (sent.height, sent.width) == (50, 200)
    assert sent.scale_x == pytest.approx(2.0) and sent.scale_y == pytest.approx(2.0)
    same = downscale(image, 1000)
    assert same.rgb is image and same.scale_x == 1.0
    assert downscale(image, None).rgb is image


def test_jpeg_quality_trades_bytes() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_jpeg(image, 20, "t")) < len(encode_jpeg(image, 95, "t"))
