"""Detection metrics on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.zoo.metrics import DetectionScorer, iou_matrix


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert iou_matrix(a, b)[0] == pytest.approx([1.0, 1 / 3, 0.0])


def test_perfect_wrong_class_and_duplicate() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    perfect = DetectionScorer()
    perfect.add(truth, [0.9, 0.8], [1, 2], truth, [1, 2])
    assert perfect.map50() == pytest.approx(1.0) and perfect.f1() == pytest.approx(1.0)

    wrong = DetectionScorer()
    wrong.add(truth, [0.9, 0.8], [3, 3], truth, [1, 2])
    assert wrong.map50() == 0.0 and wrong.f1() == 0.0

    dup = DetectionScorer(score_threshold=0.5)
    dup.add(np.concatenate([truth[:1], truth[:1]]), [0.9, 0.7], [1, 1], truth[:1], [1])
    assert dup.map50() == pytest.approx(1.0)  # the duplicate ranks after the hit
    assert dup.f1() == pytest.approx(2 / 3)
