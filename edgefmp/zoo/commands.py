"""`edgefmp zoo build` and `edgefmp zoo evaluate`: the demo zoo's commands (rich progress).

Imports stay light here (no torch) so `edgefmp --help` is fast; the work happens in
edgefmp.zoo.build / edgefmp.zoo.report, imported when a command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgefmp.errors import EdgeFMPError

console = Console(stderr=True)


class RichProgress:
    """The build's `Progress` as rich bars: one bar per stage, finished bars stay visible."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        self._task = self._progress.add_task(description, total=max(total, 1))

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)


def _bars() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _accuracy_line(entry: dict[str, Any]) -> str:
    """ "map50 0.912 (was 0.915)": the clean metric, and the replaced model's, if any."""
    acc = entry["accuracy"]
    key = "map50" if "map50" in acc else "acc"
    text = f"{key} {acc[key]:.3f}"
    prev = entry.get("previous_accuracy") or {}
    if key in prev:
        text += f" (was {prev[key]:.3f})"
    return text


def _refresh_catalog(out: Path) -> None:
    """Rewrite `out`'s catalog if it names files a build removed; a problem is a warning, so it
    never hides the build's own error."""
    from edgefmp.zoo.catalog import refresh_catalog

    if not out.is_dir():
        return
    try:
        written = refresh_catalog(out)
    except EdgeFMPError as exc:
        console.print(f"[yellow]warning:[/] could not check {escape(str(out / 'catalog.yaml'))}: {escape(str(exc))}")
        return
    if written is not None:
        console.print(f"rewrote {escape(str(written))} (it named files this build removed)")


def _int8_line(entry: dict[str, Any]) -> str:
    """ "int8 map50 0.905", or why the int8 variant was dropped."""
    if entry.get("status") == "dropped":
        return f"int8 dropped ({entry['reason']})"
    return f"int8 {_accuracy_line(entry)}"


def register(app: typer.Typer) -> None:
    """Add the `zoo` sub-app to the edgefmp CLI."""
    zoo = typer.Typer(help="The bundled demo zoo: build (train + export) and evaluate it.", no_args_is_help=True)

    @zoo.command("build")
    def build(
        out: Annotated[Path, typer.Option("--out", help="folder of the zoo")] = Path("models"),
        quick: Annotated[
            bool, typer.Option("--quick", help="tiny data and steps: a smoke test, not useful models")
        ] = False,
        models: Annotated[str | None, typer.Option("--models", help="comma-separated names (default: all)")] = None,
        threads: Annotated[int, typer.Option("--threads", min=1, help="torch and ONNX Runtime threads")] = 2,
    ) -> None:
        """Train the zoo (seeded) and export every model as ONNX fp32 and int8 with manifests
        (an int8 variant that fails verification is dropped, with a warning)."""
        # OpenMP threads that sleep instead of spinning: same numbers, and on a machine shared
        # with other jobs a 2-thread build runs several times faster. Must precede torch's import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from edgefmp.cli import user_errors  # here: cli imports this module while it loads
        from edgefmp.zoo.build import BuildConfig, build_zoo
        from edgefmp.zoo.catalog import write_catalog
        from edgefmp.zoo.specs import select

        with user_errors():
            chosen = select(models)
            cfg = BuildConfig.quick(threads) if quick else BuildConfig(threads=threads)
            try:
                with _bars() as bars:
                    result = build_zoo(out, chosen, cfg, RichProgress(bars))
                if models is None:
                    write_catalog(out)
            finally:
                # A model rebuilt without its int8 variant must not stay named by an older catalog.
                _refresh_catalog(out)
        t = result["timings"]
        console.print(
            f"built {len(result['models'])} models into {escape(str(out))} in {t['total_s']:.0f} s "
            f"(cpu {t['cpu_s']:.0f} s)"
        )
        for m in result["models"]:
            line = f"  {m['name']:<12} {_accuracy_line(m['fp32'])}   {_int8_line(m['int8'])}"
            console.print(escape(line), highlight=False)
        if result["int8_dropped"]:
            console.print(
                f"[yellow]int8 dropped[/] (failed verification; fp32 kept): {escape(', '.join(result['int8_dropped']))}"
            )

    @zoo.command("evaluate")
    def evaluate(
        models_dir: Annotated[Path, typer.Option("--models-dir", help="folder of the zoo")] = Path("models"),
        scenes: Annotated[int, typer.Option("--scenes", min=10, help="test scenes per condition")] = 200,
        threads: Annotated[int, typer.Option("--threads", min=1, help="ONNX Runtime threads for accuracy runs")] = 2,
        runs: Annotated[int, typer.Option("--runs", min=10, help="timed runs per latency measurement")] = 200,
        readme: Annotated[bool, typer.Option("--readme/--no-readme", help="rewrite README.md and catalog.yaml")] = True,
    ) -> None:
        """Accuracy (clean and per corruption severity), latency and size of every model and precision."""
        from edgefmp.cli import user_errors  # here: cli imports this module while it loads
        from edgefmp.zoo.report import run_evaluation

        with user_errors(), _bars() as bars:
            written = run_evaluation(models_dir, scenes, threads, runs, readme, RichProgress(bars))
        for path in written:
            console.print(f"wrote {escape(str(path))}")

    app.add_typer(zoo, name="zoo")
