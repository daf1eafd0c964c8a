"""Measure the exported zoo with ONNX Runtime: accuracy per corruption and severity, latency.

Accuracy runs the files the runtime runs (fp32 and int8 alike) and decodes with the runtime's
own post-processing (`edgefmp.backends.processing`), on test-split scenes that no model saw.
Every condition uses the same scenes (same seed), so differences between conditions come from
the corruption alone. Detector: mAP@0.5 over the 24 "colour shape" classes, and F1 at the
manifest's score threshold. Attributes: share of crops with colour and shape both right.

Latency is p50 over batch-1 runs after a separate warm-up, with 1 and 2 intra-op threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends import processing
from edgefmp.backends.manifest import Manifest, read_sidecar
from edgefmp.errors import ConfigError
from edgefmp.scenes import CORRUPTIONS, ShapeSample
from edgefmp.zoo.data import AttrSet, Condition, DetSet, make_sets
from edgefmp.zoo.export import INPUT_NAME, feeds_of
from edgefmp.zoo.metrics import DetectionScorer
from edgefmp.zoo.specs import DET_INPUT_HW

log = logging.getLogger(__name__)

TEST_SEED = 1000


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate on: `n_scenes` test scenes under clean and each (kind, severity)."""

    n_scenes: int = 200
    seed: int = TEST_SEED
    kinds: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    batch: int = 50
    threads: int = 2

    def conditions(self) -> list[Condition]:
        out: list[Condition] = [None]
        out += [(k, s) for k in self.kinds for s in self.severities]
        return out


def condition_name(condition: Condition) -> str:
    if condition is None:
        return "clean"
    if isinstance(condition, tuple):
        return f"{condition[0]}-{condition[1]}"
    return str(condition)


def open_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConfigError(f"{path}: onnxruntime cannot load it ({exc}); rebuild with `edgefmp zoo build`") from exc


def load_manifest(path: Path) -> Manifest:
    manifest = read_sidecar(path)
    if manifest is None:
        raise ConfigError(f"{path}: no sidecar manifest beside it; rebuild with `edgefmp zoo build`")
    return manifest


def run_batched(session: Any, images: np.ndarray, batch: int) -> np.ndarray:
    """Outputs of the model's only output for uint8 images at the input size, concatenated."""
    outs = []
    for i in range(0, len(images), batch):
        x = np.concatenate([f[INPUT_NAME] for f in feeds_of(images[i : i + batch])])
        outs.append(session.run(None, {INPUT_NAME: x})[0])
    return np.concatenate(outs) if outs else np.zeros((0,))


def detection_metrics(manifest: Manifest, outputs: np.ndarray, data: DetSet) -> dict[str, float]:
    """mAP@0.5 (candidates down to score 0.05) and F1 at the manifest's threshold."""
    post = manifest.postprocess
    scorer = DetectionScorer(iou=0.5, score_threshold=post.score_threshold)
    n = len(manifest.labels)
    for i in range(len(data)):
        d = processing.decode_yolo(outputs[i], n, post.activation, 0.05)
        d = processing.nms(d, post.iou_threshold, post.max_detections)
        truth = data.shapes[i] * 8 + data.colors[i]
        scorer.add(d.boxes, d.scores, d.class_ids, data.boxes[i], truth)
    return {"map50": scorer.map50(), "f1": scorer.f1()}


def attribute_metrics(outputs: np.ndarray, data: AttrSet, n_colors: int = 8) -> dict[str, float]:
    color = outputs[:, :n_colors].argmax(1) == data.colors
    shape = outputs[:, n_colors:].argmax(1) == data.shapes
    return {
        "acc": float((color & shape).mean()) if len(data) else 0.0,
        "color_acc": float(color.mean()) if len(data) else 0.0,
        "shape_acc": float(shape.mean()) if len(data) else 0.0,
    }


def model_files(models_dir: Path, names: Sequence[str]) -> list[tuple[str, str, Path]]:
    """(model name, precision, file) for every exported file of `names` that exists."""
    out = []
    for name in names:
        for precision, file in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
            path = models_dir / name / file
            if path.is_file():
                out.append((name, precision, path))
    if not out:
        raise ConfigError(f"no zoo models under {models_dir}; build them with `edgefmp zoo build --out {models_dir}`")
    return out


def evaluate_accuracy(
    files: Sequence[tuple[str, str, Path]],
    pool: Sequence[ShapeSample],
    cfg: EvalConfig,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (model, precision, condition) with that model family's metrics."""
    sessions = [(name, prec, load_manifest(p), open_session(p, cfg.threads)) for name, prec, p in files]
    rows: list[dict[str, Any]] = []
    for condition in cfg.conditions():
        det, attr = make_sets(pool, cfg.n_scenes, cfg.seed, DET_INPUT_HW, condition, jitter=False)
        cname = condition_name(condition)
        for name, precision, manifest, session in sessions:
            row: dict[str, Any] = {"model": name, "precision": precision, "condition": cname}
            try:
                if manifest.postprocess.kind == "yolo":
                    row.update(detection_metrics(manifest, run_batched(session, det.images, cfg.batch), det))
                else:
                    row.update(attribute_metrics(run_batched(session, attr.images, cfg.batch), attr))
            except Exception as exc:  # one failing model must not lose the others' rows
                row["error"] = f"{type(exc).__name__}: {exc}"
                log.warning("evaluation of %s %s on %s failed: %s", name, precision, cname, exc)
            rows.append(row)
            if on_step is not None:
                on_step(f"{name} {precision} {cname}")
    return rows


def measure_latencies(
    paths: Sequence[Path], threads: int, warmup: int = 20, runs: int = 200, rounds: int = 10
) -> dict[Path, dict[str, float]]:
    """Batch-1 latency of each model's session alone (no pre/post-processing), milliseconds.

    The models are timed in interleaved rounds (runs/rounds calls each, round after round), so
    load from other processes on a shared machine hits them all alike and ratios stay fair.
    """
    sessions = {}
    for path in paths:
        pre = load_manifest(path).preprocess
        if pre is None:
            raise ConfigError(f"{path}: manifest has no preprocess")
        x = np.random.default_rng(0).random((1, 3, *pre.size), dtype=np.float32)
        session = open_session(path, threads)
        for _ in range(warmup):
            session.run(None, {INPUT_NAME: x})
        sessions[path] = (session, {INPUT_NAME: x})
    per_round = max(1, runs // rounds)
    times: dict[Path, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path, (session, feed) in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                session.run(None, feed)
                times[path].append((time.perf_counter() - t0) * 1000.0)
    return {
        p: {"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)), "runs": float(len(t))}
        for p, t in times.items()
    }
