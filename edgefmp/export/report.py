"""The status table and the next commands printed at the end of `edgefmp export`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="edgefmp export")
    for column in ("variant", "status", "path", "params", "flops", "reason"):
        table.add_column(column, overflow="fold")
    for r, row in zip(results, status_rows(results), strict=False):
        style = STYLES[r.status]
        table.add_row(
            escape(row["variant"]),
            f"[{style}]{row['status']}[/{style}]",
            escape(row["path"]),  # paths and reasons are user text: `[x]` is not markup here
            row["params"],
            row["flops"],
            escape(row["reason"]),
        )
    return table


@dataclass(frozen=True)
class Serving:
    """How `edgefmp run` can serve one exported variant: a catalog entry, or why not."""

    kind: str = ""
    function: str = ""
    model: Path | None = None
    reason: str = ""


def serving(result: VariantResult) -> Serving:
    """The backend kind and function a catalog entry for `result` would use, or the reason no
    backend can serve it as exported (the same checks the backends make when they start)."""
    from edgefmp.backends.processing import SERVES

    m, path = result.manifest, result.path
    if m is None or path is None:
        return Serving(reason="no manifest was written")
    if "vlm" in m.extra:
        return Serving("vlm", "vqa", path.parent)
    if m.preprocess is None:
        if m.function == "llm":
            return Serving(reason="a text-generation model: no edgefmp backend runs language models (yet)")
        return Serving(
            reason="its manifest has no `preprocess`: export again with --image-size HxW (or a recipe `preprocess`)"
        )
    if m.postprocess.kind == "none":
        if m.task.startswith("zero-shot"):
            return Serving(
                reason="a zero-shot model (postprocess `none`): its text queries are only the manifest's labels; "
                "no edgefmp postprocess decodes its outputs, and the text ids stay graph inputs"
            )
        if len(m.extra.get("parts") or {}) > 1:
            return Serving(
                reason=f"a generative {m.task} export in {len(m.extra['parts'])} parts (postprocess `none`): "
                "no edgefmp backend runs its decoding loop"
            )
        return Serving(
            reason="postprocess `none`: edgefmp cannot turn its outputs into results; set `postprocess` "
            "(kind yolo, detr, classify or attributes; docs/MANIFEST.md) in its sidecar manifest or the recipe"
        )
    if len(m.inputs) > 1:
        return Serving(reason=f"it takes {len(m.inputs)} inputs; edgefmp backends feed one image tensor")
    served = SERVES[m.postprocess.kind]
    function = m.function if m.function in served else served[0]
    return Serving("tensorrt" if result.target == "tensorrt" else "onnx", function, path)


def next_commands(results: Sequence[VariantResult]) -> list[str]:
    """What to run next with the variants that passed: measure them, then a catalog entry for
    each variant a backend can serve, and for the others what is missing."""
    passed = [r for r in results if r.status == "passed" and r.path is not None]
    if not passed:
        return ["No variant passed; fix the reasons above and export again."]
    lines = ["Next:", f"  edgefmp profile {' '.join(str(r.path) for r in passed)}"]
    entries: dict[str, list[str]] = {}
    refused: dict[str, list[str]] = {}
    for r in passed:
        how = serving(r)
        if how.model is None:
            refused.setdefault(how.reason, []).append(r.name)
            continue
        name = r.manifest.name if r.manifest is not None else r.name
        if r.target == "tensorrt":
            name += "-trt"
        entries.setdefault(how.function, []).append(f"- {{name: {name}, kind: {how.kind}, model: {how.model}}}")
    if entries:
        lines.append(
            "  add the variants to a catalog, cheapest first (a relative `model:` is read from the catalog's folder):"
        )
        lines.append("    functions:")
        for function, items in entries.items():
            lines.append(f"      {function}:")
            lines += [f"        {item}" for item in items]
        lines.append("  edgefmp run PROGRAM.py --source VIDEO_OR_CAMERA --catalog CATALOG.yaml")
    if refused:
        lines.append("  no edgefmp backend serves these as exported (a catalog entry would be refused):")
        lines += [f"    {', '.join(names)}: {reason}" for reason, names in refused.items()]
    return lines
