"""The committed zoo (models/): loads through the catalog, manifests valid, sizes, floors.

Skipped in a checkout without built models (run `edgefmp zoo build`). Floors are far below the
measured accuracy in models/README.md: they catch a broken export or label order, not drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefmp.backends.catalog import Catalog, load_catalog
from edgefmp.backends.manifest import read_sidecar
from edgefmp.results import ClassifyRequest, DetectRequest
from edgefmp.scenes import COLORS, SHAPES, compose_scene, load_shape_pool
from edgefmp.zoo.data import jittered_crop
from edgefmp.zoo.metrics import iou_matrix
from edgefmp.zoo.specs import ZOO

MODELS = Path(__file__).resolve().parents[2] / "models"
CATALOG = MODELS / "catalog.yaml"

pytestmark = pytest.mark.skipif(not CATALOG.is_file(), reason="models/ not built (edgefmp zoo build)")


def test_every_model_has_both_precisions_and_valid_manifests() -> None:
    for model in ZOO:
        for file, precision in (("model.onnx", "fp32"), ("model.int8.onnx", "int8-static")):
            manifest = read_sidecar(MODELS / model.name / file)
            assert manifest is not None, f"{model.name}/{file} has no sidecar manifest"
            assert manifest.precision == precision and manifest.name == model.name
            assert manifest.verification["status"] == "passed"
            assert manifest.flops and manifest.params and manifest.sha256


def test_sizes_and_flops_ratios() -> None:
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024
    for family in ("shapedet", "attrnet"):
        flops = {}
        for size in ("s", "m", "l", "xl"):
            manifest = read_sidecar(MODELS / f"{family}-{size}" / "model.onnx")
            assert manifest is not None and manifest.flops
            flops[size] = manifest.flops
        assert flops["m"] / flops["s"] >= 3 and flops["l"] / flops["m"] >= 3 and flops["xl"] > flops["l"]


@pytest.fixture(scope="module")
def scenes():  # type: ignore[no-untyped-def]
    pool = load_shape_pool("test", limit=300)
    rng = np.random.default_rng(5)
    return [compose_scene(rng, pool) for _ in range(15)]


def test_catalog_backends_reach_floor_accuracy(scenes) -> None:  # type: ignore[no-untyped-def]
    labels = tuple(f"{c} {s}" for s in SHAPES for c in COLORS)
    with Catalog.open(load_catalog(CATALOG), warmup=False) as catalog:
        detectors = [b for b in catalog.backends("detect") if b.spec.kind == "onnx"]
        classifiers = [b for b in catalog.backends("classify") if b.spec.kind == "onnx"]
        assert len(detectors) == 4 and len(classifiers) == 4
        for backend in detectors:
            found = total = 0
            for scene in scenes:
                result = backend.infer(DetectRequest(image=scene.image, labels=labels))
                for obj in scene.objects:
                    total += 1
                    same = [i for i, lab in enumerate(result.labels) if lab == obj.label]
                    if same and iou_matrix(result.boxes[same], np.asarray([obj.box])).max() >= 0.5:
                        found += 1
            assert found / total >= 0.6, f"{backend.name}: recall {found}/{total}"
        rng = np.random.default_rng(0)
        for backend in classifiers:
            right = total = 0
            for scene in scenes:
                for obj in scene.objects:
                    crop = jittered_crop(scene.image, obj.box, rng, jitter=False)
                    colour = backend.infer(ClassifyRequest(image=crop, options=COLORS))
                    shape = backend.infer(ClassifyRequest(image=crop, options=SHAPES))
                    right += colour.text == obj.color and shape.text == obj.shape
                    total += 1
            assert right / total >= 0.5, f"{backend.name}: {right}/{total}"  # chance is 1/24


def test_catalog_accuracy_priors_are_the_evaluation_means() -> None:
    """Each model's `accuracy:` is its metric averaged over every condition of models/eval.json."""
    import json

    from edgefmp.zoo.catalog import accuracy_priors

    rows = json.loads((MODELS / "eval.json").read_text())["rows"]
    priors = accuracy_priors(rows)
    spec = load_catalog(CATALOG)
    checked = 0
    for backend in spec.functions["detect"] + spec.functions["verify"]:
        if backend.kind != "onnx":
            continue
        expected = priors[backend.model or ""]
        metric = [r.get("f1", r.get("acc")) for r in rows if f"{r['model']}/" in (backend.model or "")]
        assert backend.accuracy == pytest.approx(expected, abs=1e-4) and min(metric) <= expected <= max(metric)
        checked += 1
    assert checked == 8
    sizes = [b.accuracy for b in spec.functions["detect"][1:]]
    assert sizes == sorted(sizes)  # larger detectors are more accurate under the evaluated conditions


def test_catalog_classical_accuracy_is_its_evaluation_mean() -> None:
    """shapes-cv's `accuracy:` is its detection F1 (detect) or attribute accuracy (verify,
    classify, vqa) averaged over every condition of models/eval.json; `answer` has none."""
    import json

    from edgefmp.zoo.catalog import accuracy_priors

    rows = json.loads((MODELS / "eval.json").read_text())["rows"]
    classical = [r for r in rows if r["precision"] == "classical"]
    conditions = {r["condition"] for r in rows if r["precision"] != "classical"}
    for task, metric in (("detect", "f1"), ("attributes", "acc")):
        mine = [r for r in classical if r["task"] == task]
        assert {r["condition"] for r in mine} == conditions and all("error" not in r for r in mine)
        assert all(0.0 <= r[metric] <= 1.0 for r in mine)
    priors = accuracy_priors(rows)
    spec = load_catalog(CATALOG)
    for fn, key in (("detect", "detect"), ("verify", "attributes"), ("classify", "attributes"), ("vqa", "attributes")):
        backend = spec.functions[fn][0]
        assert backend.name == "shapes-cv" and backend.kind == "classical"
        assert backend.accuracy == pytest.approx(priors[f"shapes-cv/{key}"], abs=1e-4)
    assert spec.functions["answer"][0].name == "shapes-cv" and spec.functions["answer"][0].accuracy is None
