"""The call cache: one measurement per (backend, request), replayed with its measured cost."""

from __future__ import annotations

import numpy as np

from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog
from edgefmp.bench.cache import CachedExecutor, CallCache, request_key
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.program import compile_program
from edgefmp.results import Detections, DetectRequest, Verdict, VerifyRequest

IMG = np.zeros((32, 32, 3), np.uint8)


def test_keys_depend_on_backend_pixels_and_arguments() -> None:
    other = IMG.copy()
    other[0, 0, 0] = 1
    base = request_key("a", DetectRequest(IMG, ("red circle",)))
    assert base == request_key("a", DetectRequest(IMG.copy(), ("red circle",), origin=(5.0, 5.0)))
    assert base != request_key("b", DetectRequest(IMG, ("red circle",)))
    assert base != request_key("a", DetectRequest(other, ("red circle",)))
    assert base != request_key("a", DetectRequest(IMG, ("circle",)))
    assert request_key("a", VerifyRequest(IMG, "circle", "red")) != request_key(
        "a", VerifyRequest(IMG, "circle", "blue")
    )
    view = np.zeros((40, 40, 3), np.uint8)[4:36, 4:36]  # a non-contiguous crop hashes like its copy
    assert request_key("a", DetectRequest(view, ("x",))) == request_key("a", DetectRequest(IMG, ("x",)))


def test_replay_returns_the_measured_result_and_cost() -> None:
    calls: list[str] = []

    def detect(req: DetectRequest) -> Detections:
        calls.append("detect")
        return Detections(
            boxes=np.array([[1, 1, 8, 8]], np.float32), scores=np.array([0.9], np.float32), labels=["circle"]
        )

    def verify(req: VerifyRequest) -> Verdict:
        calls.append("verify")
        return Verdict(value=True, confidence=0.9)

    catalog = Catalog.from_backends(
        {
            "detect": [CallableBackend.wrap("d", "detect", detect)],
            "verify": [CallableBackend.wrap("v", "verify", verify)],
        }
    )
    program = compile_program(
        "def execute_command(image):\n"
        "    for c in image.find('circle'):\n"
        "        if c.verify_property('circle', 'red'):\n"
        "            return 'yes'\n"
        "    return 'no'\n"
    )
    cache = CallCache()
    first = CachedExecutor(program, catalog, create("static:0"), cache=cache).run_frame(Frame("f", 0.0, IMG))
    again = CachedExecutor(program, catalog, create("static:0"), cache=cache).run_frame(Frame("f", 0.0, IMG))
    assert calls == ["detect", "verify"]
    assert first.answer == again.answer == "yes"
    assert [c.cost.latency_ms for c in again.calls] == [c.cost.latency_ms for c in first.calls]
    assert cache.stats.hits == 2 and cache.stats.misses == 2
    assert again.meta["infer_wall_ms"] >= 0.0
    measured = CachedExecutor(program, catalog, create("static:0"), cache=None).run_frame(Frame("f", 0.0, IMG))
    assert measured.answer == "yes" and calls == ["detect", "verify"] * 2
