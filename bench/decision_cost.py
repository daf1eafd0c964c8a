"""What routing itself costs: `adaptive` against `paper`, per call site, on one CPU core.

For every frame of a synthetic stream, each call site asks the policy for a backend
(`choose`); after the frame, the policy sees the trace and a reward (`observe` + `update`,
which for `paper` includes its retraining every 64 inputs). The figures are microseconds per
call site per frame: choose, update (amortised, retraining included) and their sum, as wall
time and as the thread's CPU time (the machine may be shared: CPU time is what the work
itself took). Memory per site: for `paper` the bytes of its torch tensors (weights, BatchNorm
buffers, the Thompson-sampling accumulator U, AdamW moments, gradients) plus its replay
buffer at its fullest; for `adaptive` the bytes of its numpy arrays and what tracemalloc sees
the policy allocate over the run, per site.

Everything runs on one core: the process is pinned to one CPU, BLAS/OpenMP pools are set to
one thread before numpy and torch load, and torch.set_num_threads(1). `paper` runs its own
setup (a ResNet-18 per call site, 224x224 input, lambda 1e-4, nu 0.1, retraining every 64
inputs for 5 epochs, batch 16, AdamW 1e-3); the stream is long enough for one retraining.
Run from the repository root:

    python bench/decision_cost.py [--frames 64] [--adaptive-frames 2000] [--sites 2] \
        [--resolution 224] [--out bench/results/decision_cost.md]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edgefmp.frame import Frame  # noqa: E402
from edgefmp.policies import BackendInfo, DecisionContext, Policy, SiteInfo, create  # noqa: E402
from edgefmp.results import DetectRequest, Request, VerifyRequest, VQARequest  # noqa: E402
from edgefmp.trace import CallRecord, Cost, Trace  # noqa: E402

MIB = 1024.0 * 1024.0
COLUMNS = (
    "choose_p50",
    "choose_p95",
    "choose_mean",
    "choose_cpu",
    "update_p50",
    "update_mean",
    "update_cpu",
    "total",
    "total_cpu",
)
# (function, backends as (name, location, latency ms, parameters)); parameters feed the
# paper's cost proxy, latencies the priors of `adaptive`.
SITE_KINDS: tuple[tuple[str, tuple[tuple[str, str, float, float], ...]], ...] = (
    (
        "detect",
        (
            ("yolo-n", "device", 6.0, 2.6e6),
            ("yolo-m", "device", 25.0, 2.5e7),
            ("owlv2", "remote", 180.0, 4.3e8),
        ),
    ),
    (
        "vqa",
        (
            ("vlm-3b", "device", 300.0, 3.75e9),
            ("vlm-7b", "device", 700.0, 8.3e9),
            ("vlm-72b", "remote", 1500.0, 7.34e10),
        ),
    ),
    (
        "verify",
        (
            ("clip-s", "device", 8.0, 1.5e8),
            ("vlm-3b", "device", 300.0, 3.75e9),
            ("vlm-72b", "remote", 1500.0, 7.34e10),
        ),
    ),
)


@dataclass
class Timings:
    """Per-call-site samples of one policy, in nanoseconds."""

    choose_wall: list[int] = field(default_factory=list)
    choose_cpu: list[int] = field(default_factory=list)
    update_wall: list[float] = field(default_factory=list)
    update_cpu: list[float] = field(default_factory=list)
    error: str | None = None
    memory: dict[str, float] = field(default_factory=dict)
    memory_total: float = float("nan")
    notes: list[str] = field(default_factory=list)


def make_sites(n: int) -> list[SiteInfo]:
    sites = []
    for i in range(n):
        function, backends = SITE_KINDS[i % len(SITE_KINDS)]
        infos = tuple(BackendInfo(name, loc, Cost(latency_ms=lat), params) for name, loc, lat, params in backends)
        sites.append(SiteInfo(f"{function}@{i + 2}:4", function, infos))
    return sites


def make_request(function: str, image: np.ndarray) -> Request:
    if function == "detect":
        return DetectRequest(image, ("person",))
    if function == "verify":
        return VerifyRequest(image, "person", "holding an umbrella")
    return VQARequest(image, "Is the person holding an umbrella?")


def make_images(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        out.append(np.ascontiguousarray(base.repeat(8, axis=0).repeat(8, axis=1)))
    return out


def paper_reward(answer: bool, label: bool) -> float:
    """The paper's reward for binary tasks (TP +1000, TN +1, FP -100, FN -100)."""
    if answer and label:
        return 1000.0
    if not answer and not label:
        return 1.0
    return -100.0


def run_stream(
    policy: Policy,
    sites: list[SiteInfo],
    images: list[np.ndarray],
    frames: int,
    warmup: int,
    seed: int,
    timings: Timings | None,
) -> None:
    """Feed `warmup + frames` frames; record timings of the last `frames` when given."""
    rng = np.random.default_rng(seed)
    for t in range(warmup + frames):
        image = images[t % len(images)]
        frame = Frame(f"f{t}", float(t), image)
        cache: dict[str, Any] = {}
        calls: list[CallRecord] = []
        measure = timings is not None and t >= warmup
        for site in sites:
            ctx = DecisionContext(
                frame,
                make_request(site.function, image),
                list(calls),
                [True] * len(site.backends),
                t,
                cache,
            )
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            decision = policy.choose(site, ctx)
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            if measure and timings is not None:
                timings.choose_wall.append(w1 - w0)
                timings.choose_cpu.append(c1 - c0)
            prior = site.backends[decision.index].prior
            latency = (prior.latency_ms if prior else 10.0) * float(rng.uniform(0.8, 1.25))
            calls.append(
                CallRecord(
                    site=site.site_id,
                    function=site.function,
                    backend=site.backends[decision.index].name,
                    backend_index=decision.index,
                    args={},
                    confidence=float(rng.uniform()),
                    cost=Cost(latency_ms=latency),
                    policy=policy.name,
                    propensity=decision.propensity,
                    decision_us=(w1 - w0) / 1e3,
                    features=None if decision.features is None else list(decision.features),
                )
            )
        label = bool(rng.random() < 0.2)
        answer = label if rng.random() < 0.3 + 0.2 * np.mean([c.backend_index or 0 for c in calls]) else not label
        trace = Trace(frame.frame_id, frame.ts, calls=calls, answer=answer)
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        policy.observe(trace)
        policy.update(trace, paper_reward(answer, label))
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        if measure and timings is not None:
            timings.update_wall.append((w1 - w0) / len(sites))
            timings.update_cpu.append((c1 - c0) / len(sites))


def measure_adaptive(sites: list[SiteInfo], images: list[np.ndarray], frames: int, warmup: int, seed: int) -> Timings:
    timings = Timings()
    policy = create("adaptive", seed=seed)
    run_stream(policy, sites, images, frames, warmup, seed, timings)
    numpy_bytes = [policy.memory_bytes(s.site_id) for s in sites]  # type: ignore[attr-defined]
    # tracemalloc on a fresh instance (it slows Python down, so not during the timed run).
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    traced_policy = create("adaptive", seed=seed)
    run_stream(traced_policy, sites, images, min(frames, 500), warmup, seed, None)
    current = tracemalloc.get_traced_memory()[0]  # frames and traces are gone; the policy stays
    tracemalloc.stop()
    del traced_policy
    timings.memory = {
        "numpy arrays (largest site)": float(max(numpy_bytes)),
        "tracemalloc, everything the policy keeps, / sites": (current - base) / len(sites),
    }
    timings.memory_total = max(timings.memory.values())
    wall, cpu = feature_cost(sites, images, frames)
    timings.notes.append(
        f"context_features (part of choose) takes {wall:.1f} us wall, {cpu:.1f} us CPU per call "
        "(frame statistics once per frame, shared by its calls; measured alone on the same stream)"
    )
    return timings


def feature_cost(sites: list[SiteInfo], images: list[np.ndarray], frames: int) -> tuple[float, float]:
    """Mean wall and CPU microseconds of `context_features` per call, as `adaptive` uses it."""
    from edgefmp.policies.context import context_features

    walls, cpus = [], []
    for t in range(frames):
        image = images[t % len(images)]
        frame, cache = Frame(f"f{t}", float(t), image), {}
        for site in sites:
            ctx = DecisionContext(frame, make_request(site.function, image), [], [True] * len(site.backends), t, cache)
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            context_features(site, ctx)
            cpus.append(time.thread_time_ns() - c0)
            walls.append(time.perf_counter_ns() - w0)
    return float(np.mean(walls)) / 1e3, float(np.mean(cpus)) / 1e3


def measure_paper(
    sites: list[SiteInfo],
    images: list[np.ndarray],
    frames: int,
    warmup: int,
    seed: int,
    resolution: int,
) -> Timings:
    timings = Timings()
    try:
        import torch
    except ImportError as exc:
        timings.error = f"torch is not installed: {exc}"
        return timings
    torch.set_num_threads(1)
    policy = create("paper", resolution=resolution, seed=seed)
    run_stream(policy, sites, images, frames, warmup, seed, timings)
    parts = policy.memory_bytes()  # type: ignore[attr-defined]
    site_parts = max(parts.values(), key=lambda p: sum(p.values()))
    cfg = policy.config  # type: ignore[attr-defined]
    replay_peak = cfg.retrain_every * 3 * cfg.resolution * cfg.resolution
    timings.memory = {f"torch {k}": float(v) for k, v in site_parts.items() if k != "replay"}
    timings.memory["replay buffer at its fullest"] = float(replay_peak)
    timings.memory_total = sum(timings.memory.values())
    retrains = ", ".join(f"{u * len(sites) / 1e9:.1f} s" for u in timings.update_wall if u > 1e8)
    count = policy.retrainings  # type: ignore[attr-defined]
    timings.notes.append(f"retrained {count} time(s) in the run ({retrains or '-'}, all sites)")
    return timings


def summary(t: Timings) -> dict[str, float]:
    def us(xs: list[Any], q: float | None = None) -> float:
        if not xs:
            return float("nan")
        a = np.asarray(xs, dtype=np.float64) / 1e3
        return float(a.mean() if q is None else np.percentile(a, q))

    return {
        "choose_p50": us(t.choose_wall, 50),
        "choose_p95": us(t.choose_wall, 95),
        "choose_mean": us(t.choose_wall),
        "choose_cpu": us(t.choose_cpu),
        "update_p50": us(t.update_wall, 50),
        "update_mean": us(t.update_wall),
        "update_cpu": us(t.update_cpu),
        "total": us(t.choose_wall) + us(t.update_wall),
        "total_cpu": us(t.choose_cpu) + us(t.update_cpu),
        "memory": t.memory_total,
    }


def environment(cpu: int) -> list[str]:
    import importlib.metadata as md

    versions = []
    for pkg in ("numpy", "torch"):
        try:
            versions.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        f"CPU: {model}, pinned to core {cpu} of {os.cpu_count()}; torch/BLAS/OpenMP threads: 1",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}; " + ", ".join(versions),
        f"Load average at the end of the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(other processes shared the machine: compare the CPU-time columns)",
    ]


def render(
    args: argparse.Namespace,
    rows: dict[str, tuple[Timings, dict[str, float]]],
    env: list[str],
    frames: dict[str, int],
) -> str:
    command = "python bench/decision_cost.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# Decision cost: `adaptive` vs `paper`, per call site, one CPU core",
        "",
        "Command (from the repository root):",
        "",
        "```",
        command.strip(),
        "```",
        "",
        *[f"- {e}" for e in env],
        f"- Stream: {args.sites} call sites x 3 backends, {args.height}x{args.width} RGB frames; "
        f"timed frames: adaptive {frames['adaptive']}, paper {frames['paper']} "
        f"(after {args.warmup} warm-up frames)",
        f"- paper: ResNet-18 (width 64) per site on the frame resized to "
        f"{args.resolution}x{args.resolution}, lambda 1e-4, nu 0.1, "
        "retraining every 64 inputs (5 epochs, batch 16, AdamW 1e-3); "
        "update is amortised over the run and includes the retraining",
        "- adaptive: defaults (Thompson sampling over Bayesian linear heads on 16 context features)",
        "",
        "Microseconds per call site per frame (wall clock unless marked CPU):",
        "",
        "| policy | choose p50 | choose p95 | choose mean | choose CPU | update p50 "
        "| update mean (amortised) | update CPU | **choose + update** | choose + update CPU "
        "| memory per site |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (t, s) in rows.items():
        if t.error:
            lines.append(f"| {name} | error: {t.error} |||||||||| |")
            continue
        cells = [f"{s[k]:,.1f}" for k in COLUMNS]
        cells[COLUMNS.index("total")] = f"**{cells[COLUMNS.index('total')]}**"
        lines.append(f"| {name} | {' | '.join(cells)} | {s['memory'] / MIB:,.3f} MiB |")
    if all(not t.error for t, _ in rows.values()) and {"adaptive", "paper"} <= set(rows):
        a, p = rows["adaptive"][1], rows["paper"][1]

        def met(ok: bool) -> str:
            return "met" if ok else "NOT met"

        lines += [
            "",
            f"paper / adaptive: {p['total'] / a['total']:,.0f}x wall, "
            f"{p['total_cpu'] / a['total_cpu']:,.0f}x CPU time; memory {p['memory'] / a['memory']:,.0f}x.",
            f"Goal: adaptive <= 100 us ({met(a['total'] <= 100)} on wall time: {a['total']:.1f} us; "
            f"{met(a['total_cpu'] <= 100)} on CPU time: {a['total_cpu']:.1f} us), "
            f">= 1000x less than paper ({met(p['total'] >= 1000 * a['total'])}), "
            f"<= 1 MiB per site ({met(a['memory'] <= MIB)}: {a['memory'] / MIB:.3f} MiB).",
        ]
    lines += ["", "Memory per site, by part:", ""]
    for name, (t, _) in rows.items():
        for part, value in t.memory.items():
            lines.append(f"- {name}: {part}: {value / MIB:,.3f} MiB ({value:,.0f} bytes)")
    for name, (t, _) in rows.items():
        lines += [f"- {name}: {note}" for note in t.notes]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=64, help="timed frames for paper (64: one retraining)")
    parser.add_argument("--adaptive-frames", type=int, default=2000, help="timed frames for adaptive")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=224, help="paper's input size (not stated in the paper)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--policy", action="append", choices=["adaptive", "paper"], help="default: both")
    parser.add_argument("--cpu", type=int, help="core to pin to (default: the first allowed one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    args = parser.parse_args()

    cpu = args.cpu
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0)) if cpu is None else cpu
        os.sched_setaffinity(0, {cpu})
    console = Console()
    sites = make_sites(args.sites)
    images = make_images(8, args.height, args.width, args.seed)
    rows: dict[str, tuple[Timings, dict[str, float]]] = {}
    frames = {"adaptive": args.adaptive_frames, "paper": args.frames}
    for name in args.policy or ["adaptive", "paper"]:
        console.log(f"running {name} for {frames[name]} frames x {args.sites} sites ...")
        try:
            if name == "adaptive":
                t = measure_adaptive(sites, images, frames[name], args.warmup, args.seed)
            else:
                t = measure_paper(sites, images, frames[name], args.warmup, args.seed, args.resolution)
        except Exception as exc:  # one row per case, with its error (the bench goes on)
            t = Timings(error=f"{type(exc).__name__}: {exc}")
        rows[name] = (t, summary(t))

    table = Table(title="decision cost per call site (us, wall; CPU where marked)")
    for col in (
        "policy",
        "choose p50",
        "choose mean",
        "update mean",
        "choose+update",
        "CPU total",
        "MiB/site",
    ):
        table.add_column(col, justify="right")
    for name, (t, s) in rows.items():
        if t.error:
            table.add_row(name, f"[red]{t.error}", *[""] * 5)
        else:
            table.add_row(
                name,
                f"{s['choose_p50']:,.1f}",
                f"{s['choose_mean']:,.1f}",
                f"{s['update_mean']:,.1f}",
                f"{s['total']:,.1f}",
                f"{s['total_cpu']:,.1f}",
                f"{s['memory'] / MIB:,.3f}",
            )
    console.print(table)
    report = render(args, rows, environment(cpu if cpu is not None else -1), frames)
    console.print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        console.log(f"wrote {args.out}")
    return 1 if any(t.error for t, _ in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
