"""TensorRTBackend: the logic that runs everywhere (manifest, files, missing TensorRT), and the
engine path where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.manifest import write_sidecar
from edgefmp.backends.tensorrt import TensorRTBackend, TensorRTOptions, read_plan_manifest
from edgefmp.errors import BackendUnavailable, ConfigError
from edgefmp.results import DetectRequest

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _spec(path: Path, function: str = "detect") -> BackendSpec:
    return BackendSpec(name="trt", kind="tensorrt", function=function, model=str(path))


@pytest.fixture
def plan(tmp_path: Path, toy_manifest) -> Path:
    path = tmp_path / "model.plan"
    path.write_bytes(b"not a real engine")
    write_sidecar(toy_manifest("yolo"), path)
    return path


def test_reads_the_sidecar_manifest(plan):
    path, manifest = read_plan_manifest(_spec(plan), TensorRTOptions(score_threshold=0.7))
    assert path == plan and manifest.name == "toy-yolo"
    assert manifest.postprocess.score_threshold == 0.7  # the catalog's override


def test_plan_without_sidecar(tmp_path):
    path = tmp_path / "model.plan"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"needs a sidecar manifest \(model.plan.manifest.json"):
        TensorRTBackend(_spec(path), TensorRTOptions())


def test_missing_plan(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TensorRTBackend(_spec(tmp_path / "missing.plan"), TensorRTOptions())


def test_function_the_plan_cannot_serve(plan):
    with pytest.raises(ConfigError, match="cannot serve 'classify'"):
        TensorRTBackend(_spec(plan, "classify"), TensorRTOptions())


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_without_tensorrt_says_how_to_install(plan, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even if a stub lies around
    with pytest.raises(BackendUnavailable, match=r"pip install edgefmp\[trt\] on a machine with TensorRT") as info:
        TensorRTBackend(_spec(plan), TensorRTOptions())
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRT, reason="needs TensorRT and an NVIDIA GPU (pip install edgefmp[trt])")
def test_engine_matches_onnx(make_model, toy_manifest, tmp_path):  # pragma: no cover - GPU only
    import tensorrt as trt

    onnx_path = make_model("yolo", toy_manifest("yolo"))
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    engine = builder.build_serialized_network(network, builder.create_builder_config())
    plan = tmp_path / "model.plan"
    plan.write_bytes(bytes(engine))
    write_sidecar(toy_manifest("yolo"), plan)
    backend = TensorRTBackend(_spec(plan), TensorRTOptions())
    try:
        img = np.zeros((120, 200, 3), np.uint8)
        img[20:50, 30:90] = 255
        result = backend.infer(DetectRequest(img, ("a",)))
        assert result.labels == ["a"]
        np.testing.assert_allclose(result.boxes[0], (30, 20, 90, 50), atol=200 / 64 + 0.5)
    finally:
        backend.close()
