"""A request as named fields, the way the remote tier's wire formats carry it.

Besides the image, each function's request is a few named strings or lists of strings (the
KServe v2 inputs of docs/REMOTE.md, the `edgefmp` object of a chat request). The client
(`KServeProtocol`, which writes them) and the server (`edgefmp serve`, which reads them back)
share this one table so that the two sides cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgefmp.results import (
    AnswerRequest,
    ClassifyRequest,
    DetectRequest,
    LLMRequest,
    OCRRequest,
    Request,
    VerifyRequest,
    VQARequest,
)

IMAGE_FUNCTIONS = ("detect", "verify", "vqa", "answer", "classify", "ocr")
# the fields each function's request has besides the image: (name, is a list), in wire order
FIELDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "detect": (("labels", True),),
    "verify": (("subject", False), ("property", False)),
    "vqa": (("question", False),),
    "answer": (("question", False),),
    "classify": (("options", True),),
    "ocr": (),
    "llm": (("prompt", False),),
}


def request_fields(request: Request) -> dict[str, str | tuple[str, ...]]:
    """The named fields of `request` besides its image, in wire order (`FIELDS`)."""
    return {name: getattr(request, name) for name, _ in FIELDS[request.function]}


def request_from_fields(function: str, fields: dict[str, Any], image: np.ndarray | None) -> Request:
    """The request of `function` from its fields (as `request_fields` gives them) and image.

    Raises ValueError when `function` is unknown, an image function has no image, or a field is
    missing or malformed (the request types validate themselves).
    """
    if function not in FIELDS:
        raise ValueError(f"unknown function {function!r}; available: {', '.join(FIELDS)}")
    missing = [name for name, _ in FIELDS[function] if name not in fields]
    if missing:
        raise ValueError(f"function {function!r} needs {', '.join(missing)}")
    if function == "llm":
        return LLMRequest(fields["prompt"])
    if image is None:
        raise ValueError(f"function {function!r} needs an image")
    if function == "detect":
        return DetectRequest(image, fields["labels"])
    if function == "verify":
        return VerifyRequest(image, fields["subject"], fields["property"])
    if function == "vqa":
        return VQARequest(image, fields["question"])
    if function == "answer":
        return AnswerRequest(image, fields["question"])
    if function == "classify":
        return ClassifyRequest(image, fields["options"])
    return OCRRequest(image)
