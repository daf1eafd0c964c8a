"""ASGI middleware of the server: metrics, bearer-token check, request size limit.

Pure ASGI (not BaseHTTPMiddleware) so bodies are not copied twice and a refusal never reaches
the routes. Order, outermost first: metrics (so refusals are counted) -> size limit -> auth.

A refusal is sent only after the request body was read (up to a bound): a client that gets an
answer while still uploading may reuse the connection with its body half sent, and the server
would then read the rest as the next request. When the body is too large to drain, the answer
says `Connection: close`.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from edgefmp.serve.errors import RequestRejected
from edgefmp.serve.metrics import Metrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
# An oversized body is read and discarded up to this multiple of the limit, so the client
# gets its 413 instead of a connection reset; beyond it the connection is simply closed.
DRAIN_FACTOR = 4
CLOSE = {"connection": "close"}


def error_payload(path: str, status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The error body in the style of the protocol the path belongs to."""
    if path.startswith("/v1/"):
        kind = {
            401: "authentication_error",
            404: "not_found_error",
            413: "invalid_request_error",
            422: "invalid_request_error",
            503: "server_error",
        }.get(status, "invalid_request_error")
        if status >= 500 and status != 503:
            kind = "server_error"
        return {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return {"error": message}


async def send_error(send: Send, path: str, error: RequestRejected, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_payload(path, error.status, error.message, error.param)).encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def endpoint_of(path: str, method: str) -> str:
    """A bounded label for the metrics."""
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "infer"
    if path == "/v1/chat/completions":
        return "chat"
    if path.startswith("/v2/health/"):
        return "health"
    if path.startswith("/v2/models/") or path == "/v2":
        return "metadata"
    if path == "/v1/models":
        return "models"
    if path == "/metrics":
        return "metrics"
    return "other"


class MetricsMiddleware:
    """Counts every HTTP request with its status and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, known_models: Callable[[str], bool]) -> None:
        self.app = app
        self.metrics = metrics
        self.known = known_models

    def _model(self, scope: Scope) -> str:
        state = scope.get("state") or {}
        name = state.get("edgefmp_model")
        if name is None:
            parts = scope["path"].split("/")
            name = parts[3] if len(parts) > 3 and parts[1:3] == ["v2", "models"] else None
        return name if isinstance(name, str) and self.known(name) else "-"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        endpoint = endpoint_of(scope["path"], scope.get("method", ""))
        self.metrics.started(endpoint)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(endpoint, self._model(scope), status, time.perf_counter() - start)


class AuthMiddleware:
    """Requires `Authorization: Bearer <token>` on every path but the health probes.

    It runs inside the size limit, which has read the whole (bounded) body already."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None

    def __repr__(self) -> str:  # never show the token
        return f"AuthMiddleware(enabled={self._token is not None})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._token is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization") or ""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
            error = RequestRejected(401, "missing or wrong bearer token (header 'Authorization: Bearer <token>')")
            await send_error(send, scope["path"], error, {"www-authenticate": "Bearer"})
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses bodies larger than `max_bytes` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _drain(self, receive: Receive, already: int) -> bool:
        """Read and drop the rest of the body; False when it was too large to finish."""
        seen = already
        while seen <= DRAIN_FACTOR * self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return True
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return False

    def _too_large(self, size: int | str) -> RequestRejected:
        return RequestRejected(
            413,
            f"the request body ({size} bytes) exceeds this server's limit of {self.max_bytes} bytes (--max-request-mb)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await send_error(send, scope["path"], RequestRejected(400, "Content-Length is not an integer"))
                return
            if size > self.max_bytes:
                drained = size <= DRAIN_FACTOR * self.max_bytes and await self._drain(receive, 0)
                log.info("refused a %d-byte request to %s", size, scope["path"])
                await send_error(send, scope["path"], self._too_large(size), None if drained else CLOSE)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                drained = not message.get("more_body", False) or await self._drain(receive, total)
                await send_error(
                    send, scope["path"], self._too_large(f"more than {self.max_bytes}"), None if drained else CLOSE
                )
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
