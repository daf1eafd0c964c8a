"""The stream loop: source -> executor -> sinks, with feedback and policy state on the side.

Nothing is lost: an unreadable frame becomes a trace with its error, a failing program becomes
a trace with its error, source status events go to the sinks, and the policy state is saved
atomically every `save_every` frames and at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from edgefmp.frame import Frame
from edgefmp.runtime.executor import Executor
from edgefmp.trace import Trace

log = logging.getLogger(__name__)


class Sink(Protocol):
    def write(self, trace: Trace, image: Any = None) -> None: ...

    def event(self, event: Any) -> None: ...

    def close(self) -> None: ...


class FeedbackHook(Protocol):
    """Sees every finished frame (in order) and feeds the policy what it can learn from."""

    def after_frame(self, trace: Trace, frame: Frame, lock: AbstractContextManager[object] | None = None) -> None: ...


@dataclass
class LoopHooks:
    """Optional callbacks: `feedback` feeds the policy; `save_state` persists it; `on_frame`
    sees each trace (progress display)."""

    feedback: FeedbackHook | None = None
    save_state: Callable[[], None] | None = None
    save_every: int = 50
    on_frame: Callable[[Trace], None] | None = None
    on_event: Callable[[Any], None] | None = None


def run_stream(
    source: Iterable[Any],
    executor: Executor,
    sinks: list[Sink],
    hooks: LoopHooks | None = None,
    max_frames: int | None = None,
) -> int:
    """Run until the source ends or `max_frames` frames were processed; returns frames done."""
    hooks = hooks or LoopHooks()
    done = 0
    try:
        for item in source:
            if not isinstance(item, Frame):
                for sink in sinks:
                    sink.event(item)
                if hooks.on_event is not None:
                    hooks.on_event(item)
                continue
            trace = executor.run_frame(item, done)
            if hooks.feedback is not None:
                hooks.feedback.after_frame(trace, item, executor.policy_lock)
            for sink in sinks:
                sink.write(trace, item.image)
            if hooks.on_frame is not None:
                hooks.on_frame(trace)
            done += 1
            if hooks.save_state is not None and done % hooks.save_every == 0:
                hooks.save_state()
            if max_frames is not None and done >= max_frames:
                break
    finally:
        if hooks.save_state is not None and done:
            hooks.save_state()
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %r failed", sink)
    return done
