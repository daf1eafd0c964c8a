"""Face and people detectors that ship inside OpenCV: Haar cascades and the HOG+SVM detector.

They need no weights of ours, which makes them the zero-cost tier for "is there a person?"
programs. OpenCV 5 moved both out of the main package (into opencv_contrib), so on an
OpenCV 5 install they are unavailable and the message says how to get them back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgefmp.errors import BackendUnavailable

log = logging.getLogger(__name__)

FACE_WORDS = frozenset({"face", "faces", "head", "heads"})
PERSON_WORDS = frozenset(
    {
        "person",
        "people",
        "persons",
        "pedestrian",
        "pedestrians",
        "human",
        "humans",
        "man",
        "men",
        "woman",
        "women",
        "child",
        "children",
    }
)
_HINT = (
    "this OpenCV ({version}) has no {what}: OpenCV 5 moved it to opencv_contrib. "
    "Install OpenCV 4 (pip install 'opencv-python-headless>=4.8,<5') to use detector: {detector}"
)


@dataclass(frozen=True)
class Found:
    """A detected face or person: box (x1, y1, x2, y2) in pixels and a score in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float


Detector = Callable[[np.ndarray], list[Found]]


def _squash(weights: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Detector margins -> scores in (0, 1), 0.5 at `centre`."""
    out: np.ndarray = 0.5 * (1.0 + np.tanh((np.asarray(weights, np.float32).reshape(-1) - centre) / width))
    return out


def face_detector(min_size: int = 24) -> Detector:
    """Frontal faces with OpenCV's bundled Haar cascade."""
    data = getattr(cv2, "data", None)
    if not hasattr(cv2, "CascadeClassifier") or data is None:
        raise BackendUnavailable(_HINT.format(version=cv2.__version__, what="Haar cascades", detector="faces"))
    path = Path(data.haarcascades) / "haarcascade_frontalface_default.xml"
    classifier = cv2.CascadeClassifier(str(path)) if path.is_file() else None
    if classifier is None or classifier.empty():
        raise BackendUnavailable(
            f"OpenCV's Haar cascade {path} is missing or unreadable; reinstall opencv-python-headless<5"
        )

    def detect(image: np.ndarray) -> list[Found]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        rects, _, weights = classifier.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size), outputRejectLevels=True
        )
        scores = _squash(np.asarray(weights), 2.0, 2.0) if len(rects) else np.zeros(0)
        return [
            Found((float(x), float(y), float(x + w), float(y + h)), float(s))
            for (x, y, w, h), s in zip(rects, scores, strict=True)
        ]

    return detect


def people_detector(iou_threshold: float = 0.45) -> Detector:
    """Standing people with OpenCV's default HOG + linear SVM (64x128 window)."""
    if not hasattr(cv2, "HOGDescriptor"):
        raise BackendUnavailable(_HINT.format(version=cv2.__version__, what="HOG people detector", detector="people"))
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]

    def detect(image: np.ndarray) -> list[Found]:
        h, w = image.shape[:2]
        f = max(1.0, 128.0 / h, 64.0 / w)  # the window must fit at least once
        img = cv2.resize(image, (round(w * f), round(h * f))) if f > 1 else image
        rects, weights = hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return []
        scores = _squash(np.asarray(weights), 0.5, 0.5)
        keep = np.asarray(
            cv2.dnn.NMSBoxes([list(map(int, r)) for r in rects], scores.tolist(), 0.0, iou_threshold), dtype=np.int64
        ).reshape(-1)
        return [
            Found(
                (rects[i][0] / f, rects[i][1] / f, (rects[i][0] + rects[i][2]) / f, (rects[i][1] + rects[i][3]) / f),
                float(scores[i]),
            )
            for i in keep.tolist()
        ]

    return detect
