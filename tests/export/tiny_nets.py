"""Tiny torch factories for `torch:` exports in tests (importable as tests.export.tiny_nets)."""

from __future__ import annotations

from typing import Any


def build_classifier(classes: int = 3) -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, classes),
    )


def build_detector(classes: int = 2) -> Any:
    """A YOLO-shaped head: (B, 4 + C, N) boxes in input pixels."""
    import torch

    class Det(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Conv2d(3, 4 + classes, 3, stride=4, padding=1)

        def forward(self, x: Any) -> Any:
            y = self.body(x).flatten(2)
            boxes = torch.sigmoid(y[:, :4]) * x.shape[-1]
            return torch.cat([boxes, torch.sigmoid(y[:, 4:])], 1)

    torch.manual_seed(0)
    return Det()


def not_a_module() -> int:
    return 3
