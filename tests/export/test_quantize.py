from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.manifest import Preprocess
from edgefmp.errors import ExportError
from edgefmp.export.calibration import feeds_sha256, image_feeds
from edgefmp.export.quantize import (
    StaticQuantConfig,
    convert_fp16,
    quantize_dynamic_int8,
    quantize_images_static_int8,
    quantize_static_int8,
)
from edgefmp.export.verify import default_tolerance, run_onnx, verify_onnx

PRE = Preprocess(size=(32, 32))


def _images(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_int8_methods(tiny_onnx: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / f"{method}.onnx"
    calib = quantize_images_static_int8(tiny_onnx, out, _images(), PRE, StaticQuantConfig(method=method))  # type: ignore[arg-type]
    assert calib.method == method and calib.samples == 6 and len(calib.sha256) == 64
    feeds = image_feeds(_images(3), PRE, "images")
    report = verify_onnx(out, feeds, run_onnx(tiny_onnx, feeds), tolerance=default_tolerance("int8-static"))
    assert report.passed, report.reason


def test_calibration_hash_is_stable() -> None:
    feeds = image_feeds(_images(), PRE, "images")
    assert feeds_sha256(feeds) == feeds_sha256(image_feeds(_images(), PRE, "images"))
    assert feeds_sha256(feeds) != feeds_sha256(feeds[:-1])


def test_fp16_and_dynamic(tiny_onnx: Path, tmp_path: Path) -> None:
    feeds = image_feeds(_images(2), PRE, "images")
    ref = run_onnx(tiny_onnx, feeds)
    for precision, fn in (("fp16", convert_fp16), ("int8-dynamic", quantize_dynamic_int8)):
        out = fn(tiny_onnx, tmp_path / f"{precision}.onnx")
        report = verify_onnx(out, feeds, ref, tolerance=default_tolerance(precision))
        assert report.passed, (precision, report.reason)


def test_fp16_without_io_casts_takes_half_inputs(tiny_onnx: Path, tmp_path: Path) -> None:
    out = convert_fp16(tiny_onnx, tmp_path / "half.onnx", keep_io_types=False)
    feeds = image_feeds(_images(1), PRE, "images")
    assert verify_onnx(out, feeds, run_onnx(tiny_onnx, feeds), tolerance=default_tolerance("fp16")).passed


def test_empty_calibration_set_is_an_error(tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="calibration set is empty"):
        quantize_static_int8(tiny_onnx, tmp_path / "x.onnx", [])


def test_missing_model_and_bad_method(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        convert_fp16(tmp_path / "nope.onnx", tmp_path / "out.onnx")
    with pytest.raises(ExportError, match="minmax, entropy, percentile"):
        StaticQuantConfig(method="kl")  # type: ignore[arg-type]
