"""A real `edgefmp serve` app (uvicorn in a thread, 127.0.0.1, free port) over the bundled
classical catalog plus a text-only `llm` backend, shared by the module's tests.

Set EDGEFMP_TEST_NETEM (e.g. "rtt=50ms,bw=20mbit") to run these tests through the shaping
proxy, under those network conditions.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog
from edgefmp.netem import NetConditions, ShapingProxy
from edgefmp.results import Answer, LLMRequest, Request

pytest.importorskip("fastapi")
from edgefmp.serve.app import create_app  # noqa: E402
from edgefmp.serve.runner import ServerThread  # noqa: E402
from edgefmp.serve.settings import ServeSettings  # noqa: E402

TOKEN = "serve-test-token-7f3a9c"
MAX_REQUEST_BYTES = 1024 * 1024


@dataclass
class Served:
    """A running server: its base URL (through the proxy when netem is on) and its app."""

    url: str
    app: object


def red_circle(width: int = 160, height: int = 120) -> np.ndarray:
    """RGB: a red disc on a light background (what the classical backend recognises)."""
    image = np.full((height, width, 3), 235, np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 5, (220, 0, 0), -1)
    return image


def data_url(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _echo_llm(request: Request) -> Answer:
    assert isinstance(request, LLMRequest)
    return Answer(text=f"echo: {request.prompt}", confidence=0.5)


@pytest.fixture(scope="module")
def serve_catalog() -> Iterator[Catalog]:
    with Catalog.open(load_catalog(default_catalog_path())) as classical:
        backends = {fn: list(classical.backends(fn)) for fn in classical.functions}
        backends["llm"] = [CallableBackend.wrap("echo-llm", "llm", _echo_llm)]
        yield Catalog.from_backends(backends, name="serve-test")


def _start(catalog: Catalog, settings: ServeSettings) -> Iterator[Served]:
    app = create_app(catalog, settings)
    with ServerThread(app) as server:
        spec = os.environ.get("EDGEFMP_TEST_NETEM", "").strip()
        if spec:
            with ShapingProxy(server.url, NetConditions.parse(spec)) as proxy:
                yield Served(proxy.url_for(server.url), app)
        else:
            yield Served(server.url, app)


@pytest.fixture(scope="module")
def served(serve_catalog: Catalog) -> Iterator[Served]:
    """With a bearer token and a 1 MiB request limit."""
    yield from _start(serve_catalog, ServeSettings(token=TOKEN, max_request_bytes=MAX_REQUEST_BYTES))


@pytest.fixture(scope="module")
def open_served(serve_catalog: Catalog) -> Iterator[Served]:
    """Without a token (what an edge RemoteBackend without api_key_env talks to)."""
    yield from _start(serve_catalog, ServeSettings())
