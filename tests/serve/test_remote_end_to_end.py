"""An edge RemoteBackend pointed at `edgefmp serve` works end to end, in every layout it can
send (OpenAI chat with a JPEG, KServe with a uint8 tensor or a JPEG): the answers equal those
of the served backend run locally, bytes are counted, and the trace records what was sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.backends.catalog import BackendSpec, Catalog
from edgefmp.backends.remote import RemoteBackend, RemoteOptions
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.program import compile_program
from edgefmp.results import ClassifyRequest, Detections, DetectRequest, Request, VerifyRequest, VQARequest
from edgefmp.runtime.executor import Executor
from tests.serve.conftest import Served, red_circle

LAYOUTS = {
    "openai": {"protocol": "openai", "path": "/v1"},
    "kserve-uint8": {"protocol": "kserve", "kserve_image": "uint8", "path": ""},
    "kserve-jpeg": {"protocol": "kserve", "kserve_image": "jpeg", "path": ""},
}


def _remote(url: str, function: str, layout: str, **extra: object) -> RemoteBackend:
    opts: dict[str, object] = {**LAYOUTS[layout], "model": "shapes-cv", **extra}
    path = opts.pop("path")
    options = RemoteOptions(url=f"{url}{path}", timeout_s=10, retries=0, logprobs=True, **opts)  # type: ignore[arg-type]
    return RemoteBackend(BackendSpec(name="big-remote", kind="remote", function=function), options)


def _requests() -> list[Request]:
    image = red_circle()
    return [
        VerifyRequest(image, "circle", "red"),
        VerifyRequest(image, "circle", "blue"),
        VQARequest(image, "what color is the shape?"),
        VQARequest(image, "what shape is it?"),
        ClassifyRequest(image, ("red", "green", "blue")),
        DetectRequest(image, ("circle",)),
    ]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_remote_backend_gets_the_served_backends_answers(
    open_served: Served, serve_catalog: Catalog, layout: str
) -> None:
    for request in _requests():
        local = serve_catalog.backends(request.function)[0].infer(request)
        remote = _remote(open_served.url, request.function, layout)
        try:
            result = remote.infer(request)
        finally:
            remote.close()
        if isinstance(local, Detections):
            assert isinstance(result, Detections) and result.labels == local.labels
            assert abs(result.boxes - local.boxes).max() <= 2.0  # JPEG may move an edge by a pixel
        else:
            assert result.summary() == local.summary(), (layout, request.function)
        assert result.confidence is not None and abs(result.confidence - local.confidence) < 0.05
        assert result.bytes_up > 0 and result.bytes_down > 0
        assert result.sent is not None and result.sent["protocol"] == LAYOUTS[layout]["protocol"]


def test_downscale_and_quality_are_in_the_trace(open_served: Served) -> None:
    program = compile_program('def execute_command(image):\n    return image.verify_property("circle", "red")\n')
    remote = _remote(open_served.url, "verify", "openai", max_side=96, jpeg_quality=60)
    with Catalog.from_backends({"verify": [remote]}) as catalog:
        trace = Executor(program, catalog, create("static:-1")).run_frame(Frame("f0", 0.0, red_circle()), 0)
    assert trace.error is None and trace.answer is True
    call = trace.to_json()["calls"][0]
    assert call["backend"] == "big-remote"
    assert call["args"]["image_hw"] == [120, 160]  # the request
    assert call["args"]["sent"] == {
        "protocol": "openai",
        "image_hw": [72, 96],
        "max_side": 96,
        "encoding": "jpeg",
        "jpeg_quality": 60,
    }
    assert call["cost"]["bytes_up"] > 0


ZOO = Path(__file__).resolve().parents[2] / "models" / "catalog.yaml"


@pytest.mark.skipif(not ZOO.is_file(), reason="the demo zoo is not built (edgefmp zoo build)")
def test_served_onnx_zoo_answers_like_the_local_models() -> None:
    """`edgefmp serve models/catalog.yaml` serves ONNX backends; the edge gets their answers."""
    from edgefmp.backends.catalog import load_catalog
    from edgefmp.serve.app import create_app
    from edgefmp.serve.runner import ServerThread

    image = red_circle(320, 240)
    with Catalog.open(load_catalog(ZOO)) as zoo, ServerThread(create_app(zoo)) as server:
        onnx = [b for fn in ("detect", "verify") for b in zoo.backends(fn) if b.kind == "onnx"]
        for backend in (onnx[0], onnx[-1]):
            request: Request = (
                DetectRequest(image, ("red circle",))
                if backend.function == "detect"
                else VerifyRequest(image, "circle", "red")
            )
            remote = _remote(server.url, backend.function, "kserve-uint8", model=backend.name)
            try:
                result = remote.infer(request)
            finally:
                remote.close()
            assert result.summary() == backend.infer(request).summary(), backend.name
