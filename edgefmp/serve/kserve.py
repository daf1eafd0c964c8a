"""KServe v2 / Open Inference Protocol REST routes: health, metadata, inference.

Inputs and outputs follow docs/REMOTE.md (what RemoteBackend sends): the image as `image`
UINT8 [1, H, W, 3] (or [H, W, 3]) or `image_jpeg` BYTES [1] (base64, or raw JPEG/PNG bytes in
binary mode), `function` BYTES [1], and the function's fields (labels, subject, property,
question, options, prompt) as BYTES tensors. Decoding, inference and encoding run in a worker
thread so a large body or a slow model never blocks the event loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from edgefmp import __version__
from edgefmp.backends.remote_fields import FIELDS, IMAGE_FUNCTIONS
from edgefmp.serve.calls import OUTPUTS, build_request, call_backend, result_tensors
from edgefmp.serve.errors import RequestRejected, bad_request
from edgefmp.serve.images import decode_base64, decode_image, image_size
from edgefmp.serve.models import ModelTable, ServedModel
from edgefmp.serve.settings import ServeSettings
from edgefmp.serve.tensors import InferRequest, Tensor, encode_infer_response, parse_infer_request

PLATFORM = "edgefmp"
VERSION = "1"


def _image(inputs: dict[str, Tensor], max_pixels: int) -> np.ndarray | None:
    if "image" in inputs:
        t = inputs["image"]
        if t.datatype != "UINT8" or isinstance(t.data, list):
            raise bad_request(f"input 'image' must be UINT8 [1, H, W, 3], got {t.datatype} {t.shape}", "image")
        shape = t.shape[1:] if len(t.shape) == 4 else t.shape
        if len(t.shape) not in (3, 4) or (len(t.shape) == 4 and t.shape[0] != 1) or shape[2] != 3:
            raise bad_request(f"input 'image' must have shape [1, H, W, 3] (RGB), got {t.shape}", "image")
        if shape[0] < 1 or shape[1] < 1:
            raise bad_request(f"input 'image' is empty: shape {t.shape}", "image")
        if shape[0] * shape[1] > max_pixels:
            raise RequestRejected(413, f"input 'image' has {shape[0] * shape[1]} pixels; at most {max_pixels}")
        return np.ascontiguousarray(t.data.reshape(shape[0], shape[1], 3))
    if "image_jpeg" in inputs:
        t = inputs["image_jpeg"]
        if t.datatype != "BYTES" or not isinstance(t.data, list) or len(t.data) != 1:
            raise bad_request("input 'image_jpeg' must be BYTES [1]: one base64 JPEG or PNG", "image_jpeg")
        raw = t.data[0]
        data = raw if image_size(raw) is not None else decode_base64(raw.decode("ascii", "replace"), "image_jpeg")
        return decode_image(data, max_pixels, "input 'image_jpeg'")
    return None


def _function(model: ServedModel, inputs: dict[str, Tensor]) -> str | None:
    if "function" not in inputs:
        return None
    values = inputs["function"].texts()
    if len(values) != 1:
        raise bad_request(f"input 'function' must hold one name, got {len(values)}", "function")
    return values[0]


def _fields(function: str, inputs: dict[str, Tensor]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, is_list in FIELDS[function]:
        if name in inputs:
            texts = inputs[name].texts()
            if not is_list and len(texts) != 1:
                raise bad_request(f"input {name!r} must be BYTES [1], got {len(texts)} elements", name)
            fields[name] = texts if is_list else texts[0]
    return fields


def infer(model: ServedModel, parsed: InferRequest, settings: ServeSettings) -> tuple[bytes, int | None]:
    """Run one parsed /infer request; the encoded response and its JSON header length."""
    function, backend = model.backend(_function(model, parsed.inputs))
    image = _image(parsed.inputs, settings.max_image_pixels) if function in IMAGE_FUNCTIONS else None
    request = build_request(function, _fields(function, parsed.inputs), image)
    unknown = [n for n in parsed.outputs or () if n not in OUTPUTS[function]]
    if unknown:
        raise bad_request(
            f"model {model.name!r} ({function}) has no output {unknown[0]!r}; "
            f"available: {', '.join(OUTPUTS[function])}",
            "outputs",
        )
    produced = result_tensors(function, call_backend(backend, request, model.name))
    if parsed.outputs is not None:
        produced = [t for t in produced if t.name in parsed.outputs]
    binary = set(parsed.binary_outputs)
    if parsed.outputs is None and parsed.binary_default:
        binary = {t.name for t in produced}
    return encode_infer_response(model.name, parsed.id, produced, binary)


def _metadata(model: ServedModel) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {}
    if any(f in IMAGE_FUNCTIONS for f in model.functions):
        inputs["image"] = {"name": "image", "datatype": "UINT8", "shape": [1, -1, -1, 3]}
        inputs["image_jpeg"] = {"name": "image_jpeg", "datatype": "BYTES", "shape": [1]}
    inputs["function"] = {"name": "function", "datatype": "BYTES", "shape": [1]}
    outputs: dict[str, dict[str, Any]] = {}
    for function in model.functions:
        for name, is_list in FIELDS[function]:
            inputs[name] = {"name": name, "datatype": "BYTES", "shape": [-1] if is_list else [1]}
        for name in OUTPUTS[function]:
            dtype = {"boxes": "FP32", "scores": "FP32", "confidence": "FP32", "verdict": "BOOL"}.get(name, "BYTES")
            shape = {"boxes": [-1, 4], "scores": [-1], "labels": [-1]}.get(name, [1])
            outputs[name] = {"name": name, "datatype": dtype, "shape": shape}
    return {
        "name": model.name,
        "versions": [VERSION],
        "platform": PLATFORM,
        "inputs": list(inputs.values()),
        "outputs": list(outputs.values()),
        "parameters": {
            "functions": model.functions,
            "backends": {fn: {"name": b.name, "kind": b.kind} for fn, b in model.backends.items()},
        },
    }


def kserve_router(table: ModelTable, settings: ServeSettings) -> APIRouter:
    """The /v2 routes for `table`'s models."""
    router = APIRouter()

    def model_for(request: Request, name: str, version: str | None) -> ServedModel:
        model = table.get(name)
        request.state.edgefmp_model = name
        if version not in (None, "", VERSION):
            raise RequestRejected(404, f"model {name!r} has only version {VERSION}, not {version[:20]!r}")
        return model

    @router.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "edgefmp", "version": __version__, "extensions": ["binary_tensor_data"]}

    @router.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @router.get("/v2/models/{name}")
    @router.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(request: Request, name: str, version: str | None = None) -> dict[str, Any]:
        return _metadata(model_for(request, name, version))

    @router.get("/v2/models/{name}/ready")
    @router.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: Request, name: str, version: str | None = None) -> JSONResponse:
        model = model_for(request, name, version)
        ok = all(b.available() for b in model.backends.values())
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @router.post("/v2/models/{name}/infer")
    @router.post("/v2/models/{name}/versions/{version}/infer")
    async def model_infer(request: Request, name: str, version: str | None = None) -> Response:
        model = model_for(request, name, version)
        request.state.edgefmp_endpoint = "infer"
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")

        def work() -> tuple[bytes, int | None]:
            return infer(model, parse_infer_request(body, header_length), settings)

        content, json_length = await run_in_threadpool(work)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    return router
