"""Metrics: F1, fronts, hypervolume, savings at matched accuracy, dominance, learning curves."""

from __future__ import annotations

import pytest

from edgefmp.bench.metrics import (
    CaseSummary,
    Point,
    dominance,
    f1,
    hypervolume,
    learning_curve,
    pareto,
    savings_at_matched,
    settle_frame,
    static_oracle,
    summarise,
)
from edgefmp.bench.record import CaseRecord, score
from edgefmp.trace import CallRecord, Cost, Trace


def row(case: str, family: str, metric: float | None, latency: float, energy: float = 1.0, **kw: object) -> CaseSummary:
    base = dict(
        case=case,
        family=family,
        setting="",
        metric=metric,
        accuracy=metric,
        f1_micro=None,
        queries=1,
        frames=10,
        failed_frames=0,
        latency_ms=latency,
        backend_latency_ms=latency,
        router_ms=0.0,
        energy_j=energy,
        bytes=0.0,
        params_m=1.0,
        overhead_ratio=0.01,
    )
    base.update(kw)
    return CaseSummary(**base)  # type: ignore[arg-type]


def test_f1_and_scoring() -> None:
    assert f1(0, 0, 0) == 1.0 and f1(1, 1, 0) == pytest.approx(2 / 3)
    assert score("yes", True, binary=True) == (True, True)
    assert score(None, True, binary=True) == (False, False)  # no answer counts as the wrong one
    assert score("maybe", False, binary=True) == (False, True)
    assert score("Red.", "red", binary=False) == (True, None)
    assert score(3, "3", binary=False)[0]


def test_pareto_and_hypervolume() -> None:
    pts = [Point("a", "f", 0.1, 0.5), Point("b", "f", 0.5, 0.9), Point("c", "f", 0.6, 0.8), Point("d", "f", 1.0, 0.95)]
    assert [p.case for p in pareto(pts)] == ["a", "b", "d"]
    expected = (0.5 - 0.1) * 0.5 + (1.0 - 0.5) * 0.9 + (1.1 - 1.0) * 0.95
    assert hypervolume(pts) == pytest.approx(expected)
    assert hypervolume([Point("x", "f", 2.0, 1.0)]) == 0.0  # beyond the reference cost


def test_savings_at_matched_accuracy() -> None:
    largest = row("largest", "static", 0.90, 100.0, energy=10.0)
    rows = [
        largest,
        row("adaptive@a", "adaptive", 0.895, 4.0, 0.4),
        row("adaptive@b", "adaptive", 0.80, 1.0, 0.1),
        row("paper@w=1", "paper", 0.70, 50.0),
    ]
    by_family = {s.family: s for s in savings_at_matched(rows, largest)}
    ad = by_family["adaptive"]
    assert ad.case == "adaptive@a" and ad.savings["latency_ms"] == pytest.approx(0.96)
    assert ad.savings["energy_j"] == pytest.approx(0.96) and ad.gap_points == pytest.approx(0.5)
    assert by_family["paper"].case is None


def test_dominance_counts_cost_and_metric() -> None:
    ours = [row("adaptive@a", "adaptive", 0.8, 10.0), row("adaptive@b", "adaptive", 0.9, 30.0)]
    theirs = [
        row("paper@1", "paper", 0.85, 20.0),
        row("paper@2", "paper", 0.7, 5.0),
        row("paper@3", "paper", None, 5.0, errors={"q": "boom"}),
    ]
    out = dominance(ours, theirs)
    assert out[0]["best"] == "adaptive@a" and out[0]["dominated"] is False
    assert out[0]["delta_points"] == pytest.approx(-5.0)
    assert out[1]["best"] is None and out[1]["dominated"] is False
    assert out[2] == {"case": "paper@3", "error": "boom"}


def _trace(i: int, answer: str, latency: float, backend: str = "b") -> Trace:
    call = CallRecord(
        "s@1:0", "detect", backend, 0, {}, cost=Cost(latency_ms=latency, energy_j=latency / 100), decision_us=10.0
    )
    return Trace(f"f{i}", 0.0, calls=[call], answer=answer, wall_ms=latency + 0.5, meta={"infer_wall_ms": latency})


def _record(
    case: str, family: str, answers: list[str], labels: list[bool], latency: float, query: str = "q", block: int = 2
) -> CaseRecord:
    rec = CaseRecord(case, family, "", query, binary=True, block=block)
    for i, (a, y) in enumerate(zip(answers, labels, strict=True)):
        rec.add(_trace(i, a, latency), y, "positive" if y else "negative", {"b": 2.0}, update_ms=0.1)
    return rec


def test_records_summaries_and_curves() -> None:
    labels = [True, False, False, True, False, False, False, True]
    rec = _record("adaptive@x", "adaptive", ["no", "no", "yes", "yes", "no", "no", "no", "yes"], labels, 10.0)
    assert (rec.tp, rec.fp, rec.fn, rec.tn) == (2, 1, 1, 4)
    s = summarise([CaseRecord.from_json(rec.to_json())], "f1", 1)
    assert s.metric == pytest.approx(f1(2, 1, 1)) and s.frames == 8
    assert s.backend_latency_ms == pytest.approx(10.0)
    assert s.router_ms == pytest.approx(0.01 + 0.1)
    assert s.latency_ms == pytest.approx(10.11)
    assert s.params_m == pytest.approx(2.0) and s.mix == {"detect": {"b": 8}}
    assert s.overhead_ratio == pytest.approx(0.5 / 10.0)
    curve = learning_curve([rec], "accuracy", window=2)
    assert [f for f, _ in curve] == [4, 6, 8]
    assert curve[-1][1] == pytest.approx(1.0)
    assert settle_frame([(100, 0.5), (200, 0.9), (300, 0.905), (400, 0.9)]) == 200
    failed = CaseRecord("adaptive@x", "adaptive", "", "q2", binary=True)
    failed.error = "PolicyError: boom"
    assert summarise([rec, failed], "f1", 2).metric is None


def test_static_oracle_picks_cheapest_within_tolerance() -> None:
    labels = [True, False, True, False]
    recs = [
        _record("largest", "static", ["yes", "no", "yes", "no"], labels, 100.0),
        _record("static:0", "static", ["yes", "no", "no", "no"], labels, 1.0),
        _record("static:1", "static", ["yes", "no", "yes", "no"], labels, 10.0),
    ]
    out = static_oracle(recs, "f1")
    assert out["assignments"] == {"q": "static:1"} and out["metric"] == 1.0
