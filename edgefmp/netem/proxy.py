"""An in-process TCP proxy on 127.0.0.1 that shapes traffic: latency, bandwidth, loss.

Put it between a RemoteBackend and its server and every byte crosses a link with the given
`NetConditions`, so a benchmark measures what 100 ms of RTT or a 5 Mbit/s uplink really cost
(connection setup, request upload, answer download, stalls) instead of adding a constant.
It needs no privileges, unlike `tc netem` in a network namespace, and works on any OS.

    with ShapingProxy("http://127.0.0.1:8000", NetConditions(rtt_ms=100, up_mbps=5)) as proxy:
        url = proxy.url_for("http://127.0.0.1:8000/v1")   # -> http://127.0.0.1:<proxy port>/v1

How it shapes, per direction: each chunk read from one side waits for its turn on the link
(bandwidth, shared by all connections), then for half the RTT, then is written to the other
side; order is kept, so a stalled ("lost") chunk holds back what follows, as TCP does. A new
connection's first bytes wait `connect_rtts` round trips (the handshake the real link would
cost). Loss in "drop" mode resets both connections (RST).

Bounded: at most `max_connections` at once (more are refused), at most `queue_chunks` chunks
queued per direction (the reader then stops reading: backpressure), and `stop()` closes every
connection and joins the proxy's one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from edgefmp.errors import ConfigError
from edgefmp.netem.conditions import NetConditions

log = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 1024


@dataclass
class ProxyStats:
    """Counters of one proxy (written by its thread; read from anywhere)."""

    connections: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    stalls: int = 0
    drops: int = 0


def _parse_upstream(upstream: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(upstream, tuple):
        return upstream
    parts = urlsplit(upstream if "://" in upstream else f"tcp://{upstream}")
    if not parts.hostname or parts.port is None:
        raise ConfigError(f"proxy upstream {upstream!r}: expected host:port or a URL with an explicit port")
    return parts.hostname, parts.port


class _Link:
    """When each direction of the shared link is next free (bandwidth serialisation)."""

    def __init__(self) -> None:
        self.free_at = {"up": 0.0, "down": 0.0}


class _Connection:
    """One client connection and its upstream twin."""

    def __init__(self, client: asyncio.StreamWriter, accepted: float) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.accepted = accepted
        self.reset = False

    def abort(self, rst: bool) -> None:
        """Close both sides now; with `rst` the peers see a connection reset."""
        self.reset = self.reset or rst
        for writer in (self.client, self.upstream):
            if writer is None or writer.transport.is_closing() and not rst:
                continue
            sock = writer.get_extra_info("socket")
            if rst and sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


class ShapingProxy:
    """Relays TCP from 127.0.0.1:`port` to `upstream` under `conditions`; see the module doc.

    `conditions` and `upstream` may be changed while it runs (new values apply to data and
    connections from then on), so a test can make a link slow or point it at a restarted
    server mid-stream.
    """

    def __init__(
        self,
        upstream: str | tuple[str, int],
        conditions: NetConditions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 64,
        queue_chunks: int = 64,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if max_connections < 1 or queue_chunks < 1:
            raise ConfigError("ShapingProxy: max_connections and queue_chunks must be >= 1")
        self.upstream = _parse_upstream(upstream)
        self.conditions = conditions or NetConditions()
        self.host = host
        self.max_connections = max_connections
        self.queue_chunks = queue_chunks
        self.connect_timeout_s = connect_timeout_s
        self.stats = ProxyStats()
        self._requested_port = port
        self._port: int | None = None
        self._rng = random.Random(self.conditions.seed)
        self._link = _Link()
        self._conns: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 5.0) -> ShapingProxy:
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        self._thread = threading.Thread(target=self._run, name="edgefmp-netem", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise ConfigError(f"ShapingProxy did not start listening within {timeout_s:g} s")
        if self._error is not None:
            self._thread.join(timeout_s)
            self._thread = None
            raise ConfigError(f"ShapingProxy cannot listen on {self.host}:{self._requested_port}: {self._error}")
        log.info("netem proxy 127.0.0.1:%s -> %s:%s with %s", self._port, *self.upstream, self.conditions.describe())
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and every connection; join the thread. Idempotent."""
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(event.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("netem proxy thread did not end within %.1f s", timeout_s)
        self._thread = None

    def __enter__(self) -> ShapingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not running; call start() first")
        return self._port

    def url_for(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's (scheme and path kept)."""
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, f"{self.host}:{self.port}", parts.path, parts.query, parts.fragment))

    # ---------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start() or logged
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("netem proxy failed")
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, self._requested_port)
        self._port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for conn in list(self._conns):
                conn.abort(rst=False)
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        conn = _Connection(cwriter, loop.time())
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        if len(self._conns) >= self.max_connections:
            self.stats.refused += 1
            log.warning("netem proxy: %d connections open, refusing another", len(self._conns))
            conn.abort(rst=True)
            return
        self._conns.add(conn)
        self.stats.connections += 1
        try:
            host, port = self.upstream
            try:
                ureader, uwriter = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout_s)
            except (OSError, asyncio.TimeoutError) as exc:
                log.info("netem proxy: upstream %s:%s unreachable (%s); resetting the client", host, port, exc)
                conn.abort(rst=True)
                return
            conn.upstream = uwriter
            start = conn.accepted + self.conditions.connect_rtts * self.conditions.rtt_ms / 1000.0
            up = asyncio.ensure_future(self._pipe(conn, creader, uwriter, "up", start))
            down = asyncio.ensure_future(self._pipe(conn, ureader, cwriter, "down", start))
            try:
                await asyncio.gather(up, down, return_exceptions=True)
            except asyncio.CancelledError:
                # stop(): end quietly (asyncio's stream callback logs a cancelled handler as an error).
                up.cancel()
                down.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            conn.abort(rst=False)
            self._conns.discard(conn)

    async def _pipe(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        start: float,
    ) -> None:
        """Read one direction, schedule every chunk on the link, deliver it when due."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(self.queue_chunks)
        sender = asyncio.ensure_future(self._deliver(conn, queue, writer, direction))
        last_due = 0.0
        try:
            while True:
                try:
                    data = await reader.read(CHUNK_BYTES)
                except (ConnectionError, OSError):
                    data = b""
                now = loop.time()
                if not data:
                    await queue.put((max(now, last_due), None))
                    break
                due = self._schedule(len(data), now, start, direction)
                if self._lost():
                    if self.conditions.loss_mode == "drop":
                        self.stats.drops += 1
                        log.debug("netem proxy: dropping a connection (%s)", direction)
                        conn.abort(rst=True)
                        return
                    self.stats.stalls += 1
                    due += self.conditions.rto_ms / 1000.0
                last_due = max(due, last_due)
                await queue.put((last_due, data))
            await sender
        finally:
            if not sender.done():
                sender.cancel()

    def _schedule(self, size: int, now: float, start: float, direction: str) -> float:
        """When a chunk read now reaches the other side: its slot on the link, then latency."""
        cond = self.conditions
        rate = cond.up_mbps if direction == "up" else cond.down_mbps
        begin = max(now, start, self._link.free_at[direction])
        end = begin + (size * 8 / (rate * 1e6) if rate else 0.0)
        self._link.free_at[direction] = end
        return end + cond.one_way_s

    def _lost(self) -> bool:
        loss = self.conditions.loss
        return loss > 0 and self._rng.random() < loss

    async def _deliver(
        self,
        conn: _Connection,
        queue: asyncio.Queue[tuple[float, bytes | None]],
        writer: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if conn.reset or writer.transport.is_closing():
                return
            try:
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                conn.abort(rst=True)
                return
            if direction == "up":
                self.stats.bytes_up += len(data)
            else:
                self.stats.bytes_down += len(data)

    def describe(self) -> dict[str, Any]:
        return {
            "listen": f"{self.host}:{self._port}",
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "conditions": self.conditions.describe(),
        }
