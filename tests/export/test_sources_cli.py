"""torch: and onnx: sources through the `export` command: matrix, manifests, OnnxBackend parity, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgefmp.backends.manifest import ONNX_METADATA_KEY, parse_manifest
from edgefmp.export.publish import onnx_file_sha256

pytest.importorskip("torch")


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["export", *args], env={"COLUMNS": "1000"})
    return result.exit_code, result.output


def _backend(path: Path, function: str) -> object:
    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.onnx import OnnxBackend, OnnxOptions

    return OnnxBackend(
        BackendSpec(name="t", kind="onnx", function=function, model=str(path)), OnnxOptions(providers=["CPU"])
    )


def test_torch_matrix_manifest_and_backend_parity(app: typer.Typer, tmp_path: Path, frames_dir: Path) -> None:
    import torch

    from edgefmp.backends import processing
    from edgefmp.results import ClassifyRequest
    from tests.export.tiny_nets import build_classifier

    code, output = _run(
        app,
        "torch:tests.export.tiny_nets:build_classifier",
        "--input-shape",
        "1x3x32x32",
        "--function",
        "classify",
        "--labels",
        "cat,dog,car",
        "--precision",
        "fp32,fp16,int8",
        "--batch",
        "1,dynamic",
        "--calib",
        str(frames_dir),
        "--holdout",
        str(frames_dir),
        "--calib-method",
        "entropy",
        "--out",
        str(tmp_path),
    )
    assert code == 0, output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["fp16", "fp16-b1", "fp32", "fp32-b1", "int8-static", "int8-static-b1"]
    assert "edgefmp profile" in output

    model = tmp_path / "int8-static" / "model.onnx"
    sidecar = parse_manifest(json.loads((tmp_path / "int8-static" / "model.onnx.manifest.json").read_text()), "sidecar")
    import onnx

    embedded = {p.key: p.value for p in onnx.load(str(model)).metadata_props}[ONNX_METADATA_KEY]
    assert parse_manifest(embedded, "embedded") == sidecar
    assert sidecar.precision == "int8-static" and sidecar.calibration is not None
    assert sidecar.calibration.method == "entropy" and sidecar.calibration.samples == 6
    assert sidecar.verification["status"] == "passed" and sidecar.verification["metric"]["name"].startswith("top1")
    assert sidecar.sha256 == onnx_file_sha256(model)
    assert sidecar.flops and sidecar.params and "onnxruntime" in sidecar.tool_versions

    # parity through the runtime's OnnxBackend: raw outputs and the decoded answer
    image = np.random.default_rng(3).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    backend = _backend(tmp_path / "fp32" / "model.onnx", "classify")
    tensor, resize = processing.preprocess(image, backend.manifest.preprocess)  # type: ignore[attr-defined]
    with torch.no_grad():
        expected = build_classifier()(torch.from_numpy(tensor)).numpy()
    got = backend.run(tensor)  # type: ignore[attr-defined]
    np.testing.assert_allclose(got["output"], expected, atol=1e-4, rtol=1e-3)
    request = ClassifyRequest(image=image, options=("cat", "dog", "car"))
    answer = backend.infer(request)  # type: ignore[attr-defined]
    assert answer.text == processing.postprocess(backend.manifest, {"output": expected}, request, resize).text  # type: ignore[attr-defined]


def test_onnx_source_requantizes_with_its_manifest(app: typer.Typer, tmp_path: Path, frames_dir: Path) -> None:
    code, output = _run(
        app,
        "torch:tests.export.tiny_nets:build_detector",
        "--input-shape",
        "1x3x32x32",
        "--function",
        "detect",
        "--labels",
        "person,car",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, output
    source = tmp_path / "a" / "fp32" / "model.onnx"
    code, output = _run(
        app, f"onnx:{source}", "--precision", "fp32,int8", "--calib", str(frames_dir), "--out", str(tmp_path / "b")
    )
    assert code == 0, output
    manifest = parse_manifest((tmp_path / "b" / "int8-static" / "model.onnx.manifest.json").read_text(), "m")
    assert manifest.labels == ["person", "car"] and manifest.source == f"onnx:{source}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["onnx:/no/such.onnx"], "no such file"),
        (
            ["torch:tests.export.tiny_nets:build_classifier", "--input-shape", "1x3x32", "--function", "classify"],
            "check --input-shape",
        ),
        (
            ["torch:tests.export.tiny_nets:not_a_module", "--input-shape", "1x3x32x32", "--function", "classify"],
            "not a torch.nn.Module",
        ),
        (
            [
                "torch:tests.export.tiny_nets:build_classifier",
                "--input-shape",
                "1x3x32x32",
                "--function",
                "classify",
                "--precision",
                "int8-static",
            ],
            "needs calibration frames",
        ),
        (
            ["torch:tests.export.nothing:f", "--input-shape", "1x3x32x32", "--function", "classify"],
            "cannot import module",
        ),
    ],
)
def test_bad_input_fails_the_variant_with_a_reason(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    code, output = _run(app, *args, "--out", str(tmp_path))
    assert code == 1
    assert message in " ".join(output.split())


def test_failed_variant_does_not_stop_others_and_allow_failed(app: typer.Typer, tmp_path: Path) -> None:
    args = [
        "torch:tests.export.tiny_nets:build_classifier",
        "--input-shape",
        "1x3x32x32",
        "--function",
        "classify",
        "--precision",
        "fp32,int8-static",
        "--out",
        str(tmp_path),
    ]
    code, output = _run(app, *args)
    assert code == 1 and (tmp_path / "fp32" / "model.onnx").is_file()
    code, _ = _run(app, *args, "--allow-failed")
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hf:x", "--calib", "/no/such/frames"], "--calib"),
        (["hf:./no/such/model", "--task", "object-detection"], "no such model folder"),
        (["onnx:m.onnx", "--precision", "fp8"], "unknown precision"),
        (["weird:thing"], "unknown model source 'weird'"),
        (["onnx:m.onnx", "--to", "tensorrt"], "TensorRT is not installed"),
        ([], "give a MODEL"),
    ],
)
def test_option_errors_exit_2(app: typer.Typer, tmp_path: Path, args: list[str], message: str) -> None:
    pytest.importorskip("torch")
    if "tensorrt" in args:
        try:
            import tensorrt  # noqa: F401

            pytest.skip("TensorRT is installed here")
        except ImportError:
            pass
    code, output = _run(app, *args, "--out", str(tmp_path))
    assert code == 2 and message in " ".join(output.split())


def test_corrupt_onnx_source(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    code, output = _run(app, f"onnx:{bad}", "--function", "classify", "--out", str(tmp_path / "o"))
    assert code == 1 and "bad.onnx" in output
