"""What the policy learns from during a run: labels from a file (at once or late, matched by
frame id), or, with no labels, audit runs of the largest configuration on a sampled share of
frames. The audit's own cost is put on the audited frame's trace, so summaries charge it."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from edgefmp.frame import Frame
from edgefmp.policies.base import Policy
from edgefmp.policies.feedback import (
    AuditSampler,
    DelayedLabels,
    Feedback,
    agreement_reward,
    read_labels,
    reward_for,
)
from edgefmp.runtime.executor import Executor
from edgefmp.trace import Trace


class Learning:
    """The loop's feedback hook: `after_frame(trace, frame)` once per frame, in order."""

    def __init__(
        self,
        policy: Policy,
        labels: Path | None = None,
        audit: AuditSampler | None = None,
        reference: Executor | None = None,
    ) -> None:
        if audit is not None and reference is None:
            raise ValueError("audit mode needs a reference executor (the largest configuration)")
        self.feedback = Feedback(policy, agreement_reward if labels is None and audit else reward_for)
        self.delayed = DelayedLabels(read_labels(labels)) if labels is not None else None
        self.audit = audit
        self.reference = reference

    def after_frame(self, trace: Trace, frame: Frame, lock: AbstractContextManager[object] | None = None) -> None:
        with lock or nullcontext():
            self._learn(trace, frame)

    def _learn(self, trace: Trace, frame: Frame) -> None:
        self.feedback.on_trace(trace)
        if self.delayed is not None:
            for frame_id, label in self.delayed.after_frame(trace.frame_id):
                self.feedback.on_label(frame_id, label)
        audit, reference = self.audit, self.reference
        if (
            audit is not None
            and reference is not None
            and frame.image is not None
            and audit.should_audit(trace.frame_id)
        ):
            ref = reference.run_frame(frame)
            label = audit.record(ref)
            trace.meta["audit"] = {"answer": label, "cost": ref.cost.to_json(), "error": ref.error}
            if ref.error is None:
                self.feedback.on_label(trace.frame_id, label)
