"""Stream throughput with and without overlap, with the remote tier behind a shaped WAN link.

One side-by-side run: the same frames, the same program and the same routing (a fixed share
of calls goes to the remote tier) are run by the sequential loop (`run_stream`) and by the
overlapped loop (`run_stream_overlapped`, `--inflight` frames at once). The remote tier is a
real `edgefmp serve` child process reached through the in-process shaping proxy
(edgefmp.netem), so every remote call pays the link's RTT, bandwidth and loss for real.

    python bench/overlap.py --rtt-ms 100 --remote-share 0.15 --inflight 16 --frames 300 \
        --out bench/results/overlap.md

Rows are medians over `--repeats` alternating runs; fps = frames / wall time of the run
(warm-up frames excluded, pooled connections already open).
"""

# ruff: noqa: E402 - the BLAS thread pin must precede the numpy import
from __future__ import annotations

import os

# Worker threads x BLAS threads would oversubscribe the cores; set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgefmp.backends.base import Backend
from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog, default_catalog_path, load_catalog, parse_catalog
from edgefmp.frame import Frame
from edgefmp.netem import NetConditions, ShapingProxy
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo, first_available
from edgefmp.program import compile_program
from edgefmp.results import Detections, DetectRequest, Request, Result, Verdict, VerifyRequest
from edgefmp.runtime.executor import Executor
from edgefmp.runtime.loop import run_stream
from edgefmp.runtime.overlap import run_stream_overlapped
from edgefmp.serve.process import ServeProcess
from edgefmp.trace import Trace

PROGRAM = """
def execute_command(image):
    for circle in image.find("circle"):
        if circle.verify_property("circle", "red"):
            return "yes"
    return "no"
"""


class RemoteShare(Policy):
    """Sends the verify call of a fixed, evenly spread share of frames to the remote tier.

    Decided by frame index, so both loops route exactly the same frames remotely."""

    name = "remote-share"

    def __init__(self, frame_share: float) -> None:
        self.frame_share = frame_share

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        remote = [i for i, b in enumerate(site.backends) if b.location == "remote"]
        i = context.frame_index
        if remote and int((i + 1) * self.frame_share) > int(i * self.frame_share):
            return Decision(first_available(context.available, remote[0]))
        return Decision(first_available(context.available, 0))


def scene(i: int, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(i)
    img = np.full((h, w, 3), 235, np.uint8)
    colour = [(220, 0, 0), (0, 0, 220), (0, 180, 0)][i % 3]
    r = h // 6
    cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
    cv2.circle(img, (cx, cy), r, colour, -1)
    return img


def _mask(image: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    return cv2.inRange(hsv, (0, 80, 40), (180, 255, 255))


def light_detect(request: Request) -> Result:
    """Coloured blobs as boxes: a light local detector (OpenCV, well under a millisecond)."""
    assert isinstance(request, DetectRequest)
    contours, _ = cv2.findContours(_mask(request.image), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) > 20]
    return Detections(
        boxes=np.asarray([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32).reshape(-1, 4),
        scores=np.full(len(boxes), 0.9, np.float32),
        labels=[request.labels[0]] * len(boxes),
    )


def light_verify(request: Request) -> Result:
    """Is the blob red: mean hue of the coloured pixels (a light local verifier)."""
    assert isinstance(request, VerifyRequest)
    mask = _mask(request.image)
    if not mask.any():
        return Verdict(value=False, confidence=0.5)
    r, g, b = (float(request.image[..., c][mask > 0].mean()) for c in range(3))
    red = r > 1.5 * max(g, b)
    return Verdict(value=red if request.property == "red" else not red, confidence=0.8)


class Collect:
    def __init__(self) -> None:
        self.traces: list[Trace] = []

    def write(self, trace: Trace, image: Any = None) -> None:
        self.traces.append(trace)

    def event(self, event: Any) -> None:
        pass

    def close(self) -> None:
        pass


ZOO = Path(__file__).resolve().parents[1] / "models" / "catalog.yaml"
# local tier -> (catalog the remote tier serves, served model for verify, local detect, local verify)
TIERS: dict[str, tuple[Path, str, str, str]] = {
    "light": (default_catalog_path(), "shapes-cv", "light-cv", "light-cv"),
    "classical": (default_catalog_path(), "shapes-cv", "shapes-cv", "shapes-cv"),
    "zoo": (ZOO, "attrnet-xl-int8", "shapedet-s", "attrnet-s"),  # local: a prefix (the catalog picks fp32/int8)
}


def edge_catalog(url: str, timeout_s: float, local: str, max_side: int, connections: int) -> Catalog:
    """The local tier + the remote tier for verify. `local`: "light" (callable OpenCV blob
    detector/verifier, well under a millisecond, standing in for a small model on an
    accelerator), "classical" (the bundled OpenCV shapes backend, CPU-heavy) or "zoo" (the
    smallest int8 ONNX models of models/catalog.yaml, ONNX Runtime on the CPU; the tier serves
    the largest)."""
    served_catalog, served_model, detect_name, verify_name = TIERS[local]
    remote = {
        "protocol": "openai",
        "url": f"{url}/v1",
        "model": served_model,
        "timeout_s": timeout_s,
        "retries": 1,
        "failure_threshold": 5,
        "cooldown_s": 5.0,
        "max_side": max_side,
        "jpeg_quality": 85,
        "max_connections": connections,
    }
    big = {"name": "big-remote", "kind": "remote", "options": remote}
    if local == "light":
        spec = parse_catalog({"version": 1, "functions": {"verify": [big]}}, "bench-overlap", Path("."))
        remote_backend = Catalog.open(spec).backends("verify")[0]  # closed with the returned catalog
        backends: dict[str, list[Backend]] = {
            "detect": [CallableBackend.wrap("light-cv", "detect", light_detect)],
            "verify": [CallableBackend.wrap("light-cv", "verify", light_verify), remote_backend],
        }
        return Catalog.from_backends(backends, name="bench-overlap-light")
    entries = load_catalog(served_catalog).model_dump()["functions"]

    def pick(function: str, name: str) -> dict[str, Any]:
        entry = next((e for e in entries[function] if e["name"].startswith(name)), None)
        if entry is None:
            names = ", ".join(e["name"] for e in entries[function])
            raise SystemExit(f"{served_catalog}: no {function} backend named {name}*; it has {names}")
        return {k: v for k, v in entry.items() if k not in ("function", "base_dir")}

    functions = {"detect": [pick("detect", detect_name)], "verify": [pick("verify", verify_name), big]}
    spec = parse_catalog(
        {"version": 1, "name": f"bench-overlap-{local}", "functions": functions},
        str(served_catalog),
        served_catalog.parent,
    )
    return Catalog.open(spec)


def run_once(executor: Executor, frames: list[Frame], inflight: int) -> tuple[float, list[Trace]]:
    sink = Collect()
    t0 = time.perf_counter()
    if inflight <= 1:
        run_stream(frames, executor, [sink])
    else:
        run_stream_overlapped(frames, executor, [sink], inflight=inflight, order="frame")
    return time.perf_counter() - t0, sink.traces


def summarise(traces: list[Trace]) -> dict[str, Any]:
    calls = [c for t in traces for c in t.calls]
    remote = [c for c in calls if c.backend == "big-remote"]
    fallbacks = sum(1 for c in calls if c.attempts)
    stale = [t.meta["staleness_ms"] for t in traces if "staleness_ms" in t.meta]
    return {
        "calls": len(calls),
        "remote_calls": len(remote),
        "remote_share": len(remote) / max(len(calls), 1),
        "fallbacks": fallbacks,
        "errors": sum(1 for t in traces if t.error),
        "remote_ms_p50": statistics.median([c.cost.latency_ms for c in remote]) if remote else 0.0,
        "bytes_up_per_remote": statistics.mean([c.cost.bytes_up for c in remote]) if remote else 0.0,
        "bytes_down_per_remote": statistics.mean([c.cost.bytes_down for c in remote]) if remote else 0.0,
        "staleness_p50_ms": statistics.median(stale) if stale else None,
        "staleness_p95_ms": float(np.percentile(stale, 95)) if stale else None,
    }


def measure(
    args: argparse.Namespace, local: str, url: str, program: Any, warm: list[Frame], frames: list[Frame]
) -> dict[str, Any]:
    """Alternating sequential / overlapped runs of one local tier; medians and summaries."""
    fps: dict[str, list[float]] = {"sequential": [], "overlapped": []}
    summaries: dict[str, dict[str, Any]] = {}
    answers: dict[str, list[Any]] = {}
    frame_share = min(1.0, 2 * args.remote_share)  # two calls per frame; only verify can go remote
    with edge_catalog(url, args.timeout_s, local, args.max_side, args.inflight) as catalog:
        executor = Executor(program, catalog, RemoteShare(frame_share))
        run_once(executor, warm, args.inflight)  # opens pooled connections, warms caches
        local_ms = statistics.median(
            c.cost.latency_ms for t in run_once(executor, warm, 1)[1] for c in t.calls if c.backend != "big-remote"
        )
        for _ in range(args.repeats):
            for mode, inflight in (("sequential", 1), ("overlapped", args.inflight)):
                wall, traces = run_once(executor, frames, inflight)
                if len(traces) != len(frames):
                    raise SystemExit(f"{local}/{mode}: {len(traces)} traces for {len(frames)} frames")
                fps[mode].append(len(frames) / wall)
                summaries[mode] = summarise(traces)
                answers[mode] = [t.answer for t in traces]
    return {
        "fps": fps,
        "summaries": summaries,
        "same": answers["sequential"] == answers["overlapped"],
        "local_ms": local_ms,
        "ratio": statistics.median(fps["overlapped"]) / statistics.median(fps["sequential"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--rtt-ms", type=float, default=100.0)
    ap.add_argument("--bandwidth-mbps", type=float, default=None, help="cap both directions (default: none)")
    ap.add_argument("--loss", type=float, default=0.0, help="per-chunk loss probability (stalls of --rto-ms)")
    ap.add_argument("--rto-ms", type=float, default=200.0)
    ap.add_argument("--remote-share", type=float, default=0.15, help="share of all calls sent to the remote tier")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--max-side", type=int, default=160, help="remote uploads are downscaled to this longer side")
    ap.add_argument("--timeout-s", type=float, default=5.0)
    ap.add_argument(
        "--local",
        nargs="+",
        choices=tuple(TIERS),
        default=["light", "zoo", "classical"],
        help="local tiers to measure (see edge_catalog)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write a markdown report here")
    args = ap.parse_args(argv)

    conditions = NetConditions(
        rtt_ms=args.rtt_ms,
        up_mbps=args.bandwidth_mbps,
        down_mbps=args.bandwidth_mbps,
        loss=args.loss,
        rto_ms=args.rto_ms,
        seed=1,
    )
    size = (args.width, args.height)
    warm = [Frame(f"warm{i:03d}", i / 30, scene(10_000 + i, size)) for i in range(args.warmup)]
    frames = [Frame(f"f{i:04d}", i / 30, scene(i, size)) for i in range(args.frames)]
    program = compile_program(PROGRAM, "bench_overlap.py")
    results: dict[str, dict[str, Any]] = {}
    stats: list[Any] = []
    for local in args.local:
        if local == "zoo" and not ZOO.is_file():
            raise SystemExit(f"--local zoo needs {ZOO}: build it with `edgefmp zoo build`")
        with ServeProcess(TIERS[local][0]) as server, ShapingProxy(server.url, conditions) as proxy:
            results[local] = measure(args, local, proxy.url_for(server.url), program, warm, frames)
            stats.append(proxy.stats)
    command = "python bench/overlap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# Overlap: stream fps with a remote tier behind a shaped link",
        "",
        f"Command: `{command}`",
        "",
        f"Link (edgefmp.netem proxy, 127.0.0.1): `{conditions.describe()}`. Remote tier: `edgefmp serve` "
        "in a child process (the bundled classical catalog, or models/catalog.yaml for `zoo`, serving its "
        "largest model); client: RemoteBackend, OpenAI protocol, JPEG q85, "
        f"max_side {args.max_side}. Frames: {args.frames} synthetic {args.width}x{args.height}; program: "
        "detect, then verify on each detection (one of each here); the verify call of an evenly spread "
        f"{100 * min(1.0, 2 * args.remote_share):.0f}% of frames goes remote (the same frames in both loops). "
        f"{args.warmup} warm-up frames excluded; {args.repeats} alternating repeats, medians. Local tiers: "
        "`light` = a callable OpenCV blob detector/verifier (well under a millisecond, standing in for a small "
        "model on an accelerator); `zoo` = the smallest int8 ONNX models of the demo zoo (ONNX Runtime, CPU); "
        "`classical` = the bundled OpenCV shapes backend (CPU-heavy).",
        "",
        "| local tier | local call p50 ms | loop | inflight | fps (median) | fps (all runs) | remote share of "
        "calls | remote call p50 ms | fallbacks | frame errors | staleness p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for local, r in results.items():
        for mode, inflight in (("sequential", 1), ("overlapped", args.inflight)):
            s = r["summaries"][mode]
            stale = (
                f"{s['staleness_p50_ms']:.0f} / {s['staleness_p95_ms']:.0f}"
                if s["staleness_p50_ms"] is not None
                else "-"
            )
            lines.append(
                f"| {local} | {r['local_ms']:.2f} | {mode} | {inflight} | {statistics.median(r['fps'][mode]):.1f} | "
                f"{', '.join(f'{x:.1f}' for x in r['fps'][mode])} | {100 * s['remote_share']:.1f}% | "
                f"{s['remote_ms_p50']:.1f} | {s['fallbacks']} | {s['errors']} | {stale} |"
            )
    lines.append("")
    problems: list[str] = []
    for local, r in results.items():
        lines.append(
            f"- **{local}: overlapped / sequential = {r['ratio']:.2f}x** "
            f"(answers identical in both loops: {r['same']})."
        )
        for mode, s in r["summaries"].items():
            if s["fallbacks"] or s["errors"] or s["remote_calls"] == 0:
                problems.append(
                    f"{local}/{mode}: {s['fallbacks']} fallbacks, {s['errors']} frame errors, "
                    f"{s['remote_calls']} remote calls: the remote tier was not measured as intended"
                )
    first = next(iter(results.values()))["summaries"]["overlapped"]
    lines += [
        "",
        f"Bytes per remote call: {first['bytes_up_per_remote']:.0f} up, {first['bytes_down_per_remote']:.0f} "
        f"down (application-layer HTTP). Proxy: {sum(p.connections for p in stats)} connections, "
        f"{sum(p.stalls for p in stats)} stalls, {sum(p.drops for p in stats)} drops.",
        "",
        "The overlap hides remote waits, not local compute: sequential time per frame is local work + remote "
        "share x remote latency, overlapped time per frame approaches the local work alone (spread over the "
        "cores the GIL lets it use), so the gain is large when the local tier is light and small when the "
        "local tier itself saturates the CPU, as the classical rows show on this machine.",
        "",
        f"Environment: Python {platform.python_version()}, {platform.platform()}, {os.cpu_count()} CPUs shared "
        "with other jobs (absolute fps vary with load; each ratio comes from alternating runs); BLAS threads "
        "pinned to 1.",
        "",
    ]
    report = "\n".join(lines)
    sys.stdout.write(report)
    sys.stdout.write(json.dumps({k: {"ratio": v["ratio"], "fps": v["fps"]} for k, v in results.items()}) + "\n")
    if problems:
        sys.stderr.write("\n".join(problems) + "\n")
        return 1
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
