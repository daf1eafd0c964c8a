"""The zoo's two network families, plain convolution stacks sized by a width multiplier.

Plain 3x3 convolutions with ReLU (no depthwise convolutions, no SiLU) because that is what
int8 kernels on CPUs speed up most: ONNX Runtime fuses Conv+ReLU into one integer kernel.
Doubling the width multiplies FLOPs by about four, hence sizes 1x/2x/4x/8x -> 1:4:16:64.

- `ShapeDet`: an anchor-free single-scale detector (stride 8). Each grid cell predicts box
  distances to its centre (left, top, right, bottom), an objectness logit, and shape and colour
  logits. The exported graph decodes in-graph to the YOLO layout the runtime reads:
  (1, 4 + 24, N) with cx, cy, w, h in input pixels then one probability per "colour shape"
  class, objectness x p(shape) x p(colour), so the manifest's activation is `none`.
- `AttrNet`: a classifier of one object crop: 8 colour logits then 3 shape logits, read by the
  runtime as an `attributes` model with a softmax per group.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

N_SHAPES = 3
N_COLORS = 8
DET_STRIDE = 8


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def backbone(widths: Sequence[int]) -> nn.Sequential:
    """Stride-8 trunk: three stride-2 stages (c1, c2, c3) with extra 3x3 layers where the map
    is small, so most compute sits at low resolution."""
    c1, c2, c3 = widths
    return nn.Sequential(
        conv_bn(3, c1, 3, 2),
        conv_bn(c1, c2, 3, 2),
        conv_bn(c2, c2),
        conv_bn(c2, c3, 3, 2),
        conv_bn(c3, c3),
        conv_bn(c3, c3),
    )


class ShapeDet(nn.Module):
    """Detector of coloured shapes; `forward` gives raw maps, `decode` the YOLO layout."""

    centres: torch.Tensor

    def __init__(self, widths: Sequence[int], input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.input_hw = input_hw
        self.trunk = backbone(widths)
        c3 = widths[2]
        self.neck = conv_bn(c3, c3, 3)
        self.head = nn.Conv2d(c3, 4 + 1 + N_SHAPES + N_COLORS, 1)
        gh, gw = input_hw[0] // DET_STRIDE, input_hw[1] // DET_STRIDE
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        centres = torch.stack([xs, ys], 0).reshape(2, -1).float().add(0.5).mul(DET_STRIDE)
        self.register_buffer("centres", centres, persistent=False)
        bias = self.head.bias
        if bias is not None:
            with torch.no_grad():  # start with low objectness so early training is not flooded
                bias[4].fill_(-4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> raw head (B, 16, N)."""
        y: torch.Tensor = self.head(self.neck(self.trunk(x)))
        return y.flatten(2)

    @staticmethod
    def split(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw head -> (ltrb distances in pixels, objectness logit, shape logits, colour logits)."""
        ltrb = F.softplus(raw[:, 0:4]) * DET_STRIDE
        return ltrb, raw[:, 4], raw[:, 5 : 5 + N_SHAPES], raw[:, 5 + N_SHAPES :]

    def boxes_xyxy(self, ltrb: torch.Tensor) -> torch.Tensor:
        c = self.centres.unsqueeze(0)
        return torch.cat([c - ltrb[:, 0:2], c + ltrb[:, 2:4]], 1)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw head -> (B, 4 + 24, N): cx, cy, w, h, then p(colour shape) shape-major."""
        ltrb, obj, shape_logits, color_logits = self.split(raw)
        c = self.centres.unsqueeze(0)
        x1y1 = c - ltrb[:, 0:2]
        x2y2 = c + ltrb[:, 2:4]
        cxcy = (x1y1 + x2y2) * 0.5
        wh = x2y2 - x1y1
        p_obj = torch.sigmoid(obj).unsqueeze(1).unsqueeze(1)
        p_shape = torch.softmax(shape_logits, 1).unsqueeze(2)
        p_color = torch.softmax(color_logits, 1).unsqueeze(1)
        cls = (p_obj * p_shape * p_color).flatten(1, 2)
        return torch.cat([cxcy, wh, cls], 1)


class DetExport(nn.Module):
    """What is exported: forward then decode, one output."""

    def __init__(self, det: ShapeDet) -> None:
        super().__init__()
        self.det = det

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.det.decode(self.det(x))


class AttrNet(nn.Module):
    """Colour and shape of one object crop: (B, 3, 64, 64) in [0, 1] -> (B, 8 + 3) logits."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.trunk = backbone(widths)
        self.fc = nn.Linear(widths[2], N_COLORS + N_SHAPES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.trunk(x)
        logits: torch.Tensor = self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))
        return logits
