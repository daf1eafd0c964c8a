"""Reports and the CLI: results JSON, markdown, plots, the exact command, and `edgefmp bench`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefmp.bench.cases import plan_cases
from edgefmp.bench.machine import environment
from edgefmp.bench.report import build_report, markdown, run_from_results, write_report
from edgefmp.bench.runner import SweepOptions, run_sweep
from edgefmp.bench.suite import load_suite
from edgefmp.cli import app
from tests.bench.fakes import REF


def test_report_has_every_comparison(write_suite: Callable[..., Path], tmp_path: Path) -> None:
    path = write_suite(frames=10)
    cases = plan_cases(["static", "cascade", "adaptive", "routing"], ["gap:1", "5%"], ["1"])
    run = run_sweep(str(path), cases, SweepOptions(catalog=REF, workers=1, block=2))
    report = build_report(run, load_suite(path), "edgefmp bench tiny.yaml", environment(), {"name": "fake"})
    rows = {r["case"]: r for r in report["rows"]}
    assert set(rows) >= {"largest", "static:0", "cascade", "adaptive@gap:1", "adaptive@5%", "routing@w=1"}
    assert not any(r["case"].count("-") and r["case"].startswith("static:") for r in report["rows"])  # per query only
    assert report["static_per_query"]["red-circle"]
    assert report["suite"]["metric"] == "accuracy" and report["command"] == "edgefmp bench tiny.yaml"
    assert {"adaptive_vs_routing", "adaptive_vs_cascade"} <= set(report["comparisons"])
    assert {s["family"] for s in report["savings"]} >= {"adaptive", "static"}
    assert report["hypervolume"]["adaptive"]["latency_ms"] >= 0
    checks = {c["key"]: c for c in report["headline"]["checks"]}
    assert list(checks) == ["1", "2", "3", "4", "5", "6"] and "largest" in report["headline"]
    assert checks["2"]["status"] == "NOT RUN" and checks["5"]["status"] == "INFO"  # no paper cases in this run
    assert {c["status"] for c in checks.values()} <= {"PASS", "MISS", "INFO", "NOT RUN"}
    assert set(report["convergence"]) == set(report["curves"]) and report["curve_window"] > 0
    assert rows["largest"]["params_m"] > 0 and rows["largest"]["energy_sources"]
    text = markdown(report)
    assert "| largest |" in text and "## Savings at matched accuracy" in text
    assert "## Headline checks" in text and "- (4) **" in text and "## Learning" in text
    written = write_report(report, tmp_path / "out")
    names = {p.name for p in written}
    assert {
        "results.json",
        "results.md",
        "pareto_latency.png",
        "learning_curves.png",
        "backend_mix.png",
        "backend_mix_sites.png",
    } <= names
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert again["version"] == 1 and len(again["records"]) == len(report["records"])
    assert set(report["gap_curves"]) == {c for c in report["curves"] if c != "largest"}
    rebuilt = build_report(run_from_results(again), load_suite(path), again["command"], again["environment"], {})
    assert [r["metric"] for r in rebuilt["rows"]] == [r["metric"] for r in report["rows"]]


def test_cli_bench_writes_results_with_the_command(write_suite: Callable[..., Path], tmp_path: Path) -> None:
    path = write_suite(frames=10)
    out = tmp_path / "res"
    args = [
        "bench",
        str(path),
        "--catalog",
        "py-placeholder",
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        "--no-plots",
        "--policies",
        "static,paper,adaptive",
        "--budgets",
        "gap:1",
        "--weights",
        "1",
        "--paper-resolution",
        "8",
        "--paper-width",
        "4",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "py-placeholder" in result.output  # a missing catalog is a clean error
    args[3] = REF
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert report["command"].startswith("edgefmp bench ") and "--policies static,paper,adaptive" in report["command"]
    rows = {r["case"]: r for r in report["rows"]}
    assert rows["paper@w=1"]["errors"] == {} and rows["paper@w=1"]["router_ms"] > 0


def test_cli_bench_bad_budget_is_a_clean_error(write_suite: Callable[..., Path]) -> None:
    result = CliRunner().invoke(app, ["bench", str(write_suite()), "--catalog", REF, "--budgets", "soon"])
    assert result.exit_code == 2 and "budget 'soon'" in result.output


def test_the_environment_names_the_code_that_measured() -> None:
    import subprocess

    from edgefmp.bench.machine import source_commit

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout (an installed package has no commit to name)")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    commit = source_commit()
    assert commit is not None and commit.split("+")[0] == head and len(head) == 40
    assert environment()["commit"] == commit
