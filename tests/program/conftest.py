"""A tiny scene painter and a fake NeuralCaller that answers from the pixels it is sent.

Each scene object is a filled box of a colour unique to that object (a palette colour nudged
by the object's index), so the fake can find it in any crop it receives: detection boxes come
back in the crop's own pixels, exactly as a real backend answers, and the DSL has to map them
back to frame coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefmp.results import Answer, Detections, Request, Result, Text, Verdict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "programs"
BACKGROUND = (255, 255, 255)
PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 190, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "teal": (0, 128, 128),
    "brown": (130, 80, 30),
    "gray": (128, 128, 128),
    "black": (10, 10, 10),
}


@dataclass
class Shape:
    label: str
    color: str
    box: tuple[int, int, int, int]  # left, upper, right, lower in frame pixels
    score: float = 0.9


@dataclass
class Scene:
    shapes: list[Shape]
    size: tuple[int, int] = (120, 160)  # height, width
    text: str = ""

    def rgb(self, index: int) -> tuple[int, int, int]:
        r, g, b = PALETTE[self.shapes[index].color]
        return (r, g, min(255, b + index))  # unique per object, still nearest to its colour

    def image(self) -> np.ndarray:
        img = np.full((*self.size, 3), BACKGROUND, np.uint8)
        for i, shape in enumerate(self.shapes):
            left, upper, right, lower = shape.box
            img[upper:lower, left:right] = self.rgb(i)
        return img


@dataclass
class FakeCaller:
    """Implements NeuralCaller.call from the pixels of each request."""

    scene: Scene
    calls: list[tuple[str, Request]] = field(default_factory=list)
    vqa_answer: str | None = None
    classify_answer: str | None = None

    def call(self, site_id: str, request: Request) -> Result:
        self.calls.append((site_id, request))
        handler = getattr(self, "_" + request.function)
        return handler(request)

    def _detect(self, request: Any) -> Detections:
        boxes, scores, labels = [], [], []
        for i, shape in enumerate(self.scene.shapes):
            if shape.label not in request.labels and "shape" not in request.labels:
                continue
            mask = np.all(request.image == np.array(self.scene.rgb(i), np.uint8), axis=-1)
            if mask.any():
                ys, xs = np.nonzero(mask)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                scores.append(shape.score)
                labels.append(shape.label)
        return Detections(boxes=np.array(boxes, np.float32).reshape(-1, 4), scores=scores, labels=labels)

    def dominant_color(self, image: np.ndarray) -> str:
        pixels = image.reshape(-1, 3).astype(int)
        pixels = pixels[np.any(pixels != BACKGROUND, axis=1)]
        if not len(pixels):
            return "white"
        mean = pixels.mean(axis=0)
        return min(PALETTE, key=lambda name: float(np.sum((np.array(PALETTE[name]) - mean) ** 2)))

    def _verify(self, request: Any) -> Verdict:
        return Verdict(value=self.dominant_color(request.image) == request.property, confidence=0.8)

    def _vqa(self, request: Any) -> Answer:
        if self.vqa_answer is not None:
            return Answer(text=self.vqa_answer)
        return Answer(text=self.dominant_color(request.image) if "color" in request.question else "unknown")

    def _classify(self, request: Any) -> Answer:
        if self.classify_answer is not None:
            return Answer(text=self.classify_answer)
        color = self.dominant_color(request.image)
        return Answer(text=color if color in request.options else request.options[0])

    def _ocr(self, request: Any) -> Text:
        return Text(text=self.scene.text)

    def _llm(self, request: Any) -> Answer:
        return Answer(text="llm says: " + request.prompt)


@pytest.fixture
def scene() -> Scene:
    """A red circle left of a blue triangle, a blue rectangle at the bottom right."""
    return Scene(
        [
            Shape("circle", "red", (10, 20, 40, 50), 0.8),
            Shape("triangle", "blue", (60, 10, 90, 40), 0.95),
            Shape("rectangle", "blue", (100, 70, 150, 110), 0.7),
        ],
        text="  Stop HERE  ",
    )


@pytest.fixture
def caller(scene: Scene) -> FakeCaller:
    return FakeCaller(scene)
