"""UCB1 per call site: the context-free learned baseline.

Each site keeps, per backend, how often it was chosen and the mean frame reward it earned
(credit only when the site ran). Selection is `mean + c * range * sqrt(2 ln N / n) -
cost_weight * cost`: UCB1's bonus assumes rewards in [0, 1], so it is scaled by the range of
rewards seen at the site (rewards here are anything from {0, 1} to the paper's +1000/-100).
Cost is the measured cost of the backend at this site (`arms.CostEstimate`), subtracted at
selection and never mixed into the learned mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.arms import CostEstimate, allowed_arms, credited_calls, prior_costs
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo
from edgefmp.trace import Trace

STATE_VERSION = 1


class _Arms:
    """UCB1 statistics of one site."""

    def __init__(self, names: tuple[str, ...], prior: np.ndarray) -> None:
        self.names = names
        self.counts = np.zeros(len(names))
        self.sums = np.zeros(len(names))
        self.cost = CostEstimate(prior)
        self.r_min = math.inf
        self.r_max = -math.inf

    def observe(self, index: int, reward: float, cost: float) -> None:
        self.counts[index] += 1.0
        self.sums[index] += reward
        self.cost.observe(index, cost)
        self.r_min = min(self.r_min, reward)
        self.r_max = max(self.r_max, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "counts": self.counts.copy(),
            "sums": self.sums.copy(),
            "cost": self.cost.state_dict(),
            "r_min": None if math.isinf(self.r_min) else self.r_min,
            "r_max": None if math.isinf(self.r_max) else self.r_max,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Arms:
        arms = cls(tuple(state["names"]), np.zeros(len(state["names"])))
        arms.counts = np.asarray(state["counts"], dtype=np.float64).copy()
        arms.sums = np.asarray(state["sums"], dtype=np.float64).copy()
        arms.cost.load_state_dict(state["cost"])
        arms.r_min = math.inf if state.get("r_min") is None else float(state["r_min"])
        arms.r_max = -math.inf if state.get("r_max") is None else float(state["r_max"])
        return arms


class UCBPolicy(Policy):
    """UCB1 per call site, with a cost term.

    `cost_weight` converts cost units (see `CostModel`; by default 1 unit = 1 ms) into reward
    units: with rewards of 0/1 per frame, 1e-3 makes one second of latency worth one correct
    answer. Untried backends are tried first, cheapest first. Deterministic: propensity 1.
    """

    name = "ucb"

    def __init__(self, c: float = 1.0, cost_weight: float = 1e-3, cost_model: CostModel | None = None) -> None:
        if c < 0 or cost_weight < 0:
            raise PolicyError(f"ucb: c and cost_weight must be >= 0, got c={c}, cost_weight={cost_weight}")
        self.c = float(c)
        self.cost_weight = float(cost_weight)
        self.cost_model = cost_model or CostModel()
        self._sites: dict[str, _Arms] = {}

    def _arms(self, site: SiteInfo) -> _Arms:
        arms = self._sites.get(site.site_id)
        names = tuple(b.name for b in site.backends)
        if arms is None or arms.names != names:
            arms = _Arms(names, prior_costs(site, self.cost_model))
            self._sites[site.site_id] = arms
        return arms

    def scores(self, site: SiteInfo) -> np.ndarray:
        """Each backend's UCB score minus its weighted cost (inf for untried ones)."""
        arms = self._arms(site)
        total = max(arms.counts.sum(), 1.0)
        scale = arms.r_max - arms.r_min if arms.r_max > arms.r_min else 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(arms.counts > 0, arms.sums / np.maximum(arms.counts, 1.0), 0.0)
            bonus = self.c * scale * np.sqrt(2.0 * math.log(total) / np.maximum(arms.counts, 1.0))
        score = mean + bonus - self.cost_weight * arms.cost.value
        # Untried arms first, cheapest (lowest index) first: a falling score keeps that order.
        return np.where(arms.counts > 0, score, np.inf)

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        mask = allowed_arms(site, context, self.name)
        score = np.where(mask, self.scores(site), -np.inf)
        return Decision(int(np.argmax(score)))

    def update(self, trace: Trace, reward: float) -> None:
        if reward is None or not math.isfinite(reward):  # no label: nothing to learn
            return
        names = {sid: arms.names for sid, arms in self._sites.items()}
        for credit in credited_calls(trace, names):
            self._sites[credit.site].observe(credit.index, reward, self.cost_model.scalar(credit.cost))

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "version": STATE_VERSION,
            "config": {"c": self.c, "cost_weight": self.cost_weight},
            "sites": {sid: arms.state_dict() for sid, arms in self._sites.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("policy") != self.name or state.get("version") != STATE_VERSION:
            raise PolicyError(
                f"ucb: cannot load state of policy {state.get('policy')!r} "
                f"version {state.get('version')!r} (expected {self.name!r} version {STATE_VERSION})"
            )
        self.c = float(state["config"]["c"])
        self.cost_weight = float(state["config"]["cost_weight"])
        self._sites = {sid: _Arms.from_state(s) for sid, s in state["sites"].items()}
