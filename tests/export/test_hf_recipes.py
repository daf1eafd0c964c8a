"""Every recipe in export/ exports its architecture offline from a tiny random config and
passes parity: through OnnxBackend where a postprocess kind decodes it (detr, classify),
raw outputs via ONNX Runtime otherwise, and end to end (logits + greedy tokens) for
generative models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefmp.export.pipeline import ExportJob, SizeSpec, VariantResult, run_job
from edgefmp.export.recipes import Recipe, list_recipes, load_recipe

pytest.importorskip("torch")
pytest.importorskip("optimum.exporters.onnx")

RECIPES = list_recipes(Path(__file__).resolve().parents[2] / "export")


def test_recipes_exist_and_load() -> None:
    families = {load_recipe(p).family for p in RECIPES}
    assert {"owlvit", "owlv2", "rt_detr", "yolos", "clip", "siglip", "trocr", "pix2struct", "llama"} <= families


def _export(recipe: Recipe, folder: Path, out: Path, precisions: list[str], calib: Path | None = None) -> list:
    size = recipe.sizes[0]
    options = recipe.options(size)
    options.image_size = None  # the tiny model's own processor size, not the real model's
    job = ExportJob(
        sizes=[SizeSpec(size.tag, f"hf:{folder}", options)],
        precisions=precisions,
        out=out,
        calib=calib,
        calib_samples=4,
    )
    return run_job(job)


@pytest.mark.parametrize("recipe_path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_architecture_parity(recipe_path: Path, tmp_path: Path) -> None:
    from tests.export.tiny_hf import BUILDERS

    recipe = load_recipe(recipe_path)
    folder = BUILDERS[recipe.family](tmp_path / "src")
    results = _export(recipe, folder, tmp_path / "out", ["fp32"])
    assert [r.status for r in results] == ["passed"], [r.reason for r in results]
    manifest = results[0].manifest
    assert manifest is not None and manifest.verification["status"] == "passed"
    assert manifest.function == recipe.function and manifest.task == recipe.task
    if manifest.postprocess.kind in ("detr", "classify"):
        _backend_parity(results[0].path, folder, recipe)
    _next_text_is_truthful(results[0])


def _next_text_is_truthful(result: VariantResult) -> None:
    """The catalog entry that `Next:` suggests starts its backend; where it suggests none, the
    entry a user would guess (kind onnx, the manifest's function) is refused."""
    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.registry import create_backend
    from edgefmp.errors import ConfigError
    from edgefmp.export.report import next_commands, serving

    how = serving(result)
    text = "\n".join(next_commands([result]))
    assert result.manifest is not None and result.path is not None
    if how.model is None:
        assert "kind:" not in text and how.reason in text
        guess = BackendSpec(name="t", kind="onnx", function=result.manifest.function, model=str(result.path))
        with pytest.raises(ConfigError):
            create_backend(guess)
        return
    assert f"kind: {how.kind}, model: {how.model}" in text
    spec = BackendSpec(
        name="t", kind=how.kind, function=how.function, model=str(how.model), options={"providers": ["CPU"]}
    )
    create_backend(spec).close()


def _backend_parity(model: Path, folder: Path, recipe: Recipe) -> None:
    """OnnxBackend on the export vs the torch source decoded by the same postprocess."""
    import torch
    import transformers

    from edgefmp.backends import processing
    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.onnx import OnnxBackend, OnnxOptions
    from edgefmp.export.hf import TASKS
    from edgefmp.results import ClassifyRequest, DetectRequest

    backend = OnnxBackend(
        BackendSpec(name="t", kind="onnx", function=recipe.function, model=str(model)),
        OnnxOptions(providers=["CPU"], score_threshold=0.0),
    )
    manifest = backend.manifest
    source = getattr(transformers, TASKS[recipe.task].auto_class).from_pretrained(folder).eval()
    image = np.random.default_rng(5).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    tensor, resize = processing.preprocess(image, manifest.preprocess)
    with torch.no_grad():
        out = source(pixel_values=torch.from_numpy(tensor))
    expected_raw = {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
    got_raw = backend.run(tensor)
    for name, value in got_raw.items():
        np.testing.assert_allclose(value, expected_raw[name], atol=1e-4, rtol=1e-3)
    if manifest.postprocess.kind == "detr":
        request = DetectRequest(image=image, labels=tuple(manifest.labels))
        got, want = backend.infer(request), processing.postprocess(manifest, expected_raw, request, resize)
        assert got.labels == want.labels
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-2)
    else:
        request = ClassifyRequest(image=image, options=tuple(manifest.labels))
        assert backend.infer(request).text == processing.postprocess(manifest, expected_raw, request, resize).text


def test_hf_precision_matrix(tmp_path: Path, frames_dir: Path) -> None:
    """fp16 and calibrated int8 of an HF model, each verified and with its own manifest."""
    from tests.export.tiny_hf import BUILDERS

    recipe = load_recipe(next(p for p in RECIPES if p.stem == "vit"))
    folder = BUILDERS["vit"](tmp_path / "src")
    results = _export(recipe, folder, tmp_path / "out", ["fp16", "int8"], calib=frames_dir)
    assert [r.variant.precision for r in results] == ["fp16", "int8-static"]
    assert all(r.status == "passed" for r in results), [r.reason for r in results]
    assert results[1].manifest is not None and results[1].manifest.calibration is not None


def test_unsupported_task_names_the_choices(tmp_path: Path) -> None:
    from edgefmp.export.sources import SourceOptions
    from tests.export.tiny_hf import BUILDERS

    folder = BUILDERS["vit"](tmp_path / "src")
    job = ExportJob(
        sizes=[SizeSpec("", f"hf:{folder}", SourceOptions(task="depth-estimation"))],
        precisions=["fp32"],
        out=tmp_path / "o",
    )
    (result,) = run_job(job)
    assert result.status == "failed" and "unsupported task 'depth-estimation'" in result.reason
    assert "zero-shot-object-detection" in result.reason and "image-text-to-text" in result.reason
