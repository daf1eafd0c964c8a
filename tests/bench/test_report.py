"""Reports and the CLI: results JSON, markdown, plots, the exact command, and `edgefmp bench`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(suite file, results.json) of a quick in-process bench of the tiny suite."""
    import yaml

    from tests.bench.conftest import tiny_suite_data

    root = tmp_path_factory.mktemp("quick")
    suite = root / "tiny.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_data(frames=10), sort_keys=False))
    args = ["bench", str(suite), "--catalog", REF, "--quick", "--workers", "1", "--quiet", "--no-plots"]
    args += ["--no-remote", "--policies", "static,adaptive", "--out", str(root / "res")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return suite, root / "res" / "results.json"


def _other_suite(results: Path) -> dict[str, object]:
    data: dict[str, Any] = json.loads(results.read_text())
    data["suite"]["name"] = "other"
    return data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "a JSON list, not bench results"),
        ({"version": 1, "suite": {"name": "tiny"}}, "not bench results (no 'rows', 'records'"),
        ({"format": "edgefmp.profile", "version": 1, "backends": []}, "an `edgefmp profile` JSON"),
        (_other_suite, "results of suite 'other'"),
    ],
)
def test_from_results_refuses_what_is_not_this_suites_results(
    quick_results: tuple[Path, Path], tmp_path: Path, content: object, message: str
) -> None:
    suite, results = quick_results
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content(results) if callable(content) else content))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", str(suite), "--from-results", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and message in result.output.replace("\n", " ") and "bad.json" in result.output
    assert not out.exists()  # nothing written


def test_from_results_of_another_version_of_the_suite(quick_results: tuple[Path, Path], tmp_path: Path) -> None:
    import yaml

    suite, results = quick_results
    changed = tmp_path / "tiny.yaml"
    data = yaml.safe_load(suite.read_text())
    data["defaults"]["frames"] = 11
    changed.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["bench", str(changed), "--from-results", str(results), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "made from another version of suite 'tiny'" in result.output.replace("\n", " ")
    # a comment is not a new version: the digest is of the content
    changed.write_text("# a comment\n" + suite.read_text())
    result = CliRunner().invoke(
        app, ["bench", str(changed), "--from-results", str(results), "--out", str(tmp_path / "re"), "--no-plots"]
    )
    assert result.exit_code == 0, result.output


def test_bench_checks_the_results_folder_before_any_work(write_suite: Callable[..., Path], tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file where the results folder should be")
    # the catalog does not exist either: the folder is checked first, before anything is opened
    args = ["bench", str(write_suite()), "--catalog", "nowhere.yaml", "--out", str(taken), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "cannot write the results to" in result.output
    assert "nowhere.yaml" not in result.output and taken.read_text().startswith("a file")


def test_a_failed_query_leaves_the_others_scored(write_suite: Callable[..., Path], tmp_path: Path) -> None:
    from tests.bench.conftest import PROGRAMS, tiny_suite_data

    data = tiny_suite_data(frames=10)
    data["queries"].append(  # no 6 circles fit in a frame of one large object: the stream fails
        {
            "id": "six",
            "question": "Are there exactly six circles?",
            "program": str(PROGRAMS / "count_exactly_two_circles.py"),
            "task": {"kind": "count", "object": {"shape": "circle"}, "n": 6},
            "answer": "binary",
        }
    )
    data["scene"] = {"objects": [1, 1], "scale": [0.6, 0.6]}
    path = write_suite(data)
    run = run_sweep(str(path), plan_cases(["static"]), SweepOptions(catalog=REF, workers=1, block=2))
    report = build_report(run, load_suite(path), "edgefmp bench tiny.yaml", environment(), {"name": "fake"})
    assert report["suite"]["queries_failed"] == ["six"] and "six" in report["query_errors"]
    rows = {r["case"]: r for r in report["rows"]}
    assert rows["largest"]["metric"] is not None and rows["largest"]["queries"] == 2  # over the queries that ran
    assert all(r["errors"] == {} for r in report["rows"])  # the query's error is not every case's
    text = markdown(report)
    assert text.count(report["query_errors"]["six"]) == 1 and "**Partial:** 1 of 3 queries failed (six" in text
    six = next(c for c in report["headline"]["checks"] if c["key"] == "6")
    assert six["status"] == "INFO" and "1 of 3 queries failed" in six["text"]


def test_console_table_is_whole_at_80_columns(quick_results: tuple[Path, Path]) -> None:
    from rich.console import Console

    from edgefmp.bench.commands import _print_rows

    report = json.loads(quick_results[1].read_text())
    for extra in ("", "-with-a-budget-name-too-long-for-a-table-row"):
        for r in report["rows"]:
            r["case"] = r["case"].split("-with")[0] + extra
        console = Console(width=80, record=True)
        _print_rows(report, console)
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= 80
        lines = text.splitlines()
        for r in report["rows"]:  # every case name whole on its own line: no two rows alike
            assert any(line.split() and line.split()[0] == r["case"] for line in lines), r["case"]


def test_fewer_workers_than_asked_says_why() -> None:
    from edgefmp.bench.report import workers_text
    from edgefmp.bench.runner import MAX_WORKERS, plan_workers

    n, note = plan_workers(3, 20, cores=8)
    assert n == MAX_WORKERS and note.startswith("--workers 3 cut to 2: the bench runs at most 2 workers")
    assert plan_workers(2, 20, cores=1)[1].endswith(
        "this machine has 1 core(s); more workers would contend for them and inflate every latency"
    )
    assert plan_workers(2, 1, cores=8) == (1, "")  # one query needs one worker: nothing to explain
    assert workers_text({"workers": n, "workers_note": note}) == f"2 worker(s) ({note})"
