"""OpenAI-compatible routes: `POST /v1/chat/completions` and `GET /v1/models`.

Replies have the shape the official `openai` client and RemoteBackend's OpenAI protocol read:
`choices[0].message.content` holds "yes"/"no" (verify), the answer (vqa, classify, llm), the
text (ocr) or a JSON list of boxes in pixels of the image as received (detect). With
`logprobs: true` and a backend that gives a confidence, the first token's logprob is
log(confidence), which RemoteBackend turns back into the confidence.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from edgefmp.serve.calls import build_request, call_backend, result_text
from edgefmp.serve.chat import parse_chat_request, read_call
from edgefmp.serve.errors import bad_request
from edgefmp.serve.models import ModelTable
from edgefmp.serve.settings import ServeSettings


def _logprobs(text: str, confidence: float | None) -> dict[str, Any] | None:
    if confidence is None:
        return None
    token = text.split()[0] if text.split() else text
    logprob = math.log(max(confidence, 1e-12))
    return {"content": [{"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8")), "top_logprobs": []}]}


def complete(table: ModelTable, body: bytes, settings: ServeSettings, request: Request) -> dict[str, Any]:
    """Answer one chat completion body (runs in a worker thread)."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from exc
    chat = parse_chat_request(doc)
    model = table.get(chat.model)
    request.state.edgefmp_model = chat.model
    call = read_call(chat, model, settings.max_image_pixels)
    function, backend = model.backend(call.function)
    result = call_backend(backend, build_request(function, call.fields, call.image), model.name)
    text = result_text(result)
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "logprobs": _logprobs(text, result.confidence) if chat.logprobs else None,
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.name,
        "choices": [choice],
        "system_fingerprint": f"edgefmp-{function}-{backend.name}",
    }


def openai_router(table: ModelTable, settings: ServeSettings) -> APIRouter:
    """The /v1 routes for `table`'s models."""
    router = APIRouter()

    @router.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": m.name, "object": "model", "created": 0, "owned_by": "edgefmp", "functions": m.functions}
                for m in table.models()
            ],
        }

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> dict[str, Any]:
        request.state.edgefmp_endpoint = "chat"
        body = await request.body()
        return await run_in_threadpool(complete, table, body, settings, request)

    return router
