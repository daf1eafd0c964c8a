"""What the policy learns from during a run: labels from a file (at once or late, matched by
frame id), or, with no labels, audit runs of the largest configuration on a sampled share of
frames. The audit's own cost is put on the audited frame's trace, so summaries charge it."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from edgefmp.frame import Frame
from edgefmp.policies.base import Policy
from edgefmp.policies.feedback import (
    AuditSampler,
    DelayedLabels,
    Feedback,
    LabelRecord,
    agreement_reward,
    read_labels,
    reward_for,
)
from edgefmp.runtime.executor import Executor
from edgefmp.trace import Trace


def _examples(ids: Iterable[str], n: int = 3) -> str:
    out = []
    for frame_id in ids:
        out.append(repr(frame_id))
        if len(out) == n:
            break
    return ", ".join(out)


def unmatched_labels_message(
    source: Path | str, label_ids: Collection[str], frame_ids: Iterable[str], frames: int
) -> str:
    """Why no label reached the policy: the ids of both sides, side by side."""
    return (
        f"none of the {len(label_ids)} labels in {source} matched a frame id of the {frames} frames "
        f"(labels: {_examples(sorted(label_ids))}; frames: {_examples(frame_ids)}); a video's frame "
        "ids are <file stem>:<index>, an image folder's the file names"
    )


class Learning:
    """The loop's feedback hook: `after_frame(trace, frame)` once per frame, in order."""

    def __init__(
        self,
        policy: Policy,
        labels: Path | None = None,
        audit: AuditSampler | None = None,
        reference: Executor | None = None,
        label_records: list[LabelRecord] | None = None,
    ) -> None:
        """`label_records`: the records of `labels` when the caller has read them already."""
        if audit is not None and reference is None:
            raise ValueError("audit mode needs a reference executor (the largest configuration)")
        self.feedback = Feedback(policy, agreement_reward if labels is None and audit else reward_for)
        self.labels_path = labels
        records = label_records if label_records is not None else read_labels(labels) if labels else []
        self.label_ids = frozenset(r.frame_id for r in records)
        self.delayed = DelayedLabels(records) if labels is not None else None
        self.audit = audit
        self.reference = reference
        self.frames = 0
        self.labelled_frames = 0  # frames whose id has a label in the file
        self.first_frame_ids: list[str] = []

    def labels_note(self) -> str | None:
        """A line for the summary on how the labels file matched the run's frames."""
        if self.labels_path is None or not self.frames:
            return None
        return (
            f"labels: {self.labelled_frames} of {self.frames} frames had a label in {self.labels_path} "
            f"({len(self.label_ids)} labels)"
        )

    def unmatched_warning(self) -> str | None:
        """The warning when a labels file was given and not one of its ids was a frame's."""
        if self.labels_path is None or not self.frames or self.labelled_frames:
            return None
        return unmatched_labels_message(self.labels_path, self.label_ids, self.first_frame_ids, self.frames)

    def after_frame(self, trace: Trace, frame: Frame, lock: AbstractContextManager[object] | None = None) -> None:
        with lock or nullcontext():
            self._learn(trace, frame)

    def _learn(self, trace: Trace, frame: Frame) -> None:
        self.frames += 1
        if len(self.first_frame_ids) < 3:
            self.first_frame_ids.append(trace.frame_id)
        self.labelled_frames += trace.frame_id in self.label_ids
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
