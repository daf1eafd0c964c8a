"""OnnxBackend on real onnxruntime sessions of tiny models built in conftest.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.catalog import Catalog, parse_catalog
from edgefmp.backends.onnx import OnnxBackend, OnnxOptions
from edgefmp.errors import BackendError, ConfigError
from edgefmp.results import (
    Answer,
    ClassifyRequest,
    Detections,
    DetectRequest,
    Verdict,
    VerifyRequest,
    VQARequest,
)


def _box_image(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img


def _solid(rgb: tuple[int, int, int], size: int = 32) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, np.uint8), (size, size, 3)).copy()


def _disc(rgb: tuple[int, int, int], size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.zeros((size, size, 3), np.uint8)
    img[(yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 2) ** 2] = rgb
    return img


# ------------------------------------------------------------------------------ detection


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("resize", "hw", "box"),
    [
        ("letterbox", (120, 200), (30, 20, 90, 50)),
        ("letterbox", (200, 90), (10, 100, 60, 180)),
        ("stretch", (100, 300), (150, 10, 290, 40)),
    ],
)
def test_yolo_boxes_map_back_into_image_pixels(make_model, toy_manifest, onnx_spec, channels_last, resize, hw, box):
    manifest = toy_manifest("yolo", preprocess={"resize": resize})
    backend = OnnxBackend(
        onnx_spec(make_model("yolo", manifest, channels_last=channels_last), "detect"), OnnxOptions(providers=["CPU"])
    )
    result = backend.infer(DetectRequest(_box_image(*hw, box), ("A",)))
    assert isinstance(result, Detections) and len(result) == 1
    assert result.labels == ["A"]  # the request's spelling, matched case-insensitively
    # One input pixel covers 1/scale image pixels, so that is the round trip's resolution.
    tolerance = max(hw) / 64 + 0.5
    np.testing.assert_allclose(result.boxes[0], box, atol=tolerance)
    assert result.scores[0] == pytest.approx(0.9)


def test_yolo_nms_is_per_class(make_model, toy_manifest, onnx_spec):
    backend = OnnxBackend(onnx_spec(make_model("yolo", toy_manifest("yolo")), "detect"), OnnxOptions())
    result = backend.infer(DetectRequest(_box_image(64, 64, (8, 8, 40, 30)), ("a", "b")))
    # anchors: a 0.9, a 0.72 (same box: suppressed), b 0.63 (other class: kept)
    assert result.labels == ["a", "b"]
    np.testing.assert_allclose(result.scores, [0.9, 0.63], atol=1e-6)


def test_unknown_label_gives_empty_detections(make_model, toy_manifest, onnx_spec):
    backend = OnnxBackend(onnx_spec(make_model("yolo", toy_manifest("yolo")), "detect"), OnnxOptions())
    result = backend.infer(DetectRequest(_box_image(64, 64, (8, 8, 40, 30)), ("zebra",)))
    assert isinstance(result, Detections) and len(result) == 0


def test_score_threshold_override(make_model, toy_manifest, onnx_spec):
    path = make_model("yolo", toy_manifest("yolo"))
    backend = OnnxBackend(onnx_spec(path, "detect"), OnnxOptions(score_threshold=0.95))
    assert backend.manifest.postprocess.score_threshold == 0.95
    assert len(backend.infer(DetectRequest(_box_image(64, 64, (8, 8, 40, 30)), ("a", "b")))) == 0


def test_detr_decoding(make_model, toy_manifest, onnx_spec):
    backend = OnnxBackend(onnx_spec(make_model("detr", toy_manifest("detr")), "detect"), OnnxOptions())
    box = (40, 30, 100, 70)
    result = backend.infer(DetectRequest(_box_image(100, 160, box), ("a", "b")))
    assert result.labels == ["a"]  # query 1 is no-object
    np.testing.assert_allclose(result.boxes[0], box, atol=160 / 64 + 0.5)
    empty = backend.infer(DetectRequest(np.zeros((50, 50, 3), np.uint8), ("a",)))
    assert len(empty) == 0


def test_detector_answers_count_questions(make_model, toy_manifest, onnx_spec):
    backend = OnnxBackend(onnx_spec(make_model("yolo", toy_manifest("yolo")), "vqa"), OnnxOptions())
    img = _box_image(64, 64, (8, 8, 40, 30))
    assert backend.infer(VQARequest(img, "how many a are there?")).text == "1"
    assert backend.infer(VQARequest(img, "is there a b?")).text == "yes"
    with pytest.raises(BackendError, match="how many"):
        backend.infer(VQARequest(img, "what is this?"))


# -------------------------------------------------------------------- classify, attributes


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_classifier_picks_best_option_renormalised(make_model, toy_manifest, onnx_spec, dtype):
    manifest = toy_manifest("classify", size=(16, 16), preprocess={"dtype": dtype, "resize": "stretch"})
    backend = OnnxBackend(onnx_spec(make_model("classify", manifest, dtype=dtype), "classify"), OnnxOptions())
    result = backend.infer(ClassifyRequest(_solid((30, 200, 40)), ("Red", "GREEN")))
    assert isinstance(result, Answer) and result.text == "GREEN"
    logits = 10 * np.array([30, 200]) / 255
    p = np.exp(logits) / np.exp(logits).sum()
    assert result.confidence == pytest.approx(p[1], abs=2e-3)
    with pytest.raises(BackendError, match="none of the options"):
        backend.infer(ClassifyRequest(_solid((30, 200, 40)), ("cat", "dog")))


def test_classifier_verifies_a_label(make_model, toy_manifest, onnx_spec):
    manifest = toy_manifest("classify", size=(16, 16))
    backend = OnnxBackend(onnx_spec(make_model("classify", manifest), "verify"), OnnxOptions())
    verdict = backend.infer(VerifyRequest(_solid((250, 0, 0)), "shape", "red"))
    assert isinstance(verdict, Verdict) and verdict.value is True


def test_attributes_model(make_model, toy_manifest, onnx_spec):
    manifest = toy_manifest("attributes", size=(16, 16), preprocess={"resize": "stretch"})
    backend = OnnxBackend(onnx_spec(make_model("attributes", manifest), "vqa"), OnnxOptions())
    blue_disc, green_square = _disc((0, 0, 230)), _solid((0, 220, 0))
    assert backend.infer(VQARequest(blue_disc, "What color is the shape?")).text == "blue"
    assert backend.infer(VQARequest(blue_disc, "what is the colour of the circle?")).text == "blue"
    assert backend.infer(VQARequest(blue_disc, "what shape is in the image?")).text == "circle"
    assert backend.infer(VQARequest(green_square, "what is the green shape?")).text == "square"
    assert backend.infer(VQARequest(green_square, "is there a green square?")).text == "yes"
    assert backend.infer(VQARequest(green_square, "is there not a blue shape?")).text == "yes"
    assert backend.infer(VerifyRequest(blue_disc, "shape", "blue")).value is True
    assert backend.infer(VerifyRequest(blue_disc, "shape", "green")).value is False
    assert backend.infer(VerifyRequest(blue_disc, "square", "blue")).value is False  # subject is a label too
    assert backend.infer(ClassifyRequest(green_square, ("circle", "square"))).text == "square"
    with pytest.raises(BackendError, match="only questions about: color, shape"):
        backend.infer(VQARequest(blue_disc, "how big is it?"))
    with pytest.raises(BackendError, match="not a label"):
        backend.infer(VerifyRequest(blue_disc, "shape", "purple"))


# ---------------------------------------------------------------------- manifest sources


def test_sidecar_wins_over_embedded(make_model, toy_manifest, onnx_spec):
    embedded = toy_manifest("yolo", labels=["x", "y"])
    sidecar = toy_manifest("yolo", name="fixed-labels")
    backend = OnnxBackend(onnx_spec(make_model("yolo", embedded, sidecar=sidecar), "detect"), OnnxOptions())
    assert backend.manifest.name == "fixed-labels"
    assert backend.infer(DetectRequest(_box_image(64, 64, (8, 8, 40, 30)), ("a",))).labels == ["a"]


def test_sidecar_only(make_model, toy_manifest, onnx_spec):
    backend = OnnxBackend(onnx_spec(make_model("detr", sidecar=toy_manifest("detr")), "detect"), OnnxOptions())
    assert backend.manifest.postprocess.kind == "detr"


def test_missing_manifest(make_model, onnx_spec):
    path = make_model("yolo")
    with pytest.raises(ConfigError, match=r"no manifest.*MANIFEST\.md") as info:
        OnnxBackend(onnx_spec(path, "detect"), OnnxOptions())
    assert str(path) in str(info.value)


def test_invalid_embedded_manifest_names_the_field(make_model, toy_manifest, onnx_spec):
    bad = toy_manifest("yolo").model_copy(update={"labels": []})  # skips validation on purpose
    with pytest.raises(ConfigError, match="labels"):
        OnnxBackend(onnx_spec(make_model("yolo", bad), "detect"), OnnxOptions())


# ------------------------------------------------------------------------------- failures


def test_missing_model_file(tmp_path, onnx_spec):
    with pytest.raises(ConfigError, match="does not exist.*edgefmp export"):
        OnnxBackend(onnx_spec(tmp_path / "nope.onnx", "detect"), OnnxOptions())


def test_corrupt_model_file(tmp_path, onnx_spec):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ConfigError, match="cannot load this model") as info:
        OnnxBackend(onnx_spec(path, "detect"), OnnxOptions(providers=["CPU"]))
    assert str(path) in str(info.value) and info.value.__cause__ is not None


def test_input_shape_mismatch(make_model, toy_manifest, onnx_spec):
    path = make_model("yolo", toy_manifest("yolo", size=(32, 32)))  # the model takes 64x64
    with pytest.raises(ConfigError, match=r"input 'images' has shape \[1, 3, 64, 64\].*\[1, 3, 32, 32\]"):
        OnnxBackend(onnx_spec(path, "detect"), OnnxOptions())


def test_input_dtype_mismatch(make_model, toy_manifest, onnx_spec):
    path = make_model("classify", toy_manifest("classify", size=(16, 16)), dtype="float16")
    with pytest.raises(ConfigError, match="takes float16.*preprocess.dtype: float16"):
        OnnxBackend(onnx_spec(path, "classify"), OnnxOptions())


def test_function_the_model_cannot_serve(make_model, toy_manifest, onnx_spec):
    with pytest.raises(ConfigError, match="cannot serve 'verify'; it serves: detect, vqa"):
        OnnxBackend(onnx_spec(make_model("yolo", toy_manifest("yolo")), "verify"), OnnxOptions())


def test_run_failure_is_backend_error(make_model, toy_manifest, onnx_spec):
    backend = OnnxBackend(onnx_spec(make_model("yolo", toy_manifest("yolo")), "detect"), OnnxOptions())
    with pytest.raises(BackendError, match="onnxruntime failed") as info:
        backend.run(np.zeros((1, 3, 8, 8), np.float32))
    assert info.value.__cause__ is not None
    backend.close()
    assert not backend.available()
    with pytest.raises(BackendError, match="closed"):
        backend.infer(DetectRequest(np.zeros((8, 8, 3), np.uint8), ("a",)))


# ------------------------------------------------------------------------------ providers


def test_provider_override_and_fallback(make_model, toy_manifest, onnx_spec, caplog):
    path = make_model("yolo", toy_manifest("yolo"))
    backend = OnnxBackend(onnx_spec(path, "detect"), OnnxOptions(providers=["cpu"], intra_op_threads=1))
    assert backend.providers == ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="edgefmp.backends.providers"):
        fallback = OnnxBackend(onnx_spec(path, "detect"), OnnxOptions(providers=["TensorRT", "CUDA"]))
    assert fallback.providers == ["CPUExecutionProvider"]
    assert "not available on this machine" in caplog.text


def test_unknown_provider_lists_real_ones(make_model, toy_manifest, onnx_spec):
    path = make_model("yolo", toy_manifest("yolo"))
    with pytest.raises(ConfigError, match=r"options.providers: unknown execution provider 'CUDNN'.*CUDA"):
        OnnxBackend(onnx_spec(path, "detect"), OnnxOptions(providers=["CUDNN"]))


# ------------------------------------------------------------------------ through catalogs


def test_catalog_opens_and_warms_up(make_model, toy_manifest):
    path = make_model("yolo", toy_manifest("yolo"))
    data = {
        "functions": {
            "detect": [
                {"name": "toy", "kind": "onnx", "model": path.name, "options": {"providers": ["CPU"], "warmup_runs": 2}}
            ]
        }
    }
    spec = parse_catalog(data, "catalog.yaml", Path(path.parent))
    with Catalog.open(spec) as catalog:
        backend = catalog.backends("detect")[0]
        assert backend.describe()["manifest"] == "toy-yolo"
        assert len(backend.infer(DetectRequest(_box_image(64, 64, (8, 8, 40, 30)), ("a",)))) == 1


def test_catalog_rejects_a_typo_in_options(tmp_path):
    data = {
        "functions": {"detect": [{"name": "toy", "kind": "onnx", "model": "m.onnx", "options": {"intra_threads": 2}}]}
    }
    with pytest.raises(ConfigError, match="options.intra_threads"):
        parse_catalog(data, "catalog.yaml", tmp_path)
