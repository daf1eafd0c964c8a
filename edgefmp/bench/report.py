"""A sweep's results: one versioned JSON file and a markdown summary beside it.

`build_report(run, ...)` turns the raw per-(case, query) records into suite-level rows and
every comparison the benchmark reports (savings at matched accuracy, hypervolume, fronts,
learning curves and when they settle, adaptive against paper and against per-input routing,
the runtime overhead ratio, and the headline checks: the benchmark issue's claims evaluated
from the rows, metrics.headline_checks); `write_report` writes `results.json`, `results.md`
and, unless told not to, the plots.
The JSON keeps the records too, so a later tool can recompute anything without rerunning.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgefmp.bench.cases import LARGEST
from edgefmp.bench.metrics import (
    COSTS,
    TOLERANCE,
    CaseSummary,
    Check,
    Convergence,
    RunFacts,
    convergence,
    curve_window,
    dominance,
    gap_curve,
    headline_checks,
    hypervolume,
    learning_curve,
    normalised,
    pareto,
    pct,
    points,
    record_metric,
    savings_at_matched,
    static_oracle,
    summarise,
)
from edgefmp.bench.record import CaseRecord
from edgefmp.bench.runner import SweepRun
from edgefmp.bench.suite import DIGEST_OF, Suite
from edgefmp.errors import ConfigError
from edgefmp.files import write_text_atomic

log = logging.getLogger(__name__)

RESULTS_VERSION = 1


def run_from_results(data: dict[str, Any]) -> SweepRun:
    """The sweep a results file recorded, so its report can be rebuilt (by newer report code)
    without running anything again."""
    from edgefmp.bench.execute import QueryResult
    from edgefmp.bench.runner import SweepOptions

    if data.get("version") != RESULTS_VERSION:
        raise ConfigError(f"results version {data.get('version')!r}; this edgefmp reads {RESULTS_VERSION}")
    by_query: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in data.get("records", []):
        by_query[r["query"]].append(r)
    queries = list(dict.fromkeys([*data.get("streams", {}), *by_query]))
    options = {k: v for k, v in data["options"].items() if k in SweepOptions.__dataclass_fields__}
    run = SweepRun(
        suite_path=data["suite"]["file"], cases=[], options=SweepOptions(**options), workers=data["options"]["workers"]
    )
    run.seconds = float(data.get("seconds", 0.0))
    run.workers_note = str(data["options"].get("workers_note") or "")
    run.results = [
        QueryResult(
            q,
            records=by_query.get(q, []),
            error=data.get("query_errors", {}).get(q),
            stream=data.get("streams", {}).get(q) or {},
            cache=data.get("cache", {}).get(q) or {},
            seconds=float(data.get("query_seconds", {}).get(q, 0.0)),
        )
        for q in queries
    ]
    return run


RESULTS_KEYS: tuple[str, ...] = ("version", "suite", "rows", "records", "options", "command", "environment", "catalog")


def check_results(data: Any, source: str | Path) -> dict[str, Any]:
    """`data`, parsed from the JSON file `source`, if it is an `edgefmp bench` results object;
    else a ConfigError that names the file, says what it holds and what was expected."""
    from edgefmp.bench.profile import PROFILE_FORMAT

    expected = "expected the results.json that `edgefmp bench` writes"
    if isinstance(data, dict) and data.get("format") == PROFILE_FORMAT:
        raise ConfigError(f"{source}: an `edgefmp profile` JSON (a cost prior), not bench results; {expected}")
    if not isinstance(data, dict):
        kind = {list: "list", str: "string", int: "number", float: "number"}.get(type(data), type(data).__name__)
        raise ConfigError(f"{source}: a JSON {kind}, not bench results; {expected}")
    missing = [k for k in RESULTS_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{source}: not bench results (no {', '.join(repr(k) for k in missing)}); {expected}")
    if data.get("version") != RESULTS_VERSION:
        raise ConfigError(f"{source}: results version {data.get('version')!r}; this edgefmp reads {RESULTS_VERSION}")
    if not isinstance(data["suite"], dict) or not isinstance(data["records"], list):
        raise ConfigError(f"{source}: not bench results ('suite' is not a mapping or 'records' not a list); {expected}")
    return data


def check_same_suite(data: dict[str, Any], suite: Suite, source: str | Path) -> None:
    """A ConfigError unless the results `data` (from `source`) were made from `suite`: another
    suite is named as such; the same suite in another version says so with both digests.

    The digest is of the suite's validated content (`Suite.digest`: comments and layout do not
    count). Results written before it (no `digest_of`) hold a digest of the file's text, which
    an edited comment changes: for those the suite must still have the same metric, the same
    queries and, per query, the same frame, positive and lookalike counts."""
    theirs = data["suite"]
    if theirs.get("name") != suite.name:
        raise ConfigError(
            f"{source}: results of suite {theirs.get('name')!r} ({theirs.get('file')}), not of {suite.source} "
            f"(suite {suite.name!r}); give that suite's file, or results of this suite"
        )
    if theirs.get("digest_of") == DIGEST_OF:
        if theirs.get("digest") != suite.digest:
            raise ConfigError(
                f"{source}: made from another version of suite {suite.name!r} (digest {theirs.get('digest')} in the "
                f"results, {suite.digest} for {suite.source}); rerun the bench, or give the suite file it was made from"
            )
        return
    if theirs.get("digest") == suite.text_digest:
        return
    differs = _legacy_differences(data, suite)
    if differs:
        raise ConfigError(
            f"{source}: made from another version of suite {suite.name!r} ({'; '.join(differs[:3])}); rerun "
            "the bench, or give the suite file it was made from"
        )
    log.info(
        "%s: an older results file (digest of the file's text); %s has its queries and streams", source, suite.source
    )


def _legacy_differences(data: dict[str, Any], suite: Suite) -> list[str]:
    """What differs between a suite and the one older results (no content digest) came from,
    as far as the results tell: metric, queries, and each full stream's frame counts."""
    from edgefmp.bench.streams import kind_counts

    theirs = data["suite"]
    out = []
    if theirs.get("metric") != suite.metric:
        out.append(f"metric {theirs.get('metric')} there, {suite.metric} here")
    if theirs.get("queries") != len(suite.queries):
        out.append(f"{theirs.get('queries')} queries there, {len(suite.queries)} here")
    ids = {q.id: q for q in suite.queries}
    full = data.get("options", {}).get("max_frames") is None
    for qid, stream in (data.get("streams") or {}).items():
        q = ids.get(qid)
        if q is None:
            out.append(f"no query {qid!r} here")
        elif full and stream and stream.get("frames") is not None:
            pos, look = kind_counts(q)
            here = (q.frames, pos, look)
            there = (stream.get("frames"), stream.get("positives"), stream.get("lookalikes"))
            if here != there:
                out.append(f"{qid}: frames, positives, lookalikes {there} there, {here} here")
    return out


def _records(run: SweepRun) -> list[CaseRecord]:
    """The records of the queries that ran: a query whose stream or program failed is left
    out of every case alike (its error is listed once), so rows still compare like with like."""
    return [CaseRecord.from_json(r) for q in run.results if not q.error for r in q.records]


def build_report(
    run: SweepRun,
    suite: Suite,
    command: str,
    environment: dict[str, Any],
    catalog: dict[str, Any],
) -> dict[str, Any]:
    """Everything the results file holds (see the module docstring)."""
    metric = suite.metric
    records = _records(run)
    n_queries = len(run.results)
    by_case: dict[str, list[CaseRecord]] = defaultdict(list)
    for r in records:
        by_case[r.case].append(r)
    query_errors = {q.query: q.error for q in run.results if q.error}
    suite_level = {c: recs for c, recs in by_case.items() if all(r.assignment is None for r in recs)}
    # Every row is over the queries that ran (a failed query is missing from all cases alike);
    # the report says so once (`queries_failed`), not in every row.
    rows = [summarise(recs, metric, n_queries - len(query_errors)) for recs in suite_level.values()]
    largest = next((r for r in rows if r.case == LARGEST), None)
    report: dict[str, Any] = {
        "version": RESULTS_VERSION,
        "suite": {
            "name": suite.name,
            "file": suite.source,
            "digest": suite.digest,
            "digest_of": DIGEST_OF,
            "metric": metric,
            "queries": len(suite.queries),
            "queries_run": n_queries,
            "queries_failed": sorted(query_errors),
        },
        "command": command,
        "environment": environment,
        "catalog": catalog,
        "options": {**asdict(run.options), "workers": run.workers, "workers_note": run.workers_note},
        "seconds": round(run.seconds, 2),
        "tolerance_points": 100 * TOLERANCE,
        "rows": [r.to_json() for r in rows],
        "query_errors": query_errors,
        "streams": {q.query: q.stream for q in run.results},
        "cache": {q.query: q.cache for q in run.results},
        "query_seconds": {q.query: round(q.seconds, 2) for q in run.results},
    }
    curves, conv = _curves(suite_level, metric)
    report["curve_window"] = next(iter(conv.values())).window if conv else 0
    report["curves"] = {c: [[f, round(v, 4)] for f, v in cur] for c, cur in curves.items()}
    # The same windows minus always-largest's: the suite's corruption schedule makes every
    # policy's raw curve dip at night, which is not learning; the gap to the reference is.
    ref_curve = curves.get(LARGEST, [])
    report["gap_curves"] = {
        c: [[f, round(v, 4)] for f, v in gap_curve(cur, ref_curve)] for c, cur in curves.items() if c != LARGEST
    }
    report["convergence"] = {c: cv.to_json() for c, cv in conv.items()}
    report["static_per_query"] = _static_per_query(records, metric)
    report["static_oracle"] = static_oracle(records, metric)
    if largest is not None and largest.ok:
        report["largest"] = largest.to_json()
        report["savings"] = [asdict(s) for s in savings_at_matched(rows, largest)]
        report["hypervolume"] = _hypervolumes(rows, largest)
        report["fronts"] = {
            c: [asdict(p) for p in pareto(points(rows, c))] for c in COSTS if (largest.cost(c) or 0) > 0
        }
    report["comparisons"] = _comparisons(rows)
    report["overhead"] = _overhead(rows)
    report["headline"] = _headline(report, rows, largest, headline_checks(rows, conv, run_facts(report)))
    report["records"] = [r.to_json() for r in records]
    return report


def _static_per_query(records: list[CaseRecord], metric: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.family != "static" or r.error is not None or not r.frames:
            continue
        n = r.frames
        out[r.query].append(
            {
                "case": r.case,
                "assignment": r.assignment,
                "metric": round(record_metric(r, metric), 4),
                "latency_ms": round((r.latency_ms + r.router_ms) / n, 3),
                "energy_j": round(r.energy_j / n, 5),
                "params_m": round(r.params_m / n, 4),
            }
        )
    return dict(out)


def _hypervolumes(rows: list[CaseSummary], largest: CaseSummary) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for fam in dict.fromkeys(r.family for r in rows):
        fam_rows = [r for r in rows if r.family == fam]
        out[fam] = {}
        for c in COSTS:
            scale = largest.cost(c) or 0.0
            if scale > 0:
                out[fam][c] = round(hypervolume(normalised(points(fam_rows, c), scale)), 4)
    return out


def _comparisons(rows: list[CaseSummary]) -> dict[str, Any]:
    adaptive = [r for r in rows if r.family == "adaptive"]
    out: dict[str, Any] = {}
    for other in ("paper", "routing", "cascade"):
        theirs = [r for r in rows if r.family == other]
        if adaptive and theirs:
            out[f"adaptive_vs_{other}"] = {c: dominance(adaptive, theirs, c) for c in ("latency_ms", "energy_j")}
    return out


def _overhead(rows: list[CaseSummary]) -> dict[str, Any]:
    return {
        "per_case": {r.case: None if r.overhead_ratio is None else round(r.overhead_ratio, 4) for r in rows},
        "router_ms_per_frame": {r.case: None if r.router_ms is None else round(r.router_ms, 4) for r in rows},
    }


def _curves(
    by_case: dict[str, list[CaseRecord]], metric: str
) -> tuple[dict[str, list[tuple[int, float]]], dict[str, Convergence]]:
    """Every suite-level case's learning curve and its convergence (metrics.Convergence)."""
    window = curve_window([r for recs in by_case.values() for r in recs])
    curves = {c: learning_curve(recs, metric) for c, recs in by_case.items()}
    return curves, convergence(curves, window)


def run_facts(report: dict[str, Any]) -> RunFacts:
    """What the wall-time check needs from a report (or a results file): a run over fewer
    queries or frames than the suite's (`--quick`, `--queries`, `--max-frames`) is no evidence
    for the time a full sweep takes."""
    opts, suite = report.get("options", {}), report["suite"]
    reasons = []
    if opts.get("max_frames") is not None:
        reasons.append(f"{opts['max_frames']} frames per query")
    if suite.get("queries_run") != suite.get("queries"):
        reasons.append(f"{suite.get('queries_run')} of {suite.get('queries')} queries")
    failed = suite.get("queries_failed") or sorted(report.get("query_errors") or {})
    if failed:
        reasons.append(f"{len(failed)} of {suite.get('queries_run')} queries failed")
    return RunFacts(
        suite=str(suite.get("name") or ""),
        metric=suite["metric"],
        seconds=float(report.get("seconds", 0.0)),
        cores=report.get("environment", {}).get("cores"),
        workers=opts.get("workers"),
        full_run=not reasons,
        partial_reason="partial run (" + ", ".join(reasons) + ")" if reasons else "",
    )


def _headline(
    report: dict[str, Any], rows: list[CaseSummary], largest: CaseSummary | None, checks: list[Check]
) -> dict[str, Any]:
    """The must-show checks, computed (never asserted): numbers and whether each holds."""
    head: dict[str, Any] = {"metric": report["suite"]["metric"], "checks": [c.to_json() for c in checks]}
    if largest is not None and largest.ok:
        head["largest"] = {
            "metric": largest.metric,
            "latency_ms": largest.latency_ms,
            "energy_j": largest.energy_j,
            "params_m": largest.params_m,
        }
    return head


def headline_from_results(data: dict[str, Any]) -> tuple[list[Check], dict[str, Convergence]]:
    """The headline checks and convergence of a results file, recomputed from its rows and
    records with this code (so a summary of an older file states what these definitions say)."""
    rows = [CaseSummary(**r) for r in data["rows"]]
    by_case: dict[str, list[CaseRecord]] = defaultdict(list)
    failed = set(data.get("query_errors") or {})
    for r in data.get("records", []):
        if r.get("assignment") is None and r.get("query") not in failed:
            by_case[r["case"]].append(CaseRecord.from_json(r))
    suite_rows = {r.case for r in rows}
    _, conv = _curves({c: recs for c, recs in by_case.items() if c in suite_rows}, data["suite"]["metric"])
    return headline_checks(rows, conv, run_facts(data)), conv


# ------------------------------------------------------------------------------ writing


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown page (the table BENCHMARKS.md links to)."""
    s = report["suite"]
    metric = "F1" if s["metric"] == "f1" else "accuracy"
    largest = report.get("largest") or {}
    lines = [
        f"# Bench: {s['name']} ({s['queries_run']} of {s['queries']} queries, metric {metric})",
        "",
        f"Command: `{report['command']}`  ",
        f"Suite digest {s['digest']}, catalog `{report['catalog'].get('name')}` ({report['catalog'].get('path')}), "
        f"{workers_text(report['options'])}, {report['seconds']:.0f} s.  ",
        f"Machine: {report['environment'].get('cpu')}, {report['environment'].get('cores')} cores; "
        f"energy meter: {', '.join(sorted({x for r in report['rows'] for x in r['energy_sources']})) or 'none'}.",
        "",
        f"Costs are means per frame; latency and energy include the router's own time. Savings are against "
        f"always-largest (`{LARGEST}`). Params = the paper's proxy (millions of parameters called per frame).",
        "",
        *partial_lines(report),
        f"| case | {metric} | lat ms | router ms | energy J | net B | params M | lat saved | energy saved "
        "| overhead | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        saved_l = saved_e = None
        if r["metric"] is not None and largest:
            if largest.get("latency_ms") and r["latency_ms"] is not None:
                saved_l = 1 - r["latency_ms"] / largest["latency_ms"]
            if largest.get("energy_j") and r["energy_j"] is not None:
                saved_e = 1 - r["energy_j"] / largest["energy_j"]
        notes = "; ".join(f"{q}: {e}" for q, e in list(r["errors"].items())[:2])
        if r["failed_frames"]:
            notes = (notes + "; " if notes else "") + f"{r['failed_frames']} failed frames"
        lines.append(
            f"| {r['case']} | {fmt(r['metric'])} | {fmt(r['latency_ms'])} | {fmt(r['router_ms'])} | "
            f"{fmt(r['energy_j'])} | {fmt(r['bytes'])} | {fmt(r['params_m'])} | {pct(saved_l)} | {pct(saved_e)} | "
            f"{fmt(r['overhead_ratio'])} | {notes[:160]} |"
        )
    lines += checks_lines(report.get("headline", {}).get("checks", []))
    lines += ["", "## Savings at matched accuracy", ""]
    lines += [f"Cheapest case of each family within {report['tolerance_points']:.0f} point of always-largest.", ""]
    lines += ["| family | case | gap (points) | latency | energy | network | params |", "|---|---|---|---|---|---|---|"]
    for sv in report.get("savings", []):
        sav = sv["savings"]
        lines.append(
            f"| {sv['family']} | {sv['case'] or 'none within tolerance'} | {fmt(sv['gap_points'])} | "
            + " | ".join(pct(sav.get(c)) for c in COSTS)
            + " |"
        )
    oracle = report.get("static_oracle")
    if oracle:
        lines += [
            "",
            f"Best static assignment per query in hindsight (within tolerance): {metric} {fmt(oracle['metric'])}, "
            f"{fmt(oracle['latency_ms'])} ms, {fmt(oracle['energy_j'])} J, "
            f"{fmt(oracle['params_m'])} M params per frame.",
        ]
    hv = report.get("hypervolume")
    if hv:
        lines += [
            "",
            "## Hypervolume",
            "",
            "Cost normalised by always-largest's; reference (1.1, 0); higher is better.",
            "",
        ]
        costs = [c for c in COSTS if any(c in v for v in hv.values())]
        lines += ["| family | " + " | ".join(costs) + " |", "|---" * (len(costs) + 1) + "|"]
        for fam, v in hv.items():
            lines.append(f"| {fam} | " + " | ".join(fmt(v.get(c)) for c in costs) + " |")
    lines += _comparison_lines(report)
    lines += learning_lines(report.get("convergence", {}), report.get("curve_window", 0))
    if report["query_errors"]:
        lines += ["", "## Query errors", ""] + [f"- {q}: {e}" for q, e in report["query_errors"].items()]
    return "\n".join(lines) + "\n"


def workers_text(options: dict[str, Any]) -> str:
    """ "2 worker(s)", and why when fewer ran than `--workers` asked for."""
    note = options.get("workers_note")
    return f"{options.get('workers')} worker(s)" + (f" ({note})" if note else "")


def partial_lines(report: dict[str, Any]) -> list[str]:
    """A warning above the table when some queries failed: every row is over the others."""
    failed = report["suite"].get("queries_failed") or []
    if not failed:
        return []
    ran = report["suite"]["queries_run"] - len(failed)
    return [
        f"**Partial:** {len(failed)} of {report['suite']['queries_run']} queries failed ({', '.join(failed)}; "
        f"errors under Query errors); every row's metric and costs are over the other {ran}.",
        "",
    ]


def checks_lines(checks: list[dict[str, Any]], level: str = "##") -> list[str]:
    """The headline checks as a markdown section: one item per claim, status and measured numbers."""
    if not checks:
        return []
    out = [
        "",
        f"{level} Headline checks",
        "",
        "The benchmark issue's claims, computed from the rows above (PASS / MISS where the claim has a threshold, "
        "INFO where it asks for a number, NOT RUN where a family is missing).",
        "",
    ]
    for c in checks:
        out.append(f"- ({c['key']}) **{c['status']}** {c['claim']}: {c['text']}")
    return out


def learning_lines(conv: dict[str, Any], window: int, level: str = "##") -> list[str]:
    """The convergence table (metrics.Convergence) of the learned cases."""
    rows = [cv for c, cv in conv.items() if not c.startswith("static") and c != LARGEST]
    if not rows:
        return []
    out = [
        "",
        f"{level} Learning",
        "",
        f"Frame (counted from each stream's start) from which the metric of {window}-frame windows, pooled over "
        "queries by frame index, stays within 1 point of its final (last-window) value: as the gap to "
        "always-largest on the same frames (the corruption schedule moves every raw curve, the reference's too) "
        "and raw. 'confirmed' = a later window agreed (a value met only in the last window shows nothing).",
        "",
        "| case | gap settles at | raw settles at | final gap (points) | final value | frames | confirmed |",
        "|---|---|---|---|---|---|---|",
    ]
    for cv in rows:
        final_gap = "-" if cv["final_gap"] is None else f"{100 * cv['final_gap']:+.1f}"
        out.append(
            f"| {cv['case']} | {fmt(cv['gap_settle_frame'])} | {fmt(cv['settle_frame'])} | {final_gap} | "
            f"{fmt(cv['final'])} | {cv['frames']} | {'yes' if cv['confirmed'] else 'no'} |"
        )
    return out


def _comparison_lines(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, comp in report.get("comparisons", {}).items():
        other = key.split("_vs_")[1]
        out += [
            "",
            f"## adaptive against {other}",
            "",
            f"For each {other} case: the most accurate adaptive case at no more latency (router included).",
            "",
            f"| {other} case | metric | lat ms | best adaptive at <= lat | its metric | delta (points) | dominated "
            "| cheapest adaptive (metric, lat ms) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for x in comp["latency_ms"]:
            if "error" in x:
                out.append(f"| {x['case']} | error: {x['error'][:80]} | | | | | | |")
                continue
            out.append(
                f"| {x['case']} | {fmt(x['metric'])} | {fmt(x['cost'])} | {x['best'] or '-'} | "
                f"{fmt(x['best_metric'])} | {fmt(x['delta_points'])} | {'yes' if x['dominated'] else 'no'} | "
                f"{x.get('cheapest') or '-'} ({fmt(x.get('cheapest_metric'))}, {fmt(x.get('cheapest_cost'))}) |"
            )
    return out


def write_report(report: dict[str, Any], out_dir: str | Path, plots: bool = True) -> list[Path]:
    """Write results.json, results.md and the plots to `out_dir`; returns the paths written."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the results folder {out}: {exc.strerror or exc}") from exc
    written = [
        write_text_atomic(out / "results.json", json.dumps(report, indent=1) + "\n", "the results"),
        write_text_atomic(out / "results.md", markdown(report), "the results table"),
    ]
    if plots:
        from edgefmp.bench.plots import plot_report

        written += plot_report(report, out)
    return written


__all__ = [
    "RESULTS_KEYS",
    "RESULTS_VERSION",
    "build_report",
    "check_results",
    "check_same_suite",
    "checks_lines",
    "headline_from_results",
    "learning_lines",
    "markdown",
    "partial_lines",
    "run_facts",
    "run_from_results",
    "workers_text",
    "write_report",
]
