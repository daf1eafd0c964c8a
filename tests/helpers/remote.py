"""Building RemoteBackends and requests against a FakeModelServer, shared by remote tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.remote import RemoteBackend, RemoteOptions
from tests.helpers.fake_model_server import FakeModelServer


def make_remote(server: FakeModelServer | str, function: str, **options: Any) -> RemoteBackend:
    """A RemoteBackend for `function` pointed at `server` (or a base URL, for a server that is
    not running here), with fast test defaults; `options` override them."""
    is_url = isinstance(server, str)
    defaults: dict[str, Any] = {
        "protocol": "openai" if is_url else server.protocol,  # type: ignore[union-attr]
        "url": server if is_url else server.url,  # type: ignore[union-attr]
        "model": "fake-large",
        "timeout_s": 2.0,
        "retries": 0,
        "backoff_s": 0.01,
        "backoff_max_s": 0.02,
    }
    defaults.update(options)
    spec = BackendSpec(name="big-remote", kind="remote", function=function)
    clock = defaults.pop("clock", None)
    opts = RemoteOptions(**defaults)
    return RemoteBackend(spec, opts) if clock is None else RemoteBackend(spec, opts, clock=clock)


def gradient_image(height: int = 60, width: int = 80) -> np.ndarray:
    """A deterministic RGB uint8 test image."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 3 % 256, y * 4 % 256, (x + y) % 256], axis=-1).astype(np.uint8)
