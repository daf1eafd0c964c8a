"""ClassicalBackend: OpenCV only, zero weights — the cheapest tier of a catalog.

`detector: shapes` finds coloured geometric shapes (easy-VQA and scenes composed of them, see
classical_shapes.py) and answers the image functions about them:
- detect: labels like "circle", "red", "red circle", or "shape"/"object" for any shape;
- verify: subject a shape word or "shape"/"object", property a colour or a shape;
- classify: the option (colour, shape, or "colour shape") that best fits the main shape;
- vqa: template questions — "what color is the shape?", "what shape is ...?",
  "is there a red circle?" -> yes/no (negations understood), "how many ...?", relations
  ("... to the left of / above ... a blue triangle") and counts ("exactly two ...?");
- answer: the same questions about a whole frame ("none" when the subject is absent).
The question logic is shared with detectors under `answer`: scene_questions.py.
`detector: faces` (Haar cascade) and `detector: people` (HOG) answer detect and the counting
and yes/no questions about faces or people.

```python
from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.classical import ClassicalBackend, ClassicalOptions
cv = ClassicalBackend(BackendSpec(name="shapes-cv", kind="classical", function="vqa"), ClassicalOptions())
```
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgefmp.backends import classical_cascades as cascades
from edgefmp.backends.base import Backend
from edgefmp.backends.classical_shapes import COLORS, SHAPES, Shape, Workspace, find_shapes
from edgefmp.backends.processing import parse_question
from edgefmp.backends.scene_questions import answer_question, label_words, matches, score
from edgefmp.errors import BackendError, ConfigError
from edgefmp.results import (
    Answer,
    AnswerRequest,
    ClassifyRequest,
    Detections,
    DetectRequest,
    Request,
    Result,
    Verdict,
    VerifyRequest,
    VQARequest,
)

if TYPE_CHECKING:
    from edgefmp.backends.catalog import BackendSpec

log = logging.getLogger(__name__)

RECENT_IMAGES = 4  # shapes found in this many recent images are kept, for further calls on them
FUNCTIONS = {
    "shapes": ("detect", "verify", "classify", "vqa", "answer"),
    "faces": ("detect", "vqa"),
    "people": ("detect", "vqa"),
}


class ClassicalOptions(BaseModel):
    """`options:` of a classical backend in a catalog."""

    model_config = ConfigDict(extra="forbid")

    detector: Literal["shapes", "faces", "people"] = "shapes"
    score_threshold: float = Field(default=0.05, ge=0, le=1, description="drop detections scored below this")
    min_area: float = Field(default=0.0015, gt=0, lt=1, description="smallest shape, as a fraction of the image")


class ClassicalBackend(Backend):
    """OpenCV detectors without learned weights; see the module docstring."""

    kind = "classical"
    Options = ClassicalOptions

    def __init__(self, spec: BackendSpec, options: BaseModel) -> None:
        opts = (
            options if isinstance(options, ClassicalOptions) else ClassicalOptions.model_validate(options.model_dump())
        )
        super().__init__(spec, opts)
        self.opts = opts
        self.detector = opts.detector
        served = FUNCTIONS[opts.detector]
        if spec.function and spec.function not in served:
            raise ConfigError(
                f"backend {spec.name!r}: classical detector {opts.detector!r} cannot serve {spec.function!r}; "
                f"it serves: {', '.join(served)}"
            )
        # find_shapes' reusable buffers, and the shapes of the last few images (by content hash):
        # a program often asks several questions of one frame.
        self._workspace = Workspace()
        self._recent: OrderedDict[bytes, list[Shape]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._people: cascades.Detector | None = None
        if opts.detector == "faces":
            self._people = cascades.face_detector()
        elif opts.detector == "people":
            self._people = cascades.people_detector()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "detector": self.detector}

    def warmup(self) -> None:
        self._run_detector(np.full((64, 64, 3), 200, np.uint8))

    def infer(self, request: Request) -> Result:
        image = getattr(request, "image", None)
        if image is None:
            raise BackendError(f"backend {self.name!r} needs an image request, got {request.function!r}")
        try:
            found = self._run_detector(image)
        except BackendError:
            raise
        except Exception as exc:  # OpenCV errors (cv2.error) and the like
            raise BackendError(f"backend {self.name!r}: OpenCV failed: {exc}") from exc
        if self._people is not None:
            return self._answer_people(found, request)
        return self._answer_shapes(found, request)

    def _run_detector(self, image: np.ndarray) -> list[Any]:
        if self._people is not None:
            return self._people(image)
        return self._find_shapes(image)

    def _find_shapes(self, image: np.ndarray) -> list[Shape]:
        """find_shapes, remembered for the last RECENT_IMAGES images (keyed by their bytes'
        SHA-256, shape and type, so a changed or reused buffer is never mistaken)."""
        data = np.ascontiguousarray(image)
        key = hashlib.sha256(data.data).digest() + repr((data.shape, data.dtype.str)).encode()
        with self._recent_lock:
            found = self._recent.get(key)
            if found is not None:
                self._recent.move_to_end(key)
                return list(found)
        found = find_shapes(data, self.opts.min_area, workspace=self._workspace)
        with self._recent_lock:
            self._recent[key] = found
            while len(self._recent) > RECENT_IMAGES:
                self._recent.popitem(last=False)
        return list(found)

    # ------------------------------------------------------------------------ shapes

    def _answer_shapes(self, shapes: list[Shape], request: Request) -> Result:
        if isinstance(request, DetectRequest):
            return self._detect(shapes, request.labels)
        if isinstance(request, VerifyRequest):
            return self._verify(shapes, request.subject, request.property)
        if isinstance(request, ClassifyRequest):
            return self._classify(shapes, request.options)
        if isinstance(request, VQARequest):
            return self._vqa(shapes, request)
        raise BackendError(f"backend {self.name!r} cannot answer {request.function!r} requests")

    def _detect(self, shapes: list[Shape], labels: tuple[str, ...]) -> Detections:
        boxes, scores, names = [], [], []
        for label in labels:
            words = label_words(label)
            if words is None:
                continue
            for s in shapes:
                sc = score(s, words)
                if matches(s, words) and sc >= self.opts.score_threshold:
                    boxes.append(s.box)
                    scores.append(sc)
                    names.append(label)
        order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
        return Detections(
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4)[order],
            scores=np.asarray(scores, np.float32)[order],
            labels=[names[i] for i in order],
        )

    def _verify(self, shapes: list[Shape], subject: str, prop: str) -> Verdict:
        subject_words, prop_words = label_words(subject), label_words(prop)
        if not prop_words:
            raise BackendError(
                f"cannot verify property {prop!r}: the shapes detector knows colours "
                f"({', '.join(COLORS)}) and shapes ({', '.join(SHAPES)})"
            )
        if subject_words is None:
            raise BackendError(f"cannot verify {subject!r}: the shapes detector sees only shapes")
        subjects = [s for s in shapes if matches(s, subject_words)] or shapes
        if not subjects:
            return Verdict(value=False, confidence=0.5)
        yes = [s for s in subjects if matches(s, prop_words)]
        if yes:
            return Verdict(value=True, confidence=max(score(s, prop_words) for s in yes))
        p = max(score(s, prop_words) for s in subjects)
        return Verdict(value=False, confidence=1.0 - p)

    def _main_shape(self, shapes: list[Shape], words: list[str]) -> Shape:
        if not shapes:
            raise BackendError(f"backend {self.name!r} found no shape in the image")
        candidates = [s for s in shapes if matches(s, words)] or shapes
        return max(candidates, key=lambda s: (score(s, words), s.area))

    def _classify(self, shapes: list[Shape], options: tuple[str, ...]) -> Answer:
        parsed = [(o, label_words(o)) for o in options]
        known = [(o, w) for o, w in parsed if w]
        if not known:
            raise BackendError(f"none of the options {list(options)} names a colour or a shape")
        main = self._main_shape(shapes, [])
        p = np.asarray([score(main, w) / max(main.strength, 1e-6) for _, w in known])
        best = int(p.argmax())
        total = float(p.sum())
        conf = (float(p[best]) / total if total > 0 else 1.0 / len(known)) * main.strength
        return Answer(text=known[best][0], confidence=min(max(conf, 0.0), 1.0))

    def _vqa(self, shapes: list[Shape], request: VQARequest) -> Answer:
        """Template questions, read by the logic every shapes backend shares (scene_questions)."""
        try:
            return answer_question(shapes, request.question, whole_frame=isinstance(request, AnswerRequest))
        except BackendError as exc:
            raise BackendError(f"backend {self.name!r}: {exc}") from exc

    # ------------------------------------------------------------------- faces, people

    def _answer_people(self, found: list[cascades.Found], request: Request) -> Result:
        words = cascades.FACE_WORDS if self.detector == "faces" else cascades.PERSON_WORDS
        kept = [f for f in found if f.score >= self.opts.score_threshold]
        if isinstance(request, DetectRequest):
            wanted = [lab for lab in request.labels if lab.strip().lower() in words]
            if not wanted:
                return Detections()
            kept.sort(key=lambda f: -f.score)
            return Detections(
                boxes=np.asarray([f.box for f in kept], np.float32).reshape(-1, 4),
                scores=np.asarray([f.score for f in kept], np.float32),
                labels=[wanted[0]] * len(kept),
            )
        if isinstance(request, VQARequest):
            toks = set(re.findall(r"[a-z]+", request.question.lower()))
            if toks & words:
                if "how" in toks and "many" in toks:
                    conf = float(np.mean([f.score for f in kept])) if kept else 0.5
                    return Answer(text=str(len(kept)), confidence=conf)
                q = parse_question(request.question, {"object": sorted(words)})
                if q.kind == "yesno":
                    present = bool(kept)
                    conf = max((f.score for f in kept), default=0.5)
                    return Answer(text="yes" if present != q.negated else "no", confidence=conf)
        raise BackendError(
            f"backend {self.name!r} ({self.detector}) answers only detect and 'how many / is there' "
            f"questions about {'faces' if self.detector == 'faces' else 'people'}"
        )
