"""What one case did on one query's stream: answers scored, costs summed, backends counted.

A `CaseRecord` is fed one frame at a time (`add`) and keeps running sums plus per-block
counts (blocks of `block` frames, for learning curves), never the traces, so a sweep's memory
does not grow with its length. Its JSON form is what worker processes send back and what the
results file stores per (case, query).

Costs, per frame:
- backend latency / energy / bytes: what the calls cost when measured (replayed calls keep
  their measured cost, see cache.py), failed attempts included;
- router: the policy's own time, live: every `choose` (and `escalate`) inside the frame plus
  the `observe`/`update` of its feedback; its energy is estimated at the device's busy power;
- params: the paper's proxy, the parameter count (millions) of every backend called.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edgefmp.policies.feedback import as_bool, correctness_reward
from edgefmp.trace import Trace


def score(answer: Any, label: Any, binary: bool) -> tuple[bool, bool | None]:
    """(correct, predicted positive). A binary answer that is not yes/no (or a failed frame)
    counts as the wrong answer, as the paper's reward does."""
    if binary:
        truth = bool(label)
        predicted = as_bool(answer)
        if predicted is None:
            predicted = not truth
        return predicted == truth, predicted
    return correctness_reward(answer, label) > 0, None


@dataclass
class CaseRecord:
    """Running totals of one case on one stream (see the module docstring)."""

    case: str
    family: str
    setting: str
    query: str
    binary: bool
    block: int = 25
    assignment: list[int] | None = None
    error: str | None = None
    frames: int = 0
    failed: int = 0
    correct: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    latency_ms: float = 0.0
    energy_j: float = 0.0
    bytes: float = 0.0
    params_m: float = 0.0
    router_ms: float = 0.0
    decision_ms: float = 0.0
    update_ms: float = 0.0
    wall_ms: float = 0.0
    infer_wall_ms: float = 0.0
    calls: int = 0
    fallbacks: int = 0
    seconds: float = 0.0
    energy_sources: list[str] = field(default_factory=list)
    blocks: list[list[int]] = field(default_factory=list)  # [frames, correct, tp, fp, fn]
    mix: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # frame kind -> [frames, correct]

    def add(
        self,
        trace: Trace,
        label: Any,
        kind: str,
        params_m: dict[str, float],
        update_ms: float,
    ) -> None:
        """Score one frame and add its costs. `params_m` maps backend name -> millions of params."""
        ok, predicted = score(trace.answer if trace.ok else None, label, self.binary)
        self.frames += 1
        self.failed += not trace.ok
        self.correct += ok
        if self.binary:
            truth = bool(label)
            self.tp += bool(predicted and truth)
            self.fp += bool(predicted and not truth)
            self.fn += bool(not predicted and truth)
            self.tn += bool(not predicted and not truth)
        if not self.blocks or self.blocks[-1][0] >= self.block:
            self.blocks.append([0, 0, 0, 0, 0])
        b = self.blocks[-1]
        b[0] += 1
        b[1] += ok
        if self.binary:
            b[2] += bool(predicted and label)
            b[3] += bool(predicted and not label)
            b[4] += bool(not predicted and label)
        k = self.by_kind.setdefault(kind, [0, 0])
        k[0] += 1
        k[1] += ok
        cost = trace.cost
        self.latency_ms += cost.latency_ms
        self.energy_j += cost.energy_j
        self.bytes += cost.bytes_up + cost.bytes_down
        for src in cost.energy_source.split("+"):
            if src and src != "none" and src not in self.energy_sources:
                self.energy_sources.append(src)
        decision = sum(c.decision_us for c in trace.calls) / 1e3
        self.decision_ms += decision
        self.update_ms += update_ms
        self.router_ms += decision + update_ms
        self.wall_ms += trace.wall_ms
        self.infer_wall_ms += float(trace.meta.get("infer_wall_ms", trace.backend_ms))
        for call in trace.calls:
            self.calls += 1
            self.fallbacks += call.fell_back
            for name in [call.backend, *(a.backend for a in call.attempts)]:
                if name is not None:
                    self.params_m += params_m.get(name, 0.0)
            site = self.mix.setdefault(call.site, {"function": call.function, "backends": Counter()})
            site["backends"][call.backend or "(failed)"] += 1

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "mix"}
        out["mix"] = {
            site: {"function": row["function"], "backends": dict(row["backends"])} for site, row in self.mix.items()
        }
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseRecord:
        rec = cls(**{k: v for k, v in data.items() if k != "mix"})
        rec.mix = {
            site: {"function": row["function"], "backends": Counter(row["backends"])}
            for site, row in data.get("mix", {}).items()
        }
        return rec


__all__ = ["CaseRecord", "score"]
