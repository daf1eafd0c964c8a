"""RemoteBackend against a real OpenAI-compatible server on 127.0.0.1: requests and parsing."""

from __future__ import annotations

import base64
import json
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
from tests.helpers.fake_model_server import FakeModelServer
from tests.helpers.remote import gradient_image, make_remote


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer("openai") as s:
        yield s


def _user_content(hit_json: dict[str, Any]) -> Any:
    return hit_json["messages"][0]["content"]


def _sent_image(hit_json: dict[str, Any]) -> np.ndarray:
    url = _user_content(hit_json)[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_verify_parses_yes_and_counts_exact_bytes(server: FakeModelServer) -> None:
    server.answer = "Yes, it is red."
    backend = make_remote(server, "verify")
    try:
        result = backend.infer(VerifyRequest(gradient_image(), "ball", "red"))
    finally:
        backend.close()
    assert isinstance(result, Verdict) and result.value is True
    (hit,) = server.wait_for_hits(1)
    assert hit.path == "/v1/chat/completions"
    body = hit.json()
    assert body["model"] == "fake-large"
    assert _user_content(body)[0]["text"] == "Is the ball red? Answer yes or no."
    assert _user_content(body)[1]["type"] == "image_url"
    assert result.bytes_up == hit.bytes_in > len(hit.body)
    assert result.bytes_down == hit.bytes_out > 0


def test_pooled_connection_counts_each_call(server: FakeModelServer) -> None:
    server.answer = "no"
    backend = make_remote(server, "verify")
    try:
        results = [backend.infer(VerifyRequest(gradient_image(), "ball", "red")) for _ in range(3)]
    finally:
        backend.close()
    hits = server.wait_for_hits(3)
    assert [r.value for r in results] == [False, False, False]  # type: ignore[attr-defined]
    assert [r.bytes_up for r in results] == [h.bytes_in for h in hits]
    assert [r.bytes_down for r in results] == [h.bytes_out for h in hits]


@pytest.mark.parametrize(
    ("request_", "answer", "expected"),
    [
        (VQARequest(gradient_image(), "What colour is the ball?"), " Red \n", Answer(text="Red")),
        (ClassifyRequest(gradient_image(), ("cat", "dog")), "It is a dog.", Answer(text="dog")),
        (OCRRequest(gradient_image()), "STOP\n", Text(text="STOP")),
        (LLMRequest("Say hi"), "hi", Answer(text="hi")),
    ],
    ids=["vqa", "classify", "ocr", "llm"],
)
def test_text_functions(server: FakeModelServer, request_: Any, answer: str, expected: Any) -> None:
    server.answer = answer
    backend = make_remote(server, request_.function)
    try:
        result = backend.infer(request_)
    finally:
        backend.close()
    assert type(result) is type(expected) and result.text == expected.text
    body = server.wait_for_hits(1)[0].json()
    if request_.function == "llm":
        assert _user_content(body) == "Say hi"  # text only, no image part
    else:
        assert _user_content(body)[1]["type"] == "image_url"
    if request_.function == "classify":
        assert "cat; dog" in _user_content(body)[0]["text"]


def test_detect_downscales_and_maps_boxes_back(server: FakeModelServer) -> None:
    seen: dict[str, Any] = {}

    def answer(body: dict[str, Any]) -> str:
        seen["shape"] = _sent_image(body).shape
        seen["prompt"] = _user_content(body)[0]["text"]
        return '```json\n[{"label": "ball", "box": [10, 5, 30, 25], "score": 0.8}]\n```'

    server.answer = answer
    backend = make_remote(server, "detect", max_side=100, jpeg_quality=70)
    try:
        result = backend.infer(DetectRequest(gradient_image(200, 400), ("ball",)))
    finally:
        backend.close()
    assert seen["shape"] == (50, 100, 3)  # longer side 400 -> 100
    assert "100 pixels wide and 50 pixels high" in seen["prompt"]
    assert isinstance(result, Detections) and result.labels == ["ball"]
    np.testing.assert_allclose(result.boxes[0], [40, 20, 120, 100])
    assert result.confidence == pytest.approx(0.8)


def test_smaller_images_move_fewer_bytes(server: FakeModelServer) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ups = []
    for max_side in (640, 160):
        backend = make_remote(server, "vqa", max_side=max_side)
        try:
            ups.append(backend.infer(VQARequest(image, "what?")).bytes_up)
        finally:
            backend.close()
    assert ups[1] < ups[0] / 4


def test_unreadable_answer_is_a_backend_error(server: FakeModelServer) -> None:
    server.answer = "I cannot tell from this picture."
    backend = make_remote(server, "verify")
    try:
        with pytest.raises(BackendError, match="cannot read the 'verify' answer") as info:
            backend.infer(VerifyRequest(gradient_image(), "ball", "red"))
    finally:
        backend.close()
    assert "big-remote" in str(info.value) and server.url in str(info.value)
    assert getattr(info.value, "bytes_up", 0) == server.wait_for_hits(1)[0].bytes_in


def test_logprobs_give_a_confidence(server: FakeModelServer) -> None:
    reply = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "yes"},
                "logprobs": {"content": [{"token": "yes", "logprob": float(np.log(0.9))}]},
            }
        ]
    }
    server.answer = reply
    backend = make_remote(server, "verify", logprobs=True)
    try:
        result = backend.infer(VerifyRequest(gradient_image(), "ball", "red"))
    finally:
        backend.close()
    assert result.confidence == pytest.approx(0.9)
    assert server.wait_for_hits(1)[0].json()["logprobs"] is True


def test_describe_and_location(server: FakeModelServer) -> None:
    backend = make_remote(server, "vqa", headers={"X-Team": "edge"})
    try:
        d = backend.describe()
        assert backend.location == "remote" and backend.available()
        assert d["protocol"] == "openai" and d["circuit"] == "closed" and d["extra_headers"] == ["X-Team"]
        json.dumps(d)
        backend.infer(VQARequest(gradient_image(), "what?"))
    finally:
        backend.close()
    assert server.wait_for_hits(1)[0].headers["x-team"] == "edge"


def test_catalog_entry_builds_a_remote_backend(server: FakeModelServer) -> None:
    from pathlib import Path

    from edgefmp.backends.catalog import Catalog, parse_catalog
    from edgefmp.errors import ConfigError

    data = {
        "functions": {
            "vqa": [
                {
                    "name": "big",
                    "kind": "remote",
                    "model": "fake-large",
                    "options": {"url": server.url},
                }
            ]
        }
    }
    with Catalog.open(parse_catalog(data, "test.yaml", Path(".")), warmup=False) as catalog:
        (backend,) = catalog.backends("vqa")
        assert backend.kind == "remote" and backend.location == "remote"
        assert backend.infer(VQARequest(gradient_image(), "what?")).text == "yes"  # type: ignore[attr-defined]
    data["functions"]["vqa"][0].pop("model")
    with pytest.raises(ConfigError, match="needs options.model"):
        Catalog.open(parse_catalog(data, "test.yaml", Path(".")), warmup=False)
    data["functions"]["vqa"][0]["options"] = {"url": server.url, "retries": -1}
    with pytest.raises(ConfigError, match=r"functions.vqa\[0\].options.retries"):
        parse_catalog(data, "test.yaml", Path("."))
