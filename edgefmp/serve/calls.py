"""From a client's fields to a backend call and back: shared by the KServe and OpenAI routes.

`build_request` turns named fields (labels, subject, property, question, options, prompt) and
an image into the function's request type (the table of fields, `backends/remote_fields.py`, is
the one RemoteBackend writes from); `call_backend` runs it and maps backend failures
to HTTP statuses (503 unavailable, 422 cannot answer this input; any other exception is a
bug of the backend and answers 500); `result_tensors` and
`result_text` write the result in each protocol's form. The KServe names and shapes match what
RemoteBackend sends and reads (docs/REMOTE.md), so an edge device can use this server as its
remote tier.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import cv2
import numpy as np

from edgefmp.backends.base import Backend
from edgefmp.backends.remote_fields import FIELDS, IMAGE_FUNCTIONS, request_from_fields
from edgefmp.errors import BackendError, BackendTimeout, BackendUnavailable
from edgefmp.results import Answer, Detections, Request, Result, Text, Verdict
from edgefmp.serve.errors import RequestRejected, bad_request
from edgefmp.serve.tensors import Tensor

log = logging.getLogger(__name__)

OUTPUTS: dict[str, tuple[str, ...]] = {
    "detect": ("boxes", "scores", "labels", "confidence"),
    "verify": ("verdict", "confidence"),
    "vqa": ("answer", "confidence"),
    "answer": ("answer", "confidence"),
    "classify": ("answer", "confidence"),
    "ocr": ("text", "confidence"),
    "llm": ("answer", "confidence"),
}


def build_request(function: str, fields: dict[str, Any], image: np.ndarray | None) -> Request:
    """The request of `function`; a 400 names a missing or malformed field."""
    if function in IMAGE_FUNCTIONS and image is None:
        raise bad_request(f"function {function!r} needs an image ('image' or 'image_jpeg' input)", "image")
    values: dict[str, Any] = {}
    for name, is_list in FIELDS[function]:
        value = fields.get(name)
        if value is None:
            needed = ", ".join(n for n, _ in FIELDS[function])
            raise bad_request(f"function {function!r} needs {needed}; {name!r} is missing", name)
        if is_list:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise bad_request(f"{name!r} must be a list of strings", name)
            value = tuple(value)
        elif not isinstance(value, str):
            raise bad_request(f"{name!r} must be a string", name)
        values[name] = value
    try:
        return request_from_fields(function, values, image)
    except ValueError as exc:  # the request types validate themselves
        raise bad_request(str(exc)) from exc


def call_backend(backend: Backend, request: Request, model: str) -> Result:
    """Run the backend; failures become 503 (unavailable, retry elsewhere) or 422 (this input)."""
    try:
        return backend.infer(request)
    except (BackendTimeout, BackendUnavailable) as exc:
        log.warning("model %s: backend %s unavailable: %s", model, backend.name, exc)
        raise RequestRejected(503, f"model {model!r}: backend {backend.name!r} is unavailable now: {exc}") from exc
    except (BackendError, ValueError, cv2.error) as exc:  # this input: odd sizes, unknown words...
        log.info("model %s: backend %s could not answer: %s", model, backend.name, exc)
        raise RequestRejected(
            422, f"model {model!r} could not answer this {request.function!r} request: {exc}"
        ) from exc


def _text_tensor(name: str, values: list[str]) -> Tensor:
    return Tensor(name, "BYTES", [len(values)], [v.encode("utf-8") for v in values])


def result_tensors(function: str, result: Result) -> list[Tensor]:
    """The KServe outputs of a result (docs/REMOTE.md); `confidence` only when known."""
    out: list[Tensor] = []
    if isinstance(result, Detections):
        n = len(result)
        out += [
            Tensor("boxes", "FP32", [n, 4], result.boxes.astype(np.float32).reshape(n, 4)),
            Tensor("scores", "FP32", [n], result.scores.astype(np.float32)),
            _text_tensor("labels", list(result.labels)),
        ]
    elif isinstance(result, Verdict):
        out.append(Tensor("verdict", "BOOL", [1], np.asarray([result.value], np.bool_)))
    elif isinstance(result, Text):
        out.append(_text_tensor("text", [result.text]))
    elif isinstance(result, Answer):
        out.append(_text_tensor("answer", [result.text]))
    else:  # a backend returned a type this function does not have
        raise RequestRejected(500, f"function {function!r} returned an unexpected {type(result).__name__}")
    if result.confidence is not None:
        out.append(Tensor("confidence", "FP32", [1], np.asarray([result.confidence], np.float32)))
    return out


def result_text(result: Result) -> str:
    """The assistant message of a chat completion, as RemoteBackend's OpenAI protocol reads it."""
    if isinstance(result, Verdict):
        return "yes" if result.value else "no"
    if isinstance(result, (Answer, Text)):
        return result.text
    if isinstance(result, Detections):
        return json.dumps(
            [
                {"label": lab, "box": [round(float(v), 2) for v in box], "score": round(float(s), 4)}
                for box, s, lab in zip(result.boxes, result.scores, result.labels, strict=True)
            ]
        )
    raise RequestRejected(500, f"unexpected result type {type(result).__name__}")
