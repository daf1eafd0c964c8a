"""`BENCHMARKS.md`: one markdown page summarising the results folders of several sweeps.

Each folder holds a `results.json` written by `edgefmp bench` (report.py). The page gives, per
suite, the command that produced it, the machine, the wall time, the main table (metric and
cost per frame, savings against always-largest), the headline checks and links to the plots;
above them, every suite's check statuses side by side and the wall-time check of the built-in
suites together (the claim bounds their sum, which no single results file can check).

Everything on the page is read or recomputed from the JSON files: the headline checks and the
convergence are recomputed from each file's rows and records with this version's definitions
(`report.headline_from_results`), so an older results file is summarised as these definitions
judge it, and the page never states a number its files do not hold.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefmp.bench.cases import LARGEST
from edgefmp.bench.metrics import (
    BUILT_IN_SUITES,
    INFO,
    MISS,
    NOT_RUN,
    PASS,
    WALL_BUDGET_S,
    Check,
    Convergence,
    held_parts,
    pct,
    ratio,
)
from edgefmp.bench.report import (
    check_results,
    checks_lines,
    fmt,
    headline_from_results,
    learning_lines,
    partial_lines,
    workers_text,
)
from edgefmp.errors import ConfigError
from edgefmp.files import write_text_atomic

log = logging.getLogger(__name__)

# Shown on the page; the others are linked.
SHOWN_PLOTS: tuple[str, ...] = ("pareto_latency.png", "learning_curves.png", "backend_mix.png")
PLOTS: tuple[str, ...] = (
    "pareto_latency.png",
    "pareto_energy.png",
    "pareto_params.png",
    "pareto_bytes.png",
    "learning_curves.png",
    "backend_mix.png",
    "backend_mix_sites.png",
)


@dataclass
class SuiteResult:
    """One results folder: its JSON, and the checks and convergence recomputed from it."""

    folder: Path
    data: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    convergence: dict[str, Convergence] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.data["suite"]["name"])

    @property
    def link(self) -> str:
        """The shaped link to the remote tier (`--remote-link`); "" for the built-in loopback run."""
        return str(self.data.get("options", {}).get("remote_link") or "")

    @property
    def label(self) -> str:
        return f"{self.name}, link {self.link}" if self.link else self.name


def load_results(folder: str | Path) -> SuiteResult:
    """Read `folder/results.json` (or a results.json path) and recompute its headline checks."""
    path = Path(folder)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the results: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}") from exc
    check_results(data, path)
    try:
        checks, conv = headline_from_results(data)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a complete results file ({type(exc).__name__}: {exc})") from exc
    return SuiteResult(path.parent, data, checks, conv)


def combined_wall(results: Sequence[SuiteResult], budget_s: float = WALL_BUDGET_S) -> Check:
    """Claim (6) over the suites given: the sum of the sweeps' wall times against the budget.
    PASS needs both built-in suites, each a full run on at most 2 cores; a sum over the budget
    is a MISS whatever else holds."""
    claim = f"bench wall time: both built-in suites within {budget_s / 60:.0f} min on 2 cores"
    # The built-in configuration only: runs over a shaped link (`--remote-link`) are variants.
    facts = {r.name: r.checks[-1].data if r.checks and r.checks[-1].key == "6" else {} for r in results if not r.link}
    parts = [
        f"{name} {f.get('seconds', 0.0):.0f} s ({f.get('cores') or '?'} cores"
        + ("" if f.get("full_run", False) else ", partial run")
        + ")"
        for name, f in facts.items()
    ]
    total = sum(float(f.get("seconds", 0.0)) for f in facts.values())
    text = " + ".join(parts) + f" = {total:.0f} s of {budget_s:.0f} s"
    data = {"seconds": total, "budget_s": budget_s, "suites": facts}
    missing = [s for s in BUILT_IN_SUITES if s not in facts]
    if total > budget_s:
        return Check("6", claim, MISS, text, data)
    if missing:
        return Check("6", claim, NOT_RUN, text + f"; {', '.join(missing)} not run", data)
    reasons = [f"{n} is a partial run" for n, f in facts.items() if n in BUILT_IN_SUITES and not f.get("full_run")]
    reasons += [f"{n} ran on {f['cores']} cores" for n, f in facts.items() if (f.get("cores") or 0) > 2]
    if reasons:
        return Check("6", claim, INFO, text + "; not evidence: " + ", ".join(reasons), data)
    return Check("6", claim, PASS, text, data)


def _saved(mine: float | None, ref: float | None) -> str:
    r = ratio(mine, ref)
    return pct(None if r is None else 1.0 - r)


def _link(target: Path, page_dir: Path) -> str:
    """`target` relative to the folder the page is written in, with forward slashes."""
    return Path(os.path.relpath(target.resolve(), page_dir.resolve())).as_posix()


def suite_section(result: SuiteResult, page_dir: Path) -> list[str]:
    """One suite's part of the page."""
    d = result.data
    s, env, opts = d["suite"], d.get("environment", {}), d.get("options", {})
    metric = "F1" if s["metric"] == "f1" else "accuracy"
    rows = d["rows"]
    largest = next((r for r in rows if r["case"] == LARGEST and r["metric"] is not None), None)
    meters = sorted({m for r in rows for m in r.get("energy_sources", [])}) or ["none"]
    versions = env.get("versions", {})
    lines = [
        "",
        f"## {result.label} ({metric}, {s['queries_run']} of {s['queries']} queries)",
        "",
        f"Command: `{d['command']}`  ",
        f"Machine: {env.get('cpu')}, {env.get('cores')} cores, {env.get('platform')}; Python {env.get('python')}, "
        f"onnxruntime {versions.get('onnxruntime', '?')}; energy meter: {', '.join(meters)}"
        + (f"; code at commit {env['commit'][:12]}" if env.get("commit") else "")
        + ".  ",
        f"Wall time: {float(d.get('seconds', 0.0)):.0f} s with {workers_text(opts)} "
        f"and {opts.get('threads')} thread(s) each. Catalog `{d.get('catalog', {}).get('name')}`, "
        f"suite digest {s.get('digest')}.  ",
        f"Remote tier: {d.get('catalog', {}).get('remote_tier') or 'none'}{_remote_costs(opts)}.  ",
        f"Full results: [results.md]({_link(result.folder / 'results.md', page_dir)}), "
        f"[results.json]({_link(result.folder / 'results.json', page_dir)}).",
        "",
        "Costs are means per frame (latency and energy include the router's own time); savings are against "
        f"always-largest (`{LARGEST}`); params = the paper's proxy (millions of parameters called per frame).",
        "",
        *partial_lines(d),
        f"| case | {metric} | latency ms | energy J | params M | latency saved | energy saved | params saved "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ref = largest or {}
    for r in rows:
        ok = r["metric"] is not None
        lines.append(
            f"| {r['case']} | {fmt(r['metric'])} | {fmt(r['latency_ms'])} | {fmt(r['energy_j'])} | "
            f"{fmt(r['params_m'])} | "
            + " | ".join(
                _saved(r[c], ref.get(c)) if ok and largest else "-" for c in ("latency_ms", "energy_j", "params_m")
            )
            + f" | {len(r['errors']) or ''} |"
        )
    lines += checks_lines([c.to_json() for c in result.checks], level="###")
    window = next(iter(result.convergence.values())).window if result.convergence else 0
    lines += learning_lines({c: cv.to_json() for c, cv in result.convergence.items()}, window, level="###")
    plots = [p for p in PLOTS if (result.folder / p).is_file()]
    if plots:
        lines += ["", "### Plots", ""]
        for p in plots:
            link = _link(result.folder / p, page_dir)
            lines += ["", f"![{s['name']}: {p[:-4]}]({link})", ""] if p in SHOWN_PLOTS else [f"- [{p}]({link})"]
    return lines


def summary_markdown(results: Sequence[SuiteResult], page: Path, command: str | None = None) -> str:
    """The whole page for `results`, with links relative to where `page` is written."""
    if not results:
        raise ConfigError("bench-summary needs at least one results folder")
    page_dir = page.parent
    names = [r.label for r in results]
    lines = [
        "# Benchmarks",
        "",
        "Generated from the `results.json` of each suite below"
        + (f" by `{command}`" if command else "")
        + "; every number is read or recomputed from those files (regenerate this page, do not edit it). "
        "How the benchmark works and what each check means: docs/BENCH.md.",
        "",
        *reference_lines(results),
        "## Headline checks",
        "",
        "| claim | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    keys = list(dict.fromkeys(c.key for r in results for c in r.checks))
    for key in keys:
        claim = next(c.claim for r in results for c in r.checks if c.key == key)
        cells = [status_cell(next((c for c in r.checks if c.key == key), None)) for r in results]
        lines.append(f"| ({key}) {claim} | " + " | ".join(cells) + " |")
    wall = combined_wall(results)
    lines += [
        "",
        f"All suites together, ({wall.key}) **{wall.status}** {wall.claim}: {wall.text}.",
        "",
        "Each suite's section gives the numbers behind its statuses.",
    ]
    for r in results:
        lines += suite_section(r, page_dir)
    return "\n".join(lines) + "\n"


def remote_tier(result: SuiteResult) -> str:
    """Where a run's always-largest calls went, from its options: "loopback", "link <spec>"
    (`--remote-link`), or "in-process" (`--no-remote`, or a catalog that cannot be served)."""
    opts = result.data.get("options", {})
    if not opts.get("remote"):
        return "in-process"
    return f"link {result.link}" if result.link else "loopback"


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reference_lines(results: Sequence[SuiteResult]) -> list[str]:
    """The intro's account of always-largest and of energy, true of the runs on the page: each
    run's options say whether its largest models ran behind `edgefmp serve` (on loopback or a
    shaped link) or in-process."""
    where: dict[str, list[str]] = {}
    for r in results:
        where.setdefault(remote_tier(r), []).append(r.name)

    def runs(tier: str) -> str:
        if len(where) == 1:
            return "in every run" if len(results) > 1 else "in this run"
        names = where[tier]
        return f"in the {_and(names)} run{'s' if len(names) > 1 else ''}"

    parts = []
    if "loopback" in where:
        parts.append(
            f"{runs('loopback')} on loopback it is served by `edgefmp serve` (the bench's remote tier), so its "
            "latency is what a remote call costs on this machine (JPEG encoding, HTTP, the server's queue and "
            "compute, decoding)"
        )
    for tier in (t for t in where if t.startswith("link ")):
        parts.append(
            f"{runs(tier)} over {tier.removeprefix('link ')} (`--remote-link`) it is served by `edgefmp serve` "
            "through that shaped link, so a remote call also pays the link's round trips and transfer time"
        )
    if "in-process" in where:
        parts.append(f"{runs('in-process')} it runs in-process like every other backend (`--no-remote`)")
    energy = (
        "Energy is the device's own: with no readable meter it is estimated (docs/COSTS.md) at a busy power "
        "while the device computes"
    )
    if set(where) != {"in-process"}:
        energy += (
            " and a low power while it waits on the network, plus a cost per byte, so a remote call costs the "
            "device little energy per millisecond and energy savings trail latency savings"
        )
    return [
        "Always-largest, the monolithic reference, sends every call to the largest model of its function: "
        + "; ".join(parts)
        + ".",
        "",
        energy + ".",
        "",
    ]


def status_cell(check: Check | None) -> str:
    """A check's status in the table; a miss of (1) that keeps one of its halves says which."""
    if check is None:
        return NOT_RUN
    held = check.data.get("holds_for") if check.status == MISS else None
    if held:
        return f"{check.status} ({held_parts(held)} holds)"
    return check.status


def _remote_costs(opts: dict[str, Any]) -> str:
    """What a call to the remote tier cost when the bench profiled it (its router's prior)."""
    rows = [r for r in (opts.get("remote_profile") or {}).get("backends", []) if r.get("latency_ms")]
    if not rows:
        return ""
    means = sorted(float(r["latency_ms"]["mean"]) for r in rows)
    span = f"{means[0]:.1f} ms" if means[-1] - means[0] < 0.05 else f"{means[0]:.1f} to {means[-1]:.1f} ms"
    return f"; a call took {span} on average when profiled before the cases (the router's prior)"


def write_summary(results: Sequence[SuiteResult], out: str | Path, command: str | None = None) -> Path:
    """Write the summary page of `results` (see `load_results`) to `out`, atomically."""
    page = Path(out)
    write_text_atomic(page, summary_markdown(results, page, command), "the summary page")
    log.info("wrote %s from %d results folder(s)", page, len(results))
    return page


__all__ = [
    "BUILT_IN_SUITES",
    "SuiteResult",
    "combined_wall",
    "load_results",
    "reference_lines",
    "remote_tier",
    "summary_markdown",
    "write_summary",
]
