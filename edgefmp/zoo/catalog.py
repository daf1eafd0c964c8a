"""Write the zoo's catalog (`models/catalog.yaml`): every function's backends, cheapest first.

The OpenCV tier comes first (zero weights), then the on-device models by size, then the
largest model, which the remote tier serves. Cost priors come from the manifests (params) and,
once `edgefmp zoo evaluate` has run, from measured latency, and each backend's `accuracy:` (the
policies' accuracy prior) from the same evaluation, the OpenCV tier's included (its detection
score under detect, its attribute score under verify / classify / vqa); a figure not measured
is left out rather than guessed.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from edgefmp.backends.catalog import load_catalog
from edgefmp.backends.manifest import read_sidecar
from edgefmp.zoo.evaluate import CLASSICAL_PRECISION, TASK_ATTRIBUTES, TASK_DETECT, series_name
from edgefmp.zoo.export import FP32_FILE, INT8_FILE

DETECTORS = ("shapedet-s", "shapedet-m", "shapedet-l")
ATTRIBUTES = ("attrnet-s", "attrnet-m", "attrnet-l")
LARGEST = {"detect": "shapedet-xl", "attributes": "attrnet-xl"}
# The OpenCV tier, first under every function it serves; `edgefmp zoo evaluate` builds its
# backend from this same entry.
CLASSICAL: dict[str, Any] = {"name": "shapes-cv", "kind": "classical", "options": {"detector": "shapes"}}
FILES = {"fp32": FP32_FILE, "int8": INT8_FILE}  # a zoo model's precision -> its file

log = logging.getLogger(__name__)

HEADER = """\
# The demo zoo's catalog, written by `edgefmp zoo build` / `edgefmp zoo evaluate` (do not edit by
# hand: rebuild). Backends per function, cheapest first: OpenCV (zero weights), the on-device
# ONNX models by size, then the largest model, which the remote tier serves. Each model is the
# int8 static file where that measured faster at no accuracy cost, else fp32 (see README.md).
# Detector labels are "<colour> <shape>" (e.g. "red circle"); attrnet answers colour and shape.
# `answer` (whole-frame questions, the routing baseline) reads the scene from OpenCV or a detector.
# cost.latency_ms: p50 of one ONNX Runtime call on {where}, {threads} thread(s).
# accuracy: share of right answers averaged over the evaluation's clean and corrupted conditions.
"""


def accuracy_priors(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per "<model>/<file>" (a zoo model) or "<backend>/<task>" (the OpenCV tier, e.g.
    "shapes-cv/detect"): the metric averaged over every evaluated condition (clean and each
    corruption at each severity), i.e. the expected share of right answers on camera streams
    whose conditions vary: detection F1 (a box right in place, colour and shape), attribute
    accuracy (colour and shape both right)."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        value = row.get("f1", row.get("acc"))
        if value is None:
            continue
        file = FILES.get(row["precision"])
        key = f"{row['model']}/{file}" if file else series_name(row["model"], row["precision"], row["task"])
        sums.setdefault(key, []).append(float(value))
    return {key: sum(v) / len(v) for key, v in sums.items()}


def classical_entry(task: str | None, accuracy: dict[str, float] | None = None) -> dict[str, Any]:
    """The OpenCV tier's entry, with the `accuracy:` it measured on `task` (TASK_DETECT or
    TASK_ATTRIBUTES) when the evaluation has it; `task` None: no accuracy."""
    entry: dict[str, Any] = {"name": CLASSICAL["name"], "kind": CLASSICAL["kind"]}
    key = series_name(CLASSICAL["name"], CLASSICAL_PRECISION, task) if task else None
    if key is not None and accuracy is not None and key in accuracy:
        entry["accuracy"] = round(accuracy[key], 4)
    entry["options"] = copy.deepcopy(CLASSICAL["options"])
    return entry


def _entry(
    models_dir: Path,
    name: str,
    file: str,
    latency: dict[str, float] | None,
    accuracy: dict[str, float] | None = None,
) -> dict[str, Any]:
    path = models_dir / name / file
    manifest = read_sidecar(path)
    cost: dict[str, Any] = {}
    if latency is not None and f"{name}/{file}" in latency:
        cost["latency_ms"] = round(latency[f"{name}/{file}"], 3)
    if manifest is not None and manifest.params is not None:
        cost["params"] = manifest.params
    tag = "int8" if file == INT8_FILE else "fp32"
    entry: dict[str, Any] = {"name": f"{name}-{tag}", "kind": "onnx", "model": f"{name}/{file}"}
    if cost:
        entry["cost"] = cost
    if accuracy is not None and f"{name}/{file}" in accuracy:
        entry["accuracy"] = round(accuracy[f"{name}/{file}"], 4)
    entry["options"] = {"intra_op_threads": 2}
    return entry


def model_file(models_dir: Path, name: str, precision: str | None = None) -> str | None:
    """The file of zoo model `name` the catalog lists: the `precision` asked for ("fp32" or
    "int8"; default int8) when `models_dir/<name>/` has it, else the other one (a build drops an
    int8 variant that fails verification); None when the model is not in `models_dir`."""
    want = FP32_FILE if precision == "fp32" else INT8_FILE
    other = INT8_FILE if want == FP32_FILE else FP32_FILE
    for file in (want, other):
        if (models_dir / name / file).is_file():
            return file
    return None


def catalog_data(
    models_dir: Path,
    latency: dict[str, float] | None = None,
    precision: dict[str, str] | None = None,
    accuracy: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The catalog mapping of the zoo models present in `models_dir`; `precision` picks fp32 or
    int8 per model (default int8, fp32 where the int8 file is absent). A model not in
    `models_dir` is left out with a warning, so every `model:` the catalog names exists; the
    OpenCV tier, which needs no file, keeps every function served."""
    precision = precision or {}
    roster = (*DETECTORS, LARGEST["detect"], *ATTRIBUTES, LARGEST["attributes"])
    files = {n: model_file(models_dir, n, precision.get(n)) for n in roster}
    absent = [n for n, f in files.items() if f is None]
    if absent:
        log.warning(
            "catalog of %s: zoo models %s are not there and are left out (build them with `edgefmp zoo build`)",
            models_dir,
            ", ".join(absent),
        )

    def entries(names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [_entry(models_dir, n, f, latency, accuracy) for n in names if (f := files[n]) is not None]

    detect = [classical_entry(TASK_DETECT, accuracy)] + entries((*DETECTORS, LARGEST["detect"]))
    attrs = entries((*ATTRIBUTES, LARGEST["attributes"]))
    functions: dict[str, Any] = {"detect": detect}
    for fn in ("verify", "classify", "vqa"):
        functions[fn] = [classical_entry(TASK_ATTRIBUTES, accuracy)] + [copy.deepcopy(e) for e in attrs]
    # Whole-frame questions (`answer`, the routing baseline's monolithic models): the OpenCV tier,
    # then each detector answering from its own detections. A detector's F1 is not its answers'
    # accuracy, so these entries, the OpenCV tier's too, carry no `accuracy:`.
    functions["answer"] = [classical_entry(None)] + [
        {k: v for k, v in copy.deepcopy(e).items() if k != "accuracy"} for e in detect[1:]
    ]
    only_cv = [fn for fn, backends in functions.items() if len(backends) == 1]
    if only_cv:
        log.warning(
            "catalog of %s: no zoo model serves %s; only the OpenCV tier (%s) does",
            models_dir,
            ", ".join(only_cv),
            CLASSICAL["name"],
        )
    return {"version": 1, "name": "edgefmp-zoo", "functions": functions}


def missing_files(catalog: Path) -> list[str]:
    """The `model:` files a catalog names that do not exist (relative to its folder)."""
    spec = load_catalog(catalog)
    named = {b.model: b.resolve(b.model) for backends in spec.functions.values() for b in backends if b.model}
    return sorted(m for m, path in named.items() if not path.is_file())


def write_catalog(
    models_dir: Path,
    latency: dict[str, float] | None = None,
    precision: dict[str, str] | None = None,
    where: str = "this CPU",
    threads: int = 2,
    accuracy: dict[str, float] | None = None,
) -> Path:
    """Write `models_dir/catalog.yaml` (the zoo models present there) and check that it loads."""
    data = catalog_data(models_dir, latency, precision, accuracy)
    text = HEADER.format(where=where, threads=threads) + yaml.safe_dump(
        data, sort_keys=False, width=120, default_flow_style=None
    )
    path = models_dir / "catalog.yaml"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    load_catalog(path)
    return path


def refresh_catalog(models_dir: Path) -> Path | None:
    """Rewrite `models_dir/catalog.yaml` when it names files that are gone (a rebuild of some
    models dropped an int8 variant that failed verification); the latency and accuracy priors
    and precision choice of `models_dir/eval.json` are kept where it has them. Returns the
    rewritten path, or None when there is no catalog or nothing it names is missing."""
    path = models_dir / "catalog.yaml"
    if not path.is_file():
        return None
    gone = missing_files(path)
    if not gone:
        return None
    latency: dict[str, float] | None = None
    precision: dict[str, str] | None = None
    accuracy: dict[str, float] | None = None
    where = "this CPU"
    evaluation = models_dir / "eval.json"
    if evaluation.is_file():
        result = json.loads(evaluation.read_text(encoding="utf-8"))
        latency = {}
        for key, stats in result.get("latency", {}).items():
            name, prec, threads = key.split("/")
            if threads == "2" and prec in FILES:
                latency[f"{name}/{FILES[prec]}"] = float(stats["p50_ms"])
        precision = result.get("catalog_precision")
        accuracy = accuracy_priors(result.get("rows", []))
        where = result.get("environment", {}).get("cpu", where)
    log.warning("%s named files that are gone (%s); rewriting it from the models present", path, ", ".join(gone))
    return write_catalog(models_dir, latency, precision, where=where, accuracy=accuracy)
