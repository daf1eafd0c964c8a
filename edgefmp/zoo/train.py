"""Training loops of the zoo (torch, CPU, seeded, two threads).

Both loops draw batches with a seeded generator, flip images at random (shapes and colours
are flip-invariant, so flips double the data for free) and follow a one-cycle learning rate,
which converges in the few hundred steps a CPU budget allows. The detector assigns each
ground-truth box to the grid cells near its centre (FCOS-style centre sampling) and learns
objectness with a focal loss, boxes with a GIoU loss, shape and colour with cross-entropy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from edgefmp.zoo.data import AttrSet, DetSet
from edgefmp.zoo.nets import DET_STRIDE, AttrNet, ShapeDet

log = logging.getLogger(__name__)

StepCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    """How long and how fast to train one model."""

    steps: int
    batch: int = 32
    lr: float = 4e-3
    weight_decay: float = 1e-4
    seed: int = 0


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1], as the manifest's preprocess makes."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def _optimizer(
    model: torch.nn.Module, cfg: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 2), pct_start=0.15)
    return opt, sched


# ------------------------------------------------------------------------------ detector


def pad_boxes(
    boxes: list[np.ndarray], shapes: list[np.ndarray], colors: list[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image boxes and labels -> padded (B, K, 4), (B, K), (B, K) and a validity mask."""
    k = max(1, max(len(b) for b in boxes))
    bb = np.zeros((len(boxes), k, 4), np.float32)
    ss = np.zeros((len(boxes), k), np.int64)
    cc = np.zeros((len(boxes), k), np.int64)
    valid = np.zeros((len(boxes), k), bool)
    for i, (b, s, c) in enumerate(zip(boxes, shapes, colors, strict=True)):
        bb[i, : len(b)], ss[i, : len(b)], cc[i, : len(b)], valid[i, : len(b)] = b, s, c, True
    return torch.from_numpy(bb), torch.from_numpy(ss), torch.from_numpy(cc), torch.from_numpy(valid)


def assign(
    centres: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, radius: float = 1.5 * DET_STRIDE
) -> torch.Tensor:
    """Index of the box each cell learns, (B, N), -1 for background.

    A cell is positive for a box when its centre lies inside the box and within `radius` of
    the box centre; the cell holding the box centre is always positive, so tiny boxes get one.
    Where boxes compete, the smaller one wins.
    """
    cx, cy = centres[0][None, :, None], centres[1][None, :, None]  # (1, N, 1)
    x1, y1, x2, y2 = (boxes[..., j][:, None, :] for j in range(4))  # (B, 1, K)
    bcx, bcy = (x1 + x2) / 2, (y1 + y2) / 2
    inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    near = ((cx - bcx).abs() <= radius) & ((cy - bcy).abs() <= radius)
    half = DET_STRIDE / 2
    holds = ((cx - bcx).abs() <= half) & ((cy - bcy).abs() <= half)
    ok = ((inside & near) | holds) & valid[:, None, :]
    area = ((x2 - x1) * (y2 - y1)).expand_as(ok)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(2)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of matching xyxy boxes (K, 4)."""
    ix1, iy1 = torch.max(pred[:, 0], target[:, 0]), torch.max(pred[:, 1], target[:, 1])
    ix2, iy2 = torch.min(pred[:, 2], target[:, 2]), torch.min(pred[:, 3], target[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    ap = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    at = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    union = ap + at - inter + 1e-6
    iou = inter / union
    cx1, cy1 = torch.min(pred[:, 0], target[:, 0]), torch.min(pred[:, 1], target[:, 1])
    cx2, cy2 = torch.max(pred[:, 2], target[:, 2]), torch.max(pred[:, 3], target[:, 3])
    hull = (cx2 - cx1) * (cy2 - cy1) + 1e-6
    return 1.0 - iou + (hull - union) / hull


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return (w * (1 - pt) ** gamma * ce).sum()


def _flip_det(
    images: np.ndarray, boxes: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    h, w = images.shape[1:3]
    out_imgs = images.copy()
    out_boxes = []
    for i, b in enumerate(boxes):
        b = b.copy()
        if rng.random() < 0.5:
            out_imgs[i] = out_imgs[i, :, ::-1]
            b[:, [0, 2]] = w - b[:, [2, 0]]
        if rng.random() < 0.5:
            out_imgs[i] = out_imgs[i, ::-1, :]
            b[:, [1, 3]] = h - b[:, [3, 1]]
        out_boxes.append(b)
    return out_imgs, out_boxes


def detector_loss(
    model: ShapeDet,
    raw: torch.Tensor,
    boxes: torch.Tensor,
    shapes: torch.Tensor,
    colors: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """Focal objectness + 2 x GIoU + shape CE + colour CE, over a padded batch."""
    ltrb, obj, shape_logits, color_logits = model.split(raw)
    idx = assign(model.centres, boxes, valid)  # (B, N)
    pos = idx >= 0
    n_pos = max(1, int(pos.sum().item()))
    loss = focal_loss(obj, pos.float()) / n_pos
    if not bool(pos.any()):
        return loss
    k = idx.clamp(min=0)
    b_i, n_i = pos.nonzero(as_tuple=True)
    k_i = k[b_i, n_i]
    pred = model.boxes_xyxy(ltrb)[b_i, :, n_i]  # (P, 4)
    loss = loss + 2.0 * giou_loss(pred, boxes[b_i, k_i]).mean()
    loss = loss + F.cross_entropy(shape_logits[b_i, :, n_i], shapes[b_i, k_i])
    loss = loss + F.cross_entropy(color_logits[b_i, :, n_i], colors[b_i, k_i])
    return loss


def _fit(
    model: torch.nn.Module,
    cfg: TrainConfig,
    batch_loss: Callable[[np.random.Generator], torch.Tensor],
    on_step: StepCallback | None,
) -> list[float]:
    """The loop both models share: seeded, `cfg.steps` AdamW steps on a one-cycle schedule, each
    on the loss `batch_loss(rng)` of a batch it draws; `model` trained in place, left in eval mode.
    Returns the loss of every step."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt, sched = _optimizer(model, cfg)
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        loss = batch_loss(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


def train_detector(model: ShapeDet, data: DetSet, cfg: TrainConfig, on_step: StepCallback | None = None) -> list[float]:
    """Train `model` in place; returns the loss of every step."""

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        idx = rng.integers(0, len(data), cfg.batch)
        imgs, bxs = _flip_det(data.images[idx], [data.boxes[i] for i in idx], rng)
        raw = model(to_tensor(imgs))
        padded = pad_boxes(bxs, [data.shapes[i] for i in idx], [data.colors[i] for i in idx])
        return detector_loss(model, raw, *padded)

    return _fit(model, cfg, batch_loss, on_step)


# ------------------------------------------------------------------------------- attrnet


def train_attrnet(model: AttrNet, data: AttrSet, cfg: TrainConfig, on_step: StepCallback | None = None) -> list[float]:
    """Train `model` in place on colour (8-way) and shape (3-way) cross-entropy."""

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        idx = rng.integers(0, len(data), cfg.batch)
        imgs = data.images[idx].copy()
        flip_h = rng.random(cfg.batch) < 0.5
        imgs[flip_h] = imgs[flip_h, :, ::-1]
        flip_v = rng.random(cfg.batch) < 0.5
        imgs[flip_v] = imgs[flip_v, ::-1]
        logits = model(to_tensor(imgs))
        n_colors = logits.shape[1] - 3
        colors = F.cross_entropy(logits[:, :n_colors], torch.from_numpy(data.colors[idx]))
        return colors + F.cross_entropy(logits[:, n_colors:], torch.from_numpy(data.shapes[idx]))

    return _fit(model, cfg, batch_loss, on_step)
