"""A sweep's results: one versioned JSON file and a markdown summary beside it.

`build_report(run, ...)` turns the raw per-(case, query) records into suite-level rows and
every comparison the benchmark reports (savings at matched accuracy, hypervolume, fronts,
learning curves, adaptive against paper and against per-input routing, the runtime overhead
ratio); `write_report` writes `results.json`, `results.md` and, unless told not to, the plots.
The JSON keeps the records too, so a later tool can recompute anything without rerunning.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgefmp.bench.cases import LARGEST
from edgefmp.bench.metrics import (
    COSTS,
    TOLERANCE,
    CaseSummary,
    dominance,
    hypervolume,
    learning_curve,
    normalised,
    pareto,
    points,
    record_metric,
    savings_at_matched,
    settle_frame,
    static_oracle,
    summarise,
)
from edgefmp.bench.record import CaseRecord
from edgefmp.bench.runner import SweepRun
from edgefmp.bench.suite import Suite
from edgefmp.errors import ConfigError

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


def _records(run: SweepRun) -> list[CaseRecord]:
    return [CaseRecord.from_json(r) for q in run.results for r in q.records]


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
    rows = [summarise(recs, metric, n_queries) for recs in suite_level.values()]
    for q, err in query_errors.items():
        for row in rows:
            row.errors.setdefault(q, err)
            row.metric = None
    largest = next((r for r in rows if r.case == LARGEST), None)
    report: dict[str, Any] = {
        "version": RESULTS_VERSION,
        "suite": {
            "name": suite.name,
            "file": suite.source,
            "digest": suite.digest,
            "metric": metric,
            "queries": len(suite.queries),
            "queries_run": n_queries,
        },
        "command": command,
        "environment": environment,
        "catalog": catalog,
        "options": {**asdict(run.options), "workers": run.workers},
        "seconds": round(run.seconds, 2),
        "tolerance_points": 100 * TOLERANCE,
        "rows": [r.to_json() for r in rows],
        "query_errors": query_errors,
        "streams": {q.query: q.stream for q in run.results},
        "cache": {q.query: q.cache for q in run.results},
        "query_seconds": {q.query: round(q.seconds, 2) for q in run.results},
    }
    curves = {c: learning_curve(recs, metric) for c, recs in suite_level.items()}
    report["curves"] = {c: [[f, round(v, 4)] for f, v in cur] for c, cur in curves.items()}
    report["settle_frame"] = {c: settle_frame(cur) for c, cur in curves.items()}
    # The same windows minus always-largest's: the suite's corruption schedule makes every
    # policy's raw curve dip at night, which is not learning; the gap to the reference is.
    ref_curve = dict(curves.get(LARGEST, []))
    gaps = {c: [(f, v - ref_curve[f]) for f, v in cur if f in ref_curve] for c, cur in curves.items() if c != LARGEST}
    report["gap_curves"] = {c: [[f, round(v, 4)] for f, v in cur] for c, cur in gaps.items()}
    report["gap_settle_frame"] = {c: settle_frame(cur) for c, cur in gaps.items()}
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
    report["headline"] = _headline(report, rows, largest)
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


def _headline(report: dict[str, Any], rows: list[CaseSummary], largest: CaseSummary | None) -> dict[str, Any]:
    """The must-show checks, computed (never asserted): numbers and whether each holds."""
    head: dict[str, Any] = {"metric": report["suite"]["metric"]}
    if largest is None or not largest.ok:
        head["error"] = "always-largest did not complete; nothing to compare against"
        return head
    head["largest"] = {
        "metric": largest.metric,
        "latency_ms": largest.latency_ms,
        "energy_j": largest.energy_j,
        "params_m": largest.params_m,
    }
    sav = {s["family"]: s for s in report.get("savings", [])}
    ad = sav.get("adaptive")
    if ad is not None:
        s = ad["savings"]
        head["adaptive_matched"] = {
            "case": ad["case"],
            "gap_points": ad["gap_points"],
            "savings": s,
            "holds_95": bool(ad["case"]) and all((s.get(c) or 0) >= 0.95 for c in ("latency_ms", "energy_j")),
        }
    comps = report.get("comparisons", {})
    for other in ("paper", "routing"):
        comp = comps.get(f"adaptive_vs_{other}")
        if comp is None:
            continue
        lat = comp["latency_ms"]
        if other == "paper":
            head["vs_paper_dominates_every_point"] = all(x.get("dominated") for x in lat)
        else:
            deltas = [x.get("delta_points") for x in lat]
            head["vs_routing_min_delta_points"] = min((d for d in deltas if d is not None), default=None)
            head["vs_routing_holds_5"] = all(d is not None and d >= 5 for d in deltas)
    n_frames = max((int(v.get("frames", 0)) for v in report["streams"].values() if v), default=0)
    for key, name in (("settle_frame", "adaptive_settle_frame"), ("gap_settle_frame", "adaptive_gap_settle_frame")):
        settle = {c: f for c, f in report[key].items() if c.startswith("adaptive")}
        head[name] = settle
        # A curve that only meets its final value in its last window has not shown it settled.
        head[name.replace("frame", "within_300")] = {
            c: f is not None and f <= 300 and f < n_frames for c, f in settle.items()
        }
    head["overhead_ratio"] = {r.case: r.overhead_ratio for r in rows if r.family in ("adaptive", "static")}
    return head


# ------------------------------------------------------------------------------ writing


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


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
        f"{report['options']['workers']} worker(s), {report['seconds']:.0f} s.  ",
        f"Machine: {report['environment'].get('cpu')}, {report['environment'].get('cores')} cores; "
        f"energy meter: {', '.join(sorted({x for r in report['rows'] for x in r['energy_sources']})) or 'none'}.",
        "",
        f"Costs are means per frame; latency and energy include the router's own time. Savings are against "
        f"always-largest (`{LARGEST}`). Params = the paper's proxy (millions of parameters called per frame).",
        "",
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
            f"| {r['case']} | {_fmt(r['metric'])} | {_fmt(r['latency_ms'])} | {_fmt(r['router_ms'])} | "
            f"{_fmt(r['energy_j'])} | {_fmt(r['bytes'])} | {_fmt(r['params_m'])} | {_pct(saved_l)} | {_pct(saved_e)} | "
            f"{_fmt(r['overhead_ratio'])} | {notes[:160]} |"
        )
    lines += ["", "## Savings at matched accuracy", ""]
    lines += [f"Cheapest case of each family within {report['tolerance_points']:.0f} point of always-largest.", ""]
    lines += ["| family | case | gap (points) | latency | energy | network | params |", "|---|---|---|---|---|---|---|"]
    for sv in report.get("savings", []):
        sav = sv["savings"]
        lines.append(
            f"| {sv['family']} | {sv['case'] or 'none within tolerance'} | {_fmt(sv['gap_points'])} | "
            + " | ".join(_pct(sav.get(c)) for c in COSTS)
            + " |"
        )
    oracle = report.get("static_oracle")
    if oracle:
        lines += [
            "",
            f"Best static assignment per query in hindsight (within tolerance): {metric} {_fmt(oracle['metric'])}, "
            f"{_fmt(oracle['latency_ms'])} ms, {_fmt(oracle['energy_j'])} J, "
            f"{_fmt(oracle['params_m'])} M params per frame.",
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
            lines.append(f"| {fam} | " + " | ".join(_fmt(v.get(c)) for c in costs) + " |")
    lines += _comparison_lines(report)
    lines += [
        "",
        "## Learning",
        "",
        "Frame from which the windowed metric (100 frames, pooled over queries) stays within 1 point of its "
        "final value, raw and as the gap to always-largest (the corruption schedule moves every raw curve):",
        "",
        "| case | raw | gap to largest | final gap (points) |",
        "|---|---|---|---|",
    ]
    for c, f in report["settle_frame"].items():
        if c.startswith("static") or c == LARGEST:
            continue
        gap_curve = report["gap_curves"].get(c) or []
        final = f"{100 * gap_curve[-1][1]:+.1f}" if gap_curve else "-"
        g = report["gap_settle_frame"].get(c)
        lines.append(f"| {c} | {f if f is not None else '-'} | {g if g is not None else '-'} | {final} |")
    if report["query_errors"]:
        lines += ["", "## Query errors", ""] + [f"- {q}: {e}" for q, e in report["query_errors"].items()]
    return "\n".join(lines) + "\n"


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
                f"| {x['case']} | {_fmt(x['metric'])} | {_fmt(x['cost'])} | {x['best'] or '-'} | "
                f"{_fmt(x['best_metric'])} | {_fmt(x['delta_points'])} | {'yes' if x['dominated'] else 'no'} | "
                f"{x.get('cheapest') or '-'} ({_fmt(x.get('cheapest_metric'))}, {_fmt(x.get('cheapest_cost'))}) |"
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
        _atomic(out / "results.json", json.dumps(report, indent=1) + "\n"),
        _atomic(out / "results.md", markdown(report)),
    ]
    if plots:
        from edgefmp.bench.plots import plot_report

        written += plot_report(report, out)
    return written


def _atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["RESULTS_VERSION", "build_report", "markdown", "run_from_results", "write_report"]
