"""The server's HTTP contract with a plain client: bad input is always a clear 4xx (never a
500), oversized bodies get 413, the token is required and never echoed, and /metrics is valid
Prometheus text that counts what happened."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.serve.conftest import MAX_REQUEST_BYTES, TOKEN, Served, red_circle

AUTH = {"Authorization": f"Bearer {TOKEN}"}
INFER = "/v2/models/shapes-cv/infer"


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=AUTH, timeout=20) as client:
        yield client


def _tensor(name: str, datatype: str, shape: list[int], data: list) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _image_tensor(h: int = 24, w: int = 32) -> dict:
    return _tensor("image", "UINT8", [1, h, w, 3], red_circle(w, h).reshape(-1).tolist())


GOOD = [
    _image_tensor(),
    _tensor("function", "BYTES", [1], ["vqa"]),
    _tensor("question", "BYTES", [1], ["what color is it?"]),
]

BAD_KSERVE = {
    "not json": b"{inputs: oops",
    "not utf-8": b"\xff\xfe\x00",
    "json array": b"[1, 2]",
    "no inputs": json.dumps({"outputs": []}).encode(),
    "empty inputs": json.dumps({"inputs": []}).encode(),
    "input not an object": json.dumps({"inputs": [3]}).encode(),
    "unknown datatype": json.dumps({"inputs": [_tensor("image", "UINT9", [1], [1])]}).encode(),
    "negative shape": json.dumps({"inputs": [_tensor("image", "UINT8", [-1, 2], [1])]}).encode(),
    "count mismatch": json.dumps({"inputs": [_tensor("image", "UINT8", [1, 2, 2, 3], [1, 2])]}).encode(),
    "value out of range": json.dumps({"inputs": [_tensor("image", "UINT8", [1, 1, 1, 3], [1, 2, 300])]}).encode(),
    "string in uint8": json.dumps({"inputs": [_tensor("image", "UINT8", [1, 1, 1, 3], ["a", "b", "c"])]}).encode(),
    "image not rgb": json.dumps({"inputs": [_tensor("image", "UINT8", [1, 2, 2, 1], [1] * 4), *GOOD[1:]]}).encode(),
    "image wrong dtype": json.dumps(
        {"inputs": [_tensor("image", "FP32", [1, 1, 1, 3], [0.1] * 3), *GOOD[1:]]}
    ).encode(),
    "unknown function": json.dumps({"inputs": [GOOD[0], _tensor("function", "BYTES", [1], ["dance"])]}).encode(),
    "missing field": json.dumps({"inputs": GOOD[:2]}).encode(),
    "no image": json.dumps({"inputs": GOOD[1:]}).encode(),
    "bad jpeg": json.dumps({"inputs": [_tensor("image_jpeg", "BYTES", [1], ["bm90IGEganBlZw=="]), *GOOD[1:]]}).encode(),
    "bad base64": json.dumps({"inputs": [_tensor("image_jpeg", "BYTES", [1], ["%%%"]), *GOOD[1:]]}).encode(),
    "unknown output": json.dumps({"inputs": GOOD, "outputs": [{"name": "boxes"}]}).encode(),
    "empty labels": json.dumps(
        {"inputs": [GOOD[0], _tensor("function", "BYTES", [1], ["detect"]), _tensor("labels", "BYTES", [0], [])]}
    ).encode(),
    "deep nesting": json.dumps({"inputs": [_tensor("question", "BYTES", [1], [[[[[[[[[["x"]]]]]]]]]])]}).encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_KSERVE))
def test_malformed_kserve_requests_get_a_clear_400(http: httpx.Client, case: str) -> None:
    response = http.post(INFER, content=BAD_KSERVE[case], headers={"content-type": "application/json"})
    assert response.status_code == 400, (case, response.text)
    assert response.json()["error"]  # a message, in KServe's error shape


BAD_CHAT = {
    "not json": b"nope",
    "no messages": json.dumps({"model": "edgefmp"}).encode(),
    "empty messages": json.dumps({"model": "edgefmp", "messages": []}).encode(),
    "no user message": json.dumps({"model": "edgefmp", "messages": [{"role": "system", "content": "x"}]}).encode(),
    "bad part type": json.dumps(
        {"model": "edgefmp", "messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]}
    ).encode(),
    "broken data url": json.dumps(
        {
            "model": "edgefmp",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what color?"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,@@@"}},
                    ],
                }
            ],
        }
    ).encode(),
    "n=2": json.dumps({"model": "edgefmp", "n": 2, "messages": [{"role": "user", "content": "hi"}]}).encode(),
    "unknown explicit field": json.dumps(
        {"model": "edgefmp", "messages": [{"role": "user", "content": "hi"}], "edgefmp": {"colour": "red"}}
    ).encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_CHAT))
def test_malformed_chat_requests_get_a_clear_400(http: httpx.Client, case: str) -> None:
    response = http.post("/v1/chat/completions", content=BAD_CHAT[case], headers={"content-type": "application/json"})
    assert response.status_code == 400, (case, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_oversized_requests_get_413_declared_or_streamed(http: httpx.Client) -> None:
    big = b"x" * (MAX_REQUEST_BYTES + 1)
    response = http.post(INFER, content=big)
    assert response.status_code == 413 and "exceeds" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(3):
            yield b"y" * (MAX_REQUEST_BYTES // 2)

    response = http.post("/v1/chat/completions", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("the request body")
    assert http.get("/v2/health/ready").status_code == 200  # the connection is still usable


def test_decoded_image_size_is_bounded(served: Served, http: httpx.Client) -> None:
    import cv2

    ok, png = cv2.imencode(".png", __import__("numpy").zeros((5000, 5000), "uint8"))  # small file, 25 MP
    assert ok and len(png) < MAX_REQUEST_BYTES
    import base64

    body = {
        "inputs": [
            {
                "name": "image_jpeg",
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(png.tobytes()).decode()],
            },
            *GOOD[1:],
        ]
    }
    response = http.post(INFER, json=body)
    assert response.status_code == 413 and "5000x5000" in response.json()["error"]


def test_token_is_required_and_never_echoed(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=served.url, timeout=20) as anon:
        assert anon.get("/v2/health/live").status_code == 200  # probes are open
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
            response = anon.post(INFER, json={"inputs": GOOD}, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in response.text
        assert anon.get("/metrics").status_code == 401
        assert anon.get("/v1/models").status_code == 401
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(served.app.state.settings)


def test_unknown_routes_and_methods_are_4xx(http: httpx.Client) -> None:
    assert http.get("/v2/models/shapes-cv/infer").status_code == 405
    assert http.get("/nowhere").status_code == 404
    assert http.get("/v2/models/shapes-cv/versions/7").status_code == 404
    assert http.get("/v2/models/unknown").status_code == 404


_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+]+|\+Inf|NaN)$")


def test_metrics_are_prometheus_text_and_count_requests(http: httpx.Client) -> None:
    assert http.post(INFER, json={"inputs": GOOD}).status_code == 200
    assert http.post(INFER, content=b"{").status_code == 400
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, line
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    assert types == {
        "edgefmp_serve_requests_total": "counter",
        "edgefmp_serve_errors_total": "counter",
        "edgefmp_serve_request_duration_seconds": "histogram",
        "edgefmp_serve_requests_in_flight": "gauge",
    }
    assert samples['edgefmp_serve_requests_total{endpoint="infer",model="shapes-cv",code="200"}'] >= 1
    assert samples['edgefmp_serve_errors_total{endpoint="infer",model="shapes-cv",reason="bad_request"}'] >= 1
    base = 'endpoint="infer",model="shapes-cv"'
    buckets = [v for k, v in samples.items() if k.startswith(f"edgefmp_serve_request_duration_seconds_bucket{{{base}")]
    assert buckets == sorted(buckets)  # cumulative
    assert buckets[-1] == samples[f"edgefmp_serve_request_duration_seconds_count{{{base}}}"]
    # by endpoint, as docs/DEPLOY.md says: only this scrape is in flight now
    assert samples['edgefmp_serve_requests_in_flight{endpoint="metrics"}'] == 1
    assert samples['edgefmp_serve_requests_in_flight{endpoint="infer"}'] == 0


def test_unknown_paths_point_at_the_document_that_lists_the_endpoints(http: httpx.Client) -> None:
    from pathlib import Path

    response = http.get("/v3/nothing-here")
    assert response.status_code == 404
    message = response.json()["error"]
    doc = re.search(r"docs/[A-Z]+\.md", message)
    assert doc is not None, message
    text = (Path(__file__).resolve().parents[2] / doc.group(0)).read_text(encoding="utf-8")
    for endpoint in ("/v2/health/", "/v2/models/{name}/infer", "/v1/chat/completions", "/metrics"):
        assert endpoint in text, f"{doc.group(0)} does not list {endpoint}"


def test_model_label_never_grows_from_client_input(http: httpx.Client) -> None:
    for i in range(3):
        assert http.post(f"/v2/models/made-up-{i}/infer", json={"inputs": GOOD}).status_code == 404
    assert "made-up" not in http.get("/metrics").text


def test_uint8_and_jpeg_images_give_the_same_answer(http: httpx.Client) -> None:
    import base64

    import cv2

    image = red_circle(64, 48)
    fields = [_tensor("function", "BYTES", [1], ["vqa"]), _tensor("question", "BYTES", [1], ["what color is it?"])]
    raw = http.post(
        INFER,
        json={
            "inputs": [_tensor("image", "UINT8", [1, 48, 64, 3], image.reshape(-1).tolist()), *fields],
            "id": "req-7",
        },
    )
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    enc = http.post(
        INFER, json={"inputs": [_tensor("image_jpeg", "BYTES", [1], [base64.b64encode(jpeg).decode()]), *fields]}
    )
    assert raw.status_code == enc.status_code == 200, (raw.text, enc.text)
    assert raw.json()["id"] == "req-7" and raw.json()["model_name"] == "shapes-cv"
    answer = {o["name"]: o["data"] for o in raw.json()["outputs"]}
    assert answer["answer"] == ["red"] == {o["name"]: o["data"] for o in enc.json()["outputs"]}["answer"]


@pytest.mark.parametrize("hw", [(1, 1), (1, 300), (300, 1), (2, 2)])
@pytest.mark.parametrize(
    "fields",
    [
        {"function": ["vqa"], "question": ["what color is it?"]},
        {"function": ["verify"], "subject": ["circle"], "property": ["red"]},
        {"function": ["detect"], "labels": ["circle"]},
        {"function": ["classify"], "options": ["red", "blue"]},
    ],
    ids=["vqa", "verify", "detect", "classify"],
)
def test_odd_images_never_cause_a_500(http: httpx.Client, hw: tuple[int, int], fields: dict) -> None:
    h, w = hw
    inputs = [_tensor("image", "UINT8", [1, h, w, 3], [120] * (h * w * 3))]
    inputs += [_tensor(name, "BYTES", [len(v)], v) for name, v in fields.items()]
    response = http.post(INFER, json={"inputs": inputs})
    assert response.status_code in (200, 422), response.text


def test_listening_socket_disables_nagle_for_its_connections() -> None:
    """Accepted sockets inherit TCP_NODELAY from the listener; without it every keep-alive
    response after the first waited for the client's delayed ACK (~40 ms on Linux)."""
    import socket

    from edgefmp.serve.runner import bind

    sock = bind("127.0.0.1", 0)
    try:
        client = socket.create_connection(sock.getsockname()[:2])
        conn, _ = sock.accept()
        with client, conn:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
