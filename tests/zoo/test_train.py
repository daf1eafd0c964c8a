"""Training: target assignment, losses and a few steps that must lower the loss."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefmp.scenes import load_shape_pool  # noqa: E402
from edgefmp.zoo.data import make_sets  # noqa: E402
from edgefmp.zoo.nets import DET_STRIDE, AttrNet, DetExport, ShapeDet  # noqa: E402
from edgefmp.zoo.train import TrainConfig, assign, giou_loss, train_attrnet, train_detector  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def sets():  # type: ignore[no-untyped-def]
    pool = load_shape_pool("train", limit=120)
    return make_sets(pool, 48, seed=3, det_hw=(48, 64))


def test_assign_centre_cells_and_smaller_box_wins() -> None:
    det = ShapeDet((4, 4, 4), (48, 64))
    big = [4.0, 4.0, 44.0, 44.0]
    small = [20.0, 20.0, 28.0, 28.0]  # centre (24, 24) lies on a cell corner
    boxes = torch.tensor([[big, small]])
    idx = assign(det.centres, boxes, torch.tensor([[True, True]]))
    cells = idx[0].reshape(48 // DET_STRIDE, 64 // DET_STRIDE)
    assert (cells == 1).sum() >= 1  # the small box gets its centre cells
    assert (cells == 0).sum() >= 1
    assert cells[0, 7] == -1  # far corner is background
    none = assign(det.centres, boxes, torch.tensor([[False, False]]))
    assert bool((none == -1).all())


def test_giou_loss_zero_for_equal_boxes() -> None:
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert float(giou_loss(b, b)) == pytest.approx(0.0, abs=1e-5)
    assert float(giou_loss(b, b + 20)) > 1.0


def test_detector_loss_drops_and_decode_layout(sets) -> None:  # type: ignore[no-untyped-def]
    det_set, _ = sets
    torch.set_num_threads(1)
    torch.manual_seed(0)
    det = ShapeDet((4, 8, 8), (48, 64))
    losses = train_detector(det, det_set, TrainConfig(steps=60, batch=8, lr=1e-2, seed=1))
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:4])
    out = DetExport(det)(torch.rand(2, 3, 48, 64))
    assert tuple(out.shape) == (2, 4 + 24, 48 * 64 // 64)
    probs = out[:, 4:]
    assert bool(((probs >= 0) & (probs <= 1)).all())


def test_attrnet_loss_drops(sets) -> None:  # type: ignore[no-untyped-def]
    _, attr_set = sets
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = AttrNet((4, 8, 16))
    losses = train_attrnet(net, attr_set, TrainConfig(steps=100, batch=32, lr=1e-2, seed=1))
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:4])
