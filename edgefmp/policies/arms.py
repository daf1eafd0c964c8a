"""What every baseline policy needs about arms: which may be chosen, what they cost, and which
calls of a trace earn credit.

Kept in one place so that every policy masks backends the same way (a remote backend is never
chosen at a `local_only` site, even if a caller forgot to clear it in `available`) and credits
the same calls (only the sites that ran, with the backend the policy chose, not the one a
failure fell back to).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.base import DecisionContext, SiteInfo
from edgefmp.trace import Cost, Trace

log = logging.getLogger(__name__)

REMOTE = "remote"


def allowed_arms(site: SiteInfo, context: DecisionContext, policy: str) -> np.ndarray:
    """Boolean mask of the backends this call may use: `available` and, at a local_only site,
    not remote. Raises PolicyError when the mask does not fit the site or allows nothing."""
    n = len(site.backends)
    if len(context.available) != n:
        raise PolicyError(
            f"{policy}: site {site.site_id} has {n} backends but the context's available mask "
            f"has {len(context.available)} entries"
        )
    mask = np.array(context.available, dtype=bool)
    if site.local_only:
        mask &= np.array([b.location != REMOTE for b in site.backends], dtype=bool)
    if not mask.any():
        names = ", ".join(f"{b.name} ({b.location})" for b in site.backends)
        raise PolicyError(
            f"{policy}: no backend may be used at site {site.site_id} (local_only={site.local_only}); backends: {names}"
        )
    return mask


def prior_costs(site: SiteInfo, cost_model: CostModel) -> np.ndarray:
    """The scalar prior cost of each backend (0 where no prior is known yet)."""
    return np.array(
        [0.0 if b.prior is None else cost_model.scalar(b.prior) for b in site.backends],
        dtype=np.float64,
    )


def param_costs(site: SiteInfo, cost_model: CostModel) -> np.ndarray:
    """The paper's static cost proxy: parameters in millions (a 3.75B VLM costs 3,750).

    Backends without a parameter count fall back to their scalar prior cost; the two scales
    differ, so give every backend of a site a parameter count when using this proxy.
    """
    priors = prior_costs(site, cost_model)
    return np.array(
        [priors[i] if b.params is None else float(b.params) / 1e6 for i, b in enumerate(site.backends)],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class Credit:
    """One call that earns credit: the site, the backend the policy chose for it, the call's
    whole measured cost (failed attempts included) and the features it was decided on."""

    site: str
    index: int
    cost: Cost
    features: list[float] | None


def credited_calls(trace: Trace, names: dict[str, tuple[str, ...]]) -> list[Credit]:
    """The calls of `trace` that ran, each credited to the backend that was chosen.

    When a call fell back after a failure, its first attempt names the chosen backend: the
    failure and its cost belong to that choice. `names` maps a site id to its backend names
    (what the policy saw at `choose`); calls of sites it never saw are skipped.
    """
    out: list[Credit] = []
    for call in trace.calls:
        site_names = names.get(call.site)
        if site_names is None or (call.backend_index is None and not call.attempts):
            continue
        index = call.backend_index
        if call.attempts and call.attempts[0].backend in site_names:
            index = site_names.index(call.attempts[0].backend)
        if index is None or not 0 <= index < len(site_names):
            log.debug("trace %s: call at %s has no usable backend index", trace.frame_id, call.site)
            continue
        cost = call.cost
        for attempt in call.attempts:
            cost = cost + attempt.cost
        out.append(Credit(call.site, index, cost, call.features))
    return out


class CostEstimate:
    """Per-backend running estimate of one site's measured scalar cost, starting from the prior.

    The first measurement replaces the prior; later ones move the estimate by at least
    `min_step` so it follows drift (a link that slows down, a device that heats up). Learned
    policies subtract `weight x estimate` at selection and never fold cost into what they
    regress, so retraining cannot absorb the cost term.
    """

    def __init__(self, prior: np.ndarray, min_step: float = 0.05) -> None:
        self.value = np.asarray(prior, dtype=np.float64).copy()
        self.count = np.zeros_like(self.value)
        self.min_step = float(min_step)

    def observe(self, index: int, cost: float) -> None:
        self.count[index] += 1.0
        step = max(1.0 / self.count[index], self.min_step)
        self.value[index] += step * (cost - self.value[index])

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value.copy(), "count": self.count.copy(), "min_step": self.min_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = np.asarray(state["value"], dtype=np.float64).copy()
        self.count = np.asarray(state["count"], dtype=np.float64).copy()
        self.min_step = float(state.get("min_step", self.min_step))
