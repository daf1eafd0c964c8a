"""The end-of-run summary: throughput, cost per frame, where calls went, what the source did.

`RunSummary` is an accumulator that is also a sink (`write`, `event`, `close`), so the run loop
feeds it like any other sink; it keeps only running totals, never the traces, so a long live
run uses constant memory (one counter per call site and backend). `to_json()` is the
machine-readable form (versioned); `render()` is a rich Table for the CLI.

Definitions:
- fps: frames / wall time from `start()` to `close()` (or now). The run calls `start()` once
  models are loaded and the source is open, so fps covers the stream only; the time before it
  is reported apart as `setup_s` (a summary never started counts from its construction);
- per-frame means divide totals by all frames, failed ones included;
- runtime overhead ratio: sum(wall_ms - backend_ms) / sum(backend_ms), i.e. how much time the
  runtime itself (program, routing, pre/post outside backends, sinks) adds per unit of backend
  time; None before any backend time was measured;
- energy keeps its meter: joules are summed per source label (nvml, jetson, rapl, estimated),
  and an estimated figure is shown as estimated;
- failed frames are grouped by their error (`error_kind`: the message with the frame id and
  the numbers that vary from frame to frame blanked out), each group with its first frame.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from edgefmp.files import write_text_atomic
from edgefmp.runtime.source_base import SourceEvent, SourceStats
from edgefmp.trace import Cost, Trace

SUMMARY_VERSION = 1
NO_BACKEND = "(none)"
ERROR_KINDS_SHOWN = 5  # error groups rendered in the table; to_json has them all (up to the cap)
MAX_ERROR_KINDS = 100  # distinct groups kept; later new ones are only counted, so memory stays bounded

_SITE_POSITION = re.compile(r"@(\d+):(\d+)$")
# Numbers that vary between frames of the same failure (indices, sizes, timings), but not the
# line of a program error nor a site's position, which tell two failures apart.
_VARYING_NUMBER = re.compile(r"(?<!line )(?<![@:\w.])\d+(?:\.\d+)?")


def site_order(site: str) -> tuple[int, int, int, str]:
    """Sort key of a site id: `find@8:20` before `find@14:27` (by line, then column)."""
    match = _SITE_POSITION.search(site)
    if match is None:
        return (1, 0, 0, site)
    return (0, int(match.group(1)), int(match.group(2)), site)


def error_kind(frame_id: str, error: str) -> str:
    """The group of a frame's error: its message without the frame id and the numbers that
    change from frame to frame, so one failure repeated on every frame is one kind."""
    text = error.replace(frame_id, "<frame>") if frame_id else error
    return _VARYING_NUMBER.sub("#", text)


@dataclass
class ErrorGroup:
    """Frames that failed the same way: how many, and the first one's id and message."""

    count: int
    first_frame: str
    message: str


def human_bytes(n: float) -> str:
    """1536 -> '1.5 kB' (decimal units, as network tools report)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # unreachable; keeps the type checker content


class RunSummary:
    """Running totals of a run; feed it traces (`write`) and source events (`event`).

    `clock` is injectable so tests need no real time; `source_stats` (a source's live
    `SourceStats`) is reported as it stands when the summary is read.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.perf_counter, source_stats: SourceStats | None = None
    ) -> None:
        self._clock = clock
        self.source_stats = source_stats
        self.created_at = clock()
        self.started_at = self.created_at
        self.finished_at: float | None = None
        self.policy: str | None = None  # what routed the calls, e.g. "adaptive (target: ...)"
        self.catalog: str | None = None  # which catalog served them
        self.notes: list[str] = []  # one-line remarks of the run (labels matched, ...)
        self.frames = 0
        self.failed = 0
        self.wall_ms_total = 0.0
        self.wall_ms_max = 0.0
        self.backend_ms_total = 0.0
        self.cost = Cost(energy_source="none")
        self.energy_by_source: dict[str, float] = {}
        self.calls = 0
        self.call_errors = 0
        self.fallbacks = 0
        self.failed_attempts = 0
        self.site_function: dict[str, str] = {}
        self.mix: dict[str, Counter[str]] = {}
        self.events: Counter[str] = Counter()
        self.audits = 0
        self.errors: dict[str, ErrorGroup] = {}
        self.other_errors = 0  # failed frames of kinds beyond MAX_ERROR_KINDS

    # --- feeding ---------------------------------------------------------------------------

    def start(self) -> None:
        """Restart the wall clock (e.g. after models are loaded, so fps measures the stream);
        the time since construction becomes `setup_s`."""
        self.started_at = self._clock()
        self.finished_at = None

    def write(self, trace: Trace, image: np.ndarray | None = None) -> None:
        self.frames += 1
        if not trace.ok:
            self.failed += 1
            self._add_error(trace)
        self.wall_ms_total += trace.wall_ms
        self.wall_ms_max = max(self.wall_ms_max, trace.wall_ms)
        self.backend_ms_total += trace.backend_ms
        for call in trace.calls:
            self.calls += 1
            self.cost = self.cost + call.cost
            self._add_energy(call.cost)
            if call.error is not None:
                self.call_errors += 1
            if call.fell_back:
                self.fallbacks += 1
            for attempt in call.attempts:
                self.failed_attempts += 1
                self.cost = self.cost + attempt.cost
                self._add_energy(attempt.cost)
            self.site_function.setdefault(call.site, call.function)
            self.mix.setdefault(call.site, Counter())[call.backend or NO_BACKEND] += 1
        audit = trace.meta.get("audit")
        if isinstance(audit, Mapping) and isinstance(audit.get("cost"), Mapping):
            # audit runs of the largest configuration are real work: charge them
            audit_cost = Cost.from_json(dict(audit["cost"]))
            self.audits += 1
            self.cost = self.cost + audit_cost
            self._add_energy(audit_cost)

    add = write  # reads better outside the sink protocol

    def _add_error(self, trace: Trace) -> None:
        message = trace.error or "failed"
        kind = error_kind(trace.frame_id, message)
        group = self.errors.get(kind)
        if group is not None:
            group.count += 1
        elif len(self.errors) < MAX_ERROR_KINDS:
            self.errors[kind] = ErrorGroup(1, trace.frame_id, message)
        else:
            self.other_errors += 1

    def _add_energy(self, cost: Cost) -> None:
        if cost.energy_j or cost.energy_source not in ("none", ""):
            label = cost.energy_source or "estimated"
            self.energy_by_source[label] = self.energy_by_source.get(label, 0.0) + cost.energy_j

    def event(self, ev: SourceEvent | Mapping[str, Any]) -> None:
        kind = ev.kind if isinstance(ev, SourceEvent) else str(ev.get("event", "?"))
        self.events[kind] += 1

    def close(self) -> None:
        """Freeze the wall clock; later reads report the same fps."""
        if self.finished_at is None:
            self.finished_at = self._clock()

    finish = close

    # --- derived numbers -------------------------------------------------------------------

    @property
    def ok(self) -> int:
        return self.frames - self.failed

    @property
    def elapsed_s(self) -> float:
        end = self.finished_at if self.finished_at is not None else self._clock()
        return max(end - self.started_at, 0.0)

    @property
    def setup_s(self) -> float:
        """Seconds from construction to `start()`: loading models, opening the source."""
        return max(self.started_at - self.created_at, 0.0)

    @property
    def fps(self) -> float | None:
        elapsed = self.elapsed_s
        return self.frames / elapsed if elapsed > 0 else None

    @property
    def overhead_ratio(self) -> float | None:
        if self.backend_ms_total <= 0:
            return None
        return (self.wall_ms_total - self.backend_ms_total) / self.backend_ms_total

    @property
    def energy_label(self) -> str:
        """Which meters the energy figure comes from, e.g. 'nvml', 'estimated', 'nvml+estimated'."""
        return "+".join(sorted(self._meters())) or "none"

    def _meters(self) -> set[str]:
        """The meter names in the energy labels ("nvml+estimated" holds two)."""
        return {m for label in self.energy_by_source for m in label.split("+") if m not in ("", "none")}

    def _per_frame(self, total: float) -> float | None:
        return total / self.frames if self.frames else None

    def backend_mix(self) -> dict[str, dict[str, Any]]:
        """Per call site: its function, call count, and each backend's count and share."""
        out: dict[str, dict[str, Any]] = {}
        for site, counts in sorted(self.mix.items(), key=lambda item: site_order(item[0])):
            total = sum(counts.values())
            out[site] = {
                "function": self.site_function.get(site, ""),
                "calls": total,
                "backends": {name: {"count": n, "share": round(n / total, 4)} for name, n in counts.most_common()},
            }
        return out

    def to_json(self) -> dict[str, Any]:
        c = self.cost
        fps = self.fps
        ratio = self.overhead_ratio

        def mean(total: float, digits: int) -> float | None:
            value = self._per_frame(total)
            return None if value is None else round(value, digits)

        return {
            "version": SUMMARY_VERSION,
            "policy": self.policy,
            "catalog": self.catalog,
            "frames": self.frames,
            "ok": self.ok,
            "failed": self.failed,
            "errors": [
                {"error": g.message, "first_frame": g.first_frame, "frames": g.count}
                for g in sorted(self.errors.values(), key=lambda g: -g.count)
            ],
            "setup_s": round(self.setup_s, 4),
            "elapsed_s": round(self.elapsed_s, 4),
            "fps": None if fps is None else round(fps, 3),
            "wall_ms": {
                "total": round(self.wall_ms_total, 3),
                "mean": mean(self.wall_ms_total, 3),
                "max": round(self.wall_ms_max, 3),
            },
            "overhead_ratio": None if ratio is None else round(ratio, 4),
            "cost": {
                "total": {**c.to_json(), "energy_source": self.energy_label},
                "per_frame": {
                    "latency_ms": mean(c.latency_ms, 3),
                    "energy_j": mean(c.energy_j, 6),
                    "bytes_up": mean(c.bytes_up, 1),
                    "bytes_down": mean(c.bytes_down, 1),
                    "money": mean(c.money, 8),
                },
                "energy_by_source": {k: round(v, 6) for k, v in sorted(self.energy_by_source.items())},
                "energy_estimated": "estimated" in self._meters(),
            },
            "calls": self.calls,
            "call_errors": self.call_errors,
            "fallbacks": self.fallbacks,
            "failed_attempts": self.failed_attempts,
            "audited_frames": self.audits,
            "backend_mix": self.backend_mix(),
            "source_events": dict(sorted(self.events.items())),
            "source_stats": None if self.source_stats is None else self.source_stats.as_dict(),
            "notes": list(self.notes),
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_json()` to `path` atomically (a reader never sees half a file)."""
        return write_text_atomic(path, json.dumps(self.to_json(), indent=2) + "\n", "the run summary")

    # --- display ---------------------------------------------------------------------------

    def _energy_text(self) -> str:
        if not self.energy_by_source:
            return "not measured"
        per = self._per_frame(self.cost.energy_j) or 0.0
        sources = sorted(self.energy_by_source.items())
        if len(sources) == 1:
            return f"{self.cost.energy_j:.3g} J total ({sources[0][0]}), {per:.3g} J/frame"
        detail = " + ".join(f"{j:.3g} J ({src})" for src, j in sources)
        return f"{self.cost.energy_j:.3g} J total, {per:.3g} J/frame — {detail}"

    def render(self) -> Table:
        """A two-column rich Table for the CLI (`console.print(summary.render())`)."""
        table = Table(title="Run summary", show_header=False, title_justify="left")
        table.add_column("metric", style="bold")
        table.add_column("value")
        fps = self.fps
        if self.policy:
            table.add_row("policy", escape(self.policy))
        if self.catalog:
            table.add_row("catalog", escape(self.catalog))
        table.add_row("frames", f"{self.frames} ({self.ok} ok, {self.failed} failed)")
        groups = sorted(self.errors.values(), key=lambda g: -g.count)
        for group in groups[:ERROR_KINDS_SHOWN]:
            table.add_row("  failed", escape(f"{group.count} × {group.message} (first: frame {group.first_frame})"))
        hidden = sum(g.count for g in groups[ERROR_KINDS_SHOWN:])
        if hidden + self.other_errors:
            table.add_row("  failed", f"{hidden + self.other_errors} more, of other kinds (see the traces)")
        throughput = (f"{fps:.2f} fps" if fps is not None else "n/a") + f" over {self.elapsed_s:.2f} s of stream"
        if self.setup_s > 0:
            throughput += f" (setup before it, not counted: {self.setup_s:.2f} s)"
        table.add_row("throughput", throughput)
        wall = self._per_frame(self.wall_ms_total)
        if wall is not None:
            table.add_row("wall per frame", f"mean {wall:.1f} ms, max {self.wall_ms_max:.1f} ms")
        backend = self._per_frame(self.cost.latency_ms)
        if backend is not None:
            table.add_row("backend latency", f"{backend:.1f} ms/frame ({self.cost.latency_ms / 1000:.2f} s total)")
        ratio = self.overhead_ratio
        table.add_row("runtime overhead", "n/a (no backend time)" if ratio is None else f"{ratio:.1%} of backend time")
        table.add_row("energy", self._energy_text())
        up, down = self.cost.bytes_up, self.cost.bytes_down
        net = f"up {human_bytes(up)}, down {human_bytes(down)}"
        if self.frames and (up or down):
            per_up, per_down = human_bytes(up / self.frames), human_bytes(down / self.frames)
            net += f" ({per_up} / {per_down} per frame)"
        table.add_row("network", net)
        if self.cost.money:
            money = f"${self.cost.money:.4f}"
            if self.frames:
                money += f" (${self.cost.money / self.frames:.6f}/frame)"
            table.add_row("money", money)
        table.add_row("calls", f"{self.calls} calls, {self.fallbacks} fell back, {self.call_errors} failed")
        if self.audits:
            table.add_row("audit", f"{self.audits} frames also ran on the largest backends (cost included)")
        for note in self.notes:
            table.add_row("note", escape(note))
        mix = self.backend_mix()
        if mix:
            table.add_section()
            for site, row in mix.items():
                shares = ", ".join(f"{name} {b['count']} ({b['share']:.0%})" for name, b in row["backends"].items())
                table.add_row(escape(f"{site} ({row['function']})"), escape(shares))
        if self.events or self.source_stats is not None:
            table.add_section()
            if self.events:
                table.add_row("source events", ", ".join(f"{k} {n}" for k, n in sorted(self.events.items())))
            if self.source_stats is not None:
                s = self.source_stats
                table.add_row(
                    "source", f"{s.frames_read} read, {s.dropped} dropped, {s.reconnects} reconnects, {s.errors} errors"
                )
        return table


__all__ = ["SUMMARY_VERSION", "ErrorGroup", "RunSummary", "error_kind", "human_bytes", "site_order"]
