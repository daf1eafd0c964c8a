"""The shaping proxy with real sockets on 127.0.0.1: bytes intact, delays at least as
configured (lower bounds only: a busy machine may add time, never remove it), loss as stalls
or resets, bounded connections, a clean stop."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from edgefmp.errors import ConfigError
from edgefmp.netem import NetConditions, ShapingProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield ("127.0.0.1", int(server.server_address[1]))
    server.shutdown()
    server.server_close()
    thread.join(5)


def _round_trip(port: int, payload: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks), time.perf_counter() - t0


def test_relays_bytes_intact_both_ways(echo: tuple[str, int]) -> None:
    payload = os.urandom(300_000)
    with ShapingProxy(echo) as proxy:
        got, _ = _round_trip(proxy.port, payload)
        assert got == payload
        assert proxy.stats.bytes_up == proxy.stats.bytes_down == len(payload)


@pytest.mark.parametrize(
    ("conditions", "size", "at_least_s"),
    [
        (NetConditions(rtt_ms=200, connect_rtts=0), 10, 0.2),  # one round trip
        (NetConditions(rtt_ms=100, connect_rtts=1), 10, 0.2),  # handshake + round trip
        (NetConditions(up_mbps=4, down_mbps=4, connect_rtts=0), 100_000, 0.2),  # 100 kB at 4 Mbit/s (pipelined)
        (NetConditions(loss=1.0, rto_ms=300, connect_rtts=0), 10, 0.6),  # a stall each way
    ],
    ids=["rtt", "handshake", "bandwidth", "stall"],
)
def test_adds_at_least_the_configured_delay(
    echo: tuple[str, int], conditions: NetConditions, size: int, at_least_s: float
) -> None:
    payload = os.urandom(size)
    with ShapingProxy(echo, conditions) as proxy:
        got, elapsed = _round_trip(proxy.port, payload)
    assert got == payload
    assert elapsed >= at_least_s * 0.98, elapsed


def test_loss_as_drop_resets_the_connection(echo: tuple[str, int]) -> None:
    with ShapingProxy(echo, NetConditions(loss=1.0, loss_mode="drop")) as proxy:
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            got, _ = _round_trip(proxy.port, b"hello")
            if not got:  # an orderly close instead of a reset also means nothing came back
                raise ConnectionResetError("closed without an answer")
        assert proxy.stats.drops == 1


def test_connections_are_bounded_and_stop_closes_them(echo: tuple[str, int]) -> None:
    proxy = ShapingProxy(echo, max_connections=1).start()
    first = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    try:
        first.sendall(b"ping")
        assert first.recv(4) == b"ping"
        # refused: reset (even during connect) or closed at once
        with (
            contextlib.suppress(ConnectionResetError),
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as second,
        ):
            assert second.recv(4) == b""
        assert proxy.stats.refused == 1
        t0 = time.perf_counter()
        proxy.stop()
        assert time.perf_counter() - t0 < 5
        first.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert first.recv(4) == b""
    finally:
        first.close()
        proxy.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()


def test_upstream_and_conditions_can_change_while_running(echo: tuple[str, int]) -> None:
    with ShapingProxy(("127.0.0.1", 1)) as proxy:  # nothing listens on port 1
        with pytest.raises(OSError):
            got, _ = _round_trip(proxy.port, b"x")
            if not got:
                raise ConnectionResetError("no upstream")
        proxy.upstream = echo
        proxy.conditions = NetConditions(rtt_ms=100, connect_rtts=0)
        got, elapsed = _round_trip(proxy.port, b"again")
    assert got == b"again" and elapsed >= 0.098


def test_url_for_keeps_scheme_and_path() -> None:
    with ShapingProxy("http://127.0.0.1:9") as proxy:
        assert proxy.url_for("http://gpu-box:8000/v1") == f"http://127.0.0.1:{proxy.port}/v1"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", NetConditions()),
        ("rtt=100ms", NetConditions(rtt_ms=100)),
        ("rtt=0.25s,bw=10mbit", NetConditions(rtt_ms=250, up_mbps=10, down_mbps=10)),
        ("up=512kbit,down=20mbit", NetConditions(up_mbps=0.512, down_mbps=20)),
        ("loss=2%,loss_mode=drop,rto=300ms,seed=3", NetConditions(loss=0.02, loss_mode="drop", rto_ms=300, seed=3)),
        ("connect_rtts=2", NetConditions(connect_rtts=2)),
    ],
)
def test_conditions_parse(spec: str, expected: NetConditions) -> None:
    assert NetConditions.parse(spec) == expected
    assert NetConditions.parse(expected.describe()).rtt_ms == expected.rtt_ms


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rtt=fast", "rtt='fast'"),
        ("latency=10ms", "keys rtt, bw"),
        ("bw=10furlongs", "unknown unit 'furlongs'"),
        ("loss=150%", "loss=1.5"),
        ("loss_mode=vanish", "loss_mode='vanish'"),
    ],
)
def test_bad_conditions_name_the_key(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        NetConditions.parse(spec)
