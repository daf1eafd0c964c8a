"""The remote tier's HTTP transport: one JSON POST over a shared, pooled httpx.Client, with
bounded retries, a per-attempt deadline, byte counting and the error kinds a caller tells apart.

`RemotePoster` retries timeouts, broken connections and HTTP 408/429/5xx after a full-jitter
backoff (or the server's `Retry-After`); it raises `RemoteHTTPError` for an HTTP error status,
`RemoteConfigError` when this client is set up wrong (TLS trust, a full connection pool) and
`RemoteAnswerError` when the answer is unusable. What a call means (the options, the wire
protocols, the circuit breaker) is RemoteBackend's, in remote.

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

import email.utils
import json
import logging
import random
import ssl
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


class RemoteConfigError(BackendUnavailable):
    """This client is set up wrong, so the backend cannot be used until the catalog (or the
    environment) changes. `reason` is one of "api_key_env", "tls", "pool". Never retried and
    never counted against the server by the circuit breaker."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RemoteAnswerError(BackendError):
    """The server answered, but its answer cannot be used. `reason` is one of "not-json",
    "too-large", "unreadable". Not retried; the server is up, so the circuit does not count it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ByteCount:
    """Bytes moved by one call, all attempts together."""

    up: int = 0
    down: int = 0
    attempts: int = 0


@dataclass(eq=False)
class _Failure(Exception):
    """One failed attempt, before the retry policy decides what the caller sees."""

    error: Callable[[str], BackendError]
    text: str  # what happened and what to do, without the backend's name
    retriable: bool = False
    retry_after_s: float | None = None


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date); None when
    absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a connection failure, if there is one."""
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; bounded anyway
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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


class RemotePoster:
    """Sends one JSON POST with the remote tier's retry policy.

    Retried: timeouts, broken connections, HTTP 408/429/5xx, after a full-jitter backoff or
    the server's `Retry-After` when it asks for at most `backoff_max_s`. Not retried: HTTP 4xx,
    unusable answers (checked against Content-Length before reading the body), and client
    configuration problems (TLS trust, a full connection pool). A message says "attempt k/n"
    only when the call was retried.

    `where` names the backend and URL in every error; `redact` scrubs secrets (the API key)
    from any text that came from the server before it reaches a message or a log line;
    `status_hint` says what to do about an HTTP error status.
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
        max_connections: int,
        status_hint: Callable[[int], str],
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
        self.max_connections = max_connections
        self.status_hint = status_hint
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
            except _Failure as failure:
                delay = self._delay(failure, attempt) if attempt + 1 < total else None
                if delay is None:
                    tag = f" (attempt {attempt + 1}/{total})" if failure.retriable and attempt else ""
                    raise failure.error(f"{self.where}{tag}: {failure.text}") from failure.__cause__
                log.warning(
                    "%s: %s; retrying in %.2f s (attempt %d of %d)",
                    self.where,
                    failure.text,
                    delay,
                    attempt + 2,
                    total,
                )
                self._sleep(delay)
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _delay(self, failure: _Failure, attempt: int) -> float | None:
        """Seconds to wait before the next attempt; None: do not retry."""
        if not failure.retriable:
            return None
        if failure.retry_after_s is None:
            return self.backoff(attempt)
        if failure.retry_after_s > self.backoff_max_s:
            failure.retriable = False
            failure.text += (
                f"; the server asks to wait {failure.retry_after_s:g} s (Retry-After), longer than "
                f"options.backoff_max_s={self.backoff_max_s:g}: not retried"
            )
            return None
        return max(failure.retry_after_s, self.backoff(attempt))

    def _attempt(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        count: ByteCount,
        attempt: int,
        total: int,
    ) -> Any:
        trace = _AttemptTrace(self._clock)
        request = self.client.build_request(
            "POST",
            url,
            content=body,
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            extensions={"trace": trace},
        )
        response: httpx.Response | None = None
        chunks: list[bytes] = []
        try:
            response = self.client.send(request, stream=True)
            self._check_declared_size(response)
            # The whole exchange must fit in timeout_s from when it got its connection; waiting
            # for the pool has its own bound (PoolTimeout), so it is never blamed on the link.
            deadline = (trace.started_at or self._clock()) + self.timeout_s
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise self._too_large(f"more than {self.max_response_bytes} bytes")
                if self._clock() > deadline:
                    raise _Failure(
                        BackendTimeout,
                        f"the answer took longer than {self.timeout_s:g} s to arrive; "
                        "raise options.timeout_s or check the link",
                        retriable=True,
                    )
                chunks.append(chunk)
        except httpx.PoolTimeout as exc:
            raise _Failure(
                _config("pool"),
                f"the client's connection pool was full: all {self.max_connections} connection(s) "
                f"(options.max_connections) stayed busy for {self.timeout_s:g} s, so the request was "
                "never sent; raise options.max_connections to at least `edgefmp run --inflight`, or "
                "lower --inflight",
            ) from exc
        except httpx.TimeoutException as exc:
            raise _Failure(
                BackendTimeout,
                f"no answer within {self.timeout_s:g} s ({type(exc).__name__}); "
                "check the server's load or raise options.timeout_s",
                retriable=True,
            ) from exc
        except httpx.ConnectError as exc:
            tls = _ssl_error(exc)
            if tls is not None:
                raise _Failure(_config("tls"), self._tls_text(tls)) from exc
            raise _Failure(
                BackendUnavailable,
                f"cannot connect ({self.redact(str(exc)) or type(exc).__name__}); "
                "is the server running and the url right?",
                retriable=True,
            ) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise _Failure(
                BackendUnavailable,
                f"the connection broke mid-call ({type(exc).__name__}: "
                f"{self.redact(str(exc)) or 'no detail'}); the server may have crashed or restarted",
                retriable=True,
            ) from exc
        except httpx.HTTPError as exc:  # decoding errors and the rest of httpx's tree
            raise _Failure(
                BackendError,
                f"the HTTP exchange failed ({type(exc).__name__}: {self.redact(str(exc)) or 'no detail'})",
            ) from exc
        finally:
            if response is not None or trace.body_sent:
                count.up += request_wire_bytes(request)
            if response is not None:
                count.down += response_head_bytes(response) + response.num_bytes_downloaded
                response.close()
        content = b"".join(chunks)
        if response.status_code >= 300:
            raise self._status_failure(response, content)
        try:
            return json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            snippet = self.redact(content[:120].decode("utf-8", "replace"))
            raise _Failure(
                _answer("not-json"),
                f"the answer is not valid JSON ({exc}): {snippet!r}; check that options.protocol "
                "and options.url point at the model server's API",
            ) from exc

    def _check_declared_size(self, response: httpx.Response) -> None:
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise self._too_large(f"{int(declared)} bytes (Content-Length)")

    def _too_large(self, size: str) -> _Failure:
        return _Failure(
            _answer("too-large"),
            f"the answer ({size}) exceeds options.max_response_bytes={self.max_response_bytes}; "
            "raise it or check the server",
        )

    def _status_failure(self, response: httpx.Response, content: bytes) -> _Failure:
        status = response.status_code
        if status < 400:  # redirects are not followed: the key must not go where the catalog does not say
            location = self.redact(response.headers.get("location", "(no Location)"))[:200]
            return _Failure(
                lambda message: RemoteHTTPError(message, status),
                f"the server redirects (HTTP {status}) to {location!r}; put the URL it should be in "
                "options.url (redirects are not followed)",
            )
        snippet = self.redact(content[:200].decode("utf-8", "replace")).strip()
        retriable = status in RETRY_STATUSES
        text = (
            f"the server answered HTTP {status} {response.reason_phrase}: {snippet or '(empty body)'}; "
            f"{self.status_hint(status)}"
        )
        return _Failure(
            lambda message: RemoteHTTPError(message, status),
            text,
            retriable=retriable,
            retry_after_s=retry_after_s(response.headers.get("retry-after")) if retriable else None,
        )

    @staticmethod
    def _tls_text(exc: ssl.SSLError) -> str:
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = exc.verify_message or exc.reason or "certificate verify failed"
            return (
                f"the server's TLS certificate is not trusted (CERTIFICATE_VERIFY_FAILED: {detail}); "
                "if it is self-signed or from your own CA, give that certificate with options.ca_bundle: "
                "/path/ca.pem (or export SSL_CERT_FILE=/path/ca.pem); options.verify_tls: false turns "
                "the check off, for tests only"
            )
        return (
            f"the TLS handshake failed ({exc.reason or exc}); does the server speak https on this port? "
            "if it speaks plain HTTP, use http:// in options.url"
        )


@dataclass
class _AttemptTrace:
    """httpcore trace hook: when the attempt got its connection (the first event, after any
    wait for the pool) and whether the request body was fully written."""

    clock: Callable[[], float]
    started_at: float | None = None
    body_sent: bool = False

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if self.started_at is None:
            self.started_at = self.clock()
        if event.endswith("send_request_body.complete"):
            self.body_sent = True


def _config(reason: str) -> Callable[[str], BackendError]:
    return lambda message: RemoteConfigError(message, reason)


def _answer(reason: str) -> Callable[[str], BackendError]:
    return lambda message: RemoteAnswerError(message, reason)
