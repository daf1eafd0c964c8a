"""Convergence of learning curves, the headline checks, and the BENCHMARKS.md summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefmp.bench.metrics import (
    CaseSummary,
    Check,
    Convergence,
    RunFacts,
    check_convergence,
    check_paper,
    check_routing,
    check_savings,
    check_wall,
    convergence,
    curve_window,
    f1,
    headline_checks,
    learning_curve,
)
from edgefmp.bench.record import CaseRecord
from edgefmp.bench.summary import (
    SuiteResult,
    combined_wall,
    load_results,
    reference_lines,
    status_cell,
    summary_markdown,
)
from edgefmp.cli import app
from edgefmp.errors import ConfigError
from tests.bench.fakes import REF
from tests.bench.test_metrics import row

# ------------------------------------------------------------------------------ convergence


def _blocked(case: str, query: str, correct: Callable[[int], bool], frames: int = 300, block: int = 25) -> CaseRecord:
    """An open-answer record whose frame i is right iff correct(i), built block by block."""
    rec = CaseRecord(case, "adaptive" if case != "largest" else "static", "", query, binary=False, block=block)
    for start in range(0, frames, block):
        idx = range(start, min(start + block, frames))
        rec.blocks.append([len(idx), sum(correct(i) for i in idx), 0, 0, 0])
        rec.frames += len(idx)
    return rec


def test_convergence_finds_the_change_point_and_ignores_the_shared_dip() -> None:
    # Both cases fail frames 270..289 (a "night" the reference fails too); the learner also fails
    # every other frame before frame 150, then learns. Windows of 100 frames end at 100, 125, ...
    def night(i: int) -> bool:
        return 270 <= i < 290

    by_case = {
        "largest": [_blocked("largest", q, lambda i: not night(i)) for q in ("a", "b")],
        "adaptive@x": [_blocked("adaptive@x", q, lambda i: not night(i) and (i >= 150 or i % 2 == 0)) for q in "ab"],
    }
    window = curve_window(by_case["largest"])
    curves = {c: learning_curve(recs, "accuracy") for c, recs in by_case.items()}
    conv = convergence(curves, window)
    assert window == 100 and [f for f, _ in curves["largest"]] == list(range(100, 301, 25))
    ad = conv["adaptive@x"]
    # the first window free of the learner's own mistakes covers frames 150..249
    assert ad.gap_settle_frame == 250 and ad.confirmed and ad.final_gap == pytest.approx(0.0)
    # the raw curve dips with the night in the last windows, so raw it never settles
    assert ad.settle_frame == 300 and ad.final == pytest.approx(0.8)
    assert conv["largest"].gap_settle_frame == 100
    late = convergence({"largest": curves["largest"], "adaptive@x": curves["adaptive@x"][:-1]}, window)
    assert late["adaptive@x"].frames == 275


def test_curve_pools_f1_over_queries_and_short_runs_get_a_curve() -> None:
    # one positive per query in the window: found in query a, missed in query b
    a = CaseRecord("adaptive@x", "adaptive", "", "a", binary=True, block=10)
    a.blocks = [[10, 10, 1, 0, 0]]
    b = CaseRecord("adaptive@x", "adaptive", "", "b", binary=True, block=10)
    b.blocks = [[10, 9, 0, 0, 1]]
    (point,) = learning_curve([a, b], "f1")
    assert point == (10, pytest.approx(f1(1, 0, 1)))  # pooled 2/3, not the mean of per-query 1 and 0
    short = [_blocked("adaptive@x", "a", lambda i: True, frames=40)]  # a --quick stream: blocks of 25 + 15
    assert curve_window(short) == 25 and [f for f, _ in learning_curve(short, "accuracy")] == [25, 40]


# ------------------------------------------------------------------------------ checks


def _rows(adaptive_metric: float = 0.895, adaptive_ms: float = 4.0, adaptive_j: float = 0.04) -> list[CaseSummary]:
    return [
        row("largest", "static", 0.90, 100.0, 1.0),
        row("adaptive@a", "adaptive", adaptive_metric, adaptive_ms, adaptive_j),
        row("adaptive@b", "adaptive", 0.70, 1.0, 0.01),
        row("paper@w=1", "paper", 0.85, 20.0, 0.5),
        row("routing@w=1", "routing", 0.84, 5.0, 0.05),
    ]


def test_checks_pass_on_rows_that_meet_the_claims() -> None:
    rows = _rows()
    conv = {"adaptive@a": Convergence("adaptive@a", 100, 300, 0.9, 300, -0.005, 200)}
    checks = headline_checks(rows, conv, RunFacts("accuracy", seconds=700.0, cores=2, workers=2))
    status = {c.key: c.status for c in checks}
    assert status == {"1": "PASS", "2": "PASS", "3": "MISS", "4": "PASS", "5": "INFO", "6": "INFO"}
    one = checks[0]
    assert one.data["case"] == "adaptive@a" and one.data["savings"]["latency_ms"] == pytest.approx(0.96)
    assert "-0.5 points" in one.text and "96.0% latency" in one.text and "96.0% energy" in one.text
    assert "adaptive@a (accuracy 0.895" in checks[1].text and "+4.5 points" in checks[1].text
    assert "adaptive@b: no curve" in checks[2].text  # every adaptive case needs a settled curve
    conv["adaptive@b"] = Convergence("adaptive@b", 100, 300, 0.7, 300, -0.2, 275)
    assert check_convergence(rows, conv).status == "PASS"


def test_a_run_too_short_for_the_claim_cannot_pass_check_3() -> None:
    """A 40-frame (--quick) stream settles "within 300 frames" trivially: that is no evidence."""
    rows = _rows()
    conv = {c: Convergence(c, 25, 40, 0.9, 25, 0.0, 25) for c in ("adaptive@a", "adaptive@b")}
    facts = RunFacts("accuracy", 20.0, 2, 1, full_run=False, partial_reason="partial run (40 frames per query)")
    check = check_convergence(rows, conv, facts)
    assert check.status == "INFO" and check.data["too_short"]
    assert check.text.startswith("streams of 40 frames (partial run (40 frames per query)) are too short")
    assert "not evidence" in check.text
    assert {c.key: c.status for c in headline_checks(rows, conv, facts)}["3"] == "INFO"
    full = {c: Convergence(c, 100, 300, 0.9, 200, 0.0, 200) for c in ("adaptive@a", "adaptive@b")}
    assert check_convergence(rows, full).status == "PASS"  # 300-frame streams can show it


def test_check_1_prefers_the_cheaper_of_equally_accurate_cases() -> None:
    # no case within 1 point: the most accurate is named, and of two equally accurate, the cheaper
    rows = [
        row("largest", "static", 0.90, 100.0, 1.0),
        row("adaptive@costly", "adaptive", 0.80, 50.0, 0.5),
        row("adaptive@cheap", "adaptive", 0.80, 3.0, 0.03),
    ]
    check = check_savings(rows, "accuracy")
    assert check.status == "MISS" and check.data["closest"] == "adaptive@cheap"
    assert check.data["most_accurate_at_target"] == "adaptive@cheap"
    assert "most accurate adaptive@cheap" in check.text


@pytest.mark.parametrize(
    ("rows", "key", "expected"),
    [
        (_rows(adaptive_metric=0.88), "1", "no adaptive case within tolerance"),  # 2 points below
        (_rows(adaptive_ms=6.0), "1", "94.0% latency, 96.0% energy"),  # within tolerance, saves only 94%
        (_rows(adaptive_ms=6.0), "1", "the energy part holds, not the other"),
        (_rows(adaptive_j=0.2), "1", "the latency part holds, not the other"),  # 80% of the energy saved
        (_rows(adaptive_j=0.6), "2", "paper@w=1 (accuracy 0.850, 20 ms, 0.5 J): none"),  # costs more energy
        (_rows(adaptive_metric=0.885), "4", "routing@w=1 (accuracy 0.840, 5 ms, 0.05 J): none"),  # +4.5 < 5
    ],
)
def test_checks_miss_and_say_why(rows: list[CaseSummary], key: str, expected: str) -> None:
    check = {"1": check_savings, "2": check_paper, "4": check_routing}[key](rows, "accuracy")
    assert check.status == "MISS" and expected in check.text


def test_checks_without_a_family_or_with_a_failed_case() -> None:
    rows = [r for r in _rows() if r.family != "paper"]
    assert check_paper(rows, "F1").status == "NOT RUN" and check_paper(rows, "F1").text == "paper not run"
    failed = [*rows, row("paper@w=1", "paper", None, 1.0, errors={"q": "torch missing"})]
    check = check_paper(failed, "F1")
    assert check.status == "MISS" and "no result (torch missing)" in check.text
    assert check_savings([r for r in rows if r.family != "adaptive"], "F1").status == "NOT RUN"


def test_wall_time_alone_and_across_suites() -> None:
    assert check_wall(RunFacts("f1", 2000.0, 2, 2)).status == "MISS"
    builtin = check_wall(RunFacts("f1", 700.0, 2, 2, suite="binary"))
    assert builtin.status == "INFO" and "of the 1800 s the built-in suites share" in builtin.text
    mine = check_wall(RunFacts("f1", 2000.0, 2, 2, suite="mine"))  # the claim is not about this suite
    assert mine.status == "INFO" and "not 'mine'" in mine.text and "both suites share" not in mine.text
    partial = check_wall(RunFacts("f1", 30.0, 2, 1, full_run=False, partial_reason="partial run (40 frames)"))
    assert partial.status == "INFO" and "not evidence" in partial.text

    def suite(name: str, seconds: float, full: bool = True) -> SuiteResult:
        check = check_wall(RunFacts("f1", seconds, 2, 2, full_run=full, partial_reason="partial run"))
        return SuiteResult(Path("."), {"suite": {"name": name}}, [check])

    assert combined_wall([suite("binary", 900.0), suite("open", 800.0)]).status == "PASS"
    both = combined_wall([suite("binary", 942.0), suite("open", 1217.0)])
    assert both.status == "MISS" and "= 2159 s of 1800 s" in both.text
    assert combined_wall([suite("binary", 900.0)]).status == "NOT RUN"
    assert combined_wall([suite("binary", 10.0, full=False), suite("open", 10.0)]).status == "INFO"
    # a run over a shaped link is a variant: its own column, outside the built-in wall time
    wan = suite("binary", 5000.0)
    wan.data["options"] = {"remote_link": "rtt=40ms"}
    assert wan.label == "binary, link rtt=40ms"
    assert combined_wall([suite("binary", 900.0), suite("open", 800.0), wan]).status == "PASS"


# ------------------------------------------------------------------------------ summary


def test_summary_of_a_quick_bench(write_suite: Callable[..., Path], tmp_path: Path) -> None:
    res = tmp_path / "results" / "tiny"
    args = ["bench", str(write_suite(frames=40)), "--catalog", REF, "--quick", "--workers", "1", "--quiet"]
    args += ["--no-plots", "--no-remote", "--policies", "static,routing,adaptive", "--out", str(res)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (res / "learning_curves.png").write_bytes(b"\x89PNG")  # plots are skipped here; the page links what exists
    page = tmp_path / "docs" / "BENCHMARKS.md"
    result = CliRunner().invoke(app, ["bench-summary", str(res), "--out", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    data = json.loads((res / "results.json").read_text())
    assert f"Command: `{data['command']}`" in text and "--quick" in text
    assert f"code at commit {data['environment']['commit'][:12]}" in text  # the code that measured
    assert "![tiny: learning_curves](../results/tiny/learning_curves.png)" in text  # shown, not only linked
    assert "[results.md](../results/tiny/results.md)" in text and "pareto_latency.png" not in text
    largest = next(r for r in data["rows"] if r["case"] == "largest")
    assert f"| largest | {largest['metric']:.3g} | {largest['latency_ms']:.3g} |" in text
    # the page states the same checks the results file holds, and a partial run is no timing evidence
    for check in data["headline"]["checks"]:
        assert f"- ({check['key']}) **{check['status']}** {check['claim']}: {check['text']}" in text
    assert "| (2) against paper" in text and "| NOT RUN |" in text
    assert "partial run" in text and "open not run" in text
    assert load_results(res).checks[0].to_json() == data["headline"]["checks"][0]
    with pytest.raises(ConfigError, match="at least one"):
        summary_markdown([], page)
    missing = CliRunner().invoke(app, ["bench-summary", str(tmp_path / "nope"), "--out", str(page)])
    assert missing.exit_code == 2 and "cannot read the results" in missing.output
    assert "when profiled before the cases" not in text  # no remote tier, no remote prior
    # a --no-remote run says so; it does not claim a server on loopback
    assert "in this run it runs in-process" in text and "on loopback" not in text
    assert "waits on the network" not in text
    # the short run's convergence check is no evidence either
    assert next(c for c in data["headline"]["checks"] if c["key"] == "3")["status"] in ("INFO", "NOT RUN")
    rows = [{"name": n, "latency_ms": {"mean": m}} for n, m in (("a-remote", 55.5), ("b-remote", 42.0))]
    data["options"]["remote_profile"] = {"backends": [*rows, {"name": "failed", "latency_ms": None}]}
    (res / "results.json").write_text(json.dumps(data))
    assert "a call took 42.0 to 55.5 ms on average when profiled" in summary_markdown([load_results(res)], page)


def test_the_table_says_which_half_of_a_missed_claim_holds() -> None:
    def check(status: str, held: list[str]) -> Check:
        return Check("1", "claim", status, "text", {"holds_for": held})

    assert status_cell(check("MISS", ["latency_ms"])) == "MISS (latency holds)"
    assert status_cell(check("MISS", [])) == "MISS"
    assert status_cell(check("PASS", ["latency_ms", "energy_j"])) == "PASS"
    assert status_cell(None) == "NOT RUN"


def test_the_intro_says_where_each_run_served_always_largest() -> None:
    def run(name: str, remote: bool, link: str = "") -> SuiteResult:
        return SuiteResult(Path("."), {"suite": {"name": name}, "options": {"remote": remote, "remote_link": link}})

    text = " ".join(reference_lines([run("binary", True), run("open", True), run("binary", True, "rtt=40ms")]))
    assert "in the binary and open runs on loopback it is served by `edgefmp serve`" in text
    assert "in the binary run over rtt=40ms (`--remote-link`)" in text and "in-process" not in text
    mixed = " ".join(reference_lines([run("binary", True), run("mine", False)]))
    assert "in the binary run on loopback it is served" in mixed and "in the mine run it runs in-process" in mixed


def test_summary_refuses_what_is_not_results(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"format": "edgefmp.profile", "version": 1, "backends": []}))
    with pytest.raises(ConfigError, match="an `edgefmp profile` JSON"):
        load_results(profile)
