"""The live progress display of a run (rich), fed one trace at a time."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgefmp.trace import Trace


class StreamProgress:
    """Frames done, frames/s, failures and the last answer; silent when disabled or when the
    console is not a terminal, so logs and CI output stay clean."""

    def __init__(self, console: Console | None, total: int | None, enabled: bool = True) -> None:
        self.enabled = enabled and console is not None and console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]frames"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not self.enabled,
        )
        self._task = self._progress.add_task("run", total=total, status="")
        self._failed = 0

    def update(self, trace: Trace) -> None:
        if not self.enabled:
            return
        self._failed += trace.error is not None
        answer = str(trace.answer)[:24] if trace.error is None else "[red]error[/]"
        self._progress.update(self._task, advance=1, status=f"failed {self._failed}  last: {answer}")

    def __enter__(self) -> StreamProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
