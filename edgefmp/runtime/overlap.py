"""The overlapped stream loop: later frames run while an earlier frame waits on a remote call.

`run_stream` (loop.py) runs one frame at a time, so a 100 ms remote call stalls the stream for
100 ms. Here up to `inflight` frames run at once in worker threads: local work on later frames
goes on while a remote call is pending, and the wait is hidden instead of added.

Same contract as `run_stream`: sinks get every trace and every source event, nothing is lost,
and the feedback hook, `on_frame`, `on_event` and `save_state` are called from the calling
thread only (the policy is called from workers under `executor.policy_lock`). What changes is
when traces come out:

- order "frame": in frame order (files, folders): a slow frame holds back the ones after it,
  at most `inflight` frames are held, and events keep their place between frames;
- order "freshest": as soon as each finishes (live sources): a fresh result is never held back
  behind a stale one; a frame that finishes after a fresher one was emitted is still emitted,
  marked superseded;
- order "auto": "freshest" for live sources (LiveSource, or frame ids 'live:<n>'), else "frame".

Every trace gets `meta["staleness_ms"]`: from capture (live frames: their wall-clock `ts`) or
from being read (files: their `ts` is media time) to emission; and `meta["superseded"]`: True
when a fresher frame's trace was emitted before it.

The source is read by one reader thread that takes a slot before each frame, so at most
`inflight` frames are read but not yet emitted, and a live source's own freshest-frame queue
(not this loop) decides which camera frames to drop when the stream is slower than the camera.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from edgefmp.errors import ConfigError
from edgefmp.frame import Frame
from edgefmp.runtime.executor import Executor
from edgefmp.runtime.loop import LoopHooks, Sink
from edgefmp.trace import Trace

log = logging.getLogger(__name__)

Order = Literal["auto", "frame", "freshest"]
ORDERS: tuple[str, ...] = ("auto", "frame", "freshest")
LIVE_PREFIX = "live:"


@dataclass
class _InFlight:
    seq: int
    frame: Frame
    future: Future[Trace]
    read_at: float  # wall clock when the reader took it from the source


def _is_live(source: Any, frame: Frame) -> bool:
    from edgefmp.runtime.source_live import LiveSource

    return isinstance(source, LiveSource) or frame.frame_id.startswith(LIVE_PREFIX)


class _Reader:
    """Pulls items from the source in its own thread, a slot per frame, into `out`."""

    def __init__(
        self,
        source: Iterable[Any],
        slots: threading.Semaphore,
        out: queue.Queue[tuple[str, Any, float]],
        max_frames: int | None,
    ) -> None:
        self.source = source
        self.slots = slots
        self.out = out
        self.max_frames = max_frames
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="edgefmp-source", daemon=True)

    def _take_slot(self) -> bool:
        while not self.stop.is_set():
            if self.slots.acquire(timeout=0.05):
                return True
        return False

    def _run(self) -> None:
        frames = 0
        try:
            items = iter(self.source)
            while self._take_slot():
                try:
                    item = next(items)
                except StopIteration:
                    break
                if isinstance(item, Frame):
                    frames += 1
                    self.out.put(("frame", item, time.time()))
                    if self.max_frames is not None and frames >= self.max_frames:
                        break
                else:
                    self.slots.release()  # events take no slot
                    self.out.put(("event", item, time.time()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            self.out.put(("error", exc, time.time()))
        finally:
            self.out.put(("end", None, time.time()))


class _Emitter:
    """Emits traces and events to sinks and hooks (calling thread only)."""

    def __init__(self, executor: Executor, sinks: list[Sink], hooks: LoopHooks, slots: threading.Semaphore) -> None:
        self.executor = executor
        self.sinks = sinks
        self.hooks = hooks
        self.slots = slots
        self.done = 0
        self.newest = -1

    def event(self, item: Any) -> None:
        for sink in self.sinks:
            sink.event(item)
        if self.hooks.on_event is not None:
            self.hooks.on_event(item)

    def frame(self, job: _InFlight, live: bool) -> None:
        trace = _trace_of(job)
        captured = job.frame.ts if live and job.frame.frame_id.startswith(LIVE_PREFIX) else job.read_at
        trace.meta["staleness_ms"] = round(max(0.0, time.time() - captured) * 1e3, 3)
        trace.meta["superseded"] = job.seq < self.newest
        self.newest = max(self.newest, job.seq)
        hooks = self.hooks
        try:
            if hooks.feedback is not None:
                hooks.feedback.after_frame(trace, job.frame, self.executor.policy_lock)
            for sink in self.sinks:
                sink.write(trace, job.frame.image)
            if hooks.on_frame is not None:
                hooks.on_frame(trace)
        finally:
            self.slots.release()
        self.done += 1
        if hooks.save_state is not None and self.done % hooks.save_every == 0:
            hooks.save_state()


def _notify(inbox: queue.Queue[tuple[str, Any, float]], seq: int) -> Callable[[Future[Trace]], None]:
    """A done-callback (run in the worker) that tells the calling thread frame `seq` finished."""

    def done(_future: Future[Trace]) -> None:
        inbox.put(("done", seq, 0.0))

    return done


def _trace_of(job: _InFlight) -> Trace:
    """The frame's trace; a crash in the executor (a bug) still yields a trace, not a lost frame."""
    try:
        return job.future.result()
    except Exception as exc:  # noqa: BLE001 - recorded in the trace
        log.error("frame %s: the executor crashed", job.frame.frame_id, exc_info=exc)
        return Trace(
            frame_id=job.frame.frame_id,
            ts=job.frame.ts,
            meta=dict(job.frame.meta),
            error=f"executor failed on frame {job.frame.frame_id}: {type(exc).__name__}: {exc}",
        )


def run_stream_overlapped(
    source: Iterable[Any],
    executor: Executor,
    sinks: list[Sink],
    hooks: LoopHooks | None = None,
    max_frames: int | None = None,
    inflight: int = 4,
    order: Order | str = "auto",
) -> int:
    """Run until the source ends or `max_frames` frames were processed, with up to `inflight`
    frames at once; returns frames done. See the module docstring for `order`."""
    if not isinstance(inflight, int) or inflight < 1:
        raise ConfigError(f"inflight={inflight!r} is invalid; expected an integer >= 1 (1 = no overlap)")
    if order not in ORDERS:
        raise ConfigError(f"unknown order {order!r}; available: {', '.join(ORDERS)}")
    hooks = hooks or LoopHooks()
    slots = threading.Semaphore(inflight)
    inbox: queue.Queue[tuple[str, Any, float]] = queue.Queue()
    reader = _Reader(source, slots, inbox, max_frames)
    emitter = _Emitter(executor, sinks, hooks, slots)
    pool = ThreadPoolExecutor(max_workers=inflight, thread_name_prefix="edgefmp-frame")
    jobs: dict[int, _InFlight] = {}
    finished: set[int] = set()
    outbox: deque[tuple[str, Any]] = deque()  # order "frame": frames and events as read
    mode: str | None = None if order == "auto" else order
    live = False
    source_error: BaseException | None = None
    ended = False
    seq = 0
    interrupted = False
    reader.thread.start()
    try:
        while not ended or jobs:
            kind, payload, read_at = inbox.get()
            if kind == "frame":
                if seq == 0:
                    live = _is_live(source, payload)
                    mode = mode or ("freshest" if live else "frame")
                    log.info("overlapped loop: %d frames in flight, order %s", inflight, mode)
                future = pool.submit(executor.run_frame, payload, seq)
                jobs[seq] = _InFlight(seq, payload, future, read_at)
                outbox.append(("frame", seq))
                future.add_done_callback(_notify(inbox, seq))
                seq += 1
            elif kind == "event":
                if mode == "frame" and outbox:
                    outbox.append(("event", payload))
                else:
                    emitter.event(payload)
            elif kind == "done":
                finished.add(payload)
            elif kind == "error":
                source_error = payload
            elif kind == "end":
                ended = True
            _emit_ready(mode, outbox, jobs, finished, emitter, live)
        while outbox:  # trailing events
            emitter.event(outbox.popleft()[1])
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        reader.stop.set()
        # On Ctrl-C the frames still running are dropped, not waited for: a remote call can
        # take timeout_s x attempts, and the catalog's close (by the caller) ends it.
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        reader.thread.join(timeout=5.0)
        if hooks.save_state is not None and emitter.done:
            hooks.save_state()
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %r failed", sink)
    if source_error is not None:
        raise source_error
    return emitter.done


def _emit_ready(
    mode: str | None,
    outbox: deque[tuple[str, Any]],
    jobs: dict[int, _InFlight],
    finished: set[int],
    emitter: _Emitter,
    live: bool,
) -> None:
    if mode == "freshest":
        for s in sorted(finished):
            emitter.frame(jobs.pop(s), live)
        finished.clear()
        outbox.clear()  # freshest mode emits events at once; frames need no place keeping
        return
    while outbox:
        kind, value = outbox[0]
        if kind == "frame":
            if value not in finished:
                return
            finished.discard(value)
            outbox.popleft()
            emitter.frame(jobs.pop(value), live)
        else:
            outbox.popleft()
            emitter.event(value)
