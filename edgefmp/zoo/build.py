"""`edgefmp zoo build`: data -> training -> ONNX fp32 + int8 -> manifests -> catalog.

Everything is seeded (scenes, batches, initial weights) and torch runs on a fixed number of
threads, so a rebuild on the same machine reproduces the same files, and a rebuild elsewhere
reproduces the accuracy (float summation order differs across CPUs, not the recipe).
The build reports progress through a small `Progress` interface so the library never prints.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgefmp.backends.manifest import read_sidecar
from edgefmp.errors import EdgeFMPError, ExportError
from edgefmp.export.verify import Tolerance, default_tolerance
from edgefmp.scenes import load_shape_pool
from edgefmp.zoo.data import AttrSet, DetSet, make_sets
from edgefmp.zoo.env import environment
from edgefmp.zoo.evaluate import (
    EvalConfig,
    attribute_metrics,
    detection_metrics,
    open_session,
    run_batched,
)
from edgefmp.zoo.export import (
    FP32_FILE,
    INT8_FILE,
    base_manifest,
    embed_verified,
    export_fp32,
    feeds_of,
    graph_facts,
    publish,
    quantize,
    verify_export,
)
from edgefmp.zoo.specs import DET_INPUT_HW, ZooModel

log = logging.getLogger(__name__)

CLEAN_SEED = 100
CORRUPT_SEED = 101


class Progress(Protocol):
    """What the build reports: a stage with a known amount of work, then steps of it."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def start(self, description: str, total: int) -> None:
        log.info("%s (%d steps)", description, total)

    def advance(self, n: int = 1) -> None:
        pass


@dataclass(frozen=True)
class BuildConfig:
    """Sizes of the build. `quick` shrinks everything for smoke tests (models are not useful)."""

    clean_scenes: int = 3000
    corrupt_scenes: int = 3000
    test_scenes: int = 200
    calib_images: int = 64
    step_scale: float = 1.0
    threads: int = 2
    calib_method: str = "minmax"
    quant_format: str = "qdq"
    # Floor on the cosine similarity of int8 outputs to the torch model's (None: the int8
    # default, 0.9). A variant below it is dropped, not an error: barely trained --quick models
    # often fall below.
    int8_min_cosine: float | None = None

    def int8_tolerance(self) -> Tolerance:
        """What an int8 export is held to."""
        default = default_tolerance("int8-static")
        if self.int8_min_cosine is None:
            return default
        return replace(default, min_cosine=self.int8_min_cosine)

    @classmethod
    def quick(cls, threads: int = 2) -> BuildConfig:
        return cls(
            clean_scenes=120, corrupt_scenes=120, test_scenes=40, calib_images=16, step_scale=0.03, threads=threads
        )


@dataclass
class TrainingData:
    clean_det: DetSet
    clean_attr: AttrSet
    mixed_det: DetSet
    mixed_attr: AttrSet


def _concat_det(a: DetSet, b: DetSet) -> DetSet:
    return DetSet(np.concatenate([a.images, b.images]), a.boxes + b.boxes, a.shapes + b.shapes, a.colors + b.colors)


def _concat_attr(a: AttrSet, b: AttrSet) -> AttrSet:
    return AttrSet(
        np.concatenate([a.images, b.images]),
        np.concatenate([a.shapes, b.shapes]),
        np.concatenate([a.colors, b.colors]),
    )


def make_training_data(cfg: BuildConfig, progress: Progress) -> TrainingData:
    """Clean scenes for every model; clean + randomly corrupted ones for the robust recipe."""
    pool = load_shape_pool("train")
    progress.start("scenes (train split)", cfg.clean_scenes + cfg.corrupt_scenes)
    clean_det, clean_attr = make_sets(pool, cfg.clean_scenes, CLEAN_SEED, DET_INPUT_HW, None, on_scene=progress.advance)
    corr_det, corr_attr = make_sets(
        pool, cfg.corrupt_scenes, CORRUPT_SEED, DET_INPUT_HW, "random", on_scene=progress.advance
    )
    return TrainingData(clean_det, clean_attr, _concat_det(clean_det, corr_det), _concat_attr(clean_attr, corr_attr))


def _steps(model: ZooModel, cfg: BuildConfig) -> int:
    return max(5, int(round(model.steps * cfg.step_scale)))


def train_model(
    model: ZooModel, data: TrainingData, cfg: BuildConfig, progress: Progress
) -> tuple[Any, Any, list[float]]:
    """Train one model; returns (module to export, its training set images, losses)."""
    import torch

    from edgefmp.zoo.nets import AttrNet, DetExport, ShapeDet
    from edgefmp.zoo.train import TrainConfig, train_attrnet, train_detector

    torch.manual_seed(model.seed)
    tc = TrainConfig(steps=_steps(model, cfg), batch=model.batch, lr=model.lr, seed=model.seed)
    progress.start(f"train {model.name}", tc.steps)

    def on_step(_step: int, _loss: float) -> None:
        progress.advance()

    if model.family == "shapedet":
        det = ShapeDet(model.widths, DET_INPUT_HW)
        dset = data.mixed_det if model.robust else data.clean_det
        losses = train_detector(det, dset, tc, on_step)
        return DetExport(det).eval(), dset.images, losses
    net = AttrNet(model.widths)
    aset = data.mixed_attr if model.robust else data.clean_attr
    losses = train_attrnet(net, aset, tc, on_step)
    return net.eval(), aset.images, losses


def _calibration_images(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` training images spread over the set (clean and corrupted alike for robust models)."""
    idx = np.random.default_rng(seed).choice(len(images), size=min(n, len(images)), replace=False)
    return images[np.sort(idx)]


def _accuracy(
    path: Path, family: str, manifest: Any, test_det: DetSet, test_attr: AttrSet, cfg: BuildConfig
) -> dict[str, Any]:
    session = open_session(path, cfg.threads)
    if family == "shapedet":
        metrics = detection_metrics(manifest, run_batched(session, test_det.images, 50), test_det)
    else:
        metrics = attribute_metrics(run_batched(session, test_attr.images, 50), test_attr)
    return {
        "condition": "clean",
        "test_scenes": len(test_det),
        "seed": EvalConfig().seed,
        **{k: round(v, 4) for k, v in metrics.items()},
    }


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def staging_folder(out: Path, name: str) -> Path:
    """Where a model is exported before it replaces `out/<name>` (same filesystem, hidden)."""
    return out / f".{name}.partial"


def export_model(
    model: ZooModel,
    module: Any,
    train_images: np.ndarray,
    losses: Sequence[float],
    out: Path,
    test: tuple[DetSet, AttrSet],
    cfg: BuildConfig,
) -> dict[str, Any]:
    """Export fp32 and int8 into `out/<name>/`, verified and with manifests; returns a summary.

    The files are written into a staging folder that replaces `out/<name>/` only once every
    file is verified and has its manifest: an export that fails leaves the previous model
    as it was and nothing half-written. An int8 variant that fails verification is dropped
    (logged, recorded in the summary) and the model ships as fp32 only; fp32 failing
    verification, or any export step raising, is an ExportError.
    """
    folder = out / model.name
    previous = {p: _previous_accuracy(folder / f) for p, f in (("fp32", FP32_FILE), ("int8", INT8_FILE))}
    stage = staging_folder(out, model.name)
    _remove(stage)
    try:
        summary = _export_files(model, module, train_images, losses, stage, test, cfg)
    except BaseException as exc:
        _remove(stage)
        if isinstance(exc, EdgeFMPError):
            raise ExportError(f"{model.name} not exported ({folder} left as it was): {exc}") from exc
        raise
    old = out / f".{model.name}.old"
    _remove(old)
    if folder.exists():
        folder.rename(old)
    stage.rename(folder)
    _remove(old)
    for precision, prev in previous.items():
        summary[precision]["previous_accuracy"] = prev
    return summary


def _export_files(
    model: ZooModel,
    module: Any,
    train_images: np.ndarray,
    losses: Sequence[float],
    folder: Path,
    test: tuple[DetSet, AttrSet],
    cfg: BuildConfig,
) -> dict[str, Any]:
    import torch

    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    export_fp32(module, model, fp32)
    params, flops = graph_facts(fp32, model)
    extra = {
        "train": {
            "recipe": "clean + corrupted scenes" if model.robust else "clean scenes",
            "steps": len(losses),
            "batch": model.batch,
            "lr": model.lr,
            "seed": model.seed,
            "base_width": model.base,
            "final_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
        },
        "label_scheme": "detector classes are '<colour> <shape>'"
        if model.family == "shapedet"
        else "colour and shape groups",
    }
    manifest = base_manifest(model, extra).model_copy(update={"params": params})
    test_det, test_attr = test
    probe = test_det.images[:8] if model.family == "shapedet" else test_attr.images[:8]
    parity_feeds = feeds_of(probe)
    with torch.no_grad():
        out_name = manifest.outputs[0].name
        reference = [{out_name: module(torch.from_numpy(f["images"])).numpy()} for f in parity_feeds]
    acc32 = _accuracy(fp32, model.family, manifest, test_det, test_attr, cfg)
    m32 = publish(fp32, manifest, "fp32", flops, parity_feeds, reference, accuracy=acc32)
    summary: dict[str, Any] = {
        "name": model.name,
        "params": params,
        "flops": flops,
        "fp32": {
            "status": "published",
            "file": f"{model.name}/{FP32_FILE}",
            "bytes": fp32.stat().st_size,
            "accuracy": acc32,
            "sha256": m32.sha256,
        },
    }
    calibration = quantize(
        fp32, int8, _calibration_images(train_images, cfg.calib_images, model.seed), cfg.calib_method, cfg.quant_format
    )
    report = verify_export(int8, manifest, "int8-static", parity_feeds, reference, cfg.int8_tolerance())
    if not report.passed:
        _remove(int8)
        min_cosine = {name: o["min_cosine"] for name, o in report.outputs.items() if "min_cosine" in o}
        log.warning(
            "%s: int8 variant dropped, it failed verification (%s); the model ships as fp32 only",
            model.name,
            report.reason,
        )
        summary["int8"] = {"status": "dropped", "reason": report.reason, "min_cosine": min_cosine}
        return summary
    acc8 = _accuracy(int8, model.family, manifest, test_det, test_attr, cfg)
    m8 = embed_verified(int8, manifest, "int8-static", flops, report, calibration=calibration, accuracy=acc8)
    summary["int8"] = {
        "status": "published",
        "file": f"{model.name}/{INT8_FILE}",
        "bytes": int8.stat().st_size,
        "accuracy": acc8,
        "sha256": m8.sha256,
    }
    return summary


def _previous_accuracy(path: Path) -> dict[str, Any] | None:
    """The clean accuracy a model that is about to be replaced recorded, to compare a rebuild
    with the committed zoo."""
    if not path.is_file():
        return None
    try:
        manifest = read_sidecar(path)
    except EdgeFMPError as exc:
        log.warning("ignoring unreadable previous manifest of %s: %s", path, exc)
        return None
    acc = manifest.verification.get("accuracy") if manifest is not None else None
    return acc if isinstance(acc, dict) else None


def build_zoo(
    out: Path, models: Sequence[ZooModel], cfg: BuildConfig | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Build `models` into `out`; writes `out/build.json` and returns its content."""
    import torch

    cfg = cfg or BuildConfig()
    prog: Progress = progress or _Silent()
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    cpu_started = time.process_time()
    out.mkdir(parents=True, exist_ok=True)
    data = make_training_data(cfg, prog)
    test = make_sets(load_shape_pool("test"), cfg.test_scenes, EvalConfig().seed, DET_INPUT_HW, None, jitter=False)
    summaries: list[dict[str, Any]] = []
    timings: dict[str, float] = {"data_s": round(time.perf_counter() - started, 1)}
    for model in models:
        t0 = time.perf_counter()
        module, images, losses = train_model(model, data, cfg, prog)
        t1 = time.perf_counter()
        prog.start(f"export {model.name} (fp32, int8)", 1)
        summaries.append(export_model(model, module, images, losses, out, test, cfg))
        prog.advance()
        timings[model.name] = round(time.perf_counter() - t0, 1)
        timings[f"{model.name}.train_s"] = round(t1 - t0, 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    timings["cpu_s"] = round(time.process_time() - cpu_started, 1)
    result = {
        "config": asdict(cfg),
        "machine": environment(),
        "timings": timings,
        "models": summaries,
        "int8_dropped": [s["name"] for s in summaries if s["int8"]["status"] == "dropped"],
    }
    path = out / "build.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return result
