"""Measure each backend call once per benchmark, replay it for every other policy.

Every policy of a sweep runs on the same stream, and most of them make many of the same calls
(the same detector on the same frame, the same verifier on the same crop). Backends are
deterministic functions of their request, so the bench runs a (backend, request) pair once,
keeps its result *and its measured cost*, and hands both back when another case makes the
same call. Every case is therefore charged exactly what the call cost when it was measured,
which also removes timing noise from comparisons between policies; what is never replayed is
the router's own time (decisions and updates), measured live in every case.

`CachedExecutor` is the runtime's `Executor` with the measured call (`_timed_infer`) wrapped;
everything else (routing, fallback, traces) is the runtime's own code. It also records, per
frame, how much wall time really went into backend calls (`infer_wall_ms`), so the runtime's
overhead ratio stays right when replayed calls take no time.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from edgefmp.backends.base import Backend
from edgefmp.frame import Frame
from edgefmp.results import (
    ClassifyRequest,
    DetectRequest,
    LLMRequest,
    OCRRequest,
    Request,
    Result,
    VerifyRequest,
    VQARequest,
)
from edgefmp.runtime.executor import Executor
from edgefmp.trace import Cost, Trace


def request_key(backend: str, request: Request) -> bytes:
    """A digest of everything a backend's answer depends on: its name, the function, the
    request's pixels and its arguments (a DetectRequest's origin only places boxes in traces)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(backend.encode())
    h.update(b"\0" + request.function.encode() + b"\0")
    image = getattr(request, "image", None)
    if image is not None:
        h.update(repr(image.shape).encode())
        h.update(image.tobytes() if image.flags.c_contiguous else image.copy().tobytes())
    if isinstance(request, DetectRequest):
        args: tuple[Any, ...] = request.labels
    elif isinstance(request, VerifyRequest):
        args = (request.subject, request.property)
    elif isinstance(request, VQARequest):
        args = (request.question,)
    elif isinstance(request, ClassifyRequest):
        args = request.options
    elif isinstance(request, LLMRequest):
        args = (request.prompt,)
    elif isinstance(request, OCRRequest):
        args = ()
    else:  # a request type added later: its repr names its fields
        args = (repr(request),)
    h.update(repr(args).encode())
    return h.digest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    measured_ms: float = 0.0  # backend time actually spent measuring (misses)


class CallCache:
    """(backend, request) -> (result, measured cost, error), for one stream's sweep."""

    def __init__(self) -> None:
        self._store: dict[bytes, tuple[Result | None, Cost, str | None]] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: bytes) -> tuple[Result | None, Cost, str | None] | None:
        return self._store.get(key)

    def put(self, key: bytes, value: tuple[Result | None, Cost, str | None]) -> None:
        self._store[key] = value


class CachedExecutor(Executor):
    """An Executor whose backend calls go through a shared `CallCache`.

    `cache=None` measures every call (no replay).
    """

    def __init__(self, *args: Any, cache: CallCache | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache
        self._infer_wall_ms = 0.0

    def _timed_infer(self, backend: Backend, request: Request) -> tuple[Result | None, Cost, str | None]:
        t0 = time.perf_counter()
        try:
            if self.cache is None:
                return super()._timed_infer(backend, request)
            key = request_key(backend.name, request)
            hit = self.cache.get(key)
            if hit is not None:
                self.cache.stats.hits += 1
                return hit
            value = super()._timed_infer(backend, request)
            self.cache.stats.misses += 1
            self.cache.stats.measured_ms += value[1].latency_ms
            self.cache.put(key, value)
            return value
        finally:
            self._infer_wall_ms += (time.perf_counter() - t0) * 1e3

    def run_frame(self, frame: Frame, frame_index: int = 0) -> Trace:
        """The runtime's run_frame; `trace.meta["infer_wall_ms"]` is the wall time spent in
        backend calls and cache look-ups, so `wall_ms - infer_wall_ms` is the runtime's own."""
        self._infer_wall_ms = 0.0
        trace = super().run_frame(frame, frame_index)
        trace.meta["infer_wall_ms"] = self._infer_wall_ms
        return trace


__all__ = ["CacheStats", "CachedExecutor", "CallCache", "request_key"]
