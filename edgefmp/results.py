"""Requests and results of the neural functions.

Each function has one request type and one result type, validated when built, so every backend
(ONNX, OpenCV, remote) converts into the same shape and the program never sees engine types.
Images are RGB uint8 arrays of shape (H, W, 3).

Results carry the network bytes their call moved (`bytes_up`, `bytes_down`): only the backend
knows them, and returning them with the result keeps concurrent calls race-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

# `vqa` answers a question about the image it is given (in programs, usually a detection's
# crop); `answer` answers a question about a whole frame, as one monolithic model would (the
# routing baseline's single call).
FunctionName = Literal["detect", "verify", "vqa", "answer", "classify", "ocr", "llm"]
FUNCTIONS: tuple[str, ...] = ("detect", "verify", "vqa", "answer", "classify", "ocr", "llm")


def check_image(image: np.ndarray, where: str) -> None:
    """Raise ValueError unless `image` is an RGB uint8 array (H, W, 3) with H, W >= 1."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"{where}: expected an RGB uint8 image of shape (H, W, 3), got dtype {image.dtype} shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: empty image of shape {image.shape}")


# ----------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class DetectRequest:
    """Find objects named by `labels` in `image`.

    `origin` is the (x, y) of the image's top-left corner in the frame when the image is a
    crop; backends ignore it, traces use it to report boxes in frame pixels.
    """

    image: np.ndarray
    labels: tuple[str, ...]
    origin: tuple[float, float] = (0.0, 0.0)
    function: str = field(default="detect", init=False)

    def __post_init__(self) -> None:
        check_image(self.image, "DetectRequest.image")
        if not self.labels:
            raise ValueError("DetectRequest.labels: give at least one label to look for")


@dataclass(frozen=True)
class VerifyRequest:
    """Does the `subject` in `image` have `property` (a colour, a shape, a state)?"""

    image: np.ndarray
    subject: str
    property: str
    function: str = field(default="verify", init=False)

    def __post_init__(self) -> None:
        check_image(self.image, "VerifyRequest.image")


@dataclass(frozen=True)
class VQARequest:
    """Answer a free-form `question` about `image`."""

    image: np.ndarray
    question: str
    function: str = field(default="vqa", init=False)

    def __post_init__(self) -> None:
        check_image(self.image, "VQARequest.image")
        if not self.question.strip():
            raise ValueError("VQARequest.question: the question is empty")


@dataclass(frozen=True)
class AnswerRequest(VQARequest):
    """Answer `question` about the whole frame `image` (function `answer`).

    A VQARequest, so every backend and wire protocol that takes a question takes this one; the
    function name tells a backend that the question is about the whole frame, so something the
    question names but the frame lacks makes the answer "none" (see scene_questions.py).
    """

    function: str = field(default="answer", init=False)


@dataclass(frozen=True)
class ClassifyRequest:
    """Pick the option that best describes `image` (zero-shot classification)."""

    image: np.ndarray
    options: tuple[str, ...]
    function: str = field(default="classify", init=False)

    def __post_init__(self) -> None:
        check_image(self.image, "ClassifyRequest.image")
        if not self.options:
            raise ValueError("ClassifyRequest.options: give at least one option")


@dataclass(frozen=True)
class OCRRequest:
    """Read the text in `image`."""

    image: np.ndarray
    function: str = field(default="ocr", init=False)

    def __post_init__(self) -> None:
        check_image(self.image, "OCRRequest.image")


@dataclass(frozen=True)
class LLMRequest:
    """Answer a text-only `prompt`."""

    prompt: str
    function: str = field(default="llm", init=False)


Request = DetectRequest | VerifyRequest | VQARequest | AnswerRequest | ClassifyRequest | OCRRequest | LLMRequest

# ------------------------------------------------------------------------------------ results


@dataclass
class Result:
    """Fields every result has: a confidence in [0, 1] (None when the backend gives none), the
    bytes its call moved over the network, what a paid endpoint charged for it and, for remote
    calls, what was sent."""

    confidence: float | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    # What a remote call actually sent (image size after downscaling, encoding, JPEG quality):
    # the bytes-vs-accuracy trade recorded beside the call's arguments in the trace.
    sent: dict[str, Any] | None = field(default=None, kw_only=True)
    money: float = field(default=0.0, kw_only=True)  # US dollars (a remote backend's `price`)

    def _check_common(self) -> None:
        if self.confidence is not None and not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"{type(self).__name__}.confidence must lie in [0, 1], got {self.confidence}")
        if self.bytes_up < 0 or self.bytes_down < 0:
            raise ValueError(f"{type(self).__name__}: byte counts cannot be negative")
        if not self.money >= 0.0:
            raise ValueError(f"{type(self).__name__}.money cannot be negative, got {self.money}")

    def summary(self) -> Any:
        """A short JSON-able form for traces."""
        raise NotImplementedError


@dataclass
class Detections(Result):
    """Boxes in pixel xyxy of the request's image, one score and one label per box."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        n = self.boxes.shape[0]
        if self.scores.shape[0] != n or len(self.labels) != n:
            raise ValueError(
                f"Detections: expected as many scores and labels as boxes ({n}), "
                f"got {self.scores.shape[0]} scores and {len(self.labels)} labels"
            )
        if n and (np.any(self.boxes[:, 2] < self.boxes[:, 0]) or np.any(self.boxes[:, 3] < self.boxes[:, 1])):
            raise ValueError("Detections.boxes: expected xyxy with x2 >= x1 and y2 >= y1")
        if self.confidence is None:
            self.confidence = float(self.scores.max()) if n else None
        self._check_common()

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def summary(self) -> Any:
        return [
            {"label": lab, "score": round(float(s), 3), "box": [round(float(v), 1) for v in b]}
            for b, s, lab in zip(self.boxes, self.scores, self.labels, strict=True)
        ][:8]


@dataclass
class Verdict(Result):
    """A yes/no answer."""

    value: bool = False

    def __post_init__(self) -> None:
        self.value = bool(self.value)
        self._check_common()

    def summary(self) -> Any:
        return self.value


@dataclass
class Answer(Result):
    """A short text answer (VQA, classification, LLM)."""

    text: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"Answer.text must be a string, got {type(self.text).__name__}")
        self._check_common()

    def summary(self) -> Any:
        return self.text[:200]


@dataclass
class Text(Result):
    """Text read from an image (OCR)."""

    text: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"Text.text must be a string, got {type(self.text).__name__}")
        self._check_common()

    def summary(self) -> Any:
        return self.text[:200]


RESULT_TYPES: dict[str, type[Result]] = {
    "detect": Detections,
    "verify": Verdict,
    "vqa": Answer,
    "answer": Answer,
    "classify": Answer,
    "ocr": Text,
    "llm": Answer,
}


def request_summary(request: Request) -> dict[str, Any]:
    """The arguments of a request without its pixels, for traces."""
    out: dict[str, Any] = {}
    for key in ("labels", "subject", "property", "question", "options", "prompt"):
        if hasattr(request, key):
            value = getattr(request, key)
            out[key] = list(value) if isinstance(value, tuple) else str(value)[:200]
    image = getattr(request, "image", None)
    if image is not None:
        out["image_hw"] = [int(image.shape[0]), int(image.shape[1])]
    return out
