"""Scores of a sweep: F1 / accuracy, costs per frame, savings, Pareto fronts, hypervolume.

Conventions (docs/BENCH.md restates them):
- A suite's metric is F1 of "yes" when every query is binary, else accuracy; a case's value is
  the mean over queries of its per-query value (each query weighs the same, as in the paper).
  "1 point" is 0.01 of the metric.
- Cost per frame is a mean over every frame of every query. `latency_ms` and `energy_j` include
  the router's own time (decisions and updates); `backend_latency_ms` does not; `params_m` is
  the paper's proxy (millions of parameters of every backend called).
- Savings at matched accuracy: among a family's cases whose metric is at most `tolerance` below
  always-largest's, the cheapest one by latency, and 1 - its cost / always-largest's cost.
- Hypervolume: the area of the (cost, metric) square that a family's points dominate, with cost
  divided by always-largest's and the reference point (cost `HV_REF_COST`, metric 0).
- The runtime overhead ratio: sum(frame wall - backend wall) / sum(backend latency), the
  runtime's own time (program, routing, metering) per unit of backend time, as in `edgefmp run`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgefmp.bench.cases import LARGEST
from edgefmp.bench.record import CaseRecord

COSTS: tuple[str, ...] = ("latency_ms", "energy_j", "bytes", "params_m")
HV_REF_COST = 1.1
TOLERANCE = 0.01


def f1(tp: int, fp: int, fn: int) -> float:
    """F1 of the positive class; 1.0 when there is nothing to find and nothing was found."""
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def record_metric(rec: CaseRecord, metric: str) -> float:
    if metric == "f1":
        return f1(rec.tp, rec.fp, rec.fn)
    return rec.correct / rec.frames if rec.frames else 0.0


@dataclass
class CaseSummary:
    """One suite-level row: a case's value and costs over every query it ran on."""

    case: str
    family: str
    setting: str
    metric: float | None
    accuracy: float | None
    f1_micro: float | None
    queries: int
    frames: int
    failed_frames: int
    latency_ms: float | None
    backend_latency_ms: float | None
    router_ms: float | None
    energy_j: float | None
    bytes: float | None
    params_m: float | None
    overhead_ratio: float | None
    energy_sources: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    per_query: dict[str, float] = field(default_factory=dict)
    mix: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.metric is not None and not self.errors

    def cost(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise(records: Sequence[CaseRecord], metric: str, n_queries: int) -> CaseSummary:
    """Pool one case's records (one per query) into a row. A case that failed on any query has
    its errors listed and no metric: a partial mean would compare unlike things."""
    first = records[0]
    errors = {r.query: r.error for r in records if r.error is not None}
    good = [r for r in records if r.error is None]
    frames = sum(r.frames for r in good)
    mix: dict[str, Counter[str]] = defaultdict(Counter)
    for r in good:
        for row in r.mix.values():
            mix[row["function"]].update(row["backends"])

    def per_frame(attr: str) -> float | None:
        return sum(getattr(r, attr) for r in good) / frames if frames else None

    backend = per_frame("latency_ms")
    router = per_frame("router_ms")
    backend_total = sum(r.latency_ms for r in good)
    runtime_total = sum(r.wall_ms - r.infer_wall_ms for r in good)
    complete = not errors and len(good) == n_queries
    values = {r.query: record_metric(r, metric) for r in good}
    tp, fp, fn = (sum(getattr(r, k) for r in good) for k in ("tp", "fp", "fn"))
    sources = sorted({s for r in good for s in r.energy_sources})
    return CaseSummary(
        case=first.case,
        family=first.family,
        setting=first.setting,
        metric=sum(values.values()) / len(values) if complete and values else None,
        accuracy=sum(r.correct for r in good) / frames if frames else None,
        f1_micro=f1(tp, fp, fn) if first.binary and frames else None,
        queries=len(good),
        frames=frames,
        failed_frames=sum(r.failed for r in good),
        latency_ms=None if backend is None or router is None else backend + router,
        backend_latency_ms=backend,
        router_ms=router,
        energy_j=per_frame("energy_j"),
        bytes=per_frame("bytes"),
        params_m=per_frame("params_m"),
        overhead_ratio=runtime_total / backend_total if backend_total > 0 else None,
        energy_sources=sources,
        errors=errors,
        per_query=values,
        mix={fn_: dict(c.most_common()) for fn_, c in sorted(mix.items())},
        seconds=sum(r.seconds for r in good),
    )


# ------------------------------------------------------------------------------ curves


def learning_curve(records: Sequence[CaseRecord], metric: str, window: int = 4) -> list[tuple[int, float]]:
    """(last frame index of the window, metric) pooled over queries, over sliding windows of
    `window` blocks; F1 is pooled (TP/FP/FN summed), since one block of one query holds too few
    positives for an F1 of its own."""
    good = [r for r in records if r.error is None and r.blocks]
    if not good:
        return []
    n_blocks = min(len(r.blocks) for r in good)
    block = good[0].block
    out: list[tuple[int, float]] = []
    for j in range(0, max(n_blocks - window + 1, 0)):
        sums = [0, 0, 0, 0, 0]
        for r in good:
            for b in r.blocks[j : j + window]:
                for k in range(5):
                    sums[k] += b[k]
        value = f1(sums[2], sums[3], sums[4]) if metric == "f1" else sums[1] / max(sums[0], 1)
        out.append(((j + window) * block, value))
    return out


def settle_frame(curve: Sequence[tuple[int, float]], tolerance: float = TOLERANCE) -> int | None:
    """The first frame from which every later window is within `tolerance` of the final one."""
    if not curve:
        return None
    final = curve[-1][1]
    frame = curve[-1][0]
    for end, value in reversed(curve):
        if abs(value - final) > tolerance:
            break
        frame = end
    return frame


# ------------------------------------------------------------------------------ fronts


@dataclass(frozen=True)
class Point:
    case: str
    family: str
    cost: float
    metric: float


def points(rows: Iterable[CaseSummary], cost: str) -> list[Point]:
    out = []
    for r in rows:
        c = r.cost(cost)
        if r.ok and c is not None and r.metric is not None:
            out.append(Point(r.case, r.family, float(c), float(r.metric)))
    return out


def pareto(pts: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both cost (lower) and metric (higher), by cost."""
    front: list[Point] = []
    for p in sorted(pts, key=lambda p: (p.cost, -p.metric)):
        if not front or p.metric > front[-1].metric:
            front.append(p)
    return front


def hypervolume(pts: Sequence[Point], ref_metric: float = 0.0) -> float:
    """Area dominated by `pts` (costs already normalised by always-largest's) up to the
    reference point (HV_REF_COST, ref_metric); points beyond the reference add nothing."""
    front = [p for p in pareto(pts) if p.cost < HV_REF_COST and p.metric > ref_metric]
    area = 0.0
    for i, p in enumerate(front):
        right = front[i + 1].cost if i + 1 < len(front) else HV_REF_COST
        area += (right - p.cost) * (p.metric - ref_metric)
    return area


def normalised(pts: Sequence[Point], scale: float) -> list[Point]:
    return [Point(p.case, p.family, p.cost / scale, p.metric) for p in pts] if scale > 0 else []


@dataclass
class Savings:
    """The cheapest case of a family within `tolerance` of always-largest, and what it saves."""

    family: str
    case: str | None
    metric: float | None
    gap_points: float | None
    savings: dict[str, float | None] = field(default_factory=dict)


def savings_at_matched(
    rows: Sequence[CaseSummary], largest: CaseSummary, tolerance: float = TOLERANCE
) -> list[Savings]:
    out = []
    families = list(dict.fromkeys(r.family for r in rows))
    for fam in families:
        cands = [
            r
            for r in rows
            if r.family == fam
            and r.case != LARGEST
            and r.ok
            and r.metric is not None
            and largest.metric is not None
            and r.metric >= largest.metric - tolerance - 1e-12
            and r.latency_ms is not None
        ]
        if not cands:
            out.append(Savings(fam, None, None, None))
            continue
        best = min(cands, key=lambda r: r.latency_ms or math.inf)
        sav: dict[str, float | None] = {}
        for c in COSTS:
            ref, mine = largest.cost(c), best.cost(c)
            sav[c] = None if not ref or mine is None else 1.0 - mine / ref
        gap = None if largest.metric is None or best.metric is None else 100 * (largest.metric - best.metric)
        out.append(Savings(fam, best.case, best.metric, gap, sav))
    return out


def dominance(
    ours: Sequence[CaseSummary], theirs: Sequence[CaseSummary], cost: str = "latency_ms"
) -> list[dict[str, Any]]:
    """For each of `theirs`: the best of `ours` at no more cost, and whether it is at least as
    accurate (the "at every budget, >= its accuracy at <= its cost" check)."""
    out: list[dict[str, Any]] = []
    for t in theirs:
        tc = t.cost(cost)
        if not t.ok or tc is None or t.metric is None:
            out.append({"case": t.case, "error": "; ".join(t.errors.values()) or "no metric"})
            continue
        valid = [o for o in ours if o.ok and o.metric is not None and o.cost(cost) is not None]
        cheaper = [o for o in valid if (o.cost(cost) or math.inf) <= tc]
        best = max(cheaper, key=lambda o: o.metric or 0.0, default=None)
        # when none of ours is as cheap, say how close the cheapest one comes
        cheapest = min(valid, key=lambda o: o.cost(cost) or math.inf, default=None)
        out.append(
            {
                "case": t.case,
                "metric": t.metric,
                "cost": tc,
                "best": None if best is None else best.case,
                "best_metric": None if best is None else best.metric,
                "best_cost": None if best is None else best.cost(cost),
                "delta_points": None if best is None or best.metric is None else 100 * (best.metric - t.metric),
                "dominated": best is not None and best.metric is not None and best.metric >= t.metric,
                "cheapest": None if cheapest is None else cheapest.case,
                "cheapest_metric": None if cheapest is None else cheapest.metric,
                "cheapest_cost": None if cheapest is None else cheapest.cost(cost),
            }
        )
    return out


def static_oracle(records: Sequence[CaseRecord], metric: str, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Per query, the cheapest static assignment (in hindsight) within `tolerance` of always-
    largest on that query; its mean metric and costs over queries (the best any fixed
    assignment could do, chosen with the answers known)."""
    by_query: dict[str, list[CaseRecord]] = defaultdict(list)
    for r in records:
        if r.family == "static" and r.error is None and r.frames:
            by_query[r.query].append(r)
    picks = []
    for recs in by_query.values():
        ref = next((r for r in recs if r.case == LARGEST), None)
        if ref is None:
            continue
        target = record_metric(ref, metric) - tolerance - 1e-12
        ok = [r for r in recs if record_metric(r, metric) >= target]
        picks.append(min(ok, key=lambda r: r.latency_ms + r.router_ms))
    if not picks:
        return {}
    frames = sum(r.frames for r in picks)
    return {
        "metric": sum(record_metric(r, metric) for r in picks) / len(picks),
        "latency_ms": sum(r.latency_ms + r.router_ms for r in picks) / frames,
        "energy_j": sum(r.energy_j for r in picks) / frames,
        "params_m": sum(r.params_m for r in picks) / frames,
        "assignments": {r.query: r.case for r in picks},
    }


__all__ = [
    "COSTS",
    "CaseSummary",
    "Point",
    "Savings",
    "dominance",
    "f1",
    "hypervolume",
    "learning_curve",
    "normalised",
    "pareto",
    "points",
    "record_metric",
    "savings_at_matched",
    "settle_frame",
    "static_oracle",
    "summarise",
]
