"""Confidence cascade: run the cheapest backend, escalate a call whose answer is unsure.

This is the classic non-learning baseline: no feedback needed, one threshold per function.

The executor hook (the executor calls it after every call that returned):

    CascadePolicy.escalate(
        site: SiteInfo, context: DecisionContext, record: CallRecord
    ) -> int | None

`record` is the call that just returned (its `backend_index` and `confidence` set by the
executor). The hook returns the index of the next backend to re-run the same call on, or None
to keep the answer. When it returns an index, the executor runs the call again on that backend,
keeps both records in the trace (the escalated one last, whose result the program uses), and
may ask `escalate` again with the new record, so that a call can climb several tiers up to
`max_escalations` (counted as the record's rank among the allowed backends, so the hook keeps
no per-frame state). `context.available` must be current. Only policies that define
`escalate` get asked; the others never escalate.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgefmp.errors import PolicyError
from edgefmp.policies.arms import allowed_arms
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo
from edgefmp.trace import CallRecord

log = logging.getLogger(__name__)


class CascadePolicy(Policy):
    """Cheapest allowed backend first; escalate while `confidence < threshold`.

    `threshold` applies to every function unless `thresholds` names one (for example
    `{"detect": 0.4, "vqa": 0.7}`: detector scores and VLM answer confidences are on different
    scales). A result without a confidence cannot be judged: it escalates only if
    `escalate_unknown` is set. A failed call is the executor's fallback business, not ours.
    """

    name = "cascade"

    def __init__(
        self,
        threshold: float = 0.5,
        thresholds: dict[str, float] | None = None,
        escalate_unknown: bool = False,
        max_escalations: int = 2,
    ) -> None:
        self._configure(threshold, thresholds, escalate_unknown, max_escalations)

    def _configure(
        self,
        threshold: float,
        thresholds: dict[str, float] | None,
        escalate_unknown: bool,
        max_escalations: int,
    ) -> None:
        self.threshold = float(threshold)
        self.thresholds = {str(k): float(v) for k, v in (thresholds or {}).items()}
        for where, value in [("threshold", self.threshold), *self.thresholds.items()]:
            if not 0.0 <= value <= 1.0:
                raise PolicyError(f"cascade: threshold for {where} must lie in [0, 1], got {value}")
        if max_escalations < 0:
            raise PolicyError(f"cascade: max_escalations must be >= 0, got {max_escalations}")
        self.escalate_unknown = bool(escalate_unknown)
        self.max_escalations = int(max_escalations)

    def threshold_for(self, function: str) -> float:
        return self.thresholds.get(function, self.threshold)

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        mask = allowed_arms(site, context, self.name)
        return Decision(int(np.flatnonzero(mask)[0]))

    def escalate(self, site: SiteInfo, context: DecisionContext, record: CallRecord) -> int | None:
        """The next more capable allowed backend when `record` is unsure, else None."""
        if record.error is not None or record.backend_index is None:
            return None
        if record.confidence is None:
            if not self.escalate_unknown:
                return None
        elif record.confidence >= self.threshold_for(site.function):
            return None
        # The cascade climbs allowed backends one tier at a time from the cheapest, so the
        # record's rank among them is how many escalations this call has had: no state needed.
        allowed = np.flatnonzero(allowed_arms(site, context, self.name))
        tier = int(np.sum(allowed < record.backend_index))
        higher = allowed[allowed > record.backend_index]
        if tier >= self.max_escalations or higher.size == 0:
            return None
        index = int(higher[0])
        log.debug(
            "cascade: site %s confidence %s below %.2f, escalating %s -> %d",
            site.site_id,
            record.confidence,
            self.threshold_for(site.function),
            record.backend_index,
            index,
        )
        return index

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
            "escalate_unknown": self.escalate_unknown,
            "max_escalations": self.max_escalations,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("policy") != self.name:
            raise PolicyError(f"cascade: cannot load the state of policy {state.get('policy')!r}")
        self._configure(
            float(state.get("threshold", 0.5)),
            state.get("thresholds"),
            bool(state.get("escalate_unknown", False)),
            int(state.get("max_escalations", 2)),
        )
