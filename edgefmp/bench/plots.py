"""Plots of a results report: Pareto fronts, learning curves, backend mix.

matplotlib is an optional dependency (`pip install 'edgefmp[bench]'`), imported inside the
functions with the file-only Agg backend, so importing edgefmp.bench never needs it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)

FAMILY_STYLE: dict[str, tuple[str, str]] = {
    "static": ("tab:gray", "s"),
    "routing": ("tab:orange", "v"),
    "cascade": ("tab:purple", "D"),
    "paper": ("tab:red", "^"),
    "adaptive": ("tab:blue", "o"),
}
COST_LABELS = {
    "latency_ms": "latency per frame (ms, log)",
    "energy_j": "energy per frame (J, log)",
    "bytes": "network per frame (bytes, log)",
    "params_m": "parameters called per frame (millions, log; the paper's proxy)",
}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("plots need matplotlib: pip install 'edgefmp[bench]' (or pass --no-plots)") from exc
    return plt


def _save(fig: Any, path: Path) -> list[Path]:
    """Write `fig` to `path` and free it; [path], or [] when there was nothing to plot."""
    if fig is None:
        return []
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return [path]


def plot_report(report: dict[str, Any], out: Path) -> list[Path]:
    """Every plot of the report into `out`; returns the files written."""
    written: list[Path] = []
    written += plot_fronts(report, out)
    written += plot_curves(report, out)
    written += plot_mix(report, out)
    written += plot_site_mix(report, out)
    return written


def plot_fronts(report: dict[str, Any], out: Path) -> list[Path]:
    """One PNG of metric against each cost with a non-zero reference (`fronts_figure`)."""
    written: list[Path] = []
    for cost in COST_LABELS:
        written += _save(fronts_figure(report, cost), out / f"pareto_{cost.split('_')[0]}.png")
    return written


def fronts_figure(report: dict[str, Any], cost: str) -> Any:
    """Metric against `cost`: every case as a point, each family's Pareto front as a line;
    None when always-largest's cost is zero or unknown (nothing to compare against).

    The cost axis is logarithmic. Cases that cost nothing (no bytes without the remote tier, no
    parameters for the OpenCV tier) would fall off a log axis, so when there are some the axis
    is symmetric-log: linear from 0 up to the decade below the cheapest non-zero cost, log above,
    and those cases sit at 0 on the left. The legend is outside the axes, hiding no point."""
    plt = _pyplot()
    from matplotlib import ticker

    largest = report.get("largest") or {}
    if not largest.get(cost):
        return None
    metric = "F1" if report["suite"]["metric"] == "f1" else "accuracy"
    rows = [r for r in report["rows"] if r["metric"] is not None and r.get(cost) is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fam, (color, marker) in FAMILY_STYLE.items():
        pts = sorted((r[cost], r["metric"], r["case"]) for r in rows if r["family"] == fam)
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, label=fam, zorder=3)
        front, best = [], -1.0
        for c, m, _ in pts:
            if m > best:
                front.append((c, m))
                best = m
        ax.plot([p[0] for p in front], [p[1] for p in front], color=color, alpha=0.6, zorder=2)
    ax.scatter([largest[cost]], [largest["metric"]], color="black", marker="*", s=160, label="always-largest", zorder=4)
    ax.axhline(largest["metric"] - 0.01, color="black", lw=0.6, ls=":", label="largest - 1 point")
    label = COST_LABELS[cost]
    if any(r[cost] == 0 for r in rows):
        cheapest = min([r[cost] for r in rows if r[cost] > 0] + [largest[cost]])
        linthresh = 10 ** math.floor(math.log10(cheapest))
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
        top = max([r[cost] for r in rows] + [largest[cost]])
        ax.set_xlim(-0.1 * linthresh, top * 10**0.15)  # symlog leaves no margin on its own
        label = label.replace(", log", f", log above {linthresh:g}; cases at 0 cost on the left")
    else:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.set_title(f"{report['suite']['name']}: {metric} against {cost.split('_')[0]}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_curves(report: dict[str, Any], out: Path) -> list[Path]:
    """learning_curves.png (`curves_figure`)."""
    return _save(curves_figure(report), out / "learning_curves.png")


def curves_figure(report: dict[str, Any]) -> Any:
    """Learning curves: the windowed metric over frames pooled over queries (left) and the same
    minus always-largest's (right), which removes what the corruption schedule does to all; a
    dot marks where each gap curve settles (filled when a later window confirms it). One legend,
    for both panels, to their right."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    curves = report.get("curves") or {}
    if not curves:
        return None
    metric = "F1" if report["suite"]["metric"] == "f1" else "accuracy"
    fig, (ax, gx) = plt.subplots(1, 2, figsize=(12, 4.5))
    family_of = {r["case"]: r["family"] for r in report["rows"]}
    gaps = report.get("gap_curves") or {}
    conv = report.get("convergence") or {}
    window = report.get("curve_window") or 100
    shades = _shades(plt, [c for c in curves if family_of.get(c, "static") != "static"], family_of)
    for case, pts in curves.items():
        fam = family_of.get(case, "static")
        if not pts or (fam == "static" and case != "largest"):
            continue
        color = shades.get(case, "black")
        if case == "largest":
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", color="black", lw=1.2, label=case)
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, alpha=0.8, lw=1.2, label=case)
        g = gaps.get(case) or []
        gx.plot([p[0] for p in g], [100 * p[1] for p in g], color=color, alpha=0.8, lw=1.2)
        # where the gap settles (metrics.Convergence): hollow when only the last window shows it
        cv = conv.get(case) or {}
        at = dict(g).get(cv.get("gap_settle_frame"))
        if at is not None:
            face = color if cv.get("confirmed") else "none"
            gx.scatter([cv["gap_settle_frame"]], [100 * at], s=36, edgecolors=color, facecolors=face, zorder=3)
    gx.axhline(0, color="black", lw=0.8, ls="--")
    gx.axhline(-1, color="black", lw=0.6, ls=":")
    for a, ylabel, title in (
        (ax, f"{metric} in the window", "learning curves"),
        (gx, "points against always-largest", "gap to always-largest"),
    ):
        a.set_xlabel(f"frames from the stream's start (end of a {window}-frame window)")
        a.set_ylabel(ylabel)
        a.set_title(f"{report['suite']['name']}: {title}")
        a.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="black", lw=0.6, ls=":"),
        Line2D([], [], ls="", marker="o", color="gray", markerfacecolor="gray"),
        Line2D([], [], ls="", marker="o", color="gray", markerfacecolor="none"),
    ]
    labels += ["gap: 1 point below", "gap settles (confirmed)", "gap settles (last window only)"]
    fig.tight_layout()
    fig.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95), title="both panels")
    return fig


_FAMILY_MAPS = {"adaptive": "Blues", "paper": "Reds", "routing": "Oranges", "cascade": "Purples"}


def _shades(plt: Any, cases: list[str], family_of: dict[str, str]) -> dict[str, Any]:
    """One shade of the family's colour per case, so a family's budgets can be told apart."""
    out: dict[str, Any] = {}
    for fam, cmap_name in _FAMILY_MAPS.items():
        members = [c for c in cases if family_of.get(c) == fam]
        cmap = plt.get_cmap(cmap_name)
        for i, c in enumerate(members):
            out[c] = cmap(0.45 + 0.5 * (i / max(len(members) - 1, 1)))
    return out


FAILED = "(failed)"  # the mix's name for calls no backend answered (record.py)


def backend_colors(report: dict[str, Any]) -> dict[str, Any]:
    """One colour per backend name for every mix panel and both mix files: a backend that
    serves several functions (the OpenCV tier detects and answers) keeps its colour. Names are
    ordered as the catalog lists them (cheapest first), a `-remote` client beside its model;
    failed calls are gray."""
    plt = _pyplot()
    names = {b for r in report["rows"] for counts in (r.get("mix") or {}).values() for b in counts}
    names |= {b for rec in report.get("records", []) for row in rec["mix"].values() for b in row["backends"]}
    order = [b["name"] for fn in (report.get("catalog") or {}).get("functions", {}).values() for b in fn]
    rank = {n: i for i, n in enumerate(dict.fromkeys(order))}

    def key(name: str) -> tuple[int, int, str]:
        base = name.removesuffix("-remote")
        return (rank.get(base, len(rank)), name != base, name)

    ordered = sorted(names - {FAILED}, key=key)
    cmap = plt.get_cmap("tab10" if len(ordered) <= 10 else "tab20")
    colors: dict[str, Any] = {b: cmap(i % cmap.N) for i, b in enumerate(ordered)}
    colors[FAILED] = "lightgray"
    return colors


def plot_mix(report: dict[str, Any], out: Path) -> list[Path]:
    """backend_mix.png (`mix_figure`)."""
    return _save(mix_figure(report), out / "backend_mix.png")


def mix_figure(report: dict[str, Any], colors: dict[str, Any] | None = None) -> Any:
    """Backend mix per call-site function (detect, verify, vqa...): share of calls per backend,
    coloured by `backend_colors`."""
    plt = _pyplot()
    rows = [r for r in report["rows"] if r["mix"] and (r["family"] != "static" or r["case"] == "largest")]
    functions = sorted({fn for r in rows for fn in r["mix"]})
    if not rows or not functions:
        return None
    colors = colors or backend_colors(report)
    fig, axes = plt.subplots(len(functions), 1, figsize=(8, 1.2 + 0.35 * len(rows) * len(functions)), squeeze=False)
    for ax, fn in zip(axes[:, 0], functions, strict=True):
        names = [b for b in colors if any(b in r["mix"].get(fn, {}) for r in rows)]
        for y, r in enumerate(rows):
            counts = r["mix"].get(fn, {})
            total = sum(counts.values()) or 1
            left = 0.0
            for b in names:
                share = counts.get(b, 0) / total
                ax.barh(y, share, left=left, color=colors[b])
                left += share
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["case"] for r in rows], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_title(f"{fn}: share of calls per backend", fontsize=9)
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[b]) for b in names]
        ax.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _site_mix_case(report: dict[str, Any]) -> str | None:
    """The adaptive case at matched accuracy when there is one, else the first adaptive case."""
    for s in report.get("savings", []):
        if s["family"] == "adaptive" and s["case"]:
            return str(s["case"])
    return next((r["case"] for r in report["rows"] if r["family"] == "adaptive"), None)


def plot_site_mix(report: dict[str, Any], out: Path, case: str | None = None) -> list[Path]:
    """backend_mix_sites.png (`site_mix_figure`)."""
    return _save(site_mix_figure(report, case), out / "backend_mix_sites.png")


def site_mix_figure(report: dict[str, Any], case: str | None = None, colors: dict[str, Any] | None = None) -> Any:
    """Backend mix per call site (every site of every query) for one case, by default the
    adaptive case that matched always-largest's accuracy most cheaply; the colours of
    `backend_colors`, as in backend_mix.png."""
    plt = _pyplot()
    case = case or _site_mix_case(report)
    recs = [r for r in report.get("records", []) if r["case"] == case and r["mix"]]
    if case is None or not recs:
        return None
    bars = [(f"{r['query']} {site}", row["function"], row["backends"]) for r in recs for site, row in r["mix"].items()]
    colors = colors or backend_colors(report)
    names = [b for b in colors if any(b in counts for _, _, counts in bars)]
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.22 * len(bars)))
    for y, (_, _, counts) in enumerate(bars):
        total = sum(counts.values()) or 1
        left = 0.0
        for b in names:
            share = counts.get(b, 0) / total
            ax.barh(y, share, left=left, color=colors[b])
            left += share
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([f"{label} ({fn})" for label, fn, _ in bars], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"{report['suite']['name']}: backend mix per call site, {case}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[b]) for b in names]
    ax.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_profile(data: dict[str, Any], path: Path) -> None:
    """A profile's latency per backend: p50..p99 as a line, the mean as a dot."""
    plt = _pyplot()
    rows = [r for r in data["backends"] if r["latency_ms"]]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.4 * max(len(rows), 1)))
    labels = [f"{r['function']}/{r['name']}" for r in rows]
    for y, r in enumerate(rows):
        lat = r["latency_ms"]
        ax.plot([lat["p50"], lat["p99"]], [y, y], color="tab:blue", lw=2)
        ax.scatter([lat["mean"]], [y], color="black", zorder=3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms): line p50..p99, dot mean")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)


__all__ = [
    "backend_colors",
    "curves_figure",
    "fronts_figure",
    "mix_figure",
    "plot_curves",
    "plot_fronts",
    "plot_mix",
    "plot_profile",
    "plot_report",
    "plot_site_mix",
    "site_mix_figure",
]
