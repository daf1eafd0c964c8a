from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.manifest import TensorSpec
from edgefmp.errors import ExportError
from edgefmp.export.verify import (
    Tolerance,
    average_precision,
    check_onnx,
    run_onnx,
    text_match,
    top1_accuracy,
    verify_onnx,
)


def _feeds(n: int = 2) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"images": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(n)]


def test_fp32_parity_passes_and_records(tiny_onnx: Path) -> None:
    feeds = _feeds()
    report = verify_onnx(
        tiny_onnx, feeds, run_onnx(tiny_onnx, feeds), expected_outputs=[TensorSpec(name="logits", shape=["batch", 3])]
    )
    assert report.passed
    record = report.to_dict()
    assert record["status"] == "passed" and record["checker"] == "ok"
    assert record["outputs"]["logits"]["max_abs_diff"] == 0.0


def test_value_mismatch_fails_with_reason(tiny_onnx: Path) -> None:
    feeds = _feeds()
    wrong = [{"logits": v["logits"] + 1.0} for v in run_onnx(tiny_onnx, feeds)]
    report = verify_onnx(tiny_onnx, feeds, wrong, tolerance=Tolerance(atol=1e-4))
    assert not report.passed and "exceeds atol" in report.reason


def test_wrong_names_and_shapes_fail(tiny_onnx: Path) -> None:
    report = verify_onnx(tiny_onnx, _feeds(1), expected_outputs=[TensorSpec(name="scores", shape=[1, 7])])
    assert not report.passed and "differ from the expected" in report.reason


def test_corrupt_onnx_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ExportError, match="corrupt.onnx"):
        check_onnx(bad)
    report = verify_onnx(bad, _feeds(1))
    assert report.checker == "failed" and not report.passed


def test_metric_below_threshold_fails(tiny_onnx: Path) -> None:
    feeds = _feeds(3)
    labels = [np.array([99])] * 3  # impossible class: accuracy 0
    report = verify_onnx(
        tiny_onnx, feeds, metric=top1_accuracy("logits", 0.5), metric_feeds=feeds, metric_reference=labels
    )
    assert report.metric is not None and report.metric["value"] == 0.0 and not report.passed


def test_metrics() -> None:
    out = [{"logits": np.array([[0.1, 0.9]])}, {"logits": np.array([[0.8, 0.2]])}]
    assert top1_accuracy("logits").compute(out, [1, 1]) == 0.5
    assert top1_accuracy("logits").compute(out, out) == 1.0
    decode = lambda o: "ab" if o["logits"][0, 1] > 0.5 else "cd"  # noqa: E731
    assert text_match(decode).compute(out, ["ab", "ab"]) == 0.5
    box = np.array([[0, 0, 10, 10]], float)
    assert average_precision([(box, np.array([0.9]), np.array([0]))], [(box, np.array([0]))]) == 1.0
    assert average_precision([(box + 50, np.array([0.9]), np.array([0]))], [(box, np.array([0]))]) == 0.0
