"""Pure pre/post-processing functions: geometry, tensors, decoding, NMS, answers."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.backends import processing as P
from edgefmp.backends.manifest import Postprocess, Preprocess
from edgefmp.errors import BackendError


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
@pytest.mark.parametrize("hw", [(48, 64), (300, 100), (64, 64), (7, 500)])
def test_resize_round_trip(mode, hw):
    img = np.zeros((*hw, 3), np.uint8)
    out, info = P.resize_image(img, (64, 96), mode, pad_value=7)
    assert out.shape == (64, 96, 3)
    boxes = np.array([[0, 0, hw[1], hw[0]], [1.5, 2.0, 3.0, 5.5]], np.float32)
    np.testing.assert_allclose(info.to_image(info.to_input(boxes)), boxes, atol=1e-3)


def test_letterbox_centres_and_pads():
    img = np.full((50, 100, 3), 200, np.uint8)
    out, info = P.resize_image(img, (100, 100), "letterbox", pad_value=114)
    assert (info.pad_x, info.pad_y, info.sx, info.sy) == (0.0, 25.0, 1.0, 1.0)
    assert (out[:25] == 114).all() and (out[25:75] == 200).all() and (out[75:] == 114).all()
    # a box in the padding clips to the image border
    np.testing.assert_allclose(info.to_image(np.array([[-10, 0, 50, 40]])), [[0, 0, 50, 15]])


def test_to_tensor_colour_scale_normalise_layout_dtype():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 2] = 255, 51
    pre = Preprocess(
        size=(2, 3), color="BGR", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), layout="NHWC", dtype="float16"
    )
    t = P.to_tensor(img, pre)
    assert t.shape == (1, 2, 3, 3) and t.dtype == np.float16
    np.testing.assert_allclose(t[0, 0, 0].astype(np.float32), [(0.2 - 0.5) / 0.5, -1.0, 1.0], atol=1e-3)
    nchw = P.to_tensor(img, Preprocess(size=(2, 3)))
    assert nchw.shape == (1, 3, 2, 3) and nchw.dtype == np.float32 and nchw[0, 0, 0, 0] == 1.0
    raw = P.to_tensor(img, Preprocess(size=(2, 3), scale=1.0, dtype="uint8"))
    assert raw.dtype == np.uint8 and raw[0, 0, 0, 0] == 255


def test_activations_are_stable():
    x = np.array([1000.0, 0.0, -1000.0])
    np.testing.assert_allclose(P.activate(x, "softmax"), [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(P.activate(x, "sigmoid"), [1, 0.5, 0], atol=1e-6)


def test_attributes_softmax_within_groups():
    post = Postprocess(kind="attributes", groups={"c": ["r", "g"], "s": ["o", "x"]})
    probs = P.label_probs(np.array([2.0, 0.0, 0.0, 0.0, 0.0]), post, ["r", "g", "o", "x", "free"])
    assert probs[0] + probs[1] == pytest.approx(1) and probs[2] == pytest.approx(0.5)
    assert probs[4] == pytest.approx(0.5)  # outside every group: sigmoid


def _yolo_rows():
    # cx, cy, w, h, score a, score b
    return np.array(
        [
            [10, 10, 10, 10, 0.9, 0.1],
            [11, 10, 10, 10, 0.8, 0.1],  # overlaps the first, same class: suppressed
            [10, 10, 10, 10, 0.1, 0.7],  # same box, other class: kept
            [50, 50, 4, 4, 0.2, 0.1],  # below threshold
        ],
        np.float32,
    )


@pytest.mark.parametrize("layout", ["NxC", "CxN"])
def test_decode_yolo_and_nms(layout):
    rows = _yolo_rows()
    out = rows[None] if layout == "NxC" else rows.T[None]
    d = P.nms(P.decode_yolo(out, 2, "none", 0.25), 0.5, 100)
    np.testing.assert_allclose(d.scores, [0.9, 0.7])
    assert d.class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(d.boxes[0], [5, 5, 15, 15])


def test_decode_yolo_with_objectness():
    rows = np.array([[10, 10, 4, 4, 0.5, 0.8, 0.2]], np.float32)
    d = P.decode_yolo(rows[None], 2, "none", 0.1)
    assert d.scores[0] == pytest.approx(0.4) and d.class_ids.tolist() == [0]


def test_decode_yolo_wrong_shape_names_labels():
    with pytest.raises(BackendError, match="C=5 labels"):
        P.decode_yolo(np.zeros((1, 7, 20)), 5, "none", 0.25)


def test_decode_detr():
    logits = np.array([[[4.0, 0.0, 0.0], [0.0, 0.0, 4.0]]])
    boxes = np.array([[[0.5, 0.5, 0.5, 0.25], [0.1, 0.1, 0.1, 0.1]]])
    d = P.decode_detr(logits, boxes, (100, 200), 2, "softmax", True, 0.5)
    assert d.class_ids.tolist() == [0]
    np.testing.assert_allclose(d.boxes[0], [50, 37.5, 150, 62.5])
    with pytest.raises(BackendError, match="no-object"):
        P.decode_detr(logits, boxes, (100, 200), 3, "softmax", True, 0.5)


def test_match_labels_case_insensitive_and_skips_unknown():
    assert P.match_labels(["Cat", "zebra"], ["dog", "cat"]) == {1: "Cat"}


def test_choose_option_renormalises():
    ans = P.choose_option(["a", "b", "c"], np.array([0.6, 0.3, 0.1]), ["B", "c", "other"])
    assert ans.text == "B" and ans.confidence == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("question", "kind", "group", "mentioned", "negated"),
    [
        ("what color is the shape?", "what", "color", (), False),
        ("What is the colour of the triangle?", "what", "color", ("triangle",), False),
        ("what is the red shape?", "what", "shape", ("red",), False),
        ("what shape does the image contain?", "what", "shape", (), False),
        ("is there a red circle?", "yesno", None, ("red", "circle"), False),
        ("is no gray shape present?", "yesno", None, ("gray",), True),
        ("does the image not contain a circle?", "yesno", None, ("circle",), True),
        ("how many blue circles are there?", "count", None, ("blue", "circle"), False),
        ("why?", "unknown", None, (), False),
    ],
)
def test_parse_question(question, kind, group, mentioned, negated):
    groups = {"color": ["red", "blue", "gray"], "shape": ["circle", "triangle"]}
    q = P.parse_question(question, groups)
    assert (q.kind, q.group, q.mentioned, q.negated) == (kind, group, mentioned, negated)
