"""Measure the exported zoo with ONNX Runtime: accuracy per corruption and severity, latency.

Accuracy runs the files the runtime runs (fp32 and int8 alike) and decodes with the runtime's
own post-processing (`edgefmp.backends.processing`), on test-split scenes that no model saw.
Every condition uses the same scenes (same seed), so differences between conditions come from
the corruption alone. Detector: mAP@0.5 over the 24 "colour shape" classes, and F1 at the
manifest's score threshold. Attributes: share of crops with colour and shape both right.

The OpenCV tier (the catalog's `classical` backend) is scored the same way on the same scenes,
through its own `infer`, at full resolution: it works on whole camera frames and on crops cut
from them at their own size, not on the models' resized inputs (see evaluate_classical).

Latency is p50 over batch-1 runs after a separate warm-up, with 1 and 2 intra-op threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefmp.backends import processing
from edgefmp.backends.manifest import Manifest, read_sidecar
from edgefmp.backends.registry import create_backend
from edgefmp.errors import BackendError, ConfigError
from edgefmp.results import Answer, ClassifyRequest, Detections, DetectRequest
from edgefmp.scenes import CORRUPTIONS, ShapeSample
from edgefmp.zoo.data import FRAME_HW, AttrSet, Condition, DetSet, make_sets
from edgefmp.zoo.export import DET_LABELS, INPUT_NAME, feeds_of
from edgefmp.zoo.metrics import DetectionScorer
from edgefmp.zoo.specs import DET_INPUT_HW

if TYPE_CHECKING:
    from edgefmp.backends.base import Backend
    from edgefmp.backends.catalog import BackendSpec

log = logging.getLogger(__name__)

TEST_SEED = 1000

# Every row says what it scored (`task`), and the OpenCV tier's rows say `precision: classical`.
TASK_DETECT, TASK_ATTRIBUTES = "detect", "attributes"
METRIC = {TASK_DETECT: "map50", TASK_ATTRIBUTES: "acc"}  # the headline metric of each task's tables
CLASSICAL_PRECISION = "classical"
EVAL_CROP_MARGIN = 0.1  # of the box size on each side, as jittered_crop without jitter


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


def series_name(model: str, precision: str, task: str) -> str:
    """What a row's scores are summarised and looked up under: a zoo model's name (each model
    does one task), or "<backend>/<task>" for the OpenCV tier, which is scored on both tasks
    (e.g. "shapes-cv/detect" and "shapes-cv/attributes")."""
    return f"{model}/{task}" if precision == CLASSICAL_PRECISION else model


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
    return attribute_scores(outputs[:, :n_colors].argmax(1), outputs[:, n_colors:].argmax(1), data.colors, data.shapes)


def attribute_scores(
    colors: np.ndarray, shapes: np.ndarray, true_colors: np.ndarray, true_shapes: np.ndarray
) -> dict[str, float]:
    """Share of crops with colour and shape both right (`acc`), and each alone; a predicted
    index of -1 (no answer) is wrong."""
    color = np.asarray(colors) == np.asarray(true_colors)
    shape = np.asarray(shapes) == np.asarray(true_shapes)
    n = len(color)
    return {
        "acc": float((color & shape).mean()) if n else 0.0,
        "color_acc": float(color.mean()) if n else 0.0,
        "shape_acc": float(shape.mean()) if n else 0.0,
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
            task = TASK_DETECT if manifest.postprocess.kind == "yolo" else TASK_ATTRIBUTES
            row: dict[str, Any] = {"model": name, "precision": precision, "task": task, "condition": cname}
            try:
                if task == TASK_DETECT:
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


def evaluate_classical(
    spec: BackendSpec,
    pool: Sequence[ShapeSample],
    cfg: EvalConfig,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Two rows per condition for a catalog's OpenCV backend (`spec`, e.g. shapes-cv): its
    detection (task "detect": mAP@0.5 and F1) and its attributes (task "attributes": acc,
    color_acc, shape_acc), precision "classical".

    The scenes are evaluate_accuracy's (same seed, same corruptions) composed at the camera's
    240x320 (FRAME_HW) rather than stretched to the detectors' 96x128, because at run time the
    OpenCV tier is given whole frames, and crops cut from them at their own size, not a model's
    input. The backend is built as a catalog builds it (registry kind, options validated) and
    called only through `infer`.
    """
    backend = create_backend(spec)
    rows: list[dict[str, Any]] = []
    try:
        for condition in cfg.conditions():
            det, _ = make_sets(pool, cfg.n_scenes, cfg.seed, FRAME_HW, condition, jitter=False)
            cname = condition_name(condition)
            for task, scorer in (
                (TASK_DETECT, classical_detection_metrics),
                (TASK_ATTRIBUTES, classical_attribute_metrics),
            ):
                row: dict[str, Any] = {
                    "model": spec.name,
                    "precision": CLASSICAL_PRECISION,
                    "task": task,
                    "condition": cname,
                }
                try:
                    row.update(scorer(backend, det))
                except Exception as exc:  # one failing condition must not lose the others' rows
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    log.warning("evaluation of %s (%s) on %s failed: %s", spec.name, task, cname, exc)
                rows.append(row)
            if on_step is not None:
                on_step(f"{spec.name} {cname}")
    finally:
        backend.close()
    return rows


def classical_detection_metrics(backend: Backend, data: DetSet) -> dict[str, float]:
    """mAP@0.5 and F1 of a backend's detections for all 24 "colour shape" labels.

    The backend drops detections below its own score threshold, so what it returns is its
    operating point: F1 counts all of it (score threshold 0 here).
    """
    class_of = {label: i for i, label in enumerate(DET_LABELS)}  # shape * 8 + colour
    scorer = DetectionScorer(iou=0.5, score_threshold=0.0)
    for i in range(len(data)):
        result = backend.infer(DetectRequest(image=data.images[i], labels=tuple(DET_LABELS)))
        if not isinstance(result, Detections):
            raise BackendError(f"backend {backend.name!r} answered detect with {type(result).__name__}")
        classes = [class_of[label] for label in result.labels]
        truth = data.shapes[i] * 8 + data.colors[i]
        scorer.add(result.boxes, result.scores, classes, data.boxes[i], truth)
    return {"map50": scorer.map50(), "f1": scorer.f1()}


def classical_attribute_metrics(backend: Backend, data: DetSet) -> dict[str, float]:
    """Colour and shape of every object, asked of a backend as a program's classify call asks
    it: a crop of the frame around the true box (the evaluation's 10% margin, at the frame's
    resolution) and the 24 "colour shape" options. A crop where the backend finds no shape
    (BackendError) counts as wrong."""
    options = tuple(DET_LABELS)
    pred_colors: list[int] = []
    pred_shapes: list[int] = []
    for i in range(len(data)):
        for box in data.boxes[i]:
            request = ClassifyRequest(image=margin_crop(data.images[i], box), options=options)
            try:
                result = backend.infer(request)
            except BackendError as exc:
                log.debug("%s: no answer for a crop: %s", backend.name, exc)
                pred_colors.append(-1)
                pred_shapes.append(-1)
                continue
            if not isinstance(result, Answer) or result.text not in options:
                raise BackendError(
                    f"backend {backend.name!r} answered classify with {result!r}, not one of the options"
                )
            k = options.index(result.text)
            pred_shapes.append(k // 8)
            pred_colors.append(k % 8)
    true_colors = np.concatenate(data.colors) if len(data) else np.zeros(0, np.int64)
    true_shapes = np.concatenate(data.shapes) if len(data) else np.zeros(0, np.int64)
    return attribute_scores(np.asarray(pred_colors), np.asarray(pred_shapes), true_colors, true_shapes)


CLASSICAL_SCORERS = ((TASK_DETECT, classical_detection_metrics), (TASK_ATTRIBUTES, classical_attribute_metrics))


def margin_crop(frame: np.ndarray, box: Sequence[float], margin: float = EVAL_CROP_MARGIN) -> np.ndarray:
    """The part of `frame` inside `box` widened by `margin` of its size on each side, at the
    frame's resolution: the evaluation crop of `jittered_crop(..., jitter=False)` unresized."""
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    fh, fw = frame.shape[:2]
    a = int(np.clip(np.floor(x1 - mx), 0, fw - 1))
    b = int(np.clip(np.floor(y1 - my), 0, fh - 1))
    c = int(np.clip(np.ceil(x2 + mx), a + 1, fw))
    d = int(np.clip(np.ceil(y2 + my), b + 1, fh))
    return np.ascontiguousarray(frame[b:d, a:c])


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
