"""Verify an exported ONNX model: checker, output names and shapes, values, a task metric.

An export that is not checked against its source is a guess: every variant goes through
`verify_onnx` before it is called passed. fp32 must match the source within a tight tolerance;
fp16 and int8 cannot, so they are held to a similarity floor on the raw outputs and, when a
held-out set is given, to a task metric (accuracy, text match, detection mAP) computed against
ground truth or, without labels, against the fp32 source's own predictions.

Example::

    report = verify_onnx("m.onnx", feeds, reference_outputs=ref, tolerance=default_tolerance("fp32"))
    if not report.passed:
        print(report.reason)
    manifest.verification.update(report.to_dict())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.manifest import TensorSpec
from edgefmp.errors import ExportError

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Tolerance:
    """How close an export's outputs must be to the source's.

    `atol`/`rtol` work like numpy.allclose (None: values are reported, not enforced);
    `min_cosine` is a floor on the cosine similarity of each flattened output, the meaningful
    check for reduced precision where single values may drift but the output must not.
    """

    atol: float | None = 1e-4
    rtol: float = 1e-3
    min_cosine: float | None = None


_DEFAULTS: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3),
    "fp16": Tolerance(atol=None, min_cosine=0.99),
    "int8": Tolerance(atol=None, min_cosine=0.9),
    "int8-dynamic": Tolerance(atol=None, min_cosine=0.9),
    "int8-static": Tolerance(atol=None, min_cosine=0.9),
    "mixed": Tolerance(atol=None, min_cosine=0.9),
}


def default_tolerance(precision: str) -> Tolerance:
    """The tolerance a precision is held to unless the user gives another."""
    try:
        return _DEFAULTS[precision]
    except KeyError:
        raise ExportError(f"no default tolerance for precision {precision!r}; known: {', '.join(_DEFAULTS)}") from None


@dataclass(frozen=True)
class TaskMetric:
    """A task metric on a held-out set, higher is better, passed when >= `threshold`.

    `compute(candidate, reference)` gets the export's outputs and the reference (the fp32
    source's outputs, or ground-truth labels wrapped as outputs) for every held-out feed.
    """

    name: str
    compute: Callable[[Sequence[Outputs], Sequence[Any]], float]
    threshold: float


@dataclass
class VerifyReport:
    """What verification found; `to_dict()` is what goes into the manifest's `verification`."""

    checker: str = "not run"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    tolerance: Tolerance | None = None
    samples: int = 0

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def reason(self) -> str:
        return "; ".join(self.failures)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "passed" if self.passed else "failed",
            "checker": self.checker,
            "samples": self.samples,
            "outputs": self.outputs,
        }
        if self.tolerance is not None:
            out["tolerance"] = {
                "atol": self.tolerance.atol,
                "rtol": self.tolerance.rtol,
                "min_cosine": self.tolerance.min_cosine,
            }
        if self.metric is not None:
            out["metric"] = self.metric
        if self.failures:
            out["reason"] = self.reason
        return out


def check_onnx(model_path: str | Path) -> None:
    """onnx.checker with full_check (shape inference included); ExportError naming the file."""
    import onnx

    path = Path(model_path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"{path}: onnx.checker rejected the model: {str(exc).splitlines()[0]}") from exc


def open_session(model_path: str | Path) -> Any:
    """A CPU ONNX Runtime session; errors (corrupt file, unsupported op) become ExportError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"{model_path}: ONNX Runtime cannot load the model: {exc}") from exc


def run_onnx(model_path: str | Path, feeds: Sequence[Mapping[str, np.ndarray]], session: Any = None) -> list[Outputs]:
    """Run every feed through the model on CPU; outputs keyed by name, in float32 where float."""
    sess = session if session is not None else open_session(model_path)
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    half = {i.name for i in sess.get_inputs() if i.type == "tensor(float16)"}
    results: list[Outputs] = []
    for index, feed in enumerate(feeds):
        missing = wanted - set(feed)
        if missing:
            raise ExportError(
                f"{model_path}: feed {index} lacks inputs {sorted(missing)}; the model takes {sorted(wanted)}"
            )
        try:
            inputs = {k: (np.asarray(v, np.float16) if k in half else v) for k, v in feed.items() if k in wanted}
            values = sess.run(names, inputs)
        except Exception as exc:
            raise ExportError(f"{model_path}: inference on feed {index} failed: {exc}") from exc
        results.append({n: _as_float32(v) for n, v in zip(names, values, strict=False)})
    return results


def _as_float32(value: np.ndarray) -> np.ndarray:
    array = np.asarray(value)
    return array.astype(np.float32) if array.dtype == np.float16 else array


def _shape_matches(spec: Sequence[int | str], shape: Sequence[int]) -> bool:
    return len(spec) == len(shape) and all(isinstance(s, str) or s == d for s, d in zip(spec, shape, strict=False))


def compare(candidate: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Difference statistics of one output: max abs diff, max relative diff, cosine."""
    a = np.asarray(candidate, dtype=np.float64).ravel()
    b = np.asarray(reference, dtype=np.float64).ravel()
    diff = np.abs(a - b)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(np.dot(a, b) / denom) if denom > 0 else float(np.allclose(a, b))
    return {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "cosine": cosine,
    }


def verify_onnx(
    model_path: str | Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    reference_outputs: Sequence[Mapping[str, np.ndarray]] | None = None,
    expected_outputs: Sequence[TensorSpec] | None = None,
    tolerance: Tolerance | None = None,
    metric: TaskMetric | None = None,
    metric_feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    metric_reference: Sequence[Any] | None = None,
) -> VerifyReport:
    """Check `model_path` and compare its outputs on `feeds` with `reference_outputs`.

    Never raises for a model that fails a check: the failures are collected in the report,
    so one bad variant does not stop the others. Reference outputs are matched by name; an
    output the reference lacks is checked for shape only.
    """
    tol = tolerance or Tolerance()
    report = VerifyReport(tolerance=tol, samples=len(feeds))
    try:
        check_onnx(model_path)
        report.checker = "ok"
    except ExportError as exc:
        report.checker = "failed"
        report.failures.append(str(exc))
        return report
    try:
        session = open_session(model_path)
        got = run_onnx(model_path, feeds, session)
    except ExportError as exc:
        report.failures.append(str(exc))
        return report

    names = [o.name for o in session.get_outputs()]
    if expected_outputs is not None:
        want = [t.name for t in expected_outputs]
        if [n for n in names if n in want] != want or any(n not in names for n in want):
            report.failures.append(f"output names {names} differ from the expected {want}")
        specs = {t.name: t.shape for t in expected_outputs}
        for name, spec in specs.items():
            if got and name in got[0] and not _shape_matches(spec, got[0][name].shape):
                report.failures.append(f"output {name}: shape {list(got[0][name].shape)} does not match {spec}")

    if reference_outputs is not None:
        if len(reference_outputs) != len(got):
            report.failures.append(f"{len(reference_outputs)} reference outputs for {len(got)} feeds")
        for name in names:
            stats: list[dict[str, Any]] = []
            for sample, ref in zip(got, reference_outputs, strict=False):
                if name not in ref:
                    continue
                ref_value, value = np.asarray(ref[name]), sample[name]
                if ref_value.shape != value.shape:
                    report.failures.append(
                        f"output {name}: shape {list(value.shape)}, source gives {list(ref_value.shape)}"
                    )
                    break
                stat = compare(value, ref_value)
                if tol.atol is not None:
                    stat["allclose"] = bool(np.allclose(value, ref_value, atol=tol.atol, rtol=tol.rtol))
                stats.append(stat)
            if not stats:
                continue
            summary = {
                "shape": list(got[0][name].shape),
                "max_abs_diff": max(s["max_abs_diff"] for s in stats),
                "min_cosine": min(s["cosine"] for s in stats),
            }
            report.outputs[name] = summary
            if tol.atol is not None and not all(s["allclose"] for s in stats):
                report.failures.append(
                    f"output {name}: max abs diff {summary['max_abs_diff']:.3g} "
                    f"exceeds atol {tol.atol:g} + rtol {tol.rtol:g}"
                )
            if tol.min_cosine is not None and summary["min_cosine"] < tol.min_cosine:
                report.failures.append(
                    f"output {name}: cosine similarity {summary['min_cosine']:.4f} below {tol.min_cosine:g}"
                )
    elif got:
        for name in names:
            report.outputs[name] = {"shape": list(got[0][name].shape)}
    for name in names:
        if got and np.issubdtype(got[0][name].dtype, np.floating) and not all(np.isfinite(s[name]).all() for s in got):
            report.failures.append(f"output {name}: non-finite values (NaN or inf)")

    if metric is not None and metric_feeds:
        try:
            candidate = run_onnx(model_path, metric_feeds, session)
            score = float(metric.compute(candidate, list(metric_reference or [])))
        except ExportError as exc:
            report.failures.append(f"metric {metric.name}: {exc}")
        else:
            report.metric = {
                "name": metric.name,
                "value": score,
                "threshold": metric.threshold,
                "samples": len(metric_feeds),
            }
            if score < metric.threshold:
                report.failures.append(f"metric {metric.name} = {score:.4f} is below {metric.threshold:g}")
    log.info("verified %s: %s", model_path, "passed" if report.passed else report.reason)
    return report


# --------------------------------------------------------------------------------- task metrics


def top1_accuracy(output: str, threshold: float = 0.9, axis: int = -1) -> TaskMetric:
    """Share of held-out samples whose arg-max along `axis` of `output` equals the reference.

    A reference item is an int label or an outputs dict (then its own arg-max is the label,
    i.e. agreement with the fp32 source).
    """

    def compute(candidate: Sequence[Outputs], reference: Sequence[Any]) -> float:
        hits = total = 0
        for got, ref in zip(candidate, reference, strict=False):
            pred = np.argmax(got[output], axis=axis).ravel()
            truth = (
                np.argmax(np.asarray(ref[output]), axis=axis).ravel()
                if isinstance(ref, Mapping)
                else np.asarray(ref).ravel()
            )
            hits += int((pred == truth).sum())
            total += pred.size
        return hits / total if total else 0.0

    return TaskMetric(name=f"top1[{output}]", compute=compute, threshold=threshold)


def text_match(decode: Callable[[Outputs], str], threshold: float = 0.8) -> TaskMetric:
    """Share of held-out samples whose decoded text equals the reference text exactly
    (reference items are strings or outputs dicts decoded the same way)."""

    def compute(candidate: Sequence[Outputs], reference: Sequence[Any]) -> float:
        pairs = list(zip(candidate, reference, strict=False))
        if not pairs:
            return 0.0
        same = sum(decode(got) == (decode(dict(ref)) if isinstance(ref, Mapping) else str(ref)) for got, ref in pairs)
        return same / len(pairs)

    return TaskMetric(name="text_match", compute=compute, threshold=threshold)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


def average_precision(
    predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    truths: Sequence[tuple[np.ndarray, np.ndarray]],
    iou_threshold: float = 0.5,
) -> float:
    """mAP at one IoU threshold (VOC all-point), averaged over classes present in the truth.

    predictions: per image (boxes xyxy (N, 4), scores (N,), class ids (N,));
    truths: per image (boxes xyxy (M, 4), class ids (M,)).
    """
    classes = sorted({int(c) for _, cls in truths for c in np.asarray(cls).ravel()})
    if not classes:
        return 1.0 if all(len(p[1]) == 0 for p in predictions) else 0.0
    aps = []
    for cls in classes:
        scored: list[tuple[float, bool]] = []
        n_truth = 0
        for (pb, ps, pc), (tb, tc) in zip(predictions, truths, strict=False):
            gt = np.asarray(tb, np.float64).reshape(-1, 4)[np.asarray(tc).ravel() == cls]
            n_truth += len(gt)
            used = np.zeros(len(gt), bool)
            mask = np.asarray(pc).ravel() == cls
            boxes, scores = np.asarray(pb, np.float64).reshape(-1, 4)[mask], np.asarray(ps).ravel()[mask]
            for i in np.argsort(-scores):
                hit = False
                if len(gt):
                    ious = _iou(boxes[i], gt)
                    ious[used] = -1.0
                    j = int(np.argmax(ious))
                    if ious[j] >= iou_threshold:
                        used[j] = hit = True
                scored.append((float(scores[i]), hit))
        scored.sort(key=lambda t: -t[0])
        tp = np.cumsum([h for _, h in scored]) if scored else np.zeros(0)
        fp = np.cumsum([not h for _, h in scored]) if scored else np.zeros(0)
        recall = tp / max(n_truth, 1)
        precision = tp / np.maximum(tp + fp, 1e-9)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[0.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        idx = np.where(mrec[1:] != mrec[:-1])[0]
        aps.append(float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])))
    return float(np.mean(aps))


def detr_map50(score_threshold: float = 0.3, threshold: float = 0.5, no_object: bool = True) -> TaskMetric:
    """mAP@0.5 of DETR-style outputs (`logits`, `pred_boxes` normalised cx,cy,w,h) against the
    fp32 source's detections above `score_threshold` (or ground truth given as the same dict
    with `boxes` xyxy normalised and `classes`)."""

    def decode(outputs: Mapping[str, np.ndarray], keep_all: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits = np.asarray(outputs["logits"], np.float64)[0]
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs = e / e.sum(-1, keepdims=True)
        if no_object:
            probs = probs[:, :-1]
        cls, score = probs.argmax(-1), probs.max(-1)
        cx, cy, w, h = np.asarray(outputs["pred_boxes"], np.float64)[0].T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        keep = np.ones_like(score, bool) if keep_all else score >= score_threshold
        return boxes[keep], score[keep], cls[keep]

    def compute(candidate: Sequence[Outputs], reference: Sequence[Any]) -> float:
        preds = [decode(c, keep_all=True) for c in candidate]
        truths = []
        for ref in reference:
            if "boxes" in ref:
                truths.append((np.asarray(ref["boxes"]), np.asarray(ref["classes"])))
            else:
                b, _, c = decode(ref, keep_all=False)
                truths.append((b, c))
        return average_precision(preds, truths)

    return TaskMetric(name="mAP50", compute=compute, threshold=threshold)


__all__ = [
    "TaskMetric",
    "Tolerance",
    "VerifyReport",
    "average_precision",
    "check_onnx",
    "compare",
    "default_tolerance",
    "detr_map50",
    "open_session",
    "run_onnx",
    "text_match",
    "top1_accuracy",
    "verify_onnx",
]
