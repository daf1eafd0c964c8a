"""In-memory catalogs for bench tests: instant CallableBackends whose answers are a
deterministic function of the request, so runs are reproducible without models or hardware.

Worker processes receive these by name (`py:tests.bench.fakes:catalog`), because a callable
cannot be pickled into a spawned process.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog
from edgefmp.errors import BackendError
from edgefmp.results import Answer, Detections, Request, Verdict

REF = "py:tests.bench.fakes:catalog"
NO_VQA_REF = "py:tests.bench.fakes:catalog_without_vqa"


def _h(request: Request, salt: str) -> int:
    h = hashlib.blake2b(salt.encode(), digest_size=8)
    image = getattr(request, "image", None)
    if image is not None:
        h.update(np.ascontiguousarray(image).tobytes())
    return int.from_bytes(h.digest(), "little")


def _detector(salt: str, every: int) -> Any:
    def detect(request: Request) -> Detections:
        labels = getattr(request, "labels", ("x",))
        image = request.image
        hits = _h(request, salt) % every == 0
        h, w = image.shape[:2]
        boxes = np.array([[w * 0.1, h * 0.2, w * 0.4, h * 0.6]], np.float32) if hits else np.zeros((0, 4), np.float32)
        return Detections(
            boxes=boxes,
            scores=np.full(len(boxes), 0.8, np.float32),
            labels=[labels[0]] * len(boxes),
            confidence=0.8 if hits else 0.3,
        )

    return detect


def _verifier(salt: str) -> Any:
    def verify(request: Request) -> Verdict:
        v = _h(request, salt) % 2 == 0
        return Verdict(value=v, confidence=0.9 if salt.endswith("l") else 0.4)

    return verify


def _vqa(salt: str) -> Any:
    def vqa(request: Request) -> Answer:
        return Answer(text=["yes", "no", "red", "none"][_h(request, salt) % 4], confidence=0.6)

    return vqa


def _classify(request: Request) -> Answer:
    options = getattr(request, "options", ("none",))
    return Answer(text=options[_h(request, "c") % len(options)], confidence=0.5)


def _broken(request: Request) -> Answer:
    raise BackendError("fake outage")


def catalog() -> Catalog:
    """detect, verify, vqa (small fails: the executor falls back), classify; two sizes each."""
    b = CallableBackend.wrap
    return Catalog.from_backends(
        {
            "detect": [
                b("det-s", "detect", _detector("s", 3), cost={"params": 1e5}),
                b("det-l", "detect", _detector("l", 2), cost={"params": 4e6}),
            ],
            "verify": [
                b("ver-s", "verify", _verifier("s"), cost={"params": 5e4}),
                b("ver-l", "verify", _verifier("l"), cost={"params": 2e6}),
            ],
            "vqa": [
                b("vqa-s", "vqa", _broken, cost={"params": 1e5}),
                b("vqa-l", "vqa", _vqa("l"), cost={"params": 8e6}),
            ],
            "classify": [b("cls-s", "classify", _classify, cost={"params": 1e4})],
        },
        name="fake",
    )


def catalog_without_vqa() -> Catalog:
    full = catalog()
    return Catalog.from_backends({fn: full.backends(fn) for fn in ("detect", "verify", "classify")}, name="fake-no-vqa")
