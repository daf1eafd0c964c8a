"""Detection and attribute metrics (numpy only).

mAP@0.5 is VOC-style (all-point interpolation), per "colour shape" class, averaged over the
classes present in the ground truth; F1 is at the model's own score threshold, the operating
point the runtime uses. Both count a prediction as right only when its class matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (N, 4) with every box of `b` (M, 4), xyxy."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    out: np.ndarray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return out


@dataclass
class DetectionScorer:
    """Accumulate predictions and truth image by image, then read mAP@0.5 and F1."""

    iou: float = 0.5
    score_threshold: float = 0.3
    _records: dict[int, list[tuple[float, bool]]] = field(default_factory=dict)
    _n_truth: dict[int, int] = field(default_factory=dict)

    def add(
        self,
        boxes: np.ndarray,
        scores: np.ndarray | Sequence[float],
        classes: np.ndarray | Sequence[int],
        truth_boxes: np.ndarray,
        truth_classes: np.ndarray | Sequence[int],
    ) -> None:
        """One image: predicted boxes (xyxy) with scores and class ids, and its truth."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        classes = np.asarray(classes, np.int64).reshape(-1)
        tb = np.asarray(truth_boxes, np.float32).reshape(-1, 4)
        tc = np.asarray(truth_classes, np.int64).reshape(-1)
        for c in tc:
            self._n_truth[int(c)] = self._n_truth.get(int(c), 0) + 1
        ious = iou_matrix(boxes, tb) if len(boxes) and len(tb) else np.zeros((len(boxes), len(tb)))
        used = np.zeros(len(tb), bool)
        for i in np.argsort(-scores, kind="stable"):
            ok = (tc == classes[i]) & ~used
            hit = False
            if ok.any():
                cand = np.where(ok, ious[i], -1.0)
                j = int(cand.argmax())
                if cand[j] >= self.iou:
                    used[j] = True
                    hit = True
            self._records.setdefault(int(classes[i]), []).append((float(scores[i]), hit))

    def map50(self) -> float:
        aps = []
        for c, n in self._n_truth.items():
            recs = sorted(self._records.get(c, []), key=lambda r: -r[0])
            if not recs:
                aps.append(0.0)
                continue
            hits = np.asarray([h for _, h in recs], np.float64)
            tp = np.cumsum(hits)
            fp = np.cumsum(1 - hits)
            recall = tp / n
            precision = tp / np.maximum(tp + fp, 1e-9)
            mrec = np.concatenate([[0.0], recall, [1.0]])
            mpre = np.concatenate([[0.0], precision, [0.0]])
            mpre = np.maximum.accumulate(mpre[::-1])[::-1]
            steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
            aps.append(float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1])))
        return float(np.mean(aps)) if aps else 0.0

    def f1(self) -> float:
        tp = fp = 0
        for recs in self._records.values():
            for s, h in recs:
                if s >= self.score_threshold:
                    tp += h
                    fp += not h
        n = sum(self._n_truth.values())
        if n == 0:
            return 0.0
        fn = n - tp
        return float(2 * tp / max(2 * tp + fp + fn, 1))
