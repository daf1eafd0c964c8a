"""The two wire protocols a RemoteBackend speaks: OpenAI-compatible chat and KServe v2.

Each protocol turns a request into a JSON body and the server's JSON answer into a result.
Transport (retries, timeouts, byte counting and error kinds: RemotePoster in remote_http) is
separate; answer parsing helpers live in remote_answers. docs/REMOTE.md documents both layouts
for people writing a server.

OpenAI-compatible (`POST {url}/chat/completions`): one user message whose content is a text
part (the prompt, built per function below) and, for image functions, an `image_url` part
holding the image as a base64 JPEG data URL. The reply's `choices[0].message.content` is
parsed per function.

KServe v2 (`POST {url}/v2/models/{model}/infer`), JSON tensors:

Inputs (the image one of two ways, per options.kserve_image; no image for llm):

| name       | datatype | shape        | sent for                                      |
|------------|----------|--------------|-----------------------------------------------|
| image      | UINT8    | [1, H, W, 3] | image functions, kserve_image=uint8: RGB, flat |
| image_jpeg | BYTES    | [1]          | image functions, kserve_image=jpeg: base64    |
| function   | BYTES    | [1]          | always: detect/verify/vqa/classify/ocr/llm    |
| labels     | BYTES    | [N]          | detect                                        |
| subject    | BYTES    | [1]          | verify                                        |
| property   | BYTES    | [1]          | verify                                        |
| question   | BYTES    | [1]          | vqa                                           |
| options    | BYTES    | [N]          | classify                                      |
| prompt     | BYTES    | [1]          | llm                                           |

Outputs (requested by name; `data` flat row-major, nested lists accepted):

| name       | datatype | shape  | expected for                                |
|------------|----------|--------|---------------------------------------------|
| boxes      | FP32     | [N, 4] | detect: xyxy in pixels of the image as sent |
| scores     | FP32     | [N]    | detect                                      |
| labels     | BYTES    | [N]    | detect                                      |
| verdict    | BOOL     | [1]    | verify (or `answer` BYTES "yes"/"no")       |
| answer     | BYTES    | [1]    | vqa, classify, llm                          |
| text       | BYTES    | [1]    | ocr                                         |
| confidence | FP32     | [1]    | any, optional                               |
"""

from __future__ import annotations

import base64
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgefmp.backends.remote_answers import (
    boxes_from_items,
    extract_json,
    match_option,
    parse_yes_no,
)
from edgefmp.backends.remote_fields import request_fields
from edgefmp.backends.remote_image import SentImage, encode_jpeg, jpeg_data_url
from edgefmp.results import (
    Answer,
    ClassifyRequest,
    Detections,
    DetectRequest,
    LLMRequest,
    OCRRequest,
    Request,
    Result,
    Text,
    Verdict,
    VerifyRequest,
    VQARequest,
)

_UINT8_TEXT = [str(i) for i in range(256)]
_IMAGE_SENTINEL = "__edgefmp_uint8_image__"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _need_image(image: SentImage | None, request: Request) -> SentImage:
    if image is None:
        raise ValueError(f"a {request.function!r} request needs its prepared image")
    return image


def _confidence(value: Any) -> float | None:
    try:
        c = float(value)
    except (TypeError, ValueError):
        return None
    return min(1.0, max(0.0, c)) if math.isfinite(c) else None


class Protocol(ABC):
    """Build a request body and parse a response body for one wire protocol."""

    name: str = ""

    def __init__(self, *, model: str, jpeg_quality: int, where: str) -> None:
        self.model = model
        self.jpeg_quality = jpeg_quality
        self.where = where

    @abstractmethod
    def endpoint(self, base_url: str) -> str:
        """The URL to POST to."""

    @abstractmethod
    def build(self, request: Request, image: SentImage | None) -> bytes:
        """The JSON request body."""

    @abstractmethod
    def parse(self, request: Request, body: Any, image: SentImage | None) -> Result:
        """The result; raise ValueError when the body cannot be read."""

    def usage(self, body: Any) -> tuple[int, int] | None:
        """(input tokens, output tokens) the server billed for this answer; None when the
        answer does not say (KServe v2 has no such field)."""
        return None


# ------------------------------------------------------------------------------------- OpenAI


def build_prompt(request: Request, image: SentImage | None) -> str:
    """The text instruction sent with the image, per function."""
    if isinstance(request, VQARequest):
        return f"{request.question.strip()}\nAnswer with a single word or a short phrase."
    if isinstance(request, VerifyRequest):
        return f"Is the {request.subject} {request.property}? Answer yes or no."
    if isinstance(request, ClassifyRequest):
        options = "; ".join(request.options)
        return (
            f"Which one of these options best describes the image: {options}? "
            "Answer with exactly one of the options and nothing else."
        )
    if isinstance(request, DetectRequest):
        image = _need_image(image, request)
        labels = ", ".join(request.labels)
        return (
            f"Find every {labels} in the image. The image is {image.width} pixels wide and "
            f"{image.height} pixels high; x grows to the right and y downwards from the top-left "
            "corner. Reply with only a JSON list, one entry per object: "
            '[{"label": "<one of: ' + labels + '>", "box": [x1, y1, x2, y2], "score": <0 to 1>}] '
            "with the box corners in pixels of this image. Reply [] if there is none."
        )
    if isinstance(request, OCRRequest):
        return "Read all the text in the image. Reply with the text only, or nothing if there is no text."
    if isinstance(request, LLMRequest):
        return request.prompt
    raise ValueError(f"unsupported request type {type(request).__name__}")


def _message_text(body: Any) -> tuple[str, float | None]:
    """The assistant's text and, when logprobs came back, the first token's probability."""
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError("expected an OpenAI chat completion with choices[0].message.content") from exc
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ValueError(f"choices[0].message.content is a {type(content).__name__}, not text")
    confidence = None
    try:
        first = choice["logprobs"]["content"][0]["logprob"]
        confidence = _confidence(math.exp(float(first)))
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return content, confidence


def result_from_text(request: Request, text: str, image: SentImage | None, confidence: float | None) -> Result:
    """Parse a text answer into the request's result type."""
    if isinstance(request, VerifyRequest):
        return Verdict(value=parse_yes_no(text), confidence=confidence)
    if isinstance(request, ClassifyRequest):
        return Answer(text=match_option(text, request.options), confidence=confidence)
    if isinstance(request, (VQARequest, LLMRequest)):
        return Answer(text=text.strip(), confidence=confidence)
    if isinstance(request, OCRRequest):
        return Text(text=text.strip(), confidence=confidence)
    if isinstance(request, DetectRequest):
        image = _need_image(image, request)
        h, w = request.image.shape[:2]
        return boxes_from_items(
            extract_json(text),
            request.labels,
            scale_x=image.scale_x,
            scale_y=image.scale_y,
            width=w,
            height=h,
        )
    raise ValueError(f"unsupported request type {type(request).__name__}")


class OpenAIProtocol(Protocol):
    """OpenAI-compatible chat completions with images (vLLM, llama.cpp server, OpenAI...)."""

    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        jpeg_quality: int,
        where: str,
        max_tokens: int,
        temperature: float,
        logprobs: bool,
    ) -> None:
        super().__init__(model=model, jpeg_quality=jpeg_quality, where=where)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.logprobs = logprobs

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/chat/completions"

    def build(self, request: Request, image: SentImage | None) -> bytes:
        prompt = build_prompt(request, image)
        content: Any
        if image is None:
            content = prompt
        else:
            content = [
                {"type": "text", "text": prompt},
                {
                    "type": "image_url",
                    "image_url": {"url": jpeg_data_url(image.rgb, self.jpeg_quality, self.where)},
                },
            ]
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.logprobs:
            payload["logprobs"] = True
        return _dumps(payload)

    def parse(self, request: Request, body: Any, image: SentImage | None) -> Result:
        text, confidence = _message_text(body)
        return result_from_text(request, text, image, confidence)

    def usage(self, body: Any) -> tuple[int, int] | None:
        """`usage.prompt_tokens` and `usage.completion_tokens` of a chat completion."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        counts = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            return None
        return int(counts[0]), int(counts[1])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- KServe


def _bytes_tensor(name: str, values: Sequence[str]) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": [len(values)], "data": list(values)}


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return [data]


def kserve_outputs(body: Any) -> dict[str, dict[str, Any]]:
    """Outputs by name, each with a flat `data` list."""
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        raise ValueError("expected a KServe v2 response with an 'outputs' list")
    out: dict[str, dict[str, Any]] = {}
    for tensor in body["outputs"]:
        if not isinstance(tensor, dict) or "name" not in tensor or "data" not in tensor:
            raise ValueError("every KServe output needs 'name' and 'data'")
        out[str(tensor["name"])] = {**tensor, "data": _flatten(tensor["data"])}
    return out


def _one_text(outputs: dict[str, dict[str, Any]], name: str) -> str:
    if name not in outputs or not outputs[name]["data"]:
        raise ValueError(f"the response has no output {name!r}; it has {sorted(outputs)}")
    value = outputs[name]["data"][0]
    return value if isinstance(value, str) else str(value)


class KServeProtocol(Protocol):
    """KServe / Open Inference Protocol v2 over JSON (KServe, Triton, edgefmp serve)."""

    name = "kserve"

    def __init__(self, *, model: str, jpeg_quality: int, where: str, image_format: str) -> None:
        super().__init__(model=model, jpeg_quality=jpeg_quality, where=where)
        self.image_format = image_format

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/v2/models/{self.model}/infer"

    def _inputs(self, request: Request) -> list[dict[str, Any]]:
        inputs = [_bytes_tensor("function", [request.function])]
        for name, value in request_fields(request).items():
            inputs.append(_bytes_tensor(name, [value] if isinstance(value, str) else value))
        return inputs

    @staticmethod
    def _outputs(request: Request) -> list[str]:
        return {
            "detect": ["boxes", "scores", "labels"],
            "verify": ["verdict", "confidence"],
            "ocr": ["text", "confidence"],
        }.get(request.function, ["answer", "confidence"])

    def build(self, request: Request, image: SentImage | None) -> bytes:
        inputs = self._inputs(request)
        uint8_data: np.ndarray | None = None
        if image is not None:
            if self.image_format == "jpeg":
                b64 = base64.b64encode(encode_jpeg(image.rgb, self.jpeg_quality, self.where)).decode("ascii")
                inputs.insert(0, _bytes_tensor("image_jpeg", [b64]))
            else:
                h, w = image.height, image.width
                inputs.insert(
                    0,
                    {
                        "name": "image",
                        "datatype": "UINT8",
                        "shape": [1, h, w, 3],
                        "data": _IMAGE_SENTINEL,
                    },
                )
                uint8_data = image.rgb
        payload = {"inputs": inputs, "outputs": [{"name": n} for n in self._outputs(request)]}
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        if uint8_data is not None:
            # json.dumps of a 1M-element int list is ~3x slower than joining cached digit strings,
            # which matters on a Jetson-class CPU.
            flat = ",".join(map(_UINT8_TEXT.__getitem__, uint8_data.reshape(-1).tolist()))
            text = text.replace(f'"{_IMAGE_SENTINEL}"', f"[{flat}]", 1)
        return text.encode("utf-8")

    def parse(self, request: Request, body: Any, image: SentImage | None) -> Result:
        outputs = kserve_outputs(body)
        confidence = None
        if "confidence" in outputs and outputs["confidence"]["data"]:
            confidence = _confidence(outputs["confidence"]["data"][0])
        if isinstance(request, DetectRequest):
            return self._detections(request, outputs, _need_image(image, request))
        if isinstance(request, VerifyRequest):
            if "verdict" in outputs and outputs["verdict"]["data"]:
                value = outputs["verdict"]["data"][0]
                if isinstance(value, str):
                    return Verdict(value=parse_yes_no(value), confidence=confidence)
                return Verdict(value=bool(value), confidence=confidence)
            return Verdict(value=parse_yes_no(_one_text(outputs, "answer")), confidence=confidence)
        if isinstance(request, OCRRequest):
            return Text(text=_one_text(outputs, "text"), confidence=confidence)
        return result_from_text(request, _one_text(outputs, "answer"), image, confidence)

    @staticmethod
    def _detections(request: DetectRequest, outputs: dict[str, dict[str, Any]], image: SentImage) -> Detections:
        for name in ("boxes", "scores", "labels"):
            if name not in outputs:
                raise ValueError(f"a detect response needs outputs boxes, scores, labels; {name!r} is missing")
        flat = outputs["boxes"]["data"]
        if len(flat) % 4:
            raise ValueError(f"output 'boxes' has {len(flat)} values, not a multiple of 4 (shape [N, 4])")
        n = len(flat) // 4
        scores, labels = outputs["scores"]["data"], outputs["labels"]["data"]
        if len(scores) != n or len(labels) != n:
            raise ValueError(f"{n} boxes but {len(scores)} scores and {len(labels)} labels")
        items = [{"label": labels[i], "box": flat[4 * i : 4 * i + 4], "score": scores[i]} for i in range(n)]
        h, w = request.image.shape[:2]
        return boxes_from_items(items, request.labels, scale_x=image.scale_x, scale_y=image.scale_y, width=w, height=h)
