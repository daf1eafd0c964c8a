"""Remote faults with real servers on 127.0.0.1 while frames overlap: a server that fails in
every way, a real `edgefmp serve` that hangs (SIGSTOP), is killed (SIGKILL) and comes back,
and a link that turns slow. Zero frames lost, every fallback in the trace, the circuit opens
and closes as configured, and the API key appears in no trace and no log line."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog, parse_catalog
from edgefmp.backends.remote import RemoteBackend
from edgefmp.frame import Frame
from edgefmp.netem import NetConditions, ShapingProxy
from edgefmp.policies import create
from edgefmp.program import compile_program
from edgefmp.runtime.executor import Executor
from edgefmp.runtime.overlap import run_stream_overlapped
from edgefmp.runtime.session import RunOptions, run_program
from edgefmp.trace import Trace
from tests.helpers.fake_model_server import FakeModelServer

pytest.importorskip("fastapi")
from edgefmp.serve.process import ServeProcess  # noqa: E402

PROGRAM = """
def execute_command(image):
    for circle in image.find("circle"):
        if circle.verify_property("circle", "red"):
            return "yes"
    return "no"
"""
WAIT_S = 20.0


def scene(i: int) -> np.ndarray:
    """RGB frame with one red circle that moves."""
    image = np.full((120, 160, 3), 235, np.uint8)
    cv2.circle(image, (40 + 5 * (i % 10), 60), 18, (220, 0, 0), -1)
    return image


def catalog_spec(url: str, **remote: Any) -> dict[str, Any]:
    options = {
        "protocol": "openai",
        "url": url,
        "model": "shapes-cv",
        "timeout_s": 0.5,
        "retries": 0,
        "failure_threshold": 100,
        "cooldown_s": 0.0,
        **remote,
    }
    cv = {"name": "shapes-cv", "kind": "classical", "options": {"detector": "shapes"}}
    return {
        "version": 1,
        "name": "faults",
        "functions": {"detect": [cv], "verify": [cv, {"name": "big-remote", "kind": "remote", "options": options}]},
    }


def verify_calls(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [next(c for c in t["calls"] if c["function"] == "verify") for t in traces]


class Sink:
    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.lock = threading.Lock()

    def write(self, trace: Trace, image: Any = None) -> None:
        with self.lock:
            self.traces.append(trace)

    def event(self, event: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while len(self.traces) < n:
            assert time.monotonic() < deadline, f"only {len(self.traces)} of {n} frames came out"
            time.sleep(0.01)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_every_kind_of_server_failure_falls_back_and_no_frame_is_lost(tmp_path: Path) -> None:
    modes = ["ok", "http500", "malformed", "hang", "truncate", "reset", "close", "slow", "ok", "ok"]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(len(modes)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(scene(i), cv2.COLOR_RGB2BGR))
    program = tmp_path / "prog.py"
    program.write_text(PROGRAM)
    with FakeModelServer("openai", answer="yes", hang_s=3.0, slow_s=0.1) as server:
        server.script(*modes)
        catalog = tmp_path / "catalog.yaml"
        catalog.write_text(json.dumps(catalog_spec(server.url)))
        out = tmp_path / "traces.jsonl"
        run_program(
            RunOptions(
                program=program,
                source=str(folder),
                out=out,
                catalog=catalog,
                policy="static:-1",
                progress=False,
                inflight=4,
            )
        )
    traces = [json.loads(x) for x in out.read_text().splitlines() if '"frame_id"' in x]
    assert [t["frame_id"] for t in traces] == [f"{i:03d}.png" for i in range(len(modes))]  # frame order
    assert all(t["error"] is None and t["answer"] == "yes" for t in traces)
    calls = verify_calls(traces)
    fell_back = [c for c in calls if c["backend"] == "shapes-cv"]
    assert len(fell_back) == 6 and sum(c["backend"] == "big-remote" for c in calls) == 4
    for call in fell_back:
        assert [a["backend"] for a in call["attempts"]] == ["big-remote"]
    errors = " | ".join(c["attempts"][0]["error"] for c in fell_back)
    for kind in ("HTTP 500", "BackendTimeout", "not valid JSON", "BackendUnavailable"):
        assert kind in errors, errors


def test_served_tier_hangs_dies_and_returns_circuit_opens_and_closes() -> None:
    """Phases, driven by the source: up -> hung (SIGSTOP: timeouts) -> killed while hung ->
    restarted on the same port -> after the cooldown a trial call closes the circuit."""
    sink = Sink()
    n = {"frames": 0}
    states: dict[str, str] = {}
    program = compile_program(PROGRAM)
    with ServeProcess(default_catalog_path()) as server:
        spec = parse_catalog(
            catalog_spec(f"{server.url}/v1", timeout_s=0.5, failure_threshold=2, cooldown_s=2.0), "faults", Path(".")
        )
        with Catalog.open(spec) as catalog:
            remote = catalog.backends("verify")[-1]
            assert isinstance(remote, RemoteBackend)

            def frames(k: int) -> Iterator[Frame]:
                for _ in range(k):
                    yield Frame(f"f{n['frames']:03d}", n["frames"] / 10, scene(n["frames"]))
                    n["frames"] += 1
                sink.wait_for(n["frames"])

            def source() -> Iterator[Frame]:
                yield from frames(3)  # 0-2: server up
                server.pause()
                yield from frames(4)  # 3-6: hung -> timeouts, circuit opens
                states["after_hang"] = remote.circuit_state
                server.kill()
                yield from frames(2)  # 7-8: dead, circuit open: not tried
                server.restart()
                states["after_restart"] = remote.circuit_state
                wait_until(remote.available, "the cooldown to end")
                yield from frames(1)  # 9: the one half-open trial succeeds
                yield from frames(2)  # 10-11: closed again
                states["end"] = remote.circuit_state

            executor = Executor(program, catalog, create("static:-1"))
            done = run_stream_overlapped(source(), executor, [sink], inflight=3)
    assert done == n["frames"] == 12
    traces = [t.to_json() for t in sink.traces]
    assert [t["frame_id"] for t in traces] == [f"f{i:03d}" for i in range(12)]
    assert all(t["error"] is None and t["answer"] == "yes" for t in traces)  # zero frames lost
    calls = verify_calls(traces)
    backends = [c["backend"] for c in calls]
    assert backends[:3] == ["big-remote"] * 3
    assert backends[3:9] == ["shapes-cv"] * 6 and backends[9:] == ["big-remote"] * 3
    tried = [c for c in calls[3:9] if c.get("attempts")]
    # two timeouts open the circuit; calls already past the breaker (up to inflight - 1 more)
    # still time out, so at most threshold + inflight - 1 = 4 attempts; never one per frame
    assert 2 <= len(tried) <= 4, calls[3:9]
    assert all("BackendTimeout" in c["attempts"][0]["error"] for c in tried)
    assert not any(c.get("attempts") for c in calls[7:])  # open circuit: the dead server is never tried
    assert states == {"after_hang": "open", "after_restart": "open", "end": "closed"}


def test_a_slow_link_times_out_falls_back_then_recovers() -> None:
    sink = Sink()
    program = compile_program(PROGRAM)
    n = {"frames": 0}
    with FakeModelServer("openai", answer="yes") as server, ShapingProxy(server.url) as proxy:
        spec = parse_catalog(catalog_spec(proxy.url_for(server.url), timeout_s=0.4), "slow", Path("."))
        with Catalog.open(spec) as catalog:

            def frames(k: int) -> Iterator[Frame]:
                for _ in range(k):
                    yield Frame(f"f{n['frames']:03d}", 0.0, scene(n["frames"]))
                    n["frames"] += 1
                sink.wait_for(n["frames"])

            def source() -> Iterator[Frame]:
                proxy.conditions = NetConditions(rtt_ms=60)
                yield from frames(3)  # slower, within the deadline
                proxy.conditions = NetConditions(rtt_ms=1000)
                yield from frames(3)  # beyond it: timeouts
                proxy.conditions = NetConditions()
                yield from frames(3)

            run_stream_overlapped(source(), Executor(program, catalog, create("static:-1")), [sink], inflight=3)
    calls = verify_calls([t.to_json() for t in sink.traces])
    assert [c["backend"] for c in calls] == ["big-remote"] * 3 + ["shapes-cv"] * 3 + ["big-remote"] * 3
    assert all(c["cost"]["latency_ms"] >= 60 for c in calls[:3])  # the RTT was paid, not assumed
    assert all("BackendTimeout" in c["attempts"][0]["error"] for c in calls[3:6])
    assert all(t.answer == "yes" for t in sink.traces)


def test_api_key_comes_from_env_and_appears_in_no_trace_or_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from edgefmp.serve.app import create_app
    from edgefmp.serve.runner import ServerThread
    from edgefmp.serve.settings import ServeSettings

    key = "sk-edge-Q9x7SECRET-overlap-55"
    monkeypatch.setenv("EDGEFMP_TEST_TIER_KEY", key)
    caplog.set_level(logging.DEBUG)  # every logger: edgefmp, httpx, httpcore, uvicorn
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(scene(i), cv2.COLOR_RGB2BGR))
    program = tmp_path / "prog.py"
    program.write_text(PROGRAM)
    with (
        Catalog.open(load_catalog(default_catalog_path())) as served,
        ServerThread(create_app(served, ServeSettings(token=key))) as server,
    ):
        outs = []
        for name, env in (("right", "EDGEFMP_TEST_TIER_KEY"), ("wrong", "EDGEFMP_TEST_WRONG_KEY")):
            monkeypatch.setenv("EDGEFMP_TEST_WRONG_KEY", "not-the-key")
            catalog = tmp_path / f"{name}.yaml"
            catalog.write_text(json.dumps(catalog_spec(f"{server.url}/v1", api_key_env=env, timeout_s=5)))
            out = tmp_path / f"{name}.jsonl"
            summary = run_program(
                RunOptions(
                    program=program,
                    source=str(folder),
                    out=out,
                    catalog=catalog,
                    policy="static:-1",
                    progress=False,
                    inflight=2,
                    summary_out=tmp_path / f"{name}.json",
                )
            )
            outs.append((out.read_text(), json.dumps(summary.to_json()) if hasattr(summary, "to_json") else ""))
    right = verify_calls([json.loads(x) for x in outs[0][0].splitlines() if '"frame_id"' in x])
    wrong = verify_calls([json.loads(x) for x in outs[1][0].splitlines() if '"frame_id"' in x])
    assert all(c["backend"] == "big-remote" for c in right)
    assert all(c["backend"] == "shapes-cv" and "401" in c["attempts"][0]["error"] for c in wrong)
    for text in (*outs[0], *outs[1], caplog.text, (tmp_path / "right.json").read_text()):
        assert key not in text
