"""RemoteBackend against a real KServe v2 server on 127.0.0.1: tensor layout and parsing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from edgefmp.errors import BackendError
from edgefmp.results import (
    Answer,
    ClassifyRequest,
    Detections,
    DetectRequest,
    LLMRequest,
    OCRRequest,
    Text,
    Verdict,
    VerifyRequest,
    VQARequest,
)
from tests.helpers.fake_model_server import FakeModelServer, bytes_output
from tests.helpers.remote import gradient_image, make_remote


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer("kserve") as s:
        yield s


def _inputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in body["inputs"]}


def test_image_tensor_layout_and_bytes(server: FakeModelServer) -> None:
    server.answer = [
        bytes_output("answer", ["red"]),
        {"name": "confidence", "datatype": "FP32", "shape": [1], "data": [0.75]},
    ]
    image = gradient_image(60, 80)
    backend = make_remote(server, "vqa")
    try:
        result = backend.infer(VQARequest(image, "What colour?"))
    finally:
        backend.close()
    assert isinstance(result, Answer) and result.text == "red" and result.confidence == pytest.approx(0.75)
    (hit,) = server.wait_for_hits(1)
    assert hit.path == "/v2/models/fake-large/infer"
    body = hit.json()
    inputs = _inputs(body)
    assert inputs["image"]["datatype"] == "UINT8" and inputs["image"]["shape"] == [1, 60, 80, 3]
    np.testing.assert_array_equal(np.asarray(inputs["image"]["data"], np.uint8).reshape(60, 80, 3), image)
    assert inputs["function"]["data"] == ["vqa"]
    assert inputs["question"] == {
        "name": "question",
        "datatype": "BYTES",
        "shape": [1],
        "data": ["What colour?"],
    }
    assert [o["name"] for o in body["outputs"]] == ["answer", "confidence"]
    assert result.bytes_up == hit.bytes_in and result.bytes_down == hit.bytes_out


def test_jpeg_image_input(server: FakeModelServer) -> None:
    server.answer = [bytes_output("text", ["EXIT"])]
    backend = make_remote(server, "ocr", kserve_image="jpeg", max_side=40)
    try:
        result = backend.infer(OCRRequest(gradient_image(60, 80)))
    finally:
        backend.close()
    assert isinstance(result, Text) and result.text == "EXIT"
    inputs = _inputs(server.wait_for_hits(1)[0].json())
    assert "image" not in inputs and inputs["image_jpeg"]["datatype"] == "BYTES"
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(inputs["image_jpeg"]["data"][0]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (30, 40, 3)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ({"name": "verdict", "datatype": "BOOL", "shape": [1], "data": [True]}, True),
        ({"name": "verdict", "datatype": "BOOL", "shape": [1], "data": [False]}, False),
        (bytes_output("answer", ["Yes"]), True),
    ],
)
def test_verify(server: FakeModelServer, verdict: dict[str, Any], expected: bool) -> None:
    server.answer = [verdict]
    backend = make_remote(server, "verify")
    try:
        result = backend.infer(VerifyRequest(gradient_image(), "ball", "red"))
    finally:
        backend.close()
    assert isinstance(result, Verdict) and result.value is expected
    inputs = _inputs(server.wait_for_hits(1)[0].json())
    assert inputs["subject"]["data"] == ["ball"] and inputs["property"]["data"] == ["red"]


def test_detect_tensors_rescaled(server: FakeModelServer) -> None:
    server.answer = [
        {
            "name": "boxes",
            "datatype": "FP32",
            "shape": [2, 4],
            "data": [[1, 2, 11, 12], [0, 0, 5, 5]],
        },
        {"name": "scores", "datatype": "FP32", "shape": [2], "data": [0.9, 0.4]},
        bytes_output("labels", ["cup", "plate"]),
    ]
    backend = make_remote(server, "detect", max_side=50)
    try:
        result = backend.infer(DetectRequest(gradient_image(100, 100), ("cup", "plate")))
    finally:
        backend.close()
    assert isinstance(result, Detections) and result.labels == ["cup", "plate"]
    np.testing.assert_allclose(result.boxes, [[2, 4, 22, 24], [0, 0, 10, 10]])
    inputs = _inputs(server.wait_for_hits(1)[0].json())
    assert inputs["labels"]["data"] == ["cup", "plate"] and inputs["image"]["shape"] == [
        1,
        50,
        50,
        3,
    ]


def test_classify_and_llm(server: FakeModelServer) -> None:
    server.answer = [bytes_output("answer", ["Dog"])]
    classify = make_remote(server, "classify")
    llm = make_remote(server, "llm")
    try:
        assert classify.infer(ClassifyRequest(gradient_image(), ("cat", "dog"))).text == "dog"  # type: ignore[attr-defined]
        assert llm.infer(LLMRequest("hello")).text == "Dog"  # type: ignore[attr-defined]
    finally:
        classify.close()
        llm.close()
    first, second = (h.json() for h in server.wait_for_hits(2))
    assert _inputs(first)["options"]["data"] == ["cat", "dog"]
    assert "image" not in _inputs(second) and _inputs(second)["prompt"]["data"] == ["hello"]


def test_missing_output_names_what_is_missing(server: FakeModelServer) -> None:
    server.answer = [bytes_output("something_else", ["x"])]
    backend = make_remote(server, "ocr")
    try:
        with pytest.raises(BackendError, match="no output 'text'"):
            backend.infer(OCRRequest(gradient_image()))
    finally:
        backend.close()
