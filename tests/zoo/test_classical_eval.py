"""The zoo evaluation of the OpenCV tier (shapes-cv): full-resolution scenes, its rows, and the
catalog and report that use them. The backend is the real ClassicalBackend (OpenCV only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgefmp.backends.catalog import BackendSpec, load_catalog
from edgefmp.scenes import load_shape_pool
from edgefmp.zoo.catalog import CLASSICAL, accuracy_priors, write_catalog
from edgefmp.zoo.data import FRAME_HW, jittered_crop, make_sets
from edgefmp.zoo.evaluate import EvalConfig, evaluate_classical, margin_crop
from edgefmp.zoo.report import accuracy_tables, choose_precision, summarise, table_order
from edgefmp.zoo.specs import DET_INPUT_HW


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    return load_shape_pool("test", limit=300)


@pytest.fixture(scope="module")
def classical_rows(pool) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    cfg = EvalConfig(n_scenes=16, kinds=("blur",), severities=(5,))
    return evaluate_classical(BackendSpec.model_validate(CLASSICAL), pool, cfg)


def test_full_resolution_sets_are_the_models_scenes(pool) -> None:  # type: ignore[no-untyped-def]
    """Same seed and condition at FRAME_HW: the same scenes, the models' inputs are these frames
    resized, and boxes scale with the frame."""
    small, attr_small = make_sets(pool, 6, 7, DET_INPUT_HW, ("noise", 3), jitter=False)
    full, attr_full = make_sets(pool, 6, 7, FRAME_HW, ("noise", 3), jitter=False)
    assert full.images.shape[1:3] == FRAME_HW
    np.testing.assert_array_equal(attr_small.images, attr_full.images)
    scale = np.asarray([DET_INPUT_HW[1] / FRAME_HW[1], DET_INPUT_HW[0] / FRAME_HW[0]] * 2, np.float32)
    for i in range(len(full)):
        resized = cv2.resize(full.images[i], (DET_INPUT_HW[1], DET_INPUT_HW[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resized, small.images[i])
        np.testing.assert_allclose(full.boxes[i] * scale, small.boxes[i], atol=1e-4)
        np.testing.assert_array_equal(full.shapes[i], small.shapes[i])
        np.testing.assert_array_equal(full.colors[i], small.colors[i])


def test_margin_crop_is_the_evaluation_crop_unresized(pool) -> None:  # type: ignore[no-untyped-def]
    """The OpenCV tier's crops: the same pixels as attrnet's 64x64 crops, at the frame's size."""
    det, attr = make_sets(pool, 4, 3, FRAME_HW, None, jitter=False)
    crops = [margin_crop(det.images[i], box) for i in range(len(det)) for box in det.boxes[i]]
    assert len(crops) == len(attr)
    rng = np.random.default_rng(0)
    for crop, expected in zip(crops, attr.images, strict=True):
        assert crop.shape[0] < 100 and crop.shape[1] < 100  # an object with its margin, not the frame
        # attrnet's crop (make_sets: jittered_crop without jitter) is this crop resized to 64x64
        np.testing.assert_array_equal(cv2.resize(crop, (64, 64), interpolation=cv2.INTER_LINEAR), expected)
    frame, box = det.images[0], det.boxes[0][0]
    np.testing.assert_array_equal(
        cv2.resize(margin_crop(frame, box), (64, 64), interpolation=cv2.INTER_LINEAR),
        jittered_crop(frame, box, rng, jitter=False),
    )


def test_classical_rows_clean_and_corrupted(classical_rows) -> None:  # type: ignore[no-untyped-def]
    assert [(r["task"], r["condition"]) for r in classical_rows] == [
        ("detect", "clean"),
        ("attributes", "clean"),
        ("detect", "blur-5"),
        ("attributes", "blur-5"),
    ]
    for row in classical_rows:
        assert "error" not in row, row
        assert row["model"] == "shapes-cv" and row["precision"] == "classical"
        keys = ("map50", "f1") if row["task"] == "detect" else ("acc", "color_acc", "shape_acc")
        for key in keys:
            assert 0.0 <= row[key] <= 1.0, (key, row)
    by = {(r["task"], r["condition"]): r for r in classical_rows}
    # On clean frames the OpenCV tier finds most shapes with the right colour and shape...
    assert by["detect", "clean"]["f1"] >= 0.6 and by["attributes", "clean"]["acc"] >= 0.6
    # ...and heavy blur costs it a lot (measured at 16 scenes: f1 0.93 -> 0.42, acc 0.93 -> 0.05).
    assert by["detect", "blur-5"]["f1"] < by["detect", "clean"]["f1"] - 0.1
    assert by["attributes", "blur-5"]["acc"] < by["attributes", "clean"]["acc"] - 0.1


def _rows() -> list[dict[str, Any]]:
    """Rows as the evaluation writes them: two zoo models at both precisions, and shapes-cv."""
    rows: list[dict[str, Any]] = []
    for cond, f1, acc in (("clean", 0.8, 0.5), ("blur-5", 0.6, 0.3)):
        rows.append({"model": "shapes-cv", "precision": "classical", "task": "detect", "condition": cond,
                     "map50": f1 + 0.05, "f1": f1})  # fmt: skip
        rows.append({"model": "shapes-cv", "precision": "classical", "task": "attributes", "condition": cond,
                     "acc": acc, "color_acc": acc, "shape_acc": acc})  # fmt: skip
        for precision, delta in (("fp32", 0.0), ("int8", -0.002)):
            rows.append({"model": "shapedet-s", "precision": precision, "task": "detect", "condition": cond,
                         "map50": 0.9 + delta, "f1": 0.9 + delta})  # fmt: skip
            rows.append({"model": "attrnet-s", "precision": precision, "task": "attributes", "condition": cond,
                         "acc": 0.7 + delta, "color_acc": 0.8, "shape_acc": 0.8})  # fmt: skip
    return rows


def test_accuracy_priors_keys() -> None:
    priors = accuracy_priors(_rows())
    assert set(priors) == {
        "shapes-cv/detect",
        "shapes-cv/attributes",
        "shapedet-s/model.onnx",
        "shapedet-s/model.int8.onnx",
        "attrnet-s/model.onnx",
        "attrnet-s/model.int8.onnx",
    }
    assert priors["shapes-cv/detect"] == pytest.approx(0.7)  # F1, not mAP
    assert priors["shapes-cv/attributes"] == pytest.approx(0.4)
    assert priors["shapedet-s/model.int8.onnx"] == pytest.approx(0.898)


def test_catalog_writer_gives_shapes_cv_its_accuracy(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, accuracy=accuracy_priors(_rows()))
    spec = load_catalog(path)
    shapes_cv = {fn: next(b for b in backends if b.name == "shapes-cv") for fn, backends in spec.functions.items()}
    assert set(shapes_cv) == {"detect", "verify", "classify", "vqa", "answer"}
    assert shapes_cv["detect"].accuracy == pytest.approx(0.7)
    for fn in ("verify", "classify", "vqa"):
        assert shapes_cv[fn].accuracy == pytest.approx(0.4)
    # Whole-frame answers: the detectors' entries carry no accuracy, nor does the OpenCV tier's.
    assert all(b.accuracy is None for b in spec.functions["answer"])
    assert shapes_cv["detect"].kind == "classical" and shapes_cv["detect"].options == {"detector": "shapes"}
    # Without an evaluation, no figure is guessed.
    bare = load_catalog(write_catalog(tmp_path))
    assert all(b.accuracy is None for backends in bare.functions.values() for b in backends)


def test_report_shows_shapes_cv_and_precision_choice_ignores_it() -> None:
    rows = _rows()
    summary = summarise(rows)
    assert ("shapes-cv/detect", "classical") in summary and ("shapes-cv/attributes", "classical") in summary
    assert summary["shapes-cv/detect", "classical"]["clean"] == pytest.approx(0.85)  # mAP in the tables
    assert summary["shapes-cv/attributes", "classical"]["clean"] == pytest.approx(0.5)
    latency = {
        f"{name}/{precision}/{t}": {"p50_ms": ms}
        for name in ("shapedet-s", "attrnet-s")
        for precision, ms in (("fp32", 1.0), ("int8", 0.5))
        for t in (1, 2)
    }
    names = ["shapedet-s", "attrnet-s"]
    without = [r for r in rows if r["precision"] != "classical"]
    assert choose_precision(summary, latency, names) == choose_precision(summarise(without), latency, names)
    assert choose_precision(summary, latency, names) == {"shapedet-s": "int8", "attrnet-s": "int8"}
    order = table_order(summary)  # the OpenCV tier first among each task's backends, as in the catalog
    assert order[:2] == ["shapes-cv/detect", "shapedet-s"]
    assert order[order.index("attrnet-s") - 1] == "shapes-cv/attributes"
    table = accuracy_tables(summary, order)
    assert any(line.startswith("| shapes-cv/detect | classical | 85.0 |") for line in table)
    assert sum(line.startswith("| shapedet-s |") for line in table) == 2
