"""Feedback: turning labels into rewards, whenever they arrive (at once, later, or never).

Three ways labels reach a policy:

- immediate: the label comes with the frame (a test stream, a user's click);
- delayed: labels come k frames later, in any order, matched to the frame's trace by frame
  id (`edgefmp run --labels labels.jsonl`, see `read_labels`); a trace whose label has not
  come after `capacity` newer traces (or `max_age` frames) is evicted: "never";
- none: audit mode. On a sampled share of frames the runtime also runs the largest
  configuration and the policy learns from agreement with it (`AuditSampler`).

Audit-mode bias, documented because it is built in: the policy learns to *agree with the
largest configuration*, not to be right. Its accuracy ceiling is the reference's; where
the reference is wrong, backends that share its mistake are rewarded and backends that are
right are punished; and cheap backends can look better than they are on frames where
everything agrees. Sampling is uniform over frame ids (a hash, so it survives a restart
and does not depend on content), so the audited frames are not themselves biased; the audit
runs cost real resources, which `AuditSampler.cost` totals so summaries can charge them.

Rewards: `PAPER_REWARD` is the paper's shape for binary tasks with strong class imbalance
(TP +1000, TN +1, FP -100, FN -100); `correctness_reward` is 0/1 for open answers after
light normalisation (case, punctuation, articles, whitespace).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefmp.errors import ConfigError, PolicyError
from edgefmp.files import read_text_file
from edgefmp.policies.base import Policy
from edgefmp.trace import Cost, Trace

log = logging.getLogger(__name__)

RewardFn = Callable[[Any, Any], float]


# ---------------------------------------------------------------------------------- rewards


@dataclass(frozen=True)
class BinaryReward:
    """Reward of a yes/no answer against the truth; defaults are the paper's shape."""

    tp: float = 1000.0
    tn: float = 1.0
    fp: float = -100.0
    fn: float = -100.0

    def __call__(self, answer: Any, truth: Any) -> float:
        predicted, actual = as_bool(answer), as_bool(truth)
        if actual is None:
            raise PolicyError(f"binary reward: the label {truth!r} is not a yes/no value")
        if predicted is None:  # no answer (a failed frame) counts as the wrong one
            predicted = not actual
        if predicted:
            return self.tp if actual else self.fp
        return self.fn if actual else self.tn


PAPER_REWARD = BinaryReward()

_TRUE = {"yes", "true", "1", "y", "t"}
_FALSE = {"no", "false", "0", "n", "f"}


def as_bool(value: Any) -> bool | None:
    """True/False for booleans, 0/1 and yes/no strings; None when it is not a yes/no value."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = normalize_answer(value)
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    return None


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: Any) -> str:
    """Lower case, no punctuation, no articles, single spaces (the usual VQA normalisation)."""
    s = str(text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def correctness_reward(answer: Any, truth: Any) -> float:
    """1.0 when the answer matches the truth (or one of a list of accepted answers), else 0.0."""
    if answer is None:
        return 0.0
    accepted = truth if isinstance(truth, (list, tuple, set)) else [truth]
    a = normalize_answer(answer)
    return 1.0 if any(a == normalize_answer(t) for t in accepted) else 0.0


def reward_for(answer: Any, truth: Any) -> float:
    """The default reward: the paper's binary shape for a boolean label, 0/1 otherwise."""
    if isinstance(truth, bool):
        return PAPER_REWARD(answer, truth)
    return correctness_reward(answer, truth)


def agreement_reward(answer: Any, reference: Any) -> float:
    """Audit mode: 1.0 when the answer agrees with the reference configuration's answer."""
    ref, ans = as_bool(reference), as_bool(answer)
    if ref is not None and ans is not None:
        return 1.0 if ref == ans else 0.0
    return correctness_reward(answer, reference)


# ---------------------------------------------------------------------------------- matching


class LabelMatcher:
    """Pairs traces with labels by frame id, whichever comes first; bounded both ways.

    Traces wait for their label in a buffer of `capacity`; the oldest is evicted when it is
    full, or once `max_age` newer traces have arrived (its label never came: counted in
    `evicted_traces` and handed to `on_evict`). Labels that come before their trace wait in
    a buffer of the same size. A label for a frame already evicted or already matched is
    dropped and counted (`late_labels`, `duplicate_labels`).
    """

    def __init__(
        self,
        capacity: int = 1024,
        max_age: int | None = None,
        on_evict: Callable[[Trace], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise PolicyError(f"feedback: capacity must be >= 1, got {capacity}")
        if max_age is not None and max_age < 0:
            raise PolicyError(f"feedback: max_age must be >= 0 frames, got {max_age}")
        self.capacity = capacity
        self.max_age = max_age
        self.on_evict = on_evict
        self._traces: OrderedDict[str, tuple[int, Trace]] = OrderedDict()
        self._labels: OrderedDict[str, Any] = OrderedDict()
        self._done: OrderedDict[str, bool] = OrderedDict()  # frame id -> matched (True) / evicted
        self._tick = 0
        self.matched = 0
        self.evicted_traces = 0
        self.evicted_labels = 0
        self.late_labels = 0
        self.duplicate_labels = 0

    @property
    def pending_traces(self) -> int:
        return len(self._traces)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def _finish(self, frame_id: str, matched: bool) -> None:
        self._done[frame_id] = matched
        while len(self._done) > 4 * self.capacity:
            self._done.popitem(last=False)

    def _evict_trace(self) -> None:
        frame_id, (_, trace) = self._traces.popitem(last=False)
        self.evicted_traces += 1
        self._finish(frame_id, False)
        if self.on_evict is not None:
            self.on_evict(trace)

    def add_trace(self, trace: Trace) -> list[tuple[Trace, Any]]:
        """A finished frame; returns [(trace, label)] if its label is already here."""
        self._tick += 1
        fid = trace.frame_id
        out: list[tuple[Trace, Any]] = []
        if fid in self._labels:
            out.append((trace, self._labels.pop(fid)))
            self.matched += 1
            self._finish(fid, True)
        else:
            self._traces[fid] = (self._tick, trace)
            self._traces.move_to_end(fid)
        while len(self._traces) > self.capacity:
            self._evict_trace()
        if self.max_age is not None:
            while self._traces and self._tick - next(iter(self._traces.values()))[0] > self.max_age:
                self._evict_trace()
        return out

    def add_label(self, frame_id: str, label: Any) -> list[tuple[Trace, Any]]:
        """A label; returns [(trace, label)] if its frame's trace is waiting."""
        item = self._traces.pop(frame_id, None)
        if item is not None:
            self.matched += 1
            self._finish(frame_id, True)
            return [(item[1], label)]
        done = self._done.get(frame_id)
        if done is not None:
            if done:
                self.duplicate_labels += 1
            else:
                self.late_labels += 1
            return []
        self._labels[frame_id] = label
        while len(self._labels) > self.capacity:
            self._labels.popitem(last=False)
            self.evicted_labels += 1
        return []

    def stats(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "pending_traces": self.pending_traces,
            "pending_labels": self.pending_labels,
            "evicted_traces": self.evicted_traces,
            "evicted_labels": self.evicted_labels,
            "late_labels": self.late_labels,
            "duplicate_labels": self.duplicate_labels,
        }


class Feedback:
    """Feeds a policy: every finished frame to `observe`, every matched label to `update`.

    The runtime calls `on_trace(trace)` after each frame and `on_label(frame_id, label)`
    whenever a label arrives; an immediate label is `on_trace` then `on_label`.
    """

    def __init__(
        self,
        policy: Policy,
        reward_fn: RewardFn = reward_for,
        capacity: int = 1024,
        max_age: int | None = None,
    ) -> None:
        self.policy = policy
        self.reward_fn = reward_fn
        self.matcher = LabelMatcher(capacity, max_age)
        self.updates = 0
        self.reward_sum = 0.0

    def _apply(self, pairs: list[tuple[Trace, Any]]) -> None:
        for trace, label in pairs:
            reward = float(self.reward_fn(trace.answer, label))
            self.policy.update(trace, reward)
            self.updates += 1
            self.reward_sum += reward

    def on_trace(self, trace: Trace) -> None:
        self.policy.observe(trace)
        self._apply(self.matcher.add_trace(trace))

    def on_label(self, frame_id: str, label: Any) -> None:
        self._apply(self.matcher.add_label(frame_id, label))


# ---------------------------------------------------------------------------------- label files


@dataclass(frozen=True)
class LabelRecord:
    """One line of a labels file: `{"frame_id": "...", "label": ..., "delay": 3}`.

    `delay` (frames, optional, default 0) says how many frames after its own frame the
    label becomes available, so a file can replay realistic late feedback.
    """

    frame_id: str
    label: Any
    delay: int = 0


LABELS_FORMAT = (
    'JSONL, one object per line: {"frame_id": "clip:0", "label": true, "delay": 0} (delay optional, in frames)'
)


def read_labels(path: str | Path) -> list[LabelRecord]:
    """Read a JSONL labels file; errors name the file and line."""
    path = Path(path)
    lines = read_text_file(path, "labels file", LABELS_FORMAT).splitlines()
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict) or "frame_id" not in row or "label" not in row:
            raise ConfigError(f"{path}:{n}: expected an object with 'frame_id' and 'label'")
        delay = row.get("delay", 0)
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            raise ConfigError(f"{path}:{n}: delay: expected an integer >= 0 (frames), got {delay!r}")
        unknown = set(row) - {"frame_id", "label", "delay"}
        if unknown:
            raise ConfigError(f"{path}:{n}: unknown field(s) {sorted(unknown)}; expected frame_id, label, delay")
        out.append(LabelRecord(str(row["frame_id"]), row["label"], delay))
    return out


class DelayedLabels:
    """Releases file labels `delay` frames after their frame finished (out of order when
    delays differ); frames without a label never get one."""

    def __init__(self, records: Iterable[LabelRecord]) -> None:
        self._by_frame = {r.frame_id: r for r in records}
        self._due: dict[int, list[LabelRecord]] = {}
        self._tick = 0

    def after_frame(self, frame_id: str) -> list[tuple[str, Any]]:
        """Call once per finished frame; returns the labels that arrive now."""
        record = self._by_frame.pop(frame_id, None)
        if record is not None:
            self._due.setdefault(self._tick + record.delay, []).append(record)
        ready = self._due.pop(self._tick, [])
        self._tick += 1
        return [(r.frame_id, r.label) for r in ready]


# ---------------------------------------------------------------------------------- audit


class AuditSampler:
    """Audit mode: which frames also run the largest configuration, and what that cost.

    `should_audit` hashes (seed, frame id), so the choice needs no state, survives a restart
    and is independent of the frame's content. See the module docstring for the bias.
    """

    def __init__(self, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise PolicyError(f"audit: rate must lie in [0, 1], got {rate}")
        self.rate = rate
        self.seed = seed
        self.audits = 0
        self.cost = Cost(energy_source="none")

    def should_audit(self, frame_id: str) -> bool:
        digest = hashlib.blake2b(f"{self.seed}:{frame_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2.0**64 < self.rate

    def record(self, reference: Trace) -> Any:
        """Count an audit run's cost; returns its answer, the label for the audited frame."""
        self.audits += 1
        self.cost = self.cost + reference.cost
        return reference.answer

    def state_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed, "audits": self.audits, "cost": self.cost.to_json()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.audits = int(state.get("audits", 0))
        self.cost = Cost.from_json(state.get("cost", {}))


__all__ = [
    "PAPER_REWARD",
    "AuditSampler",
    "BinaryReward",
    "DelayedLabels",
    "Feedback",
    "LabelMatcher",
    "LabelRecord",
    "agreement_reward",
    "as_bool",
    "correctness_reward",
    "normalize_answer",
    "read_labels",
    "reward_for",
]
