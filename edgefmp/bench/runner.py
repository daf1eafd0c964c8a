"""Run a sweep: every case on every query's stream, queries spread over worker processes.

The unit of parallel work is a query (its stream, the catalog, all cases sharing one call
cache; see execute.py), because cases of the same query share most of their backend calls
and cases of different queries share none. Workers are spawned processes (no fork: torch and
ONNX Runtime hold threads) and each pins its math libraries to `threads` threads, so two
workers on two cores do not fight. Progress events come back through a manager queue and
are handed to `on_progress` on a thread of the parent; the library never prints.

A query whose worker dies (or whose stream cannot be built) is a result with its error; the
sweep goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from edgefmp.bench.cases import CaseSpec
from edgefmp.bench.execute import Progress, QueryResult, QueryTask, catalog_spec, run_query
from edgefmp.bench.suite import load_suite
from edgefmp.errors import ConfigError, EdgeFMPError

log = logging.getLogger(__name__)

MAX_WORKERS = 2  # the reference machine has two cores; more workers only contend


@dataclass
class SweepOptions:
    """How to run a sweep (what to run is the suite and the cases)."""

    catalog: str
    workers: int = 2
    max_frames: int | None = None
    queries: list[str] | None = None
    max_static: int = 64
    replay: bool = True
    threads: int | None = 1
    block: int = 25
    meter: str = "auto"
    profile: str | None = None
    remote: bool = False  # serve each function's last backend with `edgefmp serve` on loopback
    remote_link: str = ""  # NetConditions spec of the link to it, e.g. "rtt=40ms,bw=20mbit"; "" = loopback
    remote_url: str | None = None  # set while the server runs
    remote_profile: dict[str, Any] | None = None  # its backends' profile rows, measured once it runs


@dataclass
class SweepRun:
    """What a sweep produced: one QueryResult per query, and how long it took."""

    suite_path: str
    cases: list[CaseSpec]
    options: SweepOptions
    results: list[QueryResult] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    workers_note: str = ""  # why fewer workers ran than asked for, when they did


def _init_worker(threads: int | None) -> None:
    """Pin the math libraries' thread pools before they are imported (spawned process)."""
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)


def _worker(task: QueryTask, queue: Any) -> QueryResult:
    return run_query(task, progress=None if queue is None else queue.put)


def _tasks(suite_path: str, cases: Sequence[CaseSpec], opts: SweepOptions) -> list[QueryTask]:
    suite = load_suite(suite_path)
    ids = [q.id for q in suite.queries]
    if opts.queries:
        unknown = [q for q in opts.queries if q not in ids]
        if unknown:
            raise ConfigError(f"{suite.source}: no query {unknown[0]!r}; queries: {', '.join(ids)}")
        ids = [q for q in ids if q in opts.queries]
    # Longest first, so the sweep does not end with one worker alone on a big query: a
    # program's static assignments (and so its work) grow with its number of call sites.
    ids.sort(key=lambda q: -_sites(suite.query(q).program))
    return [
        QueryTask(
            suite_path=str(suite_path),
            query_id=qid,
            cases=tuple(cases),
            catalog=opts.catalog,
            max_frames=opts.max_frames,
            max_static=opts.max_static,
            threads=opts.threads,
            replay=opts.replay,
            block=opts.block,
            meter=opts.meter,
            profile=opts.profile,
            remote_url=opts.remote_url,
            remote_profile=opts.remote_profile,
        )
        for qid in ids
    ]


def _sites(program: object) -> int:
    from edgefmp.program import load_program

    try:
        return len(load_program(str(program)).sites)
    except EdgeFMPError:
        return 0  # the worker reports the program's error


def plan_workers(requested: int, n_queries: int, cores: int | None = None) -> tuple[int, str]:
    """How many worker processes a sweep of `n_queries` runs for `--workers requested`, and
    why that is fewer ("" when it is not, or only because there are fewer queries)."""
    cores = cores or os.cpu_count() or 1
    workers = max(1, min(requested, MAX_WORKERS, n_queries, cores))
    if requested <= workers or workers == n_queries:
        return workers, ""
    limit = min(MAX_WORKERS, cores)
    why = (
        f"the bench runs at most {MAX_WORKERS} workers; its timings are for a 2-core device, where more "
        "contend for the cores and inflate every latency"
        if limit == MAX_WORKERS
        else f"this machine has {cores} core(s); more workers would contend for them and inflate every latency"
    )
    return workers, f"--workers {requested} cut to {workers}: {why}"


def run_sweep(
    suite_path: str,
    cases: Sequence[CaseSpec],
    opts: SweepOptions,
    on_progress: Progress | None = None,
) -> SweepRun:
    """Run `cases` on the suite's queries; `workers <= 1` runs in this process (tests).
    With `opts.remote`, an `edgefmp serve` child serves the remote tier for the whole sweep."""
    if opts.remote and opts.remote_url is None:
        if opts.catalog.startswith("py:"):
            raise ConfigError("the remote tier serves a catalog file; an in-memory catalog cannot be served")
        from edgefmp.bench.remote import profile_remote, serve_largest

        with serve_largest(opts.catalog, opts.threads, opts.remote_link) as url:
            opts.remote_url = url
            try:
                spec = catalog_spec(opts.catalog, opts.threads, opts.profile, url)
                opts.remote_profile = profile_remote(spec, opts.meter)
                return run_sweep(suite_path, cases, opts, on_progress)
            finally:
                opts.remote_url = None
    tasks = _tasks(suite_path, cases, opts)
    workers, note = plan_workers(opts.workers, len(tasks))
    if note:
        log.warning("%s", note)
    run = SweepRun(suite_path=str(suite_path), cases=list(cases), options=opts, workers=workers, workers_note=note)
    t0 = time.perf_counter()
    if workers <= 1:
        run.results = [run_query(t, on_progress) for t in tasks]
    else:
        run.results = _parallel(tasks, workers, opts.threads, on_progress)
    run.seconds = time.perf_counter() - t0
    position = {q.id: i for i, q in enumerate(load_suite(suite_path).queries)}
    run.results.sort(key=lambda r: position.get(r.query, len(position)))  # back in suite order
    return run


def _parallel(
    tasks: list[QueryTask], workers: int, threads: int | None, on_progress: Progress | None
) -> list[QueryResult]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        queue = manager.Queue() if on_progress is not None else None
        drain = threading.Thread(target=_drain, args=(queue, on_progress), daemon=True)
        if queue is not None:
            drain.start()
        try:
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
                futures: list[tuple[QueryTask, Future[QueryResult]]] = [
                    (t, pool.submit(_worker, t, queue)) for t in tasks
                ]
                results = [_collect(t, f) for t, f in futures]
        finally:
            if queue is not None:
                queue.put(None)
                drain.join(timeout=5)
    return results


def _collect(task: QueryTask, future: Future[QueryResult]) -> QueryResult:
    try:
        return future.result()
    except Exception as exc:  # a dead worker costs its query, not the sweep
        log.warning("query %s: worker failed: %s", task.query_id, exc)
        return QueryResult(task.query_id, error=f"worker failed: {type(exc).__name__}: {exc}")


def _drain(queue: Any, on_progress: Callable[[dict[str, Any]], None] | None) -> None:
    """Hand progress events to the callback until the None sentinel (or the manager) ends it."""
    while True:
        try:
            event = queue.get()
        except (EOFError, OSError):
            return
        if event is None:
            return
        if on_progress is not None:
            try:
                on_progress(event)
            except Exception:  # a display error must not stop the sweep
                log.debug("progress callback failed", exc_info=True)


__all__ = ["MAX_WORKERS", "SweepOptions", "SweepRun", "plan_workers", "run_sweep"]
