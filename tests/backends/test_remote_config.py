"""RemoteBackend against real servers that are up but wrongly reached: the failures a person
must fix (TLS trust, pool size, keys, URLs, answers that are not JSON) are never retried,
never blamed on the server by the circuit breaker, and logged once with the fix; the server's
own signals (Retry-After, Content-Length) are honoured; an open circuit says until when."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.remote import (
    RemoteAnswerError,
    RemoteBackend,
    RemoteConfigError,
    RemoteOptions,
)
from edgefmp.backends.remote_http import RemoteHTTPError, retry_after_s
from edgefmp.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from edgefmp.results import VerifyRequest
from tests.helpers.fake_model_server import openai_reply
from tests.helpers.remote import gradient_image, make_remote

ENV = "EDGEFMP_TEST_CONFIG_KEY"


def _request() -> VerifyRequest:
    return VerifyRequest(gradient_image(), "ball", "red")


# ------------------------------------------------------------------------ a scripted server


@dataclass
class Reply:
    """One scripted answer: status, extra headers, body; `declared` overrides Content-Length,
    `then_wait` keeps the connection open (bounded) after writing, and `trickle_s` sends the
    status line and headers a few bytes at a time over that long (a slow link, seen from the
    client: no read ever waits long, yet the exchange holds its connection)."""

    status: int = 200
    body: bytes = field(default_factory=lambda: json.dumps(openai_reply("yes")).encode())
    headers: dict[str, str] = field(default_factory=dict)
    declared: int | None = None
    then_wait: bool = False
    trickle_s: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Scripted

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output clean."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        owner = self.server
        with owner.lock:
            reply = owner.replies.popleft() if owner.replies else owner.default
            owner.hits += 1
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(reply.body) if reply.declared is None else reply.declared),
            **reply.headers,
        }
        lines = [f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        pieces = 10 if reply.trickle_s else 1
        step = -(-len(head) // pieces)
        for i in range(0, len(head), step):
            self.wfile.write(head[i : i + step])
            self.wfile.flush()
            if reply.trickle_s and owner.stop.wait(reply.trickle_s / pieces):
                return
        self.wfile.write(reply.body)
        self.wfile.flush()
        if reply.then_wait:
            owner.stop.wait(10.0)
            self.close_connection = True


class _Scripted(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.hits = 0
        self.connections = 0
        self.stop = threading.Event()

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        with self.lock:
            self.connections += 1
        if self.tls is None:
            return sock, addr
        sock.settimeout(5.0)  # a handshake that fails raises ssl.SSLError, which socketserver drops
        return self.tls.wrap_socket(sock, server_side=True), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer is part of these tests, not an error."""


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    yield from _serve(_Scripted())


def _serve(server: _Scripted) -> Iterator[_Scripted]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _url(server: _Scripted, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}/v1"


def _sleepless(url: str, slept: list[float], **options: Any) -> RemoteBackend:
    """A backend that records its pauses between attempts instead of sleeping."""
    spec = BackendSpec(name="big-remote", kind="remote", function="verify")
    return RemoteBackend(spec, RemoteOptions(url=url, model="fake-large", **options), sleep=slept.append)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "remote" in r.name]


# ------------------------------------------------------------------------------------ tests


def test_a_full_connection_pool_is_the_clients_fault_not_the_servers(scripted: _Scripted) -> None:
    """max_connections 1: while one call's answer crawls over a slow link for 2.5 s, a second
    call waits for the pool longer than timeout_s. Its error says so, and the circuit counts
    only the slow call (threshold 2: it stays closed)."""
    scripted.replies.append(Reply(trickle_s=2.5))
    backend = make_remote(_url(scripted), "verify", max_connections=1, timeout_s=1.0, failure_threshold=2)
    errors: dict[str, BackendError] = {}

    def call(name: str) -> None:
        try:
            backend.infer(_request())
        except BackendError as exc:
            errors[name] = exc

    slow = threading.Thread(target=call, args=("slow",))
    try:
        slow.start()
        for _ in range(200):  # until the slow call holds the connection (bounded: 10 s)
            if scripted.hits:
                break
            scripted.stop.wait(0.05)
        call("queued")
        slow.join(timeout=20)
        assert backend.available() and backend.circuit_state == "closed"
    finally:
        backend.close()
    queued = errors["queued"]
    assert isinstance(queued, RemoteConfigError) and queued.reason == "pool", queued
    message = str(queued)
    assert "connection pool was full" in message and "options.max_connections" in message and "--inflight" in message
    assert "server's load" not in message and "attempt" not in message
    assert isinstance(errors["slow"], BackendTimeout)  # the link's fault, counted
    assert scripted.hits == 1  # the queued call never reached the server


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_server(self_signed: tuple[Path, Path]) -> Iterator[_Scripted]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(self_signed[0]), str(self_signed[1]))
    yield from _serve(_Scripted(tls=context))


def test_an_untrusted_certificate_is_a_configuration_error(
    tls_server: _Scripted, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    backend = make_remote(_url(tls_server, "https"), "verify", retries=2, failure_threshold=1)
    try:
        for _ in range(2):
            with pytest.raises(RemoteConfigError) as info:
                backend.infer(_request())
        assert backend.available() and backend.circuit_state == "closed"  # not the server's failure
    finally:
        backend.close()
    message = str(info.value)
    assert info.value.reason == "tls" and "CERTIFICATE_VERIFY_FAILED" in message
    assert "ca_bundle" in message and "SSL_CERT_FILE" in message and "verify_tls" in message
    assert "is the server running" not in message and "attempt" not in message
    assert tls_server.connections == 2  # one handshake per call: not retried
    assert len([w for w in _warnings(caplog) if "CERTIFICATE_VERIFY_FAILED" in w]) == 1


def test_ca_bundle_or_ssl_cert_file_trusts_a_self_signed_server(
    tls_server: _Scripted, self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    backend = make_remote(_url(tls_server, "https"), "verify", ca_bundle=str(self_signed[0]))
    try:
        assert backend.infer(_request()).value is True  # type: ignore[attr-defined]
    finally:
        backend.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed[0]))  # what docs/REMOTE.md offers instead
    backend = make_remote(_url(tls_server, "https"), "verify")
    try:
        assert backend.infer(_request()).value is True  # type: ignore[attr-defined]
    finally:
        backend.close()


def test_ca_bundle_is_checked_when_the_backend_is_built(tmp_path: Path) -> None:
    spec = BackendSpec(name="tier", kind="remote", function="verify", base_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="ca_bundle .*missing.pem"):
        RemoteBackend(spec, RemoteOptions(url="https://127.0.0.1:1/v1", model="m", ca_bundle="missing.pem"))
    with pytest.raises(ConfigError, match="verify_tls is false"):
        RemoteBackend(spec, RemoteOptions(url="https://127.0.0.1:1/v1", model="m", ca_bundle="x.pem", verify_tls=False))


def test_retry_after_is_honoured_when_short(scripted: _Scripted) -> None:
    scripted.replies.append(Reply(429, b'{"error": "slow down"}', {"Retry-After": "1"}))
    slept: list[float] = []  # the pauses, recorded instead of taken
    backend = _sleepless(_url(scripted), slept, retries=2, backoff_s=0.01, backoff_max_s=5.0)
    try:
        assert backend.infer(_request()).value is True  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert slept == [1.0] and scripted.hits == 2


def test_retry_after_longer_than_backoff_max_is_not_waited_for(scripted: _Scripted) -> None:
    scripted.default = Reply(503, b'{"error": "maintenance"}', {"Retry-After": "120"})
    slept: list[float] = []
    backend = _sleepless(_url(scripted), slept, retries=2, backoff_max_s=5.0)
    try:
        with pytest.raises(RemoteHTTPError, match="Retry-After") as info:
            backend.infer(_request())
    finally:
        backend.close()
    assert info.value.status == 503 and slept == [] and scripted.hits == 1
    assert "backoff_max_s" in str(info.value) and "attempt" not in str(info.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 0 ", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, expected: float | None) -> None:
    now = 1445412450.0  # 30 s before the date above
    assert retry_after_s(header, now=now) == expected


def test_an_oversized_answer_is_refused_from_its_content_length(scripted: _Scripted) -> None:
    """The server announces 64 MB and sends nothing: refused at once, not after timeout_s."""
    scripted.default = Reply(200, b"", declared=64 * 1024 * 1024, then_wait=True)
    backend = make_remote(_url(scripted), "verify", timeout_s=5.0, max_response_bytes=1024 * 1024, retries=1)
    try:
        with pytest.raises(RemoteAnswerError, match="Content-Length") as info:
            backend.infer(_request())
    finally:
        backend.close()
    assert not isinstance(info.value, BackendTimeout)
    assert info.value.reason == "too-large" and "max_response_bytes" in str(info.value)
    assert scripted.hits == 1 and info.value.bytes_down > 0  # type: ignore[attr-defined]


def test_only_retried_errors_say_which_attempt(scripted: _Scripted) -> None:
    scripted.default = Reply(404, b'{"error": "no such model"}')
    backend = make_remote(_url(scripted), "verify", retries=1)
    try:
        with pytest.raises(RemoteHTTPError) as refused:
            backend.infer(_request())
        scripted.default = Reply(500, b'{"error": "boom"}')
        with pytest.raises(RemoteHTTPError) as failed:
            backend.infer(_request())
    finally:
        backend.close()
    assert "attempt" not in str(refused.value) and "check options.url and options.model" in str(refused.value)
    assert "(attempt 2/2)" in str(failed.value)


def test_a_redirect_is_not_followed_and_says_where_it_points(scripted: _Scripted) -> None:
    scripted.default = Reply(307, b"", {"Location": "http://127.0.0.1:1/elsewhere/v1/chat/completions"})
    backend = make_remote(_url(scripted), "verify", retries=2)
    try:
        with pytest.raises(RemoteHTTPError, match="redirects .*elsewhere.*options.url") as info:
            backend.infer(_request())
    finally:
        backend.close()
    assert info.value.status == 307 and scripted.hits == 1 and "not valid JSON" not in str(info.value)


def test_configuration_errors_are_logged_once_per_backend_and_kind(
    scripted: _Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    backend = make_remote(_url(scripted), "verify", retries=1, failure_threshold=100)
    other = make_remote(_url(scripted), "verify", retries=1, failure_threshold=100)
    try:
        for reply, error in (
            (Reply(401, b'{"error": "bad token"}'), RemoteHTTPError),
            (Reply(404, b'{"error": "unknown model"}'), RemoteHTTPError),
            (Reply(200, b"<html>garbage \x00\xff not json"), RemoteAnswerError),
        ):
            scripted.default = reply
            for _ in range(3):
                with pytest.raises(error):
                    backend.infer(_request())
        scripted.default = Reply(401, b'{"error": "bad token"}')
        with pytest.raises(RemoteHTTPError):
            other.infer(_request())  # another backend: its own warning
    finally:
        backend.close()
        other.close()
    warnings = _warnings(caplog)
    assert len(warnings) == 4, warnings
    assert all("'big-remote'" in w for w in warnings)
    assert "HTTP 401" in warnings[0] and "options.api_key_env" in warnings[0]
    assert "HTTP 404" in warnings[1] and "options.url" in warnings[1]
    assert "not valid JSON" in warnings[2] and "options.protocol" in warnings[2]
    assert scripted.hits == 10  # none of them was retried


def test_an_unset_key_is_warned_about_at_start_and_not_per_call(
    scripted: _Scripted, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    caplog.set_level(logging.WARNING)
    backend = make_remote(_url(scripted), "verify", api_key_env=ENV)
    try:
        assert len(_warnings(caplog)) == 1 and ENV in _warnings(caplog)[0]
        for _ in range(3):
            with pytest.raises(RemoteConfigError, match=f"export {ENV}="):
                backend.infer(_request())
        assert backend.available()
    finally:
        backend.close()
    assert len(_warnings(caplog)) == 1 and scripted.hits == 0


def test_with_the_key_set_nothing_is_warned(
    scripted: _Scripted, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV, "sk-config-test")
    caplog.set_level(logging.WARNING)
    backend = make_remote(_url(scripted), "verify", api_key_env=ENV)
    try:
        assert backend.infer(_request()).value is True  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert _warnings(caplog) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_open_circuit_says_until_when_and_why(scripted: _Scripted) -> None:
    scripted.default = Reply(500, b'{"error": "GPU fell off the bus"}')
    clock = FakeClock()
    backend = make_remote(_url(scripted), "verify", failure_threshold=1, cooldown_s=30.0, clock=clock)
    try:
        assert backend.unavailable_reason() is None
        with pytest.raises(RemoteHTTPError):
            backend.infer(_request())
        reason = backend.unavailable_reason()
        assert reason is not None and not backend.available()
        assert "circuit open until" in reason and "in 30.0 s" in reason and "GPU fell off the bus" in reason
        clock.now += 20.0
        with pytest.raises(BackendUnavailable, match=r"circuit open until \d\d:\d\d:\d\d \(in 10.0 s"):
            backend.infer(_request())
        clock.now += 10.0
        assert backend.available() and backend.unavailable_reason() is None
    finally:
        backend.close()
    assert scripted.hits == 1
