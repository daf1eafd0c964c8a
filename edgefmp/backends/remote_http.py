"""POSTing JSON to a model server: bounded retries, a per-attempt deadline, byte counting.

Byte counts are application-layer HTTP/1.1 bytes as they cross the socket, for every attempt
of a call (a retried call costs its failed attempts too):

* up: request line + header lines (`Name: value\\r\\n`, as written by h11) + blank line +
  body, counted only once the body was fully written (from httpx's `trace` extension);
* down: status line + header lines + blank line as parsed + body bytes as received before any
  content decoding (`Response.num_bytes_downloaded`); with chunked encoding the chunk framing
  is not counted.

TLS records, TCP/IP headers and retransmissions are not included. The server in
tests/helpers records what it actually read and wrote, and the tests hold these equal.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from edgefmp.errors import BackendError, BackendTimeout, BackendUnavailable

log = logging.getLogger(__name__)

# Statuses worth another attempt: the server is overloaded or briefly broken.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RemoteHTTPError(BackendError):
    """The server answered with an HTTP error status; `status` holds it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def server_fault(self) -> bool:
        return self.status >= 500 or self.status in (408, 429)


@dataclass
class ByteCount:
    """Bytes moved by one call, all attempts together."""

    up: int = 0
    down: int = 0
    attempts: int = 0


@dataclass
class _AttemptTrace:
    """httpcore trace hook: was the request body fully written before the attempt failed?"""

    body_sent: bool = False

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            self.body_sent = True


def request_wire_bytes(request: httpx.Request) -> int:
    """Bytes of the request as h11 writes it."""
    line = len(request.method) + 1 + len(request.url.raw_path) + len(b" HTTP/1.1\r\n")
    headers = sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
    return line + headers + 2 + len(request.content)


def response_head_bytes(response: httpx.Response) -> int:
    """Bytes of the status line and headers as parsed."""
    reason = response.reason_phrase.encode("latin-1", "replace")
    line = len(response.http_version.encode("ascii")) + 5 + len(reason) + 2
    headers = sum(len(k) + len(v) + 4 for k, v in response.headers.raw)
    return line + headers + 2


class JsonPoster:
    """Sends one JSON POST with retries over a shared, pooled httpx.Client.

    `where` names the backend and URL in every error; `redact` scrubs secrets (the API key)
    from any text that came from the server before it reaches a message or a log line.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        where: str,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        backoff_max_s: float,
        max_response_bytes: int,
        redact: Callable[[str], str] = lambda s: s,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.where = where
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_response_bytes = max_response_bytes
        self.redact = redact
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**attempt)]."""
        return self._rng.uniform(0.0, min(self.backoff_max_s, self.backoff_s * (2**attempt)))

    def post(self, url: str, body: bytes, headers: dict[str, str], count: ByteCount) -> Any:
        """The decoded JSON answer; raise BackendTimeout / BackendUnavailable / BackendError.

        `count` is filled in even when this raises, so a failed call's traffic is not lost.
        """
        total = self.retries + 1
        for attempt in range(total):
            count.attempts += 1
            try:
                return self._attempt(url, body, headers, count, attempt, total)
            except (BackendTimeout, BackendUnavailable, RemoteHTTPError) as exc:
                retriable = not isinstance(exc, RemoteHTTPError) or exc.status in RETRY_STATUSES
                if not retriable or attempt + 1 >= total:
                    raise
                delay = self.backoff(attempt)
                log.warning("%s; retrying in %.2f s (attempt %d of %d)", exc, delay, attempt + 2, total)
                self._sleep(delay)
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _attempt(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        count: ByteCount,
        attempt: int,
        total: int,
    ) -> Any:
        tag = f"{self.where}: attempt {attempt + 1}/{total}"
        trace = _AttemptTrace()
        request = self.client.build_request(
            "POST",
            url,
            content=body,
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            extensions={"trace": trace},
        )
        deadline = self._clock() + self.timeout_s
        response: httpx.Response | None = None
        chunks: list[bytes] = []
        size = 0
        try:
            response = self.client.send(request, stream=True)
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise BackendError(
                        f"{tag}: the answer exceeds options.max_response_bytes="
                        f"{self.max_response_bytes}; raise it or check the server"
                    )
                if self._clock() > deadline:
                    raise BackendTimeout(
                        f"{tag}: the answer took longer than {self.timeout_s:g} s to arrive; "
                        "raise options.timeout_s or check the link"
                    )
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(
                f"{tag}: no answer within {self.timeout_s:g} s ({type(exc).__name__}); "
                "check the server's load or raise options.timeout_s"
            ) from exc
        except httpx.ConnectError as exc:
            raise BackendUnavailable(
                f"{tag}: cannot connect ({self.redact(str(exc)) or type(exc).__name__}); "
                "is the server running and the url right?"
            ) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise BackendUnavailable(
                f"{tag}: the connection broke mid-call ({type(exc).__name__}: "
                f"{self.redact(str(exc)) or 'no detail'}); the server may have crashed or restarted"
            ) from exc
        except httpx.HTTPError as exc:  # decoding errors and the rest of httpx's tree
            raise BackendError(
                f"{tag}: the HTTP exchange failed ({type(exc).__name__}: {self.redact(str(exc)) or 'no detail'})"
            ) from exc
        finally:
            if response is not None or trace.body_sent:
                count.up += request_wire_bytes(request)
            if response is not None:
                count.down += response_head_bytes(response) + response.num_bytes_downloaded
                response.close()
        content = b"".join(chunks)
        if response.status_code >= 400:
            snippet = self.redact(content[:200].decode("utf-8", "replace")).strip()
            raise RemoteHTTPError(
                f"{tag}: the server answered HTTP {response.status_code} {response.reason_phrase}: "
                f"{snippet or '(empty body)'}",
                response.status_code,
            )
        try:
            return json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            snippet = self.redact(content[:120].decode("utf-8", "replace"))
            raise BackendError(
                f"{tag}: the answer is not valid JSON ({exc}): {snippet!r}; "
                "check that options.protocol matches the server"
            ) from exc
