"""The status table and the next commands printed at the end of `edgefmp export`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from edgefmp.export.pipeline import VariantResult

LABELS = {"passed": "passed", "unverified": "exported, failed verification", "failed": "failed"}
STYLES = {"passed": "green", "unverified": "yellow", "failed": "red"}


def status_rows(results: Sequence[VariantResult]) -> list[dict[str, str]]:
    """Plain rows (also used by tests and JSON output)."""
    rows = []
    for r in results:
        m = r.manifest
        rows.append(
            {
                "variant": r.name,
                "status": LABELS[r.status],
                "path": str(r.path) if r.path else "",
                "params": f"{m.params:,}" if m and m.params else "",
                "flops": f"{m.flops / 1e9:.3g} G" if m and m.flops else "",
                "reason": r.reason,
            }
        )
    return rows


def status_table(results: Sequence[VariantResult]) -> Table:
    from rich.table import Table

    table = Table(title="edgefmp export")
    for column in ("variant", "status", "path", "params", "flops", "reason"):
        table.add_column(column, overflow="fold")
    for r, row in zip(results, status_rows(results), strict=False):
        style = STYLES[r.status]
        table.add_row(
            row["variant"],
            f"[{style}]{row['status']}[/{style}]",
            row["path"],
            row["params"],
            row["flops"],
            row["reason"],
        )
    return table


def next_commands(results: Sequence[VariantResult]) -> list[str]:
    """What to run next with the variants that passed: measure them, then run a program."""
    passed = [r.path for r in results if r.status == "passed" and r.path is not None]
    if not passed:
        return ["No variant passed; fix the reasons above and export again."]
    paths = " ".join(str(path) for path in passed)
    first = passed[0]
    return [
        "Next:",
        f"  edgefmp profile {paths}",
        "  add the variants to a catalog, cheapest first, e.g.",
        f"    - {{name: {first.parent.name}, kind: onnx, model: {first}}}",
        "  edgefmp run PROGRAM.py --source VIDEO_OR_CAMERA --catalog CATALOG.yaml",
    ]
