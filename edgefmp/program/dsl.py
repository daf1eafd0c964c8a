"""The program DSL: `ImagePatch` and the free functions a program can call.

Coordinates: every position a program reads or passes is in pixels of the ORIGINAL frame,
origin at the top-left corner, x to the right and y downwards. `left`/`upper` are the first
column/row inside the patch and `right`/`lower` one past the last, so `upper < lower` (unlike
ViperGPT, whose origin is bottom-left and whose `upper > lower`). `crop(left, lower, right,
upper)` keeps ViperGPT's argument order, takes frame coordinates and accepts the two rows in
either order, so programs written for either convention cut the same region.

Each neural method builds one typed request of edgefmp.results and sends it through the
execution's caller under the current call site id; the context that carries the caller is
private to the patch (programs cannot read attributes starting with '_').

Context margin: a patch from `find` is a tight detection box, and recognisers judge a shape
or a colour badly without the edge around it, so its neural calls see the box grown by
CONTEXT_MARGIN pixels (clipped to the frame), as ViperGPT's `crop_larger_margin` does. Its
coordinates stay the tight box. The whole image and explicit crops are sent exactly.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from edgefmp.errors import ProgramError
from edgefmp.program.context import ExecutionContext
from edgefmp.results import (
    Answer,
    AnswerRequest,
    ClassifyRequest,
    Detections,
    DetectRequest,
    LLMRequest,
    OCRRequest,
    Text,
    Verdict,
    VerifyRequest,
    VQARequest,
    check_image,
)

CONTEXT_MARGIN = 10


def _text(method: str, what: str, value: Any, *, each: bool = False) -> str:
    """A non-empty string argument of a DSL call, or a ProgramError saying what was wrong.

    `what` is a bare noun ("object name"): "find() expects the object name as a string" and
    "find() got an empty object name"; with `each`, "expects each option as a string".
    """
    if not isinstance(value, str):
        article = "each" if each else "the"
        raise ProgramError(f"{method}() expects {article} {what} as a string, got {type(value).__name__}")
    if not value.strip():
        raise ProgramError(f"{method}() got an empty {what}; pass some text")
    return value


def _number(method: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProgramError(f"{method}() expects {what} as a finite number, got {value!r:.40}")
    return float(value)


class ImagePatch:
    """An image or a crop of one, with the DSL's neural methods and positions.

    A program receives the whole frame as `image` and gets child patches from `find` and
    `crop`. Children keep their box in frame coordinates; their pixels are a read-only view
    of the frame (no copy).
    """

    __slots__ = ("_context", "_frame", "_label", "_left", "_lower", "_margin", "_right", "_score", "_upper")

    def __init__(self, image: np.ndarray, context: ExecutionContext | None = None) -> None:
        try:
            check_image(image, "ImagePatch")
        except ValueError as exc:
            raise ProgramError(str(exc)) from exc
        self._frame = image
        self._context = context
        self._left, self._upper = 0, 0
        self._right, self._lower = int(image.shape[1]), int(image.shape[0])
        self._score = 1.0
        self._label = "image"
        self._margin = 0

    def _child(
        self, left: int, upper: int, right: int, lower: int, score: float, label: str, margin: int = 0
    ) -> ImagePatch:
        child = ImagePatch.__new__(ImagePatch)
        child._frame = self._frame
        child._context = self._context
        child._left, child._upper, child._right, child._lower = left, upper, right, lower
        child._score = score
        child._label = label
        child._margin = margin
        return child

    # -------------------------------------------------------------------------- positions

    @property
    def left(self) -> int:
        """First column inside the patch (frame pixels)."""
        return self._left

    @property
    def right(self) -> int:
        """One past the last column inside the patch."""
        return self._right

    @property
    def upper(self) -> int:
        """First row inside the patch: the top edge (origin top-left, so upper < lower)."""
        return self._upper

    @property
    def lower(self) -> int:
        """One past the last row inside the patch: the bottom edge."""
        return self._lower

    @property
    def width(self) -> int:
        return self._right - self._left

    @property
    def height(self) -> int:
        return self._lower - self._upper

    @property
    def horizontal_center(self) -> float:
        return (self._left + self._right) / 2

    @property
    def vertical_center(self) -> float:
        """Grows downwards: a patch with a smaller vertical_center is higher in the image."""
        return (self._upper + self._lower) / 2

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def score(self) -> float:
        """The detector's score for a patch from find(); 1.0 for the image and for crops."""
        return self._score

    @property
    def label(self) -> str:
        """The detected label for a patch from find(); 'image' or 'crop' otherwise."""
        return self._label

    def __repr__(self) -> str:
        return (
            f"ImagePatch(left={self._left}, upper={self._upper}, right={self._right}, "
            f"lower={self._lower}, label={self._label!r}, score={self._score:.3f})"
        )

    # ----------------------------------------------------------------------------- pixels

    def _window(self) -> tuple[int, int, int, int]:
        """The (left, upper, right, lower) region neural calls see: the box plus its margin."""
        m = self._margin
        height, width = self._frame.shape[:2]
        return (
            max(0, self._left - m),
            max(0, self._upper - m),
            min(width, self._right + m),
            min(height, self._lower + m),
        )

    def _pixels(self) -> np.ndarray:
        left, upper, right, lower = self._window()
        view = self._frame[upper:lower, left:right]
        view.flags.writeable = False  # a backend must not paint over the frame
        return view

    def _context_for(self, method: str) -> ExecutionContext:
        if self._context is None:
            raise ProgramError(f"{method}() needs a running program: this ImagePatch has no neural caller")
        return self._context

    # ---------------------------------------------------------------------- neural methods

    def _detect(self, method: str, object_name: str) -> list[ImagePatch]:
        name = _text(method, "object name", object_name)
        origin_x, origin_y, _, _ = self._window()
        request = DetectRequest(image=self._pixels(), labels=(name,), origin=(float(origin_x), float(origin_y)))
        result = cast(Detections, self._context_for(method).call_neural(method, request))
        children: list[ImagePatch] = []
        for box, score, label in zip(result.boxes.tolist(), result.scores.tolist(), result.labels, strict=True):
            if not all(math.isfinite(v) for v in box):
                continue
            x1, y1, x2, y2 = box  # pixels of the request's image: shift to frame pixels, clip to the box
            left = max(self._left, origin_x + math.floor(x1))
            upper = max(self._upper, origin_y + math.floor(y1))
            right = min(self._right, origin_x + math.ceil(x2))
            lower = min(self._lower, origin_y + math.ceil(y2))
            if right > left and lower > upper:
                children.append(self._child(left, upper, right, lower, float(score), str(label), CONTEXT_MARGIN))
        children.sort(key=lambda patch: -patch._score)
        return children

    def find(self, object_name: str) -> list[ImagePatch]:
        """Patches of every `object_name` detected in this patch, best score first."""
        return self._detect("find", object_name)

    def exists(self, object_name: str) -> bool:
        """Whether the detector finds at least one `object_name` in this patch."""
        return len(self._detect("exists", object_name)) > 0

    def count(self, object_name: str) -> int:
        """How many `object_name` the detector finds in this patch."""
        return len(self._detect("count", object_name))

    def verify_property(self, object_name: str, property: str) -> bool:
        """Whether the `object_name` in this patch has `property` (a colour, a material...)."""
        request = VerifyRequest(
            image=self._pixels(),
            subject=_text("verify_property", "object name", object_name),
            property=_text("verify_property", "property", property),
        )
        result = cast(Verdict, self._context_for("verify_property").call_neural("verify_property", request))
        return result.value

    def _ask(self, method: str, question: str) -> str:
        kind = AnswerRequest if method == "answer" else VQARequest  # whole-patch question, or a look at it
        request = kind(image=self._pixels(), question=_text(method, "question", question))
        result = cast(Answer, self._context_for(method).call_neural(method, request))
        return result.text

    def query(self, question: str) -> str:
        """A short free-form answer to `question` about this patch."""
        return self._ask("query", question)

    def simple_query(self, question: str) -> str:
        """ViperGPT's name for `query`; a call site of its own."""
        return self._ask("simple_query", question)

    def answer(self, question: str) -> str:
        """`question` answered about this whole patch by one monolithic model (function `answer`).

        Unlike `query`, whose backends describe the patch a program already found, the backends
        of `answer` look for what the question names themselves and say "none" when it is not
        there: the one-call program of the routing baseline (`routing_program`) is
        `return image.answer(question)`.
        """
        return self._ask("answer", question)

    def best_text_match(self, option_list: list[str]) -> str:
        """The option that best describes this patch.

        A backend that answers in its own words ("Red.") is mapped back to the option it
        names, because programs compare the result with their options.
        """
        if not isinstance(option_list, (list, tuple)) or not option_list:
            raise ProgramError("best_text_match() expects a non-empty list of strings")
        options = tuple(_text("best_text_match", "option", o, each=True) for o in option_list)
        request = ClassifyRequest(image=self._pixels(), options=options)
        result = cast(Answer, self._context_for("best_text_match").call_neural("best_text_match", request))
        if result.text in options:
            return result.text
        wanted = result.text.strip().strip(".!").casefold()
        for option in options:
            if option.strip().casefold() == wanted:
                return option
        return result.text

    def read_text(self) -> str:
        """The text written in this patch (OCR)."""
        request = OCRRequest(image=self._pixels())
        result = cast(Text, self._context_for("read_text").call_neural("read_text", request))
        return result.text

    # ------------------------------------------------------------------------------- crop

    def crop(self, left: float, lower: float, right: float, upper: float) -> ImagePatch:
        """The part of this patch inside the box, in frame coordinates.

        The box is clipped to this patch; rows may come in either order (ViperGPT's bottom-left
        convention or ours), and an empty result is an error rather than a 0-pixel image.
        """
        xs = sorted((_number("crop", "left", left), _number("crop", "right", right)))
        ys = sorted((_number("crop", "lower", lower), _number("crop", "upper", upper)))
        new_left = max(self._left, math.floor(xs[0]))
        new_right = min(self._right, math.ceil(xs[1]))
        new_upper = max(self._upper, math.floor(ys[0]))
        new_lower = min(self._lower, math.ceil(ys[1]))
        if new_right <= new_left or new_lower <= new_upper:
            raise ProgramError(
                f"crop({left!r:.20}, {lower!r:.20}, {right!r:.20}, {upper!r:.20}) is empty inside the patch "
                f"left={self._left} upper={self._upper} right={self._right} lower={self._lower}; "
                f"crop takes frame pixels with the origin at the top-left"
            )
        return self._child(new_left, new_upper, new_right, new_lower, 1.0, "crop")


# ---------------------------------------------------------------------------- free functions


def bool_to_yesno(value: Any) -> str:
    """'yes' or 'no', the answer format of binary questions."""
    return "yes" if value else "no"


def distance(a: Any, b: Any) -> float:
    """Euclidean distance between two patches' centers (frame pixels), or |a - b| of numbers."""
    if isinstance(a, ImagePatch) and isinstance(b, ImagePatch):
        return math.hypot(a.horizontal_center - b.horizontal_center, a.vertical_center - b.vertical_center)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return float(abs(a - b))
    raise ProgramError(f"distance() expects two patches or two numbers, got {type(a).__name__} and {type(b).__name__}")


class LLMQuery:
    """`llm_query(question)` bound to one execution; a method, so the caller stays private."""

    __slots__ = ("_context",)

    def __init__(self, context: ExecutionContext) -> None:
        self._context = context

    def llm_query(self, question: str) -> str:
        """A text-only answer from a language model."""
        request = LLMRequest(prompt=_text("llm_query", "question", question))
        result = cast(Answer, self._context.call_neural("llm_query", request))
        return result.text


def dsl_functions(context: ExecutionContext) -> dict[str, Any]:
    """The free functions of the DSL for one execution."""
    return {
        "llm_query": LLMQuery(context).llm_query,
        "bool_to_yesno": bool_to_yesno,
        "distance": distance,
    }
