"""Real HTTP servers on 127.0.0.1 that stand in for a remote large model, for tests.

`FakeModelServer` speaks OpenAI-compatible chat (`POST /v1/chat/completions`) or KServe v2
(`POST /v2/models/<model>/infer`) from a thread of this process. Its behaviour is switchable
per request, so one test can script "fail twice, then answer":

    with FakeModelServer("openai", answer="yes") as server:
        server.script("http500", "ok")          # the next two hits; then `server.mode`
        ...
        server.wait_for_hits(2)
        assert server.hits[-1].bytes_in == result.bytes_up

Modes: ok, slow (answer after `slow_s`), http500, malformed (200 with broken JSON),
hang (never answer; released at stop or after `hang_s`), truncate (send headers and half the
body, then close: a server killed mid-stream), close (close without answering), reset (abort
the connection with a TCP RST).

Unknown paths get a 404, as a real server would. Every hit records the exact bytes the server
read (request line, headers, body) and wrote (status line, headers, body), so tests can check a
client's byte accounting.

`python -m tests.helpers.fake_model_server --protocol openai --mode hang` runs one in its own
process (it prints `port N`, then `hit` for each request) for tests that kill the server.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

MODES = ("ok", "slow", "http500", "malformed", "hang", "truncate", "close", "reset")

# openai: the reply text; kserve: a list of output tensors (or one string, sent as output
# "answer"); either: a dict taken as the whole reply body, or a callable(request_json)
# returning any of these.
Answer = Any


@dataclass
class Hit:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    mode: str
    bytes_in: int = 0
    bytes_out: int = 0
    done: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


class _Counting:
    """Wraps the handler's rfile / wfile and counts bytes that pass through."""

    def __init__(self, raw: IO[bytes] | Any) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self.raw.readline(limit)
        self.count += len(data)
        return data

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)


def openai_reply(text: str, model: str = "fake-large") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }


def kserve_reply(outputs: list[dict[str, Any]], model: str = "fake-large") -> dict[str, Any]:
    return {"model_name": model, "id": "fake", "outputs": outputs}


def bytes_output(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": [len(values)], "data": values}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.rfile = _Counting(self.rfile)  # type: ignore[assignment]
        self.wfile = _Counting(self.wfile)  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output clean."""

    def _counters(self) -> tuple[_Counting, _Counting]:
        return self.rfile, self.wfile  # type: ignore[return-value]

    def do_POST(self) -> None:
        owner = self.server.owner
        rin, wout = self._counters()
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        mode = owner._next_mode()
        hit = Hit(
            method="POST",
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            mode=mode,
            bytes_in=rin.count,
        )
        owner._record(hit)
        try:
            if not owner._route_ok(self.path):
                hit.mode = mode = "http404"
                self._send(404, json.dumps({"error": f"no route {self.path}"}).encode())
                return
            self._respond(mode, hit)
        finally:
            hit.bytes_out = wout.count
            rin.count = 0
            wout.count = 0
            owner._finish(hit)

    def _send(self, status: int, payload: bytes, *, declared: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload) if declared is None else declared))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _respond(self, mode: str, hit: Hit) -> None:
        owner = self.server.owner
        if mode == "slow":
            owner._stop.wait(owner.slow_s)
        if mode in ("ok", "slow"):
            self._send(200, json.dumps(owner._reply(hit)).encode())
        elif mode == "http500":
            self._send(500, json.dumps({"error": owner.error_text}).encode())
        elif mode == "malformed":
            self._send(200, b'{"choices": [{"message": {"content": "ye')
        elif mode == "hang":
            owner._stop.wait(owner.hang_s)
            self._drop()
        elif mode == "truncate":
            payload = json.dumps(owner._reply(hit)).encode()
            self._send(200, payload[: len(payload) // 2], declared=len(payload))
            self._drop()
        elif mode == "close":
            self._drop()
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._drop()
        else:
            raise ValueError(f"unknown mode {mode!r}; available: {', '.join(MODES)}")

    def _drop(self) -> None:
        """Close the connection without a (complete) answer."""
        self.close_connection = True
        self.connection.close()  # really closed once rfile/wfile close in finish()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeModelServer


class FakeModelServer:
    """A switchable OpenAI-compatible or KServe v2 server in a background thread."""

    def __init__(
        self,
        protocol: str = "openai",
        *,
        answer: Answer = "yes",
        mode: str = "ok",
        slow_s: float = 0.3,
        hang_s: float = 10.0,
        error_text: str = "internal error",
        port: int = 0,
    ) -> None:
        if protocol not in ("openai", "kserve"):
            raise ValueError(f"unknown protocol {protocol!r}; available: openai, kserve")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; available: {', '.join(MODES)}")
        self.protocol = protocol
        self.answer = answer
        self.mode = mode
        self.slow_s = slow_s
        self.hang_s = hang_s
        self.error_text = error_text
        self.on_hit: Callable[[Hit], None] | None = None
        self._port = port
        self._script: deque[str] = deque()
        self._hits: list[Hit] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeModelServer:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL a RemoteBackend takes as options.url."""
        base = f"http://127.0.0.1:{self.port}"
        return f"{base}/v1" if self.protocol == "openai" else base

    # ------------------------------------------------------------------------------ control

    def script(self, *modes: str) -> None:
        """Modes for the next hits, in order; after them `self.mode` applies again."""
        for m in modes:
            if m not in MODES:
                raise ValueError(f"unknown mode {m!r}; available: {', '.join(MODES)}")
        with self._cond:
            self._script.extend(modes)

    @property
    def hits(self) -> list[Hit]:
        with self._cond:
            return list(self._hits)

    def wait_for_hits(self, n: int, timeout: float = 5.0) -> list[Hit]:
        """Wait until `n` hits have been fully answered (or dropped)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(h.done for h in self._hits) >= n, timeout=timeout)
            if not ok:
                raise TimeoutError(f"expected {n} finished hits, got {sum(h.done for h in self._hits)}")
            return list(self._hits)

    # ------------------------------------------------------------------------- for handlers

    def _next_mode(self) -> str:
        with self._cond:
            return self._script.popleft() if self._script else self.mode

    def _record(self, hit: Hit) -> None:
        with self._cond:
            self._hits.append(hit)
        if self.on_hit is not None:
            self.on_hit(hit)

    def _route_ok(self, path: str) -> bool:
        if self.protocol == "openai":
            return path == "/v1/chat/completions"
        return path.startswith("/v2/models/") and path.endswith("/infer")

    def _finish(self, hit: Hit) -> None:
        with self._cond:
            hit.done = True
            self._cond.notify_all()

    def _reply(self, hit: Hit) -> dict[str, Any]:
        request = hit.json()
        answer = self.answer(request) if callable(self.answer) else self.answer
        if isinstance(answer, dict):
            return answer  # a whole reply body, as the test built it
        if self.protocol == "openai":
            return openai_reply(str(answer))
        if isinstance(answer, str):
            answer = [bytes_output("answer", [answer])]
        return kserve_reply(list(answer))


def main(argv: list[str] | None = None) -> int:
    """Run a server in this process until killed: for tests that kill a server mid-call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--protocol", default="openai", choices=("openai", "kserve"))
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument("--answer", default="yes")
    parser.add_argument("--hang-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    server = FakeModelServer(args.protocol, answer=args.answer, mode=args.mode, hang_s=args.hang_s)

    def announce(hit: Hit) -> None:
        sys.stdout.write("hit\n")
        sys.stdout.flush()

    server.on_hit = announce
    server.start()
    sys.stdout.write(f"port {server.port}\n")
    sys.stdout.flush()
    try:
        server._stop.wait(300)  # bounded: a forgotten process ends by itself
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
