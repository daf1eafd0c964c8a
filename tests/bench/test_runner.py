"""Sweeps: every case on every stream, failures as rows, the same numbers in or out of process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from edgefmp.bench.cases import CaseSpec, parse_budget, plan_cases, static_assignments
from edgefmp.bench.execute import QueryTask, catalog_spec, run_query
from edgefmp.bench.runner import SweepOptions, run_sweep
from edgefmp.errors import ConfigError
from tests.bench.fakes import NO_VQA_REF, REF


@pytest.mark.parametrize(
    ("text", "targets"),
    [
        ("40ms", {"latency_ms": 40.0}),
        ("2J", {"energy_j": 2.0}),
        ("50kB", {"bytes": 50000.0}),
        ("5%", {"latency_share": 0.05}),
        ("gap:1", {"accuracy_gap": 1.0, "minimize": "latency_ms"}),
        ("none", {}),
    ],
)
def test_budgets(text: str, targets: dict[str, object]) -> None:
    assert parse_budget(text) == targets


@pytest.mark.parametrize("bad", ["40", "fast", "-3ms", "gap:x", "gap:200"])
def test_bad_budgets_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ConfigError, match="budget"):
        parse_budget(bad)


def test_plan_and_static_enumeration() -> None:
    cases = plan_cases(["static", "adaptive"], budgets=["gap:1,5%"], weights=None)
    assert [c.name for c in cases] == ["largest", "static:*", "adaptive@gap:1", "adaptive@5%"]
    with pytest.raises(ConfigError, match="unknown policy family 'magic'"):
        plan_cases(["magic"])
    assert len(static_assignments([2, 3], 64)) == 6
    few = static_assignments([4, 4, 4], 10)
    assert (0, 0, 0) in few and (3, 3, 3) in few and (0, 3, 3) in few and len(few) < 64


def _records(result: object) -> dict[str, dict[str, object]]:
    return {r["case"]: r for r in result.records}  # type: ignore[attr-defined]


def test_query_runs_every_case_and_keeps_failures_as_rows(write_suite: Callable[..., Path]) -> None:
    suite = write_suite()
    cases = (
        *plan_cases(["static", "cascade", "adaptive", "routing"], ["gap:1", "5%"], ["1"]),
        CaseSpec("adaptive@bad", "adaptive", "99parsecs"),
    )
    events: list[dict[str, object]] = []
    result = run_query(QueryTask(str(suite), "red-circle", cases, REF, block=4), events.append)
    assert result.error is None and result.stream["frames"] == 12 and result.stream["positives"] == 3
    recs = _records(result)
    # the verify program has two sites of two backends each: four static assignments, two
    # uniform, of which the all-largest one is `largest` itself and does not run twice
    assert {"largest", "static:0", "static:0-1", "static:1-0"} <= set(recs) and "static:1" not in recs
    assert recs["largest"]["frames"] == 12 and recs["largest"]["error"] is None
    assert recs["static:1-0"]["assignment"] == [1, 0]
    assert "budget '99parsecs'" in str(recs["adaptive@bad"]["error"])
    assert recs["adaptive@5%"]["error"] is None and recs["adaptive@5%"]["router_ms"] > 0
    assert "vqa-l" in str(recs["routing@w=1"]["mix"])  # the small VQA backend fails: fall back
    assert recs["routing@w=1"]["fallbacks"] > 0
    assert result.cache["hits"] > 0
    assert [e["event"] for e in events][:2] == ["query_start", "case_start"] and events[-1]["event"] == "query_done"


def test_missing_function_fails_the_cases_not_the_sweep(write_suite: Callable[..., Path]) -> None:
    opts = SweepOptions(catalog=NO_VQA_REF, workers=1, queries=["red-circle"])
    run = run_sweep(str(write_suite()), plan_cases(["routing"], weights=["1"]), opts)
    recs = _records(run.results[0])
    assert recs["largest"]["error"] is None
    assert "serves only" in str(recs["routing@w=1"]["error"])


def test_a_broken_stream_is_a_query_error(write_suite: Callable[..., Path]) -> None:
    program = Path(__file__).resolve().parents[2] / "bench" / "programs" / "count_exactly_two_circles.py"
    bad = write_suite(
        scene={"objects": [1, 1], "scale": [0.6, 0.6]},
        queries=[
            {
                "id": "six",
                "question": "Are there exactly six circles?",
                "program": str(program),
                "task": {"kind": "count", "object": {"shape": "circle"}, "n": 6},
            }
        ],
    )
    result = run_query(QueryTask(str(bad), "six", tuple(plan_cases(["static"])), REF))
    assert result.error is not None and "queries[0] (six): could not compose a" in result.error
    assert result.records == []


def test_parallel_workers_give_the_same_answers(write_suite: Callable[..., Path]) -> None:
    suite = str(write_suite(frames=10))
    cases = plan_cases(["static", "adaptive"], ["gap:1"], None)
    serial = run_sweep(suite, cases, SweepOptions(catalog=REF, workers=1))
    events: list[dict[str, object]] = []
    parallel = run_sweep(suite, cases, SweepOptions(catalog=REF, workers=2), on_progress=events.append)
    assert parallel.workers == 2
    for a, b in zip(serial.results, parallel.results, strict=True):
        ra, rb = _records(a), _records(b)
        assert ra.keys() == rb.keys()
        # learned policies see measured latencies (features, budgets), so only static cases are
        # reproducible to the answer across runs
        for case in (c for c in ra if c.startswith(("static", "largest"))):
            assert (ra[case]["correct"], ra[case]["tp"], ra[case]["fp"]) == (
                rb[case]["correct"],
                rb[case]["tp"],
                rb[case]["fp"],
            )
    assert sum(e["event"] == "query_done" for e in events) == 2


def test_unknown_query_is_refused(write_suite: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="no query 'nope'"):
        run_sweep(str(write_suite()), plan_cases(["static"]), SweepOptions(catalog=REF, queries=["nope"]))


def test_remote_tier_is_served_on_loopback(write_suite: Callable[..., Path]) -> None:
    from edgefmp.backends.catalog import default_catalog_path

    opts = SweepOptions(
        catalog=str(default_catalog_path()), workers=1, max_frames=10, queries=["red-circle"], remote=True
    )
    run = run_sweep(str(write_suite()), plan_cases(["static"]), opts)
    largest = _records(run.results[0])["largest"]
    assert largest["error"] is None
    assert {b for row in largest["mix"].values() for b in row["backends"]} == {"shapes-cv-remote"}
    assert largest["bytes"] > 0 and opts.remote_url is None
    with pytest.raises(ConfigError, match="in-memory catalog cannot be served"):
        run_sweep(str(write_suite()), plan_cases(["static"]), SweepOptions(catalog=REF, remote=True))


def test_remote_tier_behind_a_shaped_link(write_suite: Callable[..., Path]) -> None:
    """--remote-link puts the shaping proxy in front of the server: every remote call pays at
    least the link's round trip (a lower bound the proxy enforces, not a speed measurement)."""
    from edgefmp.backends.catalog import default_catalog_path

    opts = SweepOptions(
        catalog=str(default_catalog_path()),
        workers=1,
        max_frames=10,
        queries=["red-circle"],
        remote=True,
        remote_link="rtt=30ms",
    )
    run = run_sweep(str(write_suite()), plan_cases(["static"]), opts)
    largest = _records(run.results[0])["largest"]
    assert largest["error"] is None and largest["calls"] >= 10
    assert largest["latency_ms"] / largest["calls"] >= 30.0
    # The remote backends were profiled through the link before the cases ran, and that is
    # the cost prior the cases' router starts from (not the served model's on-device time).
    assert opts.remote_profile is not None
    rows = {(r["function"], r["name"]): r for r in opts.remote_profile["backends"]}
    assert rows and all(n.endswith("-remote") and r["error"] is None for (_, n), r in rows.items())
    assert all(r["latency_ms"]["min"] >= 30.0 and r["bytes_per_call"] > 0 for r in rows.values())
    spec = catalog_spec(opts.catalog, remote_url="http://127.0.0.1:9", remote_profile=opts.remote_profile)
    for fn, backends in spec.functions.items():
        row = rows[(fn, backends[-1].name)]
        assert backends[-1].cost.latency_ms == pytest.approx(row["latency_ms"]["mean"])
        assert backends[-1].cost.bytes_per_call == pytest.approx(row["bytes_per_call"])
    with pytest.raises(ConfigError, match="rtt"):
        run_sweep(str(write_suite()), plan_cases(["static"]), replace(opts, remote_link="rtt=fast"))
