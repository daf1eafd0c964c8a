"""Where traces go: the Sink interface and the JSONL trace sink.

Every sink has ``write(trace, image=None)``, ``event(ev)`` and ``close()``, so the run loop
treats them alike; `image` is the frame's RGB image, used only by sinks that draw
(`AnnotatedVideoSink` in sink_video.py). Sinks are context managers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np

from edgefmp.errors import ConfigError
from edgefmp.runtime.sink_video import AnnotatedVideoSink, annotate
from edgefmp.runtime.source_base import SourceEvent
from edgefmp.trace import Trace

logger = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    """What the run loop needs from a sink."""

    def write(self, trace: Trace, image: np.ndarray | None = None) -> None: ...

    def event(self, ev: SourceEvent) -> None: ...

    def close(self) -> None: ...


def json_default(value: Any) -> Any:
    """Make numpy scalars/arrays, paths and sets JSON-serialisable instead of failing a run."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def event_json(ev: SourceEvent | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON line of a status event: always has an "event" key naming its kind."""
    if isinstance(ev, SourceEvent):
        return ev.to_json()
    data = dict(ev)
    if "event" not in data:
        raise ValueError(f"status event {data!r} has no 'event' key naming its kind")
    return data


class JsonlTraceSink:
    """One JSON object per line: a trace (`Trace.to_json`) per frame, and status events.

    Each line is flushed as it is written, so a run that is killed keeps every line it wrote
    and the file can be tailed while the run goes on. Event lines look like
    ``{"event": "reconnect", "source": ..., "message": ..., "counters": {...}, "ts": ...}``;
    trace lines have a "version" key instead. `fsync=True` also survives power loss, at the cost
    of one disk sync per line.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.lines = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = open(  # noqa: SIM115 (closed in close())
                self.path, "a" if append else "w", encoding="utf-8"
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot write traces to {self.path}: {exc.strerror or exc}; choose a writable path"
            ) from exc

    def write(self, trace: Trace, image: np.ndarray | None = None) -> None:
        self._write_line(trace.to_json())

    def event(self, ev: SourceEvent | Mapping[str, Any]) -> None:
        self._write_line(event_json(ev))

    def _write_line(self, data: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"trace sink {self.path} is closed")
        self._file.write(json.dumps(data, default=json_default, ensure_ascii=False) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            logger.info("wrote %d lines to %s", self.lines, self.path)

    def __enter__(self) -> JsonlTraceSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "AnnotatedVideoSink",
    "JsonlTraceSink",
    "Sink",
    "annotate",
    "event_json",
    "json_default",
]
