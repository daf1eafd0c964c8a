"""The end-of-run summary: throughput, cost per frame, where calls went, what the source did.

`RunSummary` is an accumulator that is also a sink (`write`, `event`, `close`), so the run loop
feeds it like any other sink; it keeps only running totals, never the traces, so a long live
run uses constant memory (one counter per call site and backend). `to_json()` is the
machine-readable form (versioned); `render()` is a rich Table for the CLI.

Definitions:
- fps: frames / wall time from `start()` (or construction) to `close()` (or now);
- per-frame means divide totals by all frames, failed ones included;
- runtime overhead ratio: sum(wall_ms - backend_ms) / sum(backend_ms), i.e. how much time the
  runtime itself (program, routing, pre/post outside backends, sinks) adds per unit of backend
  time; None before any backend time was measured;
- energy keeps its meter: joules are summed per source label (nvml, jetson, rapl, estimated),
  and an estimated figure is shown as estimated.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from edgefmp.files import write_text_atomic
from edgefmp.runtime.source_base import SourceEvent, SourceStats
from edgefmp.trace import Cost, Trace

SUMMARY_VERSION = 1
NO_BACKEND = "(none)"


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
        self.started_at = clock()
        self.finished_at: float | None = None
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

    # --- feeding ---------------------------------------------------------------------------

    def start(self) -> None:
        """Restart the wall clock (e.g. after models are loaded, so fps measures the stream)."""
        self.started_at = self._clock()
        self.finished_at = None

    def write(self, trace: Trace, image: np.ndarray | None = None) -> None:
        self.frames += 1
        if not trace.ok:
            self.failed += 1
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
        return "+".join(sorted(self.energy_by_source)) or "none"

    def _per_frame(self, total: float) -> float | None:
        return total / self.frames if self.frames else None

    def backend_mix(self) -> dict[str, dict[str, Any]]:
        """Per call site: its function, call count, and each backend's count and share."""
        out: dict[str, dict[str, Any]] = {}
        for site, counts in sorted(self.mix.items()):
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
            "frames": self.frames,
            "ok": self.ok,
            "failed": self.failed,
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
                "energy_estimated": "estimated" in self.energy_by_source,
            },
            "calls": self.calls,
            "call_errors": self.call_errors,
            "fallbacks": self.fallbacks,
            "failed_attempts": self.failed_attempts,
            "audited_frames": self.audits,
            "backend_mix": self.backend_mix(),
            "source_events": dict(sorted(self.events.items())),
            "source_stats": None if self.source_stats is None else self.source_stats.as_dict(),
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_json()` to `path` atomically (a reader never sees half a file)."""
        return write_text_atomic(path, json.dumps(self.to_json(), indent=2) + "\n", "the run summary")

    # --- display ---------------------------------------------------------------------------

    def _energy_text(self) -> str:
        if not self.energy_by_source:
            return "not measured"
        per = self._per_frame(self.cost.energy_j) or 0.0
        parts = [
            f"{j:.3g} J {'(estimated)' if src == 'estimated' else f'({src})'}"
            for src, j in sorted(self.energy_by_source.items())
        ]
        detail = parts[0] if len(parts) == 1 else " + ".join(parts)
        return f"{self.cost.energy_j:.3g} J total, {per:.3g} J/frame — {detail}"

    def render(self) -> Table:
        """A two-column rich Table for the CLI (`console.print(summary.render())`)."""
        table = Table(title="Run summary", show_header=False, title_justify="left")
        table.add_column("metric", style="bold")
        table.add_column("value")
        fps = self.fps
        table.add_row("frames", f"{self.frames} ({self.ok} ok, {self.failed} failed)")
        table.add_row("throughput", (f"{fps:.2f} fps" if fps is not None else "n/a") + f" over {self.elapsed_s:.2f} s")
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
        mix = self.backend_mix()
        if mix:
            table.add_section()
            for site, row in mix.items():
                shares = ", ".join(f"{name} {b['count']} ({b['share']:.0%})" for name, b in row["backends"].items())
                table.add_row(f"{site} ({row['function']})", shares)
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


__all__ = ["SUMMARY_VERSION", "RunSummary", "human_bytes"]
