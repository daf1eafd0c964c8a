"""RemoteBackend failure handling against real servers: every failure becomes a BackendError
subclass naming the backend and URL, retries are bounded, timeouts hold, byte counts stay true."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefmp.backends.remote_http import RemoteHTTPError
from edgefmp.errors import BackendError, BackendTimeout, BackendUnavailable
from edgefmp.results import Verdict, VerifyRequest
from tests.helpers.fake_model_server import FakeModelServer
from tests.helpers.remote import gradient_image, make_remote

REPO = Path(__file__).resolve().parents[2]


def _request() -> VerifyRequest:
    return VerifyRequest(gradient_image(), "ball", "red")


@pytest.fixture(params=["openai", "kserve"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeModelServer]:
    answer = (
        "yes" if request.param == "openai" else [{"name": "verdict", "datatype": "BOOL", "shape": [1], "data": [True]}]
    )
    with FakeModelServer(request.param, answer=answer) as s:
        yield s


def test_http_500_is_retried_a_bounded_number_of_times(server: FakeModelServer) -> None:
    server.mode = "http500"
    backend = make_remote(server, "verify", retries=2)
    try:
        with pytest.raises(RemoteHTTPError, match="HTTP 500") as info:
            backend.infer(_request())
    finally:
        backend.close()
    hits = server.wait_for_hits(3)
    assert len(hits) == 3 and info.value.status == 500
    assert "big-remote" in str(info.value) and server.url in str(info.value)
    assert info.value.bytes_up == sum(h.bytes_in for h in hits)
    assert info.value.bytes_down == sum(h.bytes_out for h in hits)


def test_recovers_within_retries_and_counts_every_attempt(server: FakeModelServer) -> None:
    server.script("http500", "reset")
    backend = make_remote(server, "verify", retries=2)
    try:
        result = backend.infer(_request())
    finally:
        backend.close()
    hits = server.wait_for_hits(3)
    assert isinstance(result, Verdict) and result.value is True
    assert [h.mode for h in hits] == ["http500", "reset", "ok"]
    assert result.bytes_up == sum(h.bytes_in for h in hits)
    assert result.bytes_down == sum(h.bytes_out for h in hits)


def test_malformed_json_is_an_error_without_retry(server: FakeModelServer) -> None:
    server.mode = "malformed"
    backend = make_remote(server, "verify", retries=2)
    try:
        with pytest.raises(BackendError, match="not valid JSON") as info:
            backend.infer(_request())
    finally:
        backend.close()
    assert not isinstance(info.value, (BackendTimeout, BackendUnavailable))
    assert len(server.wait_for_hits(1)) == 1


def test_hang_times_out_within_the_bound(server: FakeModelServer) -> None:
    server.mode = "hang"
    timeout_s, retries = 0.5, 1
    backend = make_remote(server, "verify", timeout_s=timeout_s, retries=retries)
    start = time.monotonic()
    try:
        with pytest.raises(BackendTimeout, match="no answer within 0.5 s") as info:
            backend.infer(_request())
    finally:
        elapsed = time.monotonic() - start
        backend.close()
    assert elapsed < timeout_s * (retries + 1) + 1.5
    hits = server.hits
    assert len(hits) == retries + 1
    assert info.value.bytes_up == sum(h.bytes_in for h in hits)
    assert info.value.bytes_down == 0


def test_slow_but_in_time_answers(server: FakeModelServer) -> None:
    server.mode = "slow"
    server.slow_s = 0.2
    backend = make_remote(server, "verify", timeout_s=3.0)
    try:
        assert backend.infer(_request()).value is True  # type: ignore[attr-defined]
    finally:
        backend.close()


@pytest.mark.parametrize("mode", ["truncate", "close", "reset"])
def test_broken_connections_are_unavailable(server: FakeModelServer, mode: str) -> None:
    server.mode = mode
    backend = make_remote(server, "verify", retries=1)
    try:
        with pytest.raises(BackendUnavailable, match="connection broke mid-call") as info:
            backend.infer(_request())
    finally:
        backend.close()
    hits = server.wait_for_hits(2)
    assert len(hits) == 2
    assert info.value.bytes_up == sum(h.bytes_in for h in hits)
    assert info.value.bytes_down == sum(h.bytes_out for h in hits)


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = make_remote(f"http://127.0.0.1:{port}/v1", "verify", retries=1)
    try:
        with pytest.raises(BackendUnavailable, match="cannot connect") as info:
            backend.infer(_request())
    finally:
        backend.close()
    assert info.value.bytes_up == 0 and info.value.bytes_down == 0


def test_server_process_killed_mid_call() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.fake_model_server", "--mode", "hang"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), line
        url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

        def kill_on_first_hit() -> None:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == "hit":
                proc.kill()

        killer = threading.Thread(target=kill_on_first_hit, daemon=True)
        killer.start()
        backend = make_remote(url, "verify", timeout_s=10.0, retries=1)
        try:
            with pytest.raises(BackendUnavailable) as info:
                backend.infer(_request())
            assert url in str(info.value)
            with pytest.raises(BackendUnavailable, match="cannot connect"):
                backend.infer(_request())
        finally:
            backend.close()
        killer.join(timeout=5)
    finally:
        proc.kill()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_client_errors_are_not_retried_and_keep_the_circuit_closed() -> None:
    with FakeModelServer("openai") as server:
        backend = make_remote(server, "verify", url=server.url + "/wrong", retries=2, failure_threshold=1)
        try:
            for _ in range(2):
                with pytest.raises(RemoteHTTPError, match="HTTP 404"):
                    backend.infer(_request())
            assert backend.available() and backend.circuit_state == "closed"
        finally:
            backend.close()
        assert len(server.wait_for_hits(2)) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_blocks_without_network_and_recovers() -> None:
    clock = FakeClock()
    with FakeModelServer("openai", answer="no", mode="http500") as server:
        backend = make_remote(server, "verify", failure_threshold=2, cooldown_s=30.0, clock=clock)
        try:
            for _ in range(2):
                with pytest.raises(RemoteHTTPError):
                    backend.infer(_request())
            assert not backend.available() and backend.circuit_state == "open"
            with pytest.raises(BackendUnavailable, match="circuit open") as info:
                backend.infer(_request())
            assert "big-remote" in str(info.value)
            assert len(server.wait_for_hits(2)) == 2  # no network call while open

            clock.now += 30.0  # half-open: one trial, which fails and re-opens
            assert backend.available() and backend.circuit_state == "half-open"
            with pytest.raises(RemoteHTTPError):
                backend.infer(_request())
            assert backend.circuit_state == "open"
            assert len(server.wait_for_hits(3)) == 3

            clock.now += 30.0  # the next trial succeeds and closes the circuit
            server.mode = "ok"
            assert backend.infer(_request()).value is False  # type: ignore[attr-defined]
            assert backend.circuit_state == "closed" and backend.available()
        finally:
            backend.close()
        assert len(server.wait_for_hits(4)) == 4


def test_timeouts_count_towards_the_circuit() -> None:
    with FakeModelServer("openai", mode="hang") as server:
        backend = make_remote(server, "verify", timeout_s=0.3, failure_threshold=1, cooldown_s=60.0)
        try:
            with pytest.raises(BackendTimeout):
                backend.infer(_request())
            assert not backend.available()
        finally:
            backend.close()
