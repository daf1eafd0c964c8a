"""The zoo build on tiny data: real training, export, int8 quantization and verification.

The int8 check's cosine floor (BuildConfig.int8_min_cosine) picks the outcome without faking it:
1.0 makes the real verification fail (int8 outputs never equal fp32's), -1.0 lets it pass.
`build_zoo` runs once (its data stage loads the shape pool, seconds); other exports call
`export_model` on untrained networks and test-split sets.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefmp.backends.catalog import Catalog, load_catalog  # noqa: E402
from edgefmp.backends.manifest import read_sidecar  # noqa: E402
from edgefmp.errors import ExportError  # noqa: E402
from edgefmp.results import DetectRequest, VerifyRequest  # noqa: E402
from edgefmp.scenes import load_shape_pool  # noqa: E402
from edgefmp.zoo.build import BuildConfig, build_zoo, export_model  # noqa: E402
from edgefmp.zoo.catalog import missing_files, refresh_catalog, write_catalog  # noqa: E402
from edgefmp.zoo.data import AttrSet, DetSet, make_sets  # noqa: E402
from edgefmp.zoo.nets import AttrNet, DetExport, ShapeDet  # noqa: E402
from edgefmp.zoo.report import choose_precision  # noqa: E402
from edgefmp.zoo.specs import DET_INPUT_HW, zoo_model  # noqa: E402

pytestmark = pytest.mark.torch

TINY = BuildConfig(clean_scenes=16, corrupt_scenes=8, test_scenes=8, calib_images=4, step_scale=0.001, threads=1)
FAIL_INT8, PASS_INT8 = replace(TINY, int8_min_cosine=1.0), replace(TINY, int8_min_cosine=-1.0)
STALE = b"int8 file of an earlier build"


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def test_sets() -> tuple[DetSet, AttrSet]:
    return make_sets(load_shape_pool("test", limit=40), 8, 0, DET_INPUT_HW, None, jitter=False)


def _export_untrained(out: Path, name: str, test: tuple[DetSet, AttrSet], cfg: BuildConfig) -> dict[str, Any]:
    """export_model of zoo model `name` with its initial weights, calibrated on `test`'s images."""
    torch.manual_seed(0)
    model = zoo_model(name)
    if model.family == "shapedet":
        module, images = DetExport(ShapeDet(model.widths, DET_INPUT_HW)).eval(), test[0].images
    else:
        module, images = AttrNet(model.widths).eval(), test[1].images
    return export_model(model, module, images, [], out, test, cfg)


@pytest.fixture(scope="module")
def partial_zoo(
    tmp_path_factory: pytest.TempPathFactory, test_sets: tuple[DetSet, AttrSet]
) -> tuple[Path, dict[str, Any], list[str]]:
    """attrnet-s rebuilt over an earlier build's int8 file, with its int8 check failing; then
    shapedet-s with its int8 check passing. Returns (folder, attrnet-s build result, warnings)."""
    out = tmp_path_factory.mktemp("zoo")
    (out / "attrnet-s").mkdir()
    (out / "attrnet-s" / "model.int8.onnx").write_bytes(STALE)
    handler = _Records()
    logging.getLogger("edgefmp.zoo").addHandler(handler)
    try:
        dropped = build_zoo(out, [zoo_model("attrnet-s")], FAIL_INT8)
    finally:
        logging.getLogger("edgefmp.zoo").removeHandler(handler)
    assert _export_untrained(out, "shapedet-s", test_sets, PASS_INT8)["int8"]["status"] == "published"
    return out, dropped, handler.messages


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_int8_failing_verification_is_dropped_not_an_error(partial_zoo) -> None:  # type: ignore[no-untyped-def]
    out, result, warnings = partial_zoo
    int8 = result["models"][0]["int8"]
    assert result["int8_dropped"] == ["attrnet-s"] and int8["status"] == "dropped"
    cosine = int8["min_cosine"]["logits"]
    assert cosine < 1.0 and "cosine similarity" in int8["reason"] and "below 1" in int8["reason"]
    assert any("attrnet-s" in w and "int8" in w and f"{cosine:.4f}" in w for w in warnings), warnings
    assert json.loads((out / "build.json").read_text())["int8_dropped"] == ["attrnet-s"]  # last build's report
    # The earlier build's int8 file is gone with the variant; fp32 is whole; nothing else is left.
    assert _files(out / "attrnet-s") == {"model.onnx", "model.onnx.manifest.json"}
    manifest = read_sidecar(out / "attrnet-s" / "model.onnx")
    assert manifest is not None and manifest.verification["status"] == "passed"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert _files(out / "shapedet-s") == {
        "model.onnx",
        "model.onnx.manifest.json",
        "model.int8.onnx",
        "model.int8.onnx.manifest.json",
    }


def test_catalog_of_a_partial_zoo_lists_what_is_there_and_runs(partial_zoo) -> None:  # type: ignore[no-untyped-def]
    out, _, _ = partial_zoo
    spec = load_catalog(write_catalog(out))
    models = {fn: [b.model for b in backends if b.kind == "onnx"] for fn, backends in spec.functions.items()}
    assert models["detect"] == models["answer"] == ["shapedet-s/model.int8.onnx"]
    for fn in ("verify", "classify", "vqa"):
        assert models[fn] == ["attrnet-s/model.onnx"]  # int8 dropped: fp32, even where int8 is asked for
    assert missing_files(out / "catalog.yaml") == []
    image = np.full((240, 320, 3), 128, np.uint8)
    with Catalog.open(spec, warmup=False) as catalog:
        for backend in catalog.backends("detect"):
            backend.infer(DetectRequest(image=image, labels=("red circle",)))
        for backend in catalog.backends("verify"):
            backend.infer(VerifyRequest(image=image[:64, :64], subject="circle", property="red"))


def test_catalog_written_by_an_earlier_build_is_refreshed(partial_zoo) -> None:  # type: ignore[no-untyped-def]
    """An older catalog that names the dropped int8 file (or a model not there) is rewritten."""
    out, _, _ = partial_zoo
    path = out / "catalog.yaml"
    path.write_text(
        "functions:\n  verify:\n"
        "    - {name: attrnet-s-int8, kind: onnx, model: attrnet-s/model.int8.onnx}\n"
        "    - {name: attrnet-m-int8, kind: onnx, model: attrnet-m/model.int8.onnx}\n"
    )
    assert missing_files(path) == ["attrnet-m/model.int8.onnx", "attrnet-s/model.int8.onnx"]
    assert refresh_catalog(out) == path
    assert missing_files(path) == [] and refresh_catalog(out) is None
    assert [b.model for b in load_catalog(path).functions["verify"] if b.model] == ["attrnet-s/model.onnx"]


def test_precision_choice_takes_what_was_measured() -> None:
    summary = {("attrnet-s", "fp32"): {"clean": 0.9, "corrupted": 0.7}}  # int8 dropped by the build
    latency = {"attrnet-s/fp32/2": {"p50_ms": 0.1}}
    assert choose_precision(summary, latency, ["attrnet-s", "attrnet-m"]) == {"attrnet-s": "fp32"}


def test_failed_export_leaves_the_previous_model_and_nothing_half_written(
    tmp_path: Path, test_sets: tuple[DetSet, AttrSet]
) -> None:
    """fp32 is exported and verified, then int8 quantization fails: an error, and the folder
    of the earlier build is as it was."""
    earlier = tmp_path / "attrnet-s"
    earlier.mkdir()
    (earlier / "model.onnx").write_bytes(b"fp32 of an earlier build")
    before = {p: p.read_bytes() for p in earlier.iterdir()}
    with pytest.raises(ExportError, match="calibration method 'bogus'"):
        _export_untrained(tmp_path, "attrnet-s", test_sets, replace(TINY, calib_method="bogus"))
    assert {p: p.read_bytes() for p in earlier.iterdir()} == before
    assert _files(tmp_path) == {"attrnet-s", "attrnet-s/model.onnx"}
