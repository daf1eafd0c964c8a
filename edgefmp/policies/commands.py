"""`edgefmp replay`: estimate another policy's accuracy and cost from a trace file (off-policy
evaluation), without running any backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def register(app: typer.Typer) -> None:
    app.command()(replay)


def _label(asked: str, built: str) -> str:
    """A row's policy as the user named it: a preset by its file name, with the policy it built."""
    if asked == built:
        return asked
    return f"{Path(asked).name} ({built})" if asked.endswith((".yaml", ".yml")) else f"{asked} ({built})"


def replay(
    traces: Annotated[Path, typer.Argument(help="JSONL trace file written by `edgefmp run --out`")],
    policy: Annotated[list[str], typer.Option(help="policy name or preset YAML to evaluate; repeat for several")],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="JSONL labels {frame_id, label}, as for `edgefmp run --labels`; needed for the reward columns, "
            "since `edgefmp run` stores no rewards in its traces (only traces whose meta has 'reward' or "
            "'correct' are scored without it)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Off-policy evaluation (IPS, self-normalised IPS, doubly robust) of policies on a trace file."""
    from edgefmp.cli import user_errors
    from edgefmp.policies.feedback import read_labels, reward_for
    from edgefmp.policies.replay import load_traces
    from edgefmp.policies.replay import replay as estimate
    from edgefmp.runtime.learning import unmatched_labels_message
    from edgefmp.runtime.session import build_policy

    notes: set[str] = set()
    with user_errors():
        logged = load_traces(traces)
        rewards = None
        if labels is not None:
            answers = {t.frame_id: t.answer for t in logged}
            records = read_labels(labels)
            rewards = {r.frame_id: reward_for(answers[r.frame_id], r.label) for r in records if r.frame_id in answers}
            if records and not rewards:
                notes.add(
                    unmatched_labels_message(labels, {r.frame_id for r in records}, list(answers)[:3], len(logged))
                )
        results = [estimate(logged, build_policy(name), rewards=rewards) for name in policy]
    if labels is None and not any(r.labelled for r in results):
        notes.add(
            "labelled is 0: no trace carries a reward, and `edgefmp run` stores none; pass --labels "
            "labels.jsonl (the file given to `edgefmp run --labels`) to estimate rewards"
        )
    if as_json:
        Console().print_json(json.dumps([r.to_json() for r in results]))
        return
    # Light borders so the nine columns fit 80 characters; the policy names are what the table
    # is about, so that column never shrinks or wraps (a long name folds the figures instead).
    table = Table(
        title=escape(f"off-policy estimates from {traces} ({len(logged)} frames)"),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    names = [_label(name, r.policy) for name, r in zip(policy, results, strict=True)]
    table.add_column("policy", no_wrap=True, min_width=max(len(n) for n in names))
    for col in (
        "labelled",
        "reward\nIPS",
        "reward\nSNIPS",
        "reward\nDR",
        "latency\nms/frame\n(DR)",
        "energy\nJ/frame\n(DR)",
        "ESS",
        "support",
    ):
        table.add_column(col, overflow="fold")  # narrow terminals wrap, never cut, a figure

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4g}"

    for name, r in zip(names, results, strict=True):
        table.add_row(
            escape(name),
            str(r.labelled),
            fmt(r.accuracy_ips),
            fmt(r.accuracy_snips),
            fmt(r.accuracy_dr),
            fmt(r.cost_dr.get("latency_ms")),
            fmt(r.cost_dr.get("energy_j")),
            f"{r.ess:.1f}",
            f"{r.support:.0%}",
        )
    Console().print(table)
    notes |= {n for r in results for n in r.notes}
    for note in sorted(notes):
        Console(stderr=True).print(f"note: {escape(note)}", highlight=False)
