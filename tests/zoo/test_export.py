"""Export: ONNX parity with torch, manifests embedded and beside, int8 that loads and runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgefmp.backends.catalog import BackendSpec  # noqa: E402
from edgefmp.backends.manifest import ONNX_METADATA_KEY, parse_manifest, read_sidecar  # noqa: E402
from edgefmp.backends.onnx import OnnxBackend, OnnxOptions  # noqa: E402
from edgefmp.errors import ExportError  # noqa: E402
from edgefmp.results import DetectRequest, VerifyRequest  # noqa: E402
from edgefmp.zoo.export import (  # noqa: E402
    DET_LABELS,
    base_manifest,
    export_fp32,
    feeds_of,
    graph_facts,
    publish,
    quantize,
)
from edgefmp.zoo.nets import AttrNet, DetExport, ShapeDet  # noqa: E402
from edgefmp.zoo.specs import ZooModel  # noqa: E402

pytestmark = pytest.mark.torch


def _export(tmp_path: Path, family: str) -> tuple[ZooModel, Path, Path]:
    torch.manual_seed(0)
    model = ZooModel(family, "t", 4, 1, robust=False)  # type: ignore[arg-type]
    module = DetExport(ShapeDet(model.widths, (96, 128))) if family == "shapedet" else AttrNet(model.widths)
    module.eval()
    hw = (96, 128) if family == "shapedet" else (64, 64)
    images = np.random.default_rng(0).integers(0, 256, (6, *hw, 3), dtype=np.uint8)
    fp32, int8 = tmp_path / model.name / "model.onnx", tmp_path / model.name / "model.int8.onnx"
    export_fp32(module, model, fp32)
    params, flops = graph_facts(fp32, model)
    manifest = base_manifest(model, {}).model_copy(update={"params": params})
    feeds = feeds_of(images[:3])
    with torch.no_grad():
        ref = [{manifest.outputs[0].name: module(torch.from_numpy(f["images"])).numpy()} for f in feeds]
    written = publish(fp32, manifest, "fp32", flops, feeds, ref)
    assert written.verification["status"] == "passed"
    calib = quantize(fp32, int8, images, "minmax", "qdq")
    publish(int8, manifest, "int8-static", flops, feeds, ref, calibration=calib)
    return model, fp32, int8


@pytest.mark.parametrize("family", ["shapedet", "attrnet"])
def test_export_parity_and_manifests(tmp_path: Path, family: str) -> None:
    model, fp32, int8 = _export(tmp_path, family)
    for path, precision in ((fp32, "fp32"), (int8, "int8-static")):
        proto = onnx.load(str(path))
        meta = {p.key: p.value for p in proto.metadata_props}
        embedded = parse_manifest(meta[ONNX_METADATA_KEY], str(path))
        sidecar = read_sidecar(path)
        assert sidecar is not None and sidecar == embedded
        assert embedded.precision == precision and embedded.name == model.name
        assert embedded.flops and embedded.params and len(embedded.sha256) == 64
        assert embedded.verification["status"] == "passed"
    assert read_sidecar(int8).calibration is not None  # type: ignore[union-attr]


def test_runtime_backend_runs_the_exports(tmp_path: Path) -> None:
    _, det_fp32, det_int8 = _export(tmp_path, "shapedet")
    image = np.full((240, 320, 3), 128, np.uint8)
    for path in (det_fp32, det_int8):
        spec = BackendSpec(name="t", kind="onnx", function="detect", model=str(path))
        backend = OnnxBackend(spec, OnnxOptions(providers=["CPU"], intra_op_threads=1))
        result = backend.infer(DetectRequest(image=image, labels=(DET_LABELS[0],)))
        assert all(label == DET_LABELS[0] for label in result.labels)
        backend.close()
    _, attr_fp32, _ = _export(tmp_path, "attrnet")
    spec = BackendSpec(name="a", kind="onnx", function="verify", model=str(attr_fp32))
    backend = OnnxBackend(spec, OnnxOptions(providers=["CPU"], intra_op_threads=1))
    verdict = backend.infer(VerifyRequest(image=image[:64, :64], subject="circle", property="red"))
    assert verdict.confidence is not None


def test_parity_failure_is_an_export_error(tmp_path: Path) -> None:
    model, fp32, _ = _export(tmp_path, "attrnet")
    manifest = read_sidecar(fp32)
    assert manifest is not None
    feeds = feeds_of(np.zeros((1, 64, 64, 3), np.uint8))
    wrong = [{"logits": np.full((1, 11), 99.0, np.float32)}]
    with pytest.raises(ExportError, match="verification failed"):
        publish(fp32, manifest, "fp32", None, feeds, wrong)
