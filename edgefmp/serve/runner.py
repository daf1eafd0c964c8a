"""Running an app with uvicorn: in the foreground (the CLI) or in a thread (tests, benchmarks).

The socket is bound before uvicorn starts, so port 0 (any free port) works and the chosen
port is known at once; it already listens, so connections made before uvicorn's loop runs
wait in the backlog instead of being refused.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 = any free port); ConfigError names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it a keep-alive client waited ~40 ms for
        # every response after its first (the response's second segment held back by Nagle
        # until the client's delayed ACK), measured on loopback as 44 ms vs 0.7 ms a request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(256)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"serve: cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    sock.set_inheritable(True)
    return sock


def _config(app: Any, log_level: str) -> uvicorn.Config:
    # Keep-alive longer than a client's pool keeps idle connections, so a pooled connection is
    # not closed under a client that is about to reuse it.
    return uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_keep_alive=30, access_log=False)


def run(app: Any, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve `app` on the bound `sock` until interrupted (Ctrl-C / SIGTERM)."""
    uvicorn.Server(_config(app, log_level)).run(sockets=[sock])


class ServerThread:
    """`app` served by uvicorn in a daemon thread of this process; a context manager.

    with ServerThread(create_app(catalog, settings)) as server:
        httpx.get(f"{server.url}/v2/health/ready")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._server = uvicorn.Server(_config(app, log_level))
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the server is not running; call start() first")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        self._sock = bind(self.host, self._requested_port)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="edgefmp-serve", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise ConfigError(f"edgefmp serve did not start within {timeout_s:g} s on {self.host}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout_s)
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
