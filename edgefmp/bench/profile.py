"""`edgefmp profile`: measure each backend on this device, as the policies' cost prior.

Per backend: session-creation time; warm-up calls (reported apart, never mixed into the
statistics); latency mean / p50 / p90 / p95 / p99 / std over `runs` timed calls; throughput at
batch 1 and at the best batch size (ONNX models with a dynamic batch dimension; other kinds
take one request at a time); peak resident memory while the backend was created and run
(GPU memory on a GPU, from NVML); energy per call with the name of the meter that measured it.
The environment (CPU, cores, providers, library versions; GPU clocks and throttle reasons on
a GPU) is recorded with the numbers.

The JSON (versioned, `PROFILE_FORMAT`) is what `apply_profile` folds into a catalog's `cost:`
priors, so the router starts from what this device measured rather than from guesses.

Requests are fixed and realistic: composed easy-VQA test scenes (240x320) for detection and
whole-frame VQA, one object's crop of each for verify / classify / crop VQA. The timed calls
cycle over `SAMPLE_SCENES` distinct scenes, more than any backend remembers (the OpenCV tier
keeps the shapes of its last few images), so the profile measures what a new camera frame
costs and not a cache hit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.base import Backend
from edgefmp.backends.catalog import BackendSpec, CostPrior, load_catalog
from edgefmp.backends.registry import create_backend
from edgefmp.bench.machine import environment, gpu_used_mb, peak_rss_mb, reset_peak_rss, rss_mb
from edgefmp.cost.meters import EnergyMeter, busy_power_w, select_meter
from edgefmp.errors import ConfigError
from edgefmp.results import (
    AnswerRequest,
    ClassifyRequest,
    DetectRequest,
    LLMRequest,
    OCRRequest,
    Request,
    VerifyRequest,
    VQARequest,
)

log = logging.getLogger(__name__)

PROFILE_FORMAT = "edgefmp.profile"
PROFILE_VERSION = 1
BATCHES = (1, 2, 4, 8, 16, 32)


@dataclass
class LatencyStats:
    n: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> LatencyStats:
        a = np.asarray(samples_ms, dtype=np.float64)
        q = np.percentile(a, [50, 90, 95, 99])
        return cls(
            n=int(a.size),
            mean=float(a.mean()),
            p50=float(q[0]),
            p90=float(q[1]),
            p95=float(q[2]),
            p99=float(q[3]),
            std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
            min=float(a.min()),
            max=float(a.max()),
        )


@dataclass
class BackendProfile:
    """One backend's row of a profile (milliseconds, joules, megabytes)."""

    name: str
    function: str
    kind: str
    location: str
    model: str | None = None
    params: float | None = None
    session_ms: float | None = None
    warmup_ms: list[float] = field(default_factory=list)
    latency_ms: LatencyStats | None = None
    throughput_batch1_per_s: float | None = None
    best_batch: int | None = None
    throughput_best_per_s: float | None = None
    batch_throughput: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None  # the process's peak while this backend was created and run
    rss_growth_mb: float | None = None  # that peak minus the resident size just before
    gpu_memory_mb: float | None = None
    energy_j_per_call: float | None = None
    bytes_per_call: float | None = None  # up + down, as the backend reported them (remote calls)
    energy_source: str = "none"
    providers: list[str] = field(default_factory=list)
    error: str | None = None


# ------------------------------------------------------------------------------ requests


SAMPLE_SCENES = 8


def sample_requests(seed: int = 0, scenes: int = SAMPLE_SCENES) -> dict[str, list[Request]]:
    """`scenes` realistic requests per function, one per composed test-split scene."""
    from edgefmp.scenes import COLORS, compose_scene, load_shape_pool

    if scenes < 1:
        raise ConfigError(f"profile: need at least one sample scene, got {scenes}")
    pool = load_shape_pool("test", limit=120)
    rng = np.random.default_rng(seed)
    out: dict[str, list[Request]] = {}
    for _ in range(scenes):
        scene = compose_scene(rng, pool, n_objects=(3, 3))
        frame = scene.image
        obj = scene.objects[0]
        x1, y1, x2, y2 = (int(round(v)) for v in obj.box)
        h, w = frame.shape[:2]
        crop = np.ascontiguousarray(frame[max(0, y1 - 10) : min(h, y2 + 10), max(0, x1 - 10) : min(w, x2 + 10)])
        requests: dict[str, Request] = {
            "detect": DetectRequest(image=frame, labels=(obj.label,)),
            "verify": VerifyRequest(image=crop, subject=obj.shape, property=obj.color),
            "classify": ClassifyRequest(image=crop, options=tuple(COLORS)),
            "vqa": VQARequest(image=crop, question=f"What color is the {obj.shape}?"),
            "answer": AnswerRequest(image=frame, question=f"Is there a {obj.label}?"),
            "ocr": OCRRequest(image=crop),
            "llm": LLMRequest(prompt="Answer with one word: what colour is the sky on a clear day?"),
        }
        for function, request in requests.items():
            out.setdefault(function, []).append(request)
    return out


# ------------------------------------------------------------------------------ measuring


def _create(spec: BackendSpec) -> tuple[Backend, float]:
    t0 = time.perf_counter()
    backend = create_backend(spec)
    return backend, (time.perf_counter() - t0) * 1e3


def _batch_throughput(backend: Backend, request: Request, runs: int) -> dict[str, float]:
    """Images per second of the raw model at each batch size it accepts (ONNX only)."""
    from edgefmp.backends import processing
    from edgefmp.backends.onnx import OnnxBackend

    if not isinstance(backend, OnnxBackend) or backend.manifest.preprocess is None:
        return {}
    image = getattr(request, "image", None)
    if image is None:
        return {}
    one, _ = processing.preprocess(image, backend.manifest.preprocess)
    out: dict[str, float] = {}
    for b in BATCHES:
        tensor = np.ascontiguousarray(np.repeat(one, b, axis=0))
        try:
            backend.run(tensor)  # warm this shape
        except Exception:
            break  # a fixed batch dimension: larger batches will not run either
        reps = max(3, runs // b)
        t0 = time.perf_counter()
        for _ in range(reps):
            backend.run(tensor)
        out[str(b)] = reps * b / (time.perf_counter() - t0)
    return out


def profile_backend(
    spec: BackendSpec,
    requests: Sequence[Request],
    meter: EnergyMeter,
    runs: int = 100,
    warmup: int = 3,
    batches: bool = True,
) -> BackendProfile:
    """Measure one backend (see the module docstring); errors become the row's `error`.
    Warm-up and timed calls take `requests` in turn, as one rotation: with more requests than
    a backend remembers, no timed call repeats a recent image."""
    if not requests:
        raise ConfigError(f"profile: no sample request for {spec.name} ({spec.function})")
    prof = BackendProfile(
        spec.name, spec.function, spec.kind, spec.location or "device", model=spec.model, params=spec.cost.params
    )
    reset = reset_peak_rss()
    rss_before = rss_mb()
    gpu_before = gpu_used_mb()
    backend: Backend | None = None
    try:
        backend, prof.session_ms = _create(spec)
        prof.location = backend.location
        manifest = backend.manifest
        if prof.params is None and manifest is not None and manifest.params:
            prof.params = float(manifest.params)
        prof.providers = list(getattr(backend, "providers", []) or [])
        for i in range(warmup):
            t0 = time.perf_counter()
            backend.infer(requests[i % len(requests)])
            prof.warmup_ms.append((time.perf_counter() - t0) * 1e3)
        samples, joules, moved_bytes = [], [], []
        power = busy_power_w(backend.location, spec.power_w)
        sources: set[str] = set()
        for i in range(runs):
            # The rotation goes on from where the warm-up left it: restarting at scene 0 would
            # time images the warm-up just showed, which a backend that remembers recent
            # images (the OpenCV tier) answers from its cache.
            request = requests[(warmup + i) % len(requests)]
            token = meter.begin()
            t0 = time.perf_counter()
            result = backend.infer(request)
            dt = time.perf_counter() - t0
            moved = int(getattr(result, "bytes_up", 0) or 0) + int(getattr(result, "bytes_down", 0) or 0)
            reading = meter.end(token, latency_s=dt, power_w=power, bytes_moved=moved)
            samples.append(dt * 1e3)
            joules.append(reading.joules)
            moved_bytes.append(moved)
            sources.add(reading.source)
        prof.latency_ms = LatencyStats.of(samples)
        prof.throughput_batch1_per_s = 1e3 / prof.latency_ms.mean if prof.latency_ms.mean > 0 else None
        prof.energy_j_per_call = float(np.mean(joules))
        prof.bytes_per_call = float(np.mean(moved_bytes))
        prof.energy_source = "+".join(sorted(sources))
        if batches:
            prof.batch_throughput = _batch_throughput(backend, requests[0], runs)
        if prof.batch_throughput:
            best = max(prof.batch_throughput, key=lambda k: prof.batch_throughput[k])
            prof.best_batch, prof.throughput_best_per_s = int(best), prof.batch_throughput[best]
        else:
            prof.best_batch, prof.throughput_best_per_s = 1, prof.throughput_batch1_per_s
    except Exception as exc:  # one failing backend is a row with its error
        log.debug("profiling %s failed", spec.name, exc_info=True)
        prof.error = f"{type(exc).__name__}: {exc}"
    finally:
        if backend is not None:
            backend.close()
    prof.peak_rss_mb = peak_rss_mb() if reset else None
    if prof.peak_rss_mb is not None and rss_before is not None:
        prof.rss_growth_mb = max(prof.peak_rss_mb - rss_before, 0.0)
    gpu_after = gpu_used_mb()
    if gpu_before is not None and gpu_after is not None:
        prof.gpu_memory_mb = max(gpu_after - gpu_before, 0.0)
    return prof


def specs_from_targets(targets: list[str]) -> tuple[list[BackendSpec], str]:
    """Backend specs from one catalog file or from model files (.onnx); and a label for them."""
    paths = [Path(t) for t in targets]
    if not paths:
        raise ConfigError("profile: give a catalog YAML or one or more .onnx model files")
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"profile: no file {p}; give a catalog YAML or .onnx model files")
    if len(paths) == 1 and paths[0].suffix in (".yaml", ".yml"):
        spec = load_catalog(paths[0])
        return [b for backends in spec.functions.values() for b in backends], str(paths[0])
    specs = []
    for p in paths:
        if p.suffix != ".onnx":
            raise ConfigError(f"profile: {p} is neither a catalog (.yaml) nor an ONNX model (.onnx)")
        manifest = _manifest_of(p)
        specs.append(
            BackendSpec(
                name=manifest.name or p.stem,
                kind="onnx",
                function=manifest.function,
                model=str(p.resolve()),
                base_dir=str(p.resolve().parent),
                cost=CostPrior(params=manifest.params),
            )
        )
    return specs, ", ".join(str(p) for p in paths)


def _manifest_of(path: Path) -> Any:
    from edgefmp.backends.manifest import ONNX_METADATA_KEY, parse_manifest, read_sidecar

    sidecar = read_sidecar(path)
    if sidecar is not None:
        return sidecar
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConfigError(f"{path}: onnxruntime cannot load this model: {exc}") from exc
    text = session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
    if text is None:
        raise ConfigError(f"{path}: no manifest (metadata {ONNX_METADATA_KEY!r} or a sidecar); re-export it")
    return parse_manifest(text, f"{path} (metadata)")


def run_profile(
    targets: list[str],
    runs: int = 100,
    warmup: int = 3,
    meter_name: str = "auto",
    batches: bool = True,
    on_backend: Any = None,
    threads: int | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Profile every backend of `targets`; returns the profile JSON (see `PROFILE_FORMAT`).
    `threads` pins ONNX Runtime's thread pools (as `edgefmp bench` does per worker);
    `command`, the command line that made it, is recorded so the profile can be made again."""
    if runs < 2:
        raise ConfigError(f"profile: --runs must be >= 2 for percentiles, got {runs}")
    specs, label = specs_from_targets(targets)
    if threads is not None:
        for spec in specs:
            if spec.kind == "onnx":
                spec.options["intra_op_threads"] = threads
                spec.options["inter_op_threads"] = threads
    requests = sample_requests()
    meter = select_meter(meter_name)
    rows = []
    for spec in specs:
        samples = requests.get(spec.function)
        if not samples:
            rows.append(BackendProfile(spec.name, spec.function, spec.kind, "device", error="no sample request"))
            continue
        row = profile_backend(spec, samples, meter, runs=runs, warmup=warmup, batches=batches)
        rows.append(row)
        if on_backend is not None:
            on_backend(row)
    return {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "source": label,
        "command": command,
        "runs": runs,
        "warmup": warmup,
        "meter": meter.describe(),
        "threads": threads,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment(),
        "backends": [asdict(r) for r in rows],
    }


# Two throughputs measured differently, so every table names them apart: the full call
# (1000 / mean latency of `infer`, pre- and post-processing included) and the raw model run
# at its best batch size (ONNX `session.run` on a ready tensor; `_batch_throughput`).
CALLS_PER_S = "calls/s (full call)"
RAW_BATCH = "raw model images/s (best batch)"


def raw_batch_measured(row: dict[str, Any]) -> bool:
    """Whether a profile row has a raw-model batch throughput (else its `best_batch` 1 and
    `throughput_best_per_s` repeat the full-call rate)."""
    return bool(row.get("batch_throughput")) and row.get("throughput_best_per_s") is not None


def profile_markdown(data: dict[str, Any]) -> str:
    """A profile as a markdown table (what `--out x.json` also writes to x.md)."""

    def f(v: Any, d: int = 3) -> str:
        return "-" if v is None else f"{v:.{d}g}"

    env = data["environment"]
    lines = [
        f"# Profile of {data['source']}",
        "",
        *([f"Command: `{data['command']}`  "] if data.get("command") else []),
        f"{data['runs']} timed calls per backend after {data['warmup']} warm-up calls; energy meter: {data['meter']}; "
        f"ONNX Runtime threads: {data.get('threads') or 'as in the catalog'}; {data['created']}.  ",
        f"{env.get('cpu')}, {env.get('cores')} cores; providers {', '.join(env.get('providers', []))}; "
        + ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v),
        "",
        "Latency is of the full call (`infer`: pre-processing, the model, post-processing), in ms. "
        f"{CALLS_PER_S} = 1000 / mean latency; {RAW_BATCH} = images per second of the ONNX model run alone "
        "(pre/post-processing excluded) at its fastest batch size b; '-' where it was not measured (not an ONNX "
        "model, or `--no-batches`).",
        "",
        "| function | backend | session ms | warm-up ms | mean | p50 | p90 | p95 | p99 | std "
        f"| {CALLS_PER_S} | {RAW_BATCH} | peak RSS MB (+growth) | J/call (meter) | error |",
        "|---" * 15 + "|",
    ]
    for r in data["backends"]:
        lat = r.get("latency_ms") or {}
        best = f"{f(r['throughput_best_per_s'], 4)} (b={r['best_batch']})" if raw_batch_measured(r) else "-"
        lines.append(
            f"| {r['function']} | {r['name']} | {f(r['session_ms'])} | "
            + ", ".join(f"{w:.2g}" for w in r["warmup_ms"])
            + " | "
            + " | ".join(f(lat.get(k)) for k in ("mean", "p50", "p90", "p95", "p99", "std"))
            + f" | {f(r['throughput_batch1_per_s'], 4)} | {best} | "
            f"{f(r['peak_rss_mb'], 4)} (+{f(r.get('rss_growth_mb'))}) | "
            f"{f(r['energy_j_per_call'])} ({r['energy_source']}) | {(r.get('error') or '')[:80]} |"
        )
    if env.get("gpu"):
        lines += ["", f"GPU: {json.dumps(env['gpu'])}"]
    return "\n".join(lines) + "\n"


__all__ = [
    "CALLS_PER_S",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "RAW_BATCH",
    "BackendProfile",
    "LatencyStats",
    "profile_backend",
    "profile_markdown",
    "raw_batch_measured",
    "run_profile",
    "sample_requests",
]
