"""Run every case on one query's stream: the unit of work a bench worker process does.

One query task builds the query's stream once, opens the catalog once, and runs the cases one
after another on the same frames with one shared call cache, so a (backend, request) pair is
measured once per stream whichever case asks first (cache.py). The always-largest case runs
first: it is the reference that relative budgets and weights are resolved against. Each case
gets a fresh policy and feeds it the label right after each frame (streaming with immediate
feedback, as in the paper). A case that fails becomes a record with its error; the other cases
of the query still run.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgefmp.backends.catalog import Catalog, CatalogSpec, load_catalog
from edgefmp.bench.cache import CachedExecutor, CallCache
from edgefmp.bench.cases import LARGEST, CaseSpec, Reference, build_policy, static_assignments, static_case
from edgefmp.bench.record import CaseRecord
from edgefmp.bench.remote import pin_onnx_threads, with_remote_largest
from edgefmp.bench.streams import Stream, build_stream
from edgefmp.bench.suite import Query, Suite, load_suite
from edgefmp.cost.meters import DEFAULT_BUSY_POWER_W, EnergyMeter, select_meter
from edgefmp.cost.model import CostModel
from edgefmp.errors import ConfigError
from edgefmp.frame import Frame
from edgefmp.policies.feedback import PAPER_REWARD, Feedback, reward_for
from edgefmp.policies.routing import routing_function, routing_program
from edgefmp.program import CompiledProgram, compile_program, load_program
from edgefmp.trace import Cost

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class QueryTask:
    """Everything a worker needs, picklable: the suite by path, one query, the cases."""

    suite_path: str
    query_id: str
    cases: tuple[CaseSpec, ...]
    catalog: str
    max_frames: int | None = None
    max_static: int = 64
    threads: int | None = None
    replay: bool = True
    block: int = 25
    meter: str = "auto"
    profile: str | None = None
    remote_url: str | None = None
    remote_profile: dict[str, Any] | None = None


@dataclass
class QueryResult:
    """The records of every case on one query, or the error that stopped the whole query."""

    query: str
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    stream: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def open_catalog(
    ref: str,
    threads: int | None = None,
    profile: str | None = None,
    remote_url: str | None = None,
    remote_profile: dict[str, Any] | None = None,
) -> Catalog:
    """A catalog from a YAML path (see `catalog_spec`), or from `py:module:function` (a
    factory returning a Catalog, how tests pass in-memory backends to worker processes)."""
    if ref.startswith("py:"):
        module, _, attr = ref[3:].partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"catalog {ref!r}: cannot import {module}:{attr}: {exc}") from exc
        catalog: Catalog = factory()
        return catalog
    return Catalog.open(catalog_spec(ref, threads, profile, remote_url, remote_profile))


def catalog_spec(
    path: str,
    threads: int | None = None,
    profile: str | None = None,
    remote_url: str | None = None,
    remote_profile: dict[str, Any] | None = None,
) -> CatalogSpec:
    """The catalog file as a bench case runs it. `profile` (an `edgefmp profile` JSON) sets
    the backends' cost priors, as a deployment would; with `remote_url`, each function's last
    backend is a client of that server (remote.py), whose priors `remote_profile` (profile
    rows measured through that server, `profile_remote`) sets. `threads` pins every ONNX
    backend's thread pools (the catalog's own setting included), so that parallel workers on
    a small machine do not oversubscribe its cores and every case is measured alike."""
    from edgefmp.bench.prior import apply_profile, read_profile

    spec = load_catalog(path)
    if profile is not None:
        spec = apply_profile(spec, read_profile(profile))
    if remote_url is not None:
        spec = with_remote_largest(spec, remote_url)
        if remote_profile is not None:
            spec = apply_profile(spec, remote_profile)
    pin_onnx_threads(spec, threads)
    return spec


def params_by_backend(catalog: Catalog) -> dict[str, float]:
    """Millions of parameters per backend name (the paper's cost proxy); 0 where unknown."""
    out: dict[str, float] = {}
    for fn in catalog.functions:
        for b in catalog.backends(fn):
            p = b.spec.cost.params
            out[b.name] = max(out.get(b.name, 0.0), float(p or 0.0) / 1e6)
    return out


def _reference(rec: CaseRecord, params: dict[str, float], binary: bool) -> Reference:
    n = max(rec.frames, 1)
    model = CostModel()
    mean = Cost(latency_ms=rec.latency_ms / n, energy_j=rec.energy_j / n, bytes_up=int(rec.bytes / n))
    reward_range = (PAPER_REWARD.tp - PAPER_REWARD.fp) if binary else 1.0
    return Reference(
        latency_ms=mean.latency_ms,
        energy_j=mean.energy_j,
        scalar_cost=model.scalar(mean),
        max_params_m=max(params.values(), default=0.0),
        reward_range=reward_range,
    )


def expand_statics(
    cases: tuple[CaseSpec, ...], program: CompiledProgram, catalog: Catalog, max_static: int
) -> list[CaseSpec]:
    """Replace the `static:*` placeholder by this program's static assignments, except the
    all-largest one, which is the `largest` case already (the same calls, run twice)."""
    out: list[CaseSpec] = []
    for case in cases:
        if case.name != "static:*":
            out.append(case)
            continue
        depths = [len(catalog.backends(s.function)) for s in program.sites.values()]
        largest = tuple(n - 1 for n in depths)
        uniform = {tuple(min(t, n - 1) for n in depths): t for t in range(max(depths, default=0))}
        out += [static_case(a, t) for a, t in uniform.items() if a != largest]
        mixed = static_assignments(depths, max_static)
        out += [static_case(a, None) for a in mixed if a not in uniform and a != largest]
    return out


def run_case(
    case: CaseSpec,
    executor: CachedExecutor,
    stream: Stream,
    params: dict[str, float],
    block: int,
    progress: Progress | None,
) -> CaseRecord:
    """One case on one stream, labels fed right after each frame."""
    query = stream.query
    rec = CaseRecord(
        case.name,
        case.family,
        case.setting,
        query.id,
        binary=query.answer == "binary",
        block=block,
        assignment=list(case.assignment) if case.assignment is not None else None,
    )
    feedback = Feedback(executor.policy, reward_for)
    t0 = time.perf_counter()
    for f in stream:
        frame = Frame(f.frame_id, f.index / 10.0, f.image)
        trace = executor.run_frame(frame, f.index)
        u0 = time.perf_counter()
        with executor.policy_lock:
            feedback.on_trace(trace)
            feedback.on_label(f.frame_id, f.label)
        update_ms = (time.perf_counter() - u0) * 1e3
        rec.add(trace, f.label, f.kind, params, update_ms)
        if progress is not None and (f.index + 1) % 10 == 0:
            progress({"event": "frames", "query": query.id, "case": case.name, "done": f.index + 1})
    rec.seconds = time.perf_counter() - t0
    return rec


def _router_energy(rec: CaseRecord) -> None:
    """Charge the router's own time at the device's busy power (an estimate, labelled so)."""
    rec.energy_j += rec.router_ms / 1e3 * DEFAULT_BUSY_POWER_W["device"]
    if rec.router_ms > 0 and "estimated" not in rec.energy_sources:
        rec.energy_sources.append("estimated")


def run_query(task: QueryTask, progress: Progress | None = None) -> QueryResult:
    """Every case of `task` on its query's stream; never raises for a failing case."""
    t0 = time.perf_counter()
    result = QueryResult(task.query_id)
    try:
        suite = load_suite(task.suite_path)
        query = suite.query(task.query_id)
        stream = build_stream(suite, query, max_frames=task.max_frames)
        result.stream = {
            "frames": len(stream),
            "positives": sum(f.kind == "positive" for f in stream),
            "lookalikes": sum(f.kind == "lookalike" for f in stream),
            "truth_digest": stream.truth_digest(),
        }
        with open_catalog(task.catalog, task.threads, task.profile, task.remote_url, task.remote_profile) as catalog:
            _run_cases(task, suite, query, stream, catalog, result, progress)
    except Exception as exc:  # the query's stream or catalog failed: every case gets the error
        log.debug("query %s failed", task.query_id, exc_info=True)
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    if progress is not None:
        progress({"event": "query_done", "query": task.query_id, "error": result.error})
    return result


def _warm_up(
    program: CompiledProgram, catalog: Catalog, meter: EnergyMeter, cache: CallCache | None, stream: Stream
) -> None:
    """Two untimed frames first, so one-time costs (lazy imports, first allocations) are charged
    to no case: without this, whichever case runs first looks slower."""
    executor = CachedExecutor(
        program, catalog, build_policy(CaseSpec(LARGEST, "static"), None, [], 0), meter=meter, cache=cache
    )
    feedback = Feedback(executor.policy, reward_for)
    for f in stream.frames[:2]:
        trace = executor.run_frame(Frame(f.frame_id, 0.0, f.image), f.index)
        feedback.on_trace(trace)
        feedback.on_label(f.frame_id, f.label)


def _run_cases(
    task: QueryTask,
    suite: Suite,
    query: Query,
    stream: Stream,
    catalog: Catalog,
    result: QueryResult,
    progress: Progress | None,
) -> None:
    program = load_program(query.program)
    routing = compile_program(
        routing_program(query.question, routing_function(catalog.functions)), filename=f"<routing {query.id}>"
    )
    params = params_by_backend(catalog)
    meter: EnergyMeter = select_meter(task.meter)
    cache = CallCache() if task.replay else None
    cases = expand_statics(task.cases, program, catalog, task.max_static)
    cases.sort(key=lambda c: c.name != LARGEST)
    site_ids = list(program.sites)
    seed = suite.stream_seed(query) % (2**31)
    ref: Reference | None = None
    _warm_up(program, catalog, meter, cache, stream)
    if progress is not None:
        progress({"event": "query_start", "query": query.id, "cases": len(cases), "frames": len(stream)})
    for case in cases:
        if progress is not None:
            progress({"event": "case_start", "query": query.id, "case": case.name})
        try:
            policy = build_policy(case, ref, site_ids, seed)
            prog = routing if case.family == "routing" else program
            executor = CachedExecutor(prog, catalog, policy, meter=meter, cache=cache)
            rec = run_case(case, executor, stream, params, task.block, progress)
            _router_energy(rec)
        except Exception as exc:  # one failing case is a row with its error, not an aborted sweep
            log.debug("case %s on %s failed", case.name, query.id, exc_info=True)
            rec = CaseRecord(case.name, case.family, case.setting, query.id, query.answer == "binary")
            rec.error = f"{type(exc).__name__}: {exc}"
        if case.name == LARGEST and rec.error is None:
            ref = _reference(rec, params, query.answer == "binary")
        result.records.append(rec.to_json())
    if cache is not None:
        result.cache = {
            "entries": len(cache),
            "hits": cache.stats.hits,
            "misses": cache.stats.misses,
            "measured_ms": round(cache.stats.measured_ms, 3),
        }


__all__ = ["QueryResult", "QueryTask", "catalog_spec", "open_catalog", "params_by_backend", "run_case", "run_query"]
