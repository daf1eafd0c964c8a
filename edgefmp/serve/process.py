"""`edgefmp serve` in a child process: for benchmarks and fault tests that need a real server
they can kill (SIGKILL), hang (SIGSTOP) and resume (SIGCONT) without touching their own
process. The child prints its address when it listens; `start()` waits for that line.

    with ServeProcess("catalog.yaml") as server:
        url = server.url            # http://127.0.0.1:<free port>
        server.pause(); ...; server.resume()
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)

_LISTENING = re.compile(r"listening on (http://\S+?:(\d+))")


class ServeProcess:
    """One `edgefmp serve CATALOG` child; `port=0` picks a free port (reused by `restart`)."""

    def __init__(
        self,
        catalog: str | Path,
        *args: str,
        port: int = 0,
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.catalog = Path(catalog)
        self.args = list(args)
        self.requested_port = port
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=50)
        self._url_found = threading.Event()
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._url

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server is not running")
        return self._proc.pid

    def _drain(self, stream: object) -> None:
        """Read the child's output (so its pipe never fills) and spot the listening line."""
        try:
            for line in stream:  # type: ignore[attr-defined]
                self._lines.append(line.rstrip())
                match = _LISTENING.search(line)
                if match and not self._url_found.is_set():
                    self._url, self.port = match.group(1), int(match.group(2))
                    self._url_found.set()
        except (ValueError, OSError):  # the pipe was closed by kill()
            return

    def start(self) -> ServeProcess:
        port = self.port if self.port is not None else self.requested_port
        cmd = [sys.executable, "-m", "edgefmp.cli", "serve", str(self.catalog), "--port", str(port), *self.args]
        env = {**os.environ, **(self.env or {}), "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}
        self._url_found.clear()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        threading.Thread(target=self._drain, args=(self._proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._url_found.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ConfigError(f"edgefmp serve {self.catalog} did not start: " + " | ".join(list(self._lines)[-8:]))
        log.info("edgefmp serve running at %s (pid %d)", self._url, self._proc.pid)
        return self

    def output(self) -> str:
        """The child's last lines of output (for failure messages)."""
        return "\n".join(self._lines)

    def _signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def pause(self) -> None:
        """SIGSTOP: the server hangs (connections are accepted by the kernel, never answered)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits for the process to go."""
        if self._proc is None:
            return
        self.resume()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (uvicorn shuts down cleanly), then SIGKILL after `timeout_s`."""
        if self._proc is None:
            return
        self.resume()
        if self._proc.poll() is None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=timeout_s)
        self.kill()

    def restart(self) -> ServeProcess:
        """Start again on the same port (after kill/stop)."""
        self.kill()
        return self.start()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
