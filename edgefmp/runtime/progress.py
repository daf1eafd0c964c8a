"""What a run shows while it goes: the progress display (rich) and failed frames, fed one
trace at a time."""

from __future__ import annotations

import logging
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgefmp.runtime.summary import error_kind
from edgefmp.trace import Trace

log = logging.getLogger(__name__)

MAX_FAILURES_SHOWN = 10  # distinct errors shown as they happen; the summary counts all of them


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


class FailureReport:
    """Shows the first frame of each distinct error as it happens (frame id and message), so a
    run whose frames fail says why at once instead of only in its traces; repeats of an error
    already shown are only counted (in the run summary). Prints on `console` (stderr) when
    given, else logs a warning."""

    def __init__(self, console: Console | None, limit: int = MAX_FAILURES_SHOWN) -> None:
        self.console = console
        self.limit = limit
        self.failed = 0
        self._kinds: set[str] = set()

    def update(self, trace: Trace) -> None:
        if trace.error is None:
            return
        self.failed += 1
        kind = error_kind(trace.frame_id, trace.error)
        if kind in self._kinds or len(self._kinds) > self.limit:
            return
        self._kinds.add(kind)
        if len(self._kinds) > self.limit:
            self._say("more frames fail in other ways; the summary counts them, --out traces hold every error")
            return
        later = "" if len(self._kinds) > 1 else " (each distinct error is shown once; the summary counts them)"
        self._say(f"frame {trace.frame_id} failed: {trace.error}{later}")

    def _say(self, text: str) -> None:
        if self.console is None:
            log.warning("%s", text)
        else:
            self.console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
