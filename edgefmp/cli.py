"""The `edgefmp` command line: a thin layer over the library that prints with rich.

Only this module (and the command modules it registers) prints; the library logs. Every
command catches EdgeFMPError alone and turns it into a one-line message and exit code 2.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgefmp.errors import EdgeFMPError

if TYPE_CHECKING:
    from edgefmp.runtime.summary import RunSummary

app = typer.Typer(
    name="edgefmp",
    help="Run foundation-model programs on edge devices, every neural call routed to the cheapest backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()

# Command modules of other parts register themselves here when they are installed.
COMMAND_MODULES = (
    "edgefmp.export.commands",
    "edgefmp.zoo.commands",
    "edgefmp.policies.commands",
    "edgefmp.serve.commands",
    "edgefmp.bench.commands",
)


def print_error(exc: BaseException) -> None:
    """One error line on stderr; the message is escaped, since rich would take a hint such as
    `pip install 'edgefmp[trt]'` for markup and drop the brackets."""
    console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into a clear message and exit code 2 (no traceback for users)."""
    try:
        yield
    except EdgeFMPError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug")] = 0,
) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])


@app.command()
def check(program: Annotated[Path, typer.Argument(help="program file defining execute_command(image)")]) -> None:
    """Validate a program and list its neural call sites."""
    from edgefmp.program import load_program

    with user_errors():
        compiled = load_program(program)
    n = len(compiled.sites)
    if n == 0:
        out.print(f"{escape(str(program))}: accepted, no neural call sites", highlight=False)
        return
    table = Table(title=escape(f"{program}: accepted, {n} neural call site{'s' if n != 1 else ''}"))
    for col in ("site id", "function", "line", "call"):
        table.add_column(col)
    for site in compiled.sites.values():
        table.add_row(site.site_id, site.function, str(site.line), escape(site.text))
    out.print(table)


LABELS_HELP = (
    'JSONL labels to learn from, one object per line: {"frame_id": "clip:0", "label": true, "delay": 0}. '
    "frame_id: <video file stem>:<frame index> for a video, the file name for an image folder. "
    "label: true/false (yes/no questions; rewarded TP +1000, TN +1, FP/FN -100, the paper's shape), "
    "or an answer string or list of accepted answers (1 if the answer matches after lower-casing and "
    'dropping punctuation and articles, else 0; so "yes"/"no" strings score 0/1). '
    "delay (optional): frames until the label arrives. See README, 'Labels'."
)


@app.command()
def run(
    program: Annotated[Path, typer.Argument(help="program file defining execute_command(image)")],
    source: Annotated[str, typer.Option(help="camera index, rtsp:// or http:// URL, video file or image folder")],
    out_path: Annotated[Path | None, typer.Option("--out", help="JSONL trace file, one line per frame")] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="catalog YAML (default: models/catalog.yaml of a checkout when it exists, "
            "else the bundled OpenCV catalog)"
        ),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="policy name or preset YAML (default: the best available)")] = None,
    max_frames: Annotated[int | None, typer.Option(min=1, help="stop after this many frames")] = None,
    video_out: Annotated[Path | None, typer.Option(help="write an annotated video here")] = None,
    state: Annotated[Path | None, typer.Option(help="policy state file: loaded if present, saved as it learns")] = None,
    save_every: Annotated[int, typer.Option(min=1, help="save the policy state every N frames")] = 20,
    labels: Annotated[Path | None, typer.Option(help=LABELS_HELP)] = None,
    audit: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="without labels: share of frames also run on the largest backends"),
    ] = 0.0,
    local_only: Annotated[
        list[str] | None, typer.Option(help="site id (see `edgefmp check`) that must never leave the device; repeat")
    ] = None,
    summary_out: Annotated[Path | None, typer.Option(help="write the end-of-run summary JSON here")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress display")] = False,
    inflight: Annotated[
        int, typer.Option(min=1, help="frames run at once, so remote calls overlap local work (1 = sequential)")
    ] = 1,
    order: Annotated[
        str, typer.Option(help="with --inflight > 1: frame, freshest or auto (freshest for live sources)")
    ] = "auto",
    max_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="time limit of one frame: the program's code and its backend calls, not the router's "
            "decisions (default: WorkBudget.max_seconds, 5 s)",
        ),
    ] = None,
) -> None:
    """Run a program on a stream and write per-frame traces.

    Exits 1 when every frame failed (the first frame of each distinct error is shown as it
    happens), 2 on bad input.
    """
    from edgefmp.runtime.session import RunInterrupted, RunOptions, run_program

    options = RunOptions(
        program=program,
        source=source,
        out=out_path,
        catalog=catalog,
        policy=policy,
        max_frames=max_frames,
        video_out=video_out,
        state=state,
        save_every=save_every,
        labels=labels,
        audit=audit,
        local_only=set(local_only or []),
        summary_out=summary_out,
        progress=not quiet,
        inflight=inflight,
        order=order,
        max_seconds=max_seconds,
    )
    try:
        with user_errors():
            summary = run_program(options, console=console)
    except RunInterrupted as stop:
        out.print(stop.summary.render())
        console.print(f"[yellow]interrupted:[/] {escape(str(stop))}", highlight=False)
        raise typer.Exit(130) from None
    out.print(summary.render())
    exit_if_every_frame_failed(summary)


def exit_if_every_frame_failed(summary: RunSummary) -> None:
    """A run that produced no answer at all is a failure (exit 1), even though it finished."""
    if summary.frames and not summary.ok:
        console.print(
            f"[bold red]error:[/] every one of the {summary.frames} frames failed; the first error of each "
            "kind is shown above and in the summary",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command()
def demo(
    frames: Annotated[int, typer.Option(min=10, help="frames in the generated demo video")] = 150,
    workdir: Annotated[Path, typer.Option(help="where the demo video, traces and summary go")] = Path("runs/demo"),
    policy: Annotated[str | None, typer.Option(help="policy name (default: the best available)")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress display")] = False,
) -> None:
    """The main job on the bundled default: an easy-VQA camera video, the example program, the summary."""
    from edgefmp.demo import run_demo

    with user_errors():
        result = run_demo(workdir, frames=frames, policy=policy, console=console, progress=not quiet)
    out.print(result.summary.render())
    out.print(
        f"answers correct: {result.correct}/{result.scored} ({100.0 * result.accuracy:.1f}%) against the ground "
        f"truth, which was also the router's online feedback ({result.labels_path})",
        highlight=False,
    )
    comparison = result.comparison()
    if comparison is not None:
        out.print(comparison, highlight=False)
    out.print(f"traces: {result.traces_path}; annotated video: {result.video_path}", highlight=False)
    exit_if_every_frame_failed(result.summary)


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """What this machine offers: execution providers, GPU, TensorRT, energy meters, video I/O."""
    from edgefmp.doctor import run_checks

    checks = run_checks()
    if as_json:
        out.print_json(json.dumps([c.__dict__ for c in checks]))
        return
    table = Table(title="edgefmp doctor")
    for col in ("area", "component", "status", "detail", "to add it"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.area, c.name, "[green]ok[/]" if c.ok else "[yellow]missing[/]", escape(c.detail), escape(c.fix))
    out.print(table)


def _register_command_modules() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_command_modules()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
