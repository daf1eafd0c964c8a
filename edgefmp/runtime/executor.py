"""The executor: runs a program on one frame, routing every neural call as it happens.

Routing is decided call by call (not once per frame as in the paper) so a policy can use the
results of earlier calls in the same frame. A failing backend never loses the frame: the call
falls back to the next available backend and the trace keeps the failed attempt beside the call
that succeeded.

What the program's time budget (`WorkBudget.max_seconds`, `edgefmp run --max-seconds`) bounds:
the frame's program code and the backend calls it makes, because both are the frame's work, and
a frame that takes longer is of no use to a stream. The router's own decisions (the policy's
`choose`/`escalate`, and waiting for the policy while other frames hold it) are the runtime's
work, not the program's: the program runs on a clock that stops while the router decides, so a
slow policy never fails a frame in the program's name. A frame stopped by the budget says where
its time went.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from edgefmp.backends.base import Backend
from edgefmp.backends.catalog import Catalog
from edgefmp.cost.meters import EnergyMeter, EstimatedMeter, busy_power_w
from edgefmp.errors import BackendUnavailable, BudgetExceeded, ConfigError, ProgramError
from edgefmp.frame import Frame
from edgefmp.policies.base import BackendInfo, Decision, DecisionContext, Policy, SiteInfo, preference_order
from edgefmp.program.api import WorkBudget
from edgefmp.results import Detections, DetectRequest, Request, Result, request_summary
from edgefmp.trace import Attempt, CallRecord, Cost, Trace

log = logging.getLogger(__name__)


def fallback_order(chosen: int, available: list[bool]) -> list[int]:
    """Backends to try: the chosen one, then the available ones in `preference_order`."""
    return [chosen, *(i for i in preference_order(chosen, len(available))[1:] if available[i])]


def _to_json(value: Any, depth: int = 0) -> Any:
    """Make a program's answer JSON-able (patches become their boxes)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if depth > 4:
        return repr(value)[:200]
    if isinstance(value, (list, tuple)):
        return [_to_json(v, depth + 1) for v in value[:100]]
    if isinstance(value, dict):
        return {str(k): _to_json(v, depth + 1) for k, v in list(value.items())[:100]}
    box = [getattr(value, k, None) for k in ("left", "upper", "right", "lower")]
    numbers = [float(v) for v in box if isinstance(v, (int, float, np.integer, np.floating))]
    if len(numbers) == 4:
        return {"box": numbers, "label": getattr(value, "label", None)}
    return repr(value)[:200]


def _result_summary(request: Request, result: Result) -> Any:
    summary = result.summary()
    if isinstance(request, DetectRequest) and isinstance(result, Detections):
        ox, oy = request.origin
        for item in summary:
            x1, y1, x2, y2 = item["box"]
            item["box"] = [round(x1 + ox, 1), round(y1 + oy, 1), round(x2 + ox, 1), round(y2 + oy, 1)]
    return summary


def _why_unavailable(backend: Backend) -> str:
    """Why a call may not use `backend` now (it is either down or remote at a local_only site)."""
    if backend.available():
        return "remote, and this site is local_only"
    return backend.unavailable_reason() or "unavailable"


def check_sites(program: Any, site_ids: Collection[str], what: str) -> None:
    """Refuse site ids that are not call sites of `program`, listing the ones it has."""
    unknown = sorted(set(site_ids) - set(program.sites))
    if unknown:
        raise ConfigError(
            f"{what} site(s) {', '.join(unknown)} are not call sites of {program.filename}; "
            f"its sites are: {', '.join(program.sites) or 'none'} (see `edgefmp check`)"
        )


class _FrameCaller:
    """The NeuralCaller of one frame: asks the policy, calls backends, records calls."""

    def __init__(self, executor: Executor, frame: Frame, frame_index: int) -> None:
        self.executor = executor
        self.frame = frame
        self.frame_index = frame_index
        self.calls: list[CallRecord] = []
        self.cache: dict[str, Any] = {}
        self.routing_s = 0.0  # the router's time on this frame (on the executor's clock)
        self.backend_s = 0.0  # time in backend calls, fallbacks included (same clock)

    def program_clock(self) -> float:
        """The clock the program's time budget runs on: the executor's, stopped while routing."""
        return self.executor.clock() - self.routing_s

    def _decide(self, decide: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        """Run a policy decision under the policy lock; returns it and its own time in µs.
        Waiting for the lock and deciding are both routing time, not the program's."""
        clock = self.executor.clock
        start = clock()
        with self.executor.policy_lock:
            t0 = time.perf_counter()
            result = decide(*args)
            decision_us = (time.perf_counter() - t0) * 1e6
        self.routing_s += clock() - start
        return result, decision_us

    def _invoke(self, *args: Any) -> tuple[CallRecord, Result | None]:
        start = self.executor.clock()
        try:
            return self.executor.invoke(*args)
        finally:
            self.backend_s += self.executor.clock() - start

    def call(self, site_id: str, request: Request) -> Result:
        ex = self.executor
        site = ex.site_info(site_id, request.function)
        backends = ex.catalog.backends(site.function)
        available = [b.available() and not (site.local_only and b.location == "remote") for b in backends]
        if not any(available):
            reasons = "; ".join(f"{b.name}: {_why_unavailable(b)}" for b in backends)
            raise BackendUnavailable(f"site {site_id}: no backend of {site.function!r} is available now ({reasons})")
        context = DecisionContext(
            frame=self.frame,
            request=request,
            calls_so_far=self.calls,
            available=available,
            frame_index=self.frame_index,
            cache=self.cache,
        )
        decision, decision_us = self._decide(ex.policy.choose, site, context)
        if not 0 <= decision.index < len(backends):
            raise ConfigError(
                f"policy {ex.policy.name!r} chose backend {decision.index} at site {site_id}, "
                f"which has backends 0..{len(backends) - 1}"
            )
        if not available[decision.index]:
            log.warning("policy %s chose unavailable backend %s at %s", ex.policy.name, decision.index, site_id)
        record, result = self._invoke(site, backends, request, decision, available, decision_us)
        self.calls.append(record)
        escalate = getattr(ex.policy, "escalate", None)
        # A cascade climbs while its policy asks for a more capable backend; each tier is a
        # call of its own in the trace, and the last answer that came back is the one used.
        for _ in range(len(backends) - 1):
            if escalate is None or result is None:
                break
            better, escalate_us = self._decide(escalate, site, context, record)
            if better is None or better == record.backend_index or not available[better]:
                break
            record, next_result = self._invoke(site, backends, request, Decision(better, 1.0), available, escalate_us)
            self.calls.append(record)
            if next_result is None:
                break
            result = next_result
        if result is None:
            raise BackendUnavailable(f"site {site_id}: every backend failed: {record.error}")
        return result


class Executor:
    """Runs a compiled program frame by frame with a catalog of backends and a policy."""

    def __init__(
        self,
        program: Any,
        catalog: Catalog,
        policy: Policy,
        *,
        meter: EnergyMeter | None = None,
        budget: WorkBudget | None = None,
        local_only_sites: set[str] | frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.program = program
        self.catalog = catalog
        self.policy = policy
        self.meter = meter or EstimatedMeter()
        self.budget = budget or WorkBudget()
        self.clock = clock  # of the time budget; injectable so tests need no real time
        self.local_only_sites = frozenset(local_only_sites)
        check_sites(program, self.local_only_sites, "local-only")
        self._sites: dict[str, SiteInfo] = {}
        # Policies are not thread-safe; frames run concurrently when remote calls overlap.
        self.policy_lock = threading.RLock()
        missing = sorted({s.function for s in program.sites.values()} - set(catalog.functions))
        if missing:
            raise ConfigError(
                f"program {program.filename} calls {', '.join(missing)} but catalog "
                f"{catalog.spec.name!r} serves only: {', '.join(catalog.functions)}; add backends for "
                "those functions to the catalog"
            )

    def site_info(self, site_id: str, function: str) -> SiteInfo:
        site = self._sites.get(site_id)
        if site is None:
            backends = self.catalog.backends(function)
            site = SiteInfo(
                site_id=site_id,
                function=function,
                backends=tuple(
                    BackendInfo(
                        name=b.name,
                        location=b.location,
                        prior=Cost(
                            latency_ms=b.spec.cost.latency_ms or 0.0,
                            energy_j=b.spec.cost.energy_j or 0.0,
                            bytes_up=int(b.spec.cost.bytes_per_call or 0),
                        )
                        if b.spec.cost.latency_ms is not None
                        else None,
                        params=b.spec.cost.params,
                        accuracy=b.spec.accuracy,
                    )
                    for b in backends
                ),
                local_only=site_id in self.local_only_sites,
            )
            self._sites[site_id] = site
        return site

    def sites(self) -> list[SiteInfo]:
        """SiteInfo for every neural call site of the program."""
        return [self.site_info(s.site_id, s.function) for s in self.program.sites.values()]

    def _timed_infer(self, backend: Backend, request: Request) -> tuple[Result | None, Cost, str | None]:
        token = self.meter.begin()
        t0 = time.perf_counter()
        result: Result | None = None
        error: str | None = None
        carrier: object = None
        try:
            result = backend.infer(request)
            carrier = result
        except Exception as exc:  # any backend failure falls back; the trace keeps the reason
            error = f"{type(exc).__name__}: {exc}"
            carrier = exc  # a failed remote call still moved bytes (and may be billed); its error carries them
            log.debug("backend %s failed", backend.name, exc_info=True)
        latency_s = time.perf_counter() - t0
        up, down = int(getattr(carrier, "bytes_up", 0) or 0), int(getattr(carrier, "bytes_down", 0) or 0)
        power = busy_power_w(backend.location, backend.spec.power_w)
        reading = self.meter.end(token, latency_s=latency_s, power_w=power, bytes_moved=up + down)
        cost = Cost(
            latency_ms=latency_s * 1e3,
            energy_j=reading.joules,
            energy_source=reading.source,
            bytes_up=up,
            bytes_down=down,
            money=float(getattr(carrier, "money", 0.0) or 0.0),
        )
        return result, cost, error

    def invoke(
        self,
        site: SiteInfo,
        backends: list[Backend],
        request: Request,
        decision: Decision,
        available: list[bool],
        decision_us: float,
    ) -> tuple[CallRecord, Result | None]:
        """Call the chosen backend, falling back in `fallback_order`; one record either way."""
        attempts: list[Attempt] = []
        record = CallRecord(
            site=site.site_id,
            function=site.function,
            backend=None,
            backend_index=None,
            args=request_summary(request),
            policy=self.policy.name,
            propensity=decision.propensity,
            decision_us=decision_us,
            features=list(decision.features) if decision.features is not None else None,
        )
        for index in fallback_order(decision.index, available):
            backend = backends[index]
            result, cost, error = self._timed_infer(backend, request)
            if result is None:
                attempts.append(Attempt(backend=backend.name, error=error or "failed", cost=cost))
                continue
            record.backend = backend.name
            record.backend_index = index
            record.result = _result_summary(request, result)
            if result.sent:
                record.args["sent"] = result.sent
            record.confidence = result.confidence
            record.cost = cost
            record.attempts = attempts
            if attempts:
                log.info(
                    "site %s: %s failed (%s); fell back to %s",
                    site.site_id,
                    attempts[0].backend,
                    attempts[0].error,
                    backend.name,
                )
            return record, result
        record.attempts = attempts
        record.error = "; ".join(f"{a.backend}: {a.error}" for a in attempts)
        return record, None

    def run_frame(self, frame: Frame, frame_index: int = 0) -> Trace:
        """Run the program on one frame; never raises for a bad frame or a failing program."""
        trace = Trace(frame_id=frame.frame_id, ts=frame.ts, meta=dict(frame.meta))
        if frame.image is None:
            trace.error = f"frame {frame.frame_id} unreadable: {frame.error}"
            return trace
        caller = _FrameCaller(self, frame, frame_index)
        t0 = time.perf_counter()
        started = self.clock()
        try:
            trace.answer = _to_json(self.program.run(frame.image, caller, self.budget, clock=caller.program_clock))
        except BudgetExceeded as exc:
            trace.error = f"BudgetExceeded: {exc}"
            if "max_seconds" in str(exc):
                trace.error += "; " + self._where_time_went(caller, self.clock() - started)
        except ProgramError as exc:
            trace.error = f"{type(exc).__name__}: {exc}"
        except BackendUnavailable as exc:
            trace.error = f"BackendUnavailable: {exc}"
        except Exception as exc:  # a program bug must cost one frame, not the stream
            trace.error = f"program failed on frame {frame.frame_id}: {type(exc).__name__}: {exc}"
            log.debug("program failed", exc_info=True)
        trace.wall_ms = (time.perf_counter() - t0) * 1e3
        trace.calls = caller.calls
        return trace

    def _where_time_went(self, caller: _FrameCaller, wall_s: float) -> str:
        backend_s = caller.backend_s
        program_s = max(wall_s - backend_s - caller.routing_s, 0.0)
        return (
            f"where the frame's {wall_s:.2f} s went: {backend_s:.2f} s in {len(caller.calls)} backend "
            f"call(s), {program_s:.2f} s in the program's own code, and {caller.routing_s:.2f} s routing "
            f"(not counted); the limit is {self.budget.max_seconds:g} s "
            "(edgefmp run --max-seconds; choose faster backends if the backends took it)"
        )


__all__ = ["Executor", "check_sites", "fallback_order"]
