"""KServe v2 (Open Inference Protocol) tensors on the wire: JSON, and Triton's binary extension.

Parsing is strict because the input is a client's: every problem is a 400 that names the
tensor and says what was expected (datatype, shape, element count, value range). The binary
tensor extension (`Inference-Header-Content-Length`, `parameters.binary_data_size`) is what
`tritonclient` uses by default, so both its JSON and binary modes work.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefmp.serve.errors import bad_request

NUMERIC: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
DATATYPES = (*NUMERIC, "BYTES")
MAX_ELEMENTS = 64 * 1024 * 1024


@dataclass
class Tensor:
    """A named tensor: numeric data as a numpy array of `shape`, BYTES as a flat list."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray | list[bytes]

    def texts(self) -> list[str]:
        """BYTES elements as text (UTF-8); a 400 naming the tensor when they are not text."""
        if self.datatype != "BYTES":
            raise bad_request(f"input {self.name!r}: expected datatype BYTES, got {self.datatype}", self.name)
        assert isinstance(self.data, list)
        try:
            return [b.decode("utf-8") for b in self.data]
        except UnicodeDecodeError as exc:
            raise bad_request(f"input {self.name!r}: BYTES elements must be UTF-8 text", self.name) from exc


@dataclass
class InferRequest:
    """A parsed `/infer` body."""

    id: str | None
    inputs: dict[str, Tensor]
    outputs: list[str] | None  # names the client asked for; None = all
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False


def _shape(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise bad_request(f"input {name!r}: 'shape' must be a list of non-negative integers, got {value!r:.80}", name)
    return value


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise bad_request(f"input {name!r}: 'data' must be a list", name)
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > 8:
                    raise bad_request(f"input {name!r}: 'data' is nested too deeply", name)
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _count(shape: list[int]) -> int:
    n = math.prod(shape)
    if n > MAX_ELEMENTS:
        raise bad_request(f"a tensor of shape {shape} has more than {MAX_ELEMENTS} elements")
    return n


def _json_tensor(raw: dict[str, Any], name: str, datatype: str, shape: list[int]) -> Tensor:
    flat = _flatten(raw.get("data"), name)
    n = _count(shape)
    if len(flat) != n:
        raise bad_request(f"input {name!r}: shape {shape} needs {n} values, 'data' has {len(flat)}", name)
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise bad_request(f"input {name!r}: BYTES data must be strings", name)
        return Tensor(name, datatype, shape, [v.encode("utf-8") for v in flat])
    dtype = NUMERIC[datatype]
    if datatype == "BOOL":
        if not all(isinstance(v, bool) or v in (0, 1) for v in flat):
            raise bad_request(f"input {name!r}: BOOL data must be true/false", name)
    elif any(isinstance(v, (str, bool)) or v is None for v in flat[:1]):
        raise bad_request(f"input {name!r}: {datatype} data must be numbers", name)
    try:
        array = np.asarray(flat, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        limits = ""
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(np.dtype(dtype))
            limits = f" in [{info.min}, {info.max}]"
        raise bad_request(f"input {name!r}: {datatype} data must be numbers{limits} ({exc})", name) from exc
    return Tensor(name, datatype, shape, array.reshape(shape))


def _binary_tensor(name: str, datatype: str, shape: list[int], blob: bytes) -> Tensor:
    n = _count(shape)
    if datatype == "BYTES":
        items: list[bytes] = []
        i = 0
        while i < len(blob):
            if i + 4 > len(blob):
                raise bad_request(f"input {name!r}: truncated BYTES element length", name)
            (size,) = struct.unpack_from("<I", blob, i)
            if i + 4 + size > len(blob):
                raise bad_request(f"input {name!r}: a BYTES element runs past binary_data_size", name)
            items.append(blob[i + 4 : i + 4 + size])
            i += 4 + size
        if len(items) != n:
            raise bad_request(f"input {name!r}: shape {shape} needs {n} elements, got {len(items)}", name)
        return Tensor(name, datatype, shape, items)
    dtype = np.dtype(NUMERIC[datatype])
    if len(blob) != n * dtype.itemsize:
        raise bad_request(
            f"input {name!r}: shape {shape} of {datatype} needs {n * dtype.itemsize} bytes, got {len(blob)}", name
        )
    return Tensor(name, datatype, shape, np.frombuffer(blob, dtype=dtype.newbyteorder("<")).reshape(shape))


def _params(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("parameters")
    return value if isinstance(value, dict) else {}


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an /infer body (JSON, or JSON + binary blobs when `header_length` is given)."""
    blob = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise bad_request("header Inference-Header-Content-Length must be an integer") from None
        if not 0 <= size <= len(body):
            raise bad_request(f"Inference-Header-Content-Length {size} exceeds the body ({len(body)} bytes)")
        body, blob = body[:size], body[size:]
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise bad_request('expected a KServe v2 inference request: {"inputs": [{name, datatype, shape, data}]}')
    inputs: dict[str, Tensor] = {}
    offset = 0
    for i, raw in enumerate(doc["inputs"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise bad_request(f"inputs[{i}]: expected an object with a string 'name'", f"inputs[{i}]")
        name = raw["name"]
        datatype = raw.get("datatype")
        if datatype not in DATATYPES:
            raise bad_request(f"input {name!r}: unknown datatype {datatype!r}; available: {', '.join(DATATYPES)}", name)
        shape = _shape(raw.get("shape"), name)
        binary_size = _params(raw).get("binary_data_size")
        if binary_size is not None:
            if not isinstance(binary_size, int) or binary_size < 0 or offset + binary_size > len(blob):
                raise bad_request(f"input {name!r}: binary_data_size {binary_size!r} does not fit the body", name)
            tensor = _binary_tensor(name, datatype, shape, blob[offset : offset + binary_size])
            offset += binary_size
        else:
            tensor = _json_tensor(raw, name, datatype, shape)
        if name in inputs:
            raise bad_request(f"input {name!r} is given twice", name)
        inputs[name] = tensor
    params = _params(doc)
    binary_default = bool(params.get("binary_data_output", False))
    outputs: list[str] | None = None
    binary: set[str] = set()
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise bad_request("'outputs' must be a list of {\"name\": ...}")
        outputs = []
        for j, out in enumerate(doc["outputs"]):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise bad_request(f"outputs[{j}]: expected an object with a string 'name'", f"outputs[{j}]")
            outputs.append(out["name"])
            if _params(out).get("binary_data", binary_default):
                binary.add(out["name"])
    request_id = doc.get("id")
    return InferRequest(
        id=str(request_id)[:200] if request_id is not None else None,
        inputs=inputs,
        outputs=outputs,
        binary_outputs=binary,
        binary_default=binary_default,
    )


def output_json(tensor: Tensor) -> dict[str, Any]:
    """A tensor as a JSON output (BYTES as text)."""
    if isinstance(tensor.data, list):
        data: list[Any] = [b.decode("utf-8", "replace") for b in tensor.data]
    else:
        data = tensor.data.reshape(-1).tolist()
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape, "data": data}


def output_binary(tensor: Tensor) -> bytes:
    if isinstance(tensor.data, list):
        return b"".join(struct.pack("<I", len(b)) + b for b in tensor.data)
    return np.ascontiguousarray(tensor.data, dtype=np.dtype(NUMERIC[tensor.datatype]).newbyteorder("<")).tobytes()


def encode_infer_response(
    model: str, request_id: str | None, outputs: list[Tensor], binary: set[str]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    doc: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": []}
    if request_id is not None:
        doc["id"] = request_id
    blobs: list[bytes] = []
    for tensor in outputs:
        if tensor.name in binary:
            raw = output_binary(tensor)
            blobs.append(raw)
            doc["outputs"].append(
                {
                    "name": tensor.name,
                    "datatype": tensor.datatype,
                    "shape": tensor.shape,
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
        else:
            doc["outputs"].append(output_json(tensor))
    header = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
