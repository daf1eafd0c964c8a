"""TensorRT logic that runs without a GPU: naming, profiles, caches, sidecar, clear errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.manifest import Manifest, TensorSpec, parse_manifest, write_sidecar
from edgefmp.errors import ExportError
from edgefmp.export.tensorrt import (
    ENGINE_FILE,
    CalibrationBatches,
    CalibrationCache,
    EngineConfig,
    Profile,
    check_engine_precision,
    engine_folder_name,
    engine_manifest,
    import_tensorrt,
    ort_tensorrt_providers,
    profiles_for,
)

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_engine_naming() -> None:
    assert engine_folder_name("s-fp16") == "s-fp16-trt"
    assert ENGINE_FILE == "model.plan"  # what Triton's tensorrt_plan backend loads by default


def test_profiles_for_dynamic_axes() -> None:
    inputs = [TensorSpec(name="images", shape=["batch", 3, 64, 64]), TensorSpec(name="fixed", shape=[1, 4])]
    profiles = profiles_for(inputs, max_batch=4)
    assert profiles == {"images": Profile((1, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64))}
    seq = profiles_for([TensorSpec(name="ids", shape=["batch", "seq"], dtype="int64")], {"ids": np.zeros((1, 7))})
    assert seq["ids"].max == (8, 7)


def test_calibration_cache_roundtrip(tmp_path: Path) -> None:
    cache = CalibrationCache(tmp_path / "calib" / "int8.cache")
    assert cache.read() is None
    cache.write(b"TRT-8600-EntropyCalibration2\nimages: 3c010a14\n")
    assert cache.read() is not None and cache.read().startswith(b"TRT")  # type: ignore[union-attr]


def test_calibration_batches() -> None:
    feeds = [{"images": np.full((1, 3, 2, 2), i, np.float32)} for i in range(5)]
    batches = list(CalibrationBatches(feeds, batch_size=2))
    assert len(batches) == 2 and batches[0]["images"].shape == (2, 3, 2, 2)
    assert batches[0]["images"].flags["C_CONTIGUOUS"]
    with pytest.raises(ExportError, match="empty"):
        CalibrationBatches([])


def test_engine_sidecar_records_device(tmp_path: Path) -> None:
    engine = tmp_path / ENGINE_FILE
    engine.write_bytes(b"plan")
    base = Manifest(
        name="m-fp16",
        function="detect",
        task="object-detection",
        sha256="ab" * 32,
        inputs=[TensorSpec(name="images", shape=["batch", 3, 32, 32])],
    )
    config = EngineConfig(
        precision="fp16",
        profiles=profiles_for(base.inputs),
        timing_cache=tmp_path / "timing.cache",
        calibration_cache=tmp_path / "int8.cache",
    )
    manifest = engine_manifest(base, engine, config, "10.3.0", {"gpu": "NVIDIA Orin", "compute_capability": "8.7"})
    path = write_sidecar(manifest, engine)
    loaded = parse_manifest(json.loads(path.read_text()), str(path))
    trt = loaded.extra["tensorrt"]
    assert trt["version"] == "10.3.0" and trt["compute_capability"] == "8.7" and trt["gpu"] == "NVIDIA Orin"
    assert trt["profiles"]["images"]["max"][0] == 8 and trt["onnx_sha256"] == "ab" * 32
    assert loaded.tool_versions["tensorrt"] == "10.3.0" and loaded.sha256 != base.sha256


def test_int8_dynamic_is_refused() -> None:
    with pytest.raises(ExportError, match="int8-dynamic"):
        check_engine_precision("int8-dynamic")
    check_engine_precision("fp16")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_clear_error_without_tensorrt() -> None:
    with pytest.raises(ExportError, match="TensorRT is not installed.*edgefmp\\[trt\\]"):
        import_tensorrt()


def test_ort_tensorrt_route(tmp_path: Path) -> None:
    providers = ort_tensorrt_providers(tmp_path, fp16=True)
    name, options = providers[0]
    assert name == "TensorrtExecutionProvider" and options["trt_engine_cache_enable"]
    assert options["trt_engine_cache_path"] == str(tmp_path) and providers[-1] == "CPUExecutionProvider"
