"""`edgefmp replay`: estimate another policy's accuracy and cost from a trace file (off-policy
evaluation), without running any backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    app.command()(replay)


def replay(
    traces: Annotated[Path, typer.Argument(help="JSONL trace file written by `edgefmp run --out`")],
    policy: Annotated[list[str], typer.Option(help="policy name or preset YAML to evaluate; repeat for several")],
    labels: Annotated[
        Path | None, typer.Option(help="JSONL labels {frame_id, label}; else rewards stored in the traces")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Off-policy evaluation (IPS, self-normalised IPS, doubly robust) of policies on a trace file."""
    from edgefmp.cli import user_errors
    from edgefmp.policies.feedback import read_labels, reward_for
    from edgefmp.policies.replay import load_traces
    from edgefmp.policies.replay import replay as estimate
    from edgefmp.runtime.session import build_policy

    with user_errors():
        logged = load_traces(traces)
        rewards = None
        if labels is not None:
            answers = {t.frame_id: t.answer for t in logged}
            rewards = {
                r.frame_id: reward_for(answers[r.frame_id], r.label)
                for r in read_labels(labels)
                if r.frame_id in answers
            }
        results = [estimate(logged, build_policy(name), rewards=rewards) for name in policy]
    if as_json:
        Console().print_json(json.dumps([r.to_json() for r in results]))
        return
    table = Table(title=f"off-policy estimates from {traces} ({len(logged)} frames)")
    for col in (
        "policy",
        "labelled",
        "reward IPS",
        "reward SNIPS",
        "reward DR",
        "latency ms/frame (DR)",
        "energy J/frame (DR)",
        "ESS",
        "support",
    ):
        table.add_column(col)

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for r in results:
        table.add_row(
            r.policy,
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
    notes = {n for r in results for n in r.notes}
    for note in sorted(notes):
        Console(stderr=True).print(f"note: {note}", highlight=False)
