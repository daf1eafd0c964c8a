"""Reading an OpenAI chat completion request as one edgefmp call.

The last user message holds the text and at most one image (a `data:` URL). Which function it
is, and with which fields, is decided in this order:

1. explicit: an `edgefmp` object in the body (`extra_body={"edgefmp": {"function": "verify",
   "subject": "circle", "property": "red"}}` with the openai client) names the function and
   any fields, which override what is read from the text;
2. the prompts RemoteBackend writes (remote_protocols.build_prompt) are recognised, so an edge
   device pointed at this server gets the function it asked for;
3. otherwise: with an image, a question for `vqa` ("Is the X Y?" becomes `verify` when the
   model serves verify and not vqa); without one, a prompt for `llm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefmp.backends.remote_fields import FIELDS, IMAGE_FUNCTIONS
from edgefmp.serve.errors import bad_request
from edgefmp.serve.images import decode_data_url
from edgefmp.serve.models import ServedModel

_VQA = re.compile(r"^(?P<question>.+?)\s*\nAnswer with a single word or a short phrase\.\s*$", re.S)
_VERIFY = re.compile(r"^Is the (?P<subject>.+) (?P<property>\S+)\? Answer yes or no\.\s*$", re.S)
_VERIFY_LOOSE = re.compile(r"^\s*(?:is|are) the (?P<subject>.+) (?P<property>[^\s?]+)\s*\?", re.S | re.I)
_CLASSIFY = re.compile(
    r"^Which one of these options best describes the image: (?P<options>.+)\? "
    r"Answer with exactly one of the options and nothing else\.\s*$",
    re.S,
)
_DETECT = re.compile(r"^Find every (?P<labels>.+?) in the image\. The image is \d+ pixels wide", re.S)
_OCR = re.compile(r"^Read all the text in the image\.")


class _ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: _ImageURL | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[_Part] | None = None


class _Explicit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    function: str | None = None
    labels: list[str] | None = None
    subject: str | None = None
    property: str | None = None
    question: str | None = None
    options: list[str] | None = None
    prompt: str | None = None


class ChatRequest(BaseModel):
    """The fields of a chat completion request this server reads (others are ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    n: int = 1
    logprobs: bool = False
    edgefmp: _Explicit | None = None


def parse_chat_request(doc: Any) -> ChatRequest:
    """Validate the body; a 400 names the first bad field."""
    if not isinstance(doc, dict):
        raise bad_request("expected a JSON object with 'model' and 'messages'")
    try:
        chat = ChatRequest.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise bad_request(f"{where}: {first['msg']}", where) from exc
    if chat.stream:
        raise bad_request("stream=true is not supported by edgefmp serve; send stream=false", "stream")
    if chat.n != 1:
        raise bad_request("only n=1 is supported", "n")
    return chat


@dataclass
class ChatCall:
    """One function call read from a chat request."""

    function: str
    fields: dict[str, Any]
    image: np.ndarray | None


def _user_content(chat: ChatRequest, max_pixels: int) -> tuple[str, np.ndarray | None]:
    users = [m for m in chat.messages if m.role == "user"]
    if not users:
        raise bad_request("messages: expected at least one message with role 'user'", "messages")
    content = users[-1].content
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    texts: list[str] = []
    images: list[np.ndarray] = []
    for i, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text or "")
        else:
            if part.image_url is None:
                raise bad_request(f"content[{i}]: an image_url part needs image_url.url", "image_url")
            images.append(decode_data_url(part.image_url.url, max_pixels, f"content[{i}].image_url.url"))
    if len(images) > 1:
        raise bad_request(f"expected at most one image per request, got {len(images)}", "image_url")
    return "\n".join(texts), images[0] if images else None


def _from_template(text: str) -> tuple[str, dict[str, Any]] | None:
    if m := _VERIFY.match(text):
        return "verify", {"subject": m["subject"], "property": m["property"]}
    if m := _CLASSIFY.match(text):
        return "classify", {"options": [o.strip() for o in m["options"].split("; ")]}
    if m := _DETECT.match(text):
        return "detect", {"labels": [lab.strip() for lab in m["labels"].split(", ")]}
    if _OCR.match(text):
        return "ocr", {}
    if m := _VQA.match(text):
        return "vqa", {"question": m["question"]}
    return None


def _guess(text: str, image: np.ndarray | None, model: ServedModel) -> tuple[str, dict[str, Any]]:
    served = set(model.functions)
    if image is None:
        return "llm", {"prompt": text}
    loose = _VERIFY_LOOSE.match(text)
    if loose and "verify" in served and "vqa" not in served:
        return "verify", {"subject": loose["subject"], "property": loose["property"]}
    if "vqa" in served or "verify" not in served:
        return "vqa", {"question": text}
    raise bad_request(
        f"model {model.name!r} serves {', '.join(model.functions)}; ask 'Is the <subject> <property>?' "
        "or name the function and fields in the request's 'edgefmp' object",
        "messages",
    )


def read_call(chat: ChatRequest, model: ServedModel, max_pixels: int) -> ChatCall:
    """The function, fields and image a chat request asks for (see the module docstring)."""
    text, image = _user_content(chat, max_pixels)
    explicit = chat.edgefmp.model_dump(exclude_none=True) if chat.edgefmp else {}
    function = explicit.pop("function", None)
    found = _from_template(text)
    if function is None:
        function, fields = found or _guess(text, image, model)
    else:
        fields = found[1] if found and found[0] == function else {}
        if function == "llm":
            fields = {"prompt": text}
        elif function in ("vqa", "answer") and "question" not in fields:
            fields = {"question": text}
    fields.update(explicit)
    if function not in FIELDS:
        raise bad_request(f"unknown function {function!r}; available: {', '.join(FIELDS)}", "edgefmp.function")
    if function in IMAGE_FUNCTIONS and image is None:
        raise bad_request(
            f"function {function!r} needs an image: add a content part "
            '{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}',
            "messages",
        )
    return ChatCall(function, fields, image if function in IMAGE_FUNCTIONS else None)
