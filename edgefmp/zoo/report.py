"""`edgefmp zoo evaluate`: measure every model and precision, and the catalog's OpenCV tier,
write eval.json, README.md and the catalog's cost and accuracy priors.

The README is generated from the measurements so its numbers and the command that made them
cannot drift apart; rerun the command to refresh it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.catalog import BackendSpec
from edgefmp.scenes import CORRUPTIONS, load_shape_pool
from edgefmp.zoo.catalog import CLASSICAL, accuracy_priors, write_catalog
from edgefmp.zoo.env import environment
from edgefmp.zoo.evaluate import (
    CLASSICAL_PRECISION,
    METRIC,
    TASK_ATTRIBUTES,
    TASK_DETECT,
    EvalConfig,
    evaluate_accuracy,
    evaluate_classical,
    load_manifest,
    measure_latencies,
    model_files,
    series_name,
)
from edgefmp.zoo.readme_template import README_TEMPLATE
from edgefmp.zoo.specs import ZOO

log = logging.getLogger(__name__)

SEVERITIES = (1, 2, 3, 4, 5)
PRECISIONS = ("fp32", "int8", CLASSICAL_PRECISION)  # the order of a series' lines in the tables


def metric_of(family: str) -> str:
    """The headline metric of a zoo model family ("shapedet" or "attrnet")."""
    return METRIC[TASK_DETECT if family == "shapedet" else TASK_ATTRIBUTES]


def summarise(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(series, precision) -> clean, mean per severity (`sev1`..), mean per kind, mean corrupted,
    of the row's task's metric; a series is a zoo model or the OpenCV tier's task (series_name)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        if "error" in row:
            continue
        key = (series_name(row["model"], row["precision"], row["task"]), row["precision"])
        out.setdefault(key, {})[row["condition"]] = float(row[METRIC[row["task"]]])
    summary: dict[tuple[str, str], dict[str, float]] = {}
    for key, by_cond in out.items():
        s: dict[str, float] = {"clean": by_cond.get("clean", float("nan"))}
        corrupted = [v for c, v in by_cond.items() if c != "clean"]
        for sev in SEVERITIES:
            vals = [v for c, v in by_cond.items() if c.endswith(f"-{sev}")]
            if vals:
                s[f"sev{sev}"] = float(np.mean(vals))
        for kind in CORRUPTIONS:
            vals = [v for c, v in by_cond.items() if c.startswith(f"{kind}-")]
            if vals:
                s[kind] = float(np.mean(vals))
        s["corrupted"] = float(np.mean(corrupted)) if corrupted else float("nan")
        summary[key] = s
    return summary


def choose_precision(
    summary: dict[tuple[str, str], dict[str, float]],
    latency: dict[str, dict[str, float]],
    names: Sequence[str],
    max_drop: float = 0.01,
) -> dict[str, str]:
    """int8 where it is faster (2 threads, p50) and loses at most `max_drop` clean and under
    corruption; fp32 otherwise (the smallest models, whose calls are overhead-bound). Only the
    fp32 and int8 series of `names` are read: the OpenCV tier has no precision to choose.
    A model with one precision measured gets that one (a build drops an int8 variant that
    fails verification); a model with neither is left out."""
    out: dict[str, str] = {}
    for name in names:
        f, q = summary.get((name, "fp32")), summary.get((name, "int8"))
        lf, lq = latency.get(f"{name}/fp32/2"), latency.get(f"{name}/int8/2")
        if not (f or q):
            continue
        if not (f and q and lf and lq):
            out[name] = "int8" if q else "fp32"
            continue
        faster = lq["p50_ms"] < 0.9 * lf["p50_ms"]
        kept = q["clean"] >= f["clean"] - max_drop and q["corrupted"] >= f["corrupted"] - max_drop
        out[name] = "int8" if faster and kept else "fp32"
    return out


def _pct(v: float | None) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f}"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def int8_table(
    summary: dict[tuple[str, str], dict[str, float]], latency: dict[str, dict[str, float]], names: Sequence[str]
) -> list[str]:
    """INT8 static vs FP32 per model: latency ratio at 1 and 2 threads, accuracy change."""
    lines = [
        "| model | metric | fp32 p50 ms (1t / 2t) | int8 p50 ms (1t / 2t) | speed-up 1t | speed-up 2t "
        "| Δ clean (points) | Δ corrupted mean (points) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        f, q = summary.get((name, "fp32")), summary.get((name, "int8"))
        lf1, lf2 = latency.get(f"{name}/fp32/1"), latency.get(f"{name}/fp32/2")
        lq1, lq2 = latency.get(f"{name}/int8/1"), latency.get(f"{name}/int8/2")
        if not (f and q and lf1 and lf2 and lq1 and lq2):
            continue
        metric = "mAP@0.5" if name.startswith("shapedet") else "accuracy"
        lines.append(
            f"| {name} | {metric} | {lf1['p50_ms']:.3f} / {lf2['p50_ms']:.3f} "
            f"| {lq1['p50_ms']:.3f} / {lq2['p50_ms']:.3f} "
            f"| {lf1['p50_ms'] / lq1['p50_ms']:.2f}x | {lf2['p50_ms'] / lq2['p50_ms']:.2f}x "
            f"| {100 * (q['clean'] - f['clean']):+.1f} | {100 * (q['corrupted'] - f['corrupted']):+.1f} |"
        )
    return lines


def accuracy_tables(summary: dict[tuple[str, str], dict[str, float]], names: Sequence[str]) -> list[str]:
    """One line per series of `names` and precision measured (fp32, int8, classical)."""
    lines = [
        "| model | precision | clean | sev 1 | sev 2 | sev 3 | sev 4 | sev 5 | "
        + " | ".join(CORRUPTIONS)
        + " | all corrupted |",
        "|---|---|" + "---|" * (1 + len(SEVERITIES) + len(CORRUPTIONS) + 1),
    ]
    for name in names:
        for precision in PRECISIONS:
            s = summary.get((name, precision))
            if s is None:
                continue
            cells = [_pct(s.get("clean"))]
            cells += [_pct(s.get(f"sev{k}")) for k in SEVERITIES]
            cells += [_pct(s.get(k)) for k in CORRUPTIONS]
            cells.append(_pct(s.get("corrupted")))
            lines.append(f"| {name} | {precision} | " + " | ".join(cells) + " |")
    return lines


def table_order(summary: dict[tuple[str, str], dict[str, float]]) -> list[str]:
    """The accuracy table's series: per task (detection, then attributes) the OpenCV tier's, then
    the zoo's models by size, as the catalog lists them (cheapest first)."""
    out: list[str] = []
    for task in (TASK_DETECT, TASK_ATTRIBUTES):
        out += sorted(n for n, p in summary if p == CLASSICAL_PRECISION and n.endswith(f"/{task}"))
        out += [m.name for m in ZOO if (TASK_DETECT if m.function == "detect" else TASK_ATTRIBUTES) == task]
    return out


def inventory_table(models_dir: Path, names: Sequence[str], latency: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| model | function | base width | params | FLOPs (est.) | training recipe | steps "
        "| fp32 size | int8 size | fp32 p50 ms 1t/2t | int8 p50 ms 1t/2t |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        fp32, int8 = models_dir / name / "model.onnx", models_dir / name / "model.int8.onnx"
        if not fp32.is_file():
            continue
        m = load_manifest(fp32)
        train = m.extra.get("train", {})
        lat = [latency.get(f"{name}/{p}/{t}", {}).get("p50_ms") for p in ("fp32", "int8") for t in (1, 2)]
        lines.append(
            f"| {name} | {m.function} | {train.get('base_width', '')} | {m.params:,} | {(m.flops or 0) / 1e6:.1f} M "
            f"| {train.get('recipe', '')} | {train.get('steps', '')} | {_size(fp32.stat().st_size)} "
            f"| {_size(int8.stat().st_size) if int8.is_file() else '—'} "
            f"| {_ms(lat[0])} / {_ms(lat[1])} | {_ms(lat[2])} / {_ms(lat[3])} |"
        )
    return lines


COMMAND = "edgefmp zoo evaluate --models-dir models --scenes {scenes} --threads {threads} --runs {runs}"


def write_readme(models_dir: Path, result: dict[str, Any], summary: dict[tuple[str, str], dict[str, float]]) -> Path:
    names = [m.name for m in ZOO]
    latency = result["latency"]
    cfg = result["config"]
    env = result["environment"]
    build = {}
    if (models_dir / "build.json").is_file():
        build = json.loads((models_dir / "build.json").read_text(encoding="utf-8"))
    total = sum(p.stat().st_size for p in models_dir.rglob("*") if p.is_file() and p.name != "README.md")
    cmd = COMMAND.format(**cfg)
    text = README_TEMPLATE.format(
        command=cmd,
        environment=", ".join(f"{k} {v}" for k, v in env.items()),
        scenes=cfg["scenes"],
        conditions=1 + len(CORRUPTIONS) * len(SEVERITIES),
        inventory="\n".join(inventory_table(models_dir, names, latency)),
        accuracy="\n".join(accuracy_tables(summary, table_order(summary))),
        int8="\n".join(int8_table(summary, latency, names)),
        total_size=_size(total),
        build_time=f"{build.get('timings', {}).get('total_s', float('nan')):.0f} s" if build else "not recorded",
        build_cpu=f"{build.get('timings', {}).get('cpu_s', float('nan')):.0f} s" if build else "not recorded",
        build_threads=build.get("config", {}).get("threads", "?") if build else "?",
        build_machine=build.get("machine", {}).get("cpu", "?") if build else "?",
    )
    path = models_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_evaluation(models_dir: Path, scenes: int, threads: int, runs: int, readme: bool, progress: Any) -> list[Path]:
    """Measure the zoo in `models_dir` and the catalog's OpenCV tier; write eval.json (always),
    README.md and catalog.yaml."""
    names = [m.name for m in ZOO]
    files = model_files(models_dir, names)
    cfg = EvalConfig(n_scenes=scenes, threads=threads)
    pool = load_shape_pool("test")
    classical = BackendSpec.model_validate(CLASSICAL)
    progress.start("accuracy (models and OpenCV x conditions)", (len(files) + 1) * len(cfg.conditions()))
    rows = evaluate_accuracy(files, pool, cfg, on_step=lambda _msg: progress.advance())
    rows += evaluate_classical(classical, pool, cfg, on_step=lambda _msg: progress.advance())
    latency: dict[str, dict[str, float]] = {}
    progress.start("latency (1 and 2 threads)", 2)
    for t in (1, 2):
        measured = measure_latencies([p for _, _, p in files], t, runs=runs)
        for name, precision, path in files:
            latency[f"{name}/{precision}/{t}"] = measured[path]
        progress.advance()
    result: dict[str, Any] = {
        "format": "edgefmp.zoo.eval",
        "version": 1,
        "config": {"scenes": scenes, "threads": threads, "runs": runs, "seed": cfg.seed},
        "command": COMMAND.format(scenes=scenes, threads=threads, runs=runs),
        "environment": environment(),
        "rows": rows,
        "latency": latency,
    }
    out = models_dir / "eval.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    written = [out]
    if readme:
        summary = summarise(rows)
        written.append(write_readme(models_dir, result, summary))
        cat_latency = {
            f"{name}/{path.name}": latency[f"{name}/{precision}/2"]["p50_ms"] for name, precision, path in files
        }
        choice = choose_precision(summary, latency, names)
        result["catalog_precision"] = choice
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        written.append(
            write_catalog(
                models_dir,
                cat_latency,
                choice,
                where=result["environment"]["cpu"],
                threads=2,
                accuracy=accuracy_priors(rows),
            )
        )
    return written
