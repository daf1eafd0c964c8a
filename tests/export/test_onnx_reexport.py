"""`onnx:` re-exports: an edgefmp variant re-issued at other precisions takes its image shape from
its own manifest; a file with unresolvable dynamic axes asks for --input-shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.backends.manifest import parse_manifest
from edgefmp.export.pipeline import ExportJob, SizeSpec, run_job
from edgefmp.export.sources import SourceOptions
from tests.export.conftest import export_classifier

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")


@pytest.fixture(scope="module")
def vit_fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An hf: ViT export (dynamic batch, channels, height, width) with its manifest."""
    from tests.export.tiny_hf import vit

    root = tmp_path_factory.mktemp("vit")
    folder = vit(root / "src")
    options = SourceOptions(task="image-classification", name="vit-b16")
    (result,) = run_job(ExportJob(sizes=[SizeSpec("b16", f"hf:{folder}", options)], precisions=["fp32"], out=root))
    assert result.status == "passed" and result.path is not None, result.reason
    return result.path


@pytest.mark.parametrize("manifest_at", ["sidecar", "embedded"])
def test_reexport_takes_the_image_shape_from_the_manifest(
    vit_fp32: Path, tmp_path: Path, frames_dir: Path, manifest_at: str
) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(vit_fp32.read_bytes())
    if manifest_at == "sidecar":
        sidecar = vit_fp32.with_name(vit_fp32.name + ".manifest.json")
        source.with_name(source.name + ".manifest.json").write_text(sidecar.read_text())
    job = ExportJob(
        sizes=[SizeSpec("", f"onnx:{source}", SourceOptions())],
        precisions=["fp16", "int8"],
        out=tmp_path / "out",
        calib=frames_dir,
        calib_samples=4,
    )
    results = run_job(job)
    assert [r.status for r in results] == ["passed", "passed"], [r.reason for r in results]
    manifest = parse_manifest((tmp_path / "out" / "int8-static" / "model.onnx.manifest.json").read_text(), "m")
    assert manifest.labels == ["cat", "dog", "car"] and manifest.calibration is not None
    assert manifest.name == "vit-b16-int8-static"  # the old variant's `-fp32` is not kept


def _fully_dynamic_classifier(path: Path) -> Path:
    return export_classifier(path, {0: "batch", 1: "channels", 2: "height", 3: "width"})


def test_unresolvable_dynamic_axes_ask_for_input_shape(tmp_path: Path) -> None:
    model = _fully_dynamic_classifier(tmp_path / "dyn.onnx")
    options = SourceOptions(function="classify")
    job = ExportJob(sizes=[SizeSpec("", f"onnx:{model}", options)], precisions=["fp32"], out=tmp_path / "a")
    (result,) = run_job(job)
    assert result.status == "failed" and "images[1] channels" in result.reason
    assert "--input-shape" in result.reason, result.reason
    for given in (
        SourceOptions(function="classify", input_shapes=[[1, 3, 32, 32]]),
        SourceOptions(function="classify", image_size=(32, 32)),
    ):
        job = ExportJob(sizes=[SizeSpec("", f"onnx:{model}", given)], precisions=["fp32"], out=tmp_path / "b")
        (result,) = run_job(job)
        assert result.status == "passed", result.reason
