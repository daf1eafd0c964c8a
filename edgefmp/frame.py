"""A frame as it flows from a source to the executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    """One input of a stream.

    `image` is RGB uint8 (H, W, 3), or None when the source could not decode this frame; then
    `error` says why, and the executor records the frame as failed instead of dropping it.
    `frame_id` is unique within a run and is what delayed feedback is matched by.
    """

    frame_id: str
    ts: float
    image: np.ndarray | None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        if self.image is None and self.error is None:
            raise ValueError(f"frame {self.frame_id}: a frame needs an image or an error")
