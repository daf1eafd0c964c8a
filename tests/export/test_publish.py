from __future__ import annotations

from pathlib import Path

from edgefmp.backends.manifest import Manifest, read_sidecar
from edgefmp.export.flops import estimate_flops
from edgefmp.export.publish import embed_manifest, onnx_file_sha256, onnx_params, tool_versions


def test_embed_keeps_hash_verifiable(tiny_onnx: Path, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "m.onnx"
    shutil.copyfile(tiny_onnx, model)
    before = onnx_file_sha256(model)
    written = embed_manifest(model, Manifest(name="m", function="classify", task="custom"))
    assert written.sha256 == before == onnx_file_sha256(model)  # the embedded manifest is left out
    assert read_sidecar(model) == written
    again = embed_manifest(model, written)  # re-embedding replaces, never duplicates
    assert again.sha256 == before


def test_params_flops_versions(tiny_onnx: Path) -> None:
    assert onnx_params(tiny_onnx) == 3 * 8 * 9 + 8 + 8 * 8 * 9 + 8 + 8 * 3 + 3
    flops = estimate_flops(tiny_onnx)
    assert flops is not None and flops > 2 * 8 * 16 * 16 * 27  # first conv alone
    assert "onnxruntime" in tool_versions()
