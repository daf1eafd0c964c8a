"""`tritonclient[http]` against `edgefmp serve`: health, metadata and inference with the
KServe tensor layout of docs/REMOTE.md, in JSON and in Triton's binary tensor mode."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serve.conftest import TOKEN, Served, red_circle

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


def auth() -> dict[str, str]:
    """A fresh dict per call: tritonclient adds its binary-mode header to the dict it is given."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(served: Served) -> httpclient.InferenceServerClient:
    c = httpclient.InferenceServerClient(url=served.url.removeprefix("http://"), network_timeout=20.0)
    yield c
    c.close()


def _inputs(binary: bool, image: np.ndarray, **fields: list[str]) -> list[httpclient.InferInput]:
    out = [httpclient.InferInput("image", [1, *image.shape], "UINT8")]
    out[0].set_data_from_numpy(image[None], binary_data=binary)
    for name, values in fields.items():
        tensor = httpclient.InferInput(name, [len(values)], "BYTES")
        tensor.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object), binary_data=binary)
        out.append(tensor)
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_health_and_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()  # health probes need no token
    assert client.is_server_ready()
    assert client.is_model_ready("shapes-cv", headers=auth())
    assert client.get_server_metadata(headers=auth())["name"] == "edgefmp"
    meta = client.get_model_metadata("shapes-cv", headers=auth())
    names = {t["name"] for t in meta["inputs"]}
    assert {"image", "image_jpeg", "function", "labels", "subject", "property", "question", "options"} <= names
    assert {"boxes", "scores", "labels", "verdict", "answer", "confidence"} <= {t["name"] for t in meta["outputs"]}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_vqa_verify_detect(client: httpclient.InferenceServerClient, binary: bool) -> None:
    image = red_circle()
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("answer", "confidence")]
    result = client.infer(
        "shapes-cv",
        _inputs(binary, image, function=["vqa"], question=["what color is it?"]),
        outputs=outputs,
        headers=auth(),
    )
    assert _text(result.as_numpy("answer")[0]) == "red"
    assert 0.0 <= float(result.as_numpy("confidence")[0]) <= 1.0

    result = client.infer(
        "shapes-cv", _inputs(binary, image, function=["verify"], subject=["circle"], property=["red"]), headers=auth()
    )
    assert bool(result.as_numpy("verdict")[0]) is True

    result = client.infer("shapes-cv", _inputs(binary, image, function=["detect"], labels=["circle"]), headers=auth())
    boxes = result.as_numpy("boxes")
    assert boxes.shape == (1, 4)
    x1, y1, x2, y2 = boxes[0]
    assert x1 < 80 < x2 and y1 < 60 < y2  # around the disc at the centre
    assert [_text(v) for v in result.as_numpy("labels")] == ["circle"]


def test_errors_are_inference_server_exceptions(client: httpclient.InferenceServerClient) -> None:
    image = red_circle()
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", _inputs(False, image, function=["vqa"], question=["q?"]), headers=auth())
    with pytest.raises(InferenceServerException, match="bearer token"):
        client.infer("shapes-cv", _inputs(False, image, function=["vqa"], question=["q?"]))
    with pytest.raises(InferenceServerException, match="'question' is missing"):
        client.infer("shapes-cv", _inputs(False, image, function=["vqa"]), headers=auth())
    with pytest.raises(InferenceServerException, match="serves several functions"):
        client.infer("shapes-cv", _inputs(False, image, question=["q?"]), headers=auth())
