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
from edgefmp.policies.arms import Credit, allowed_arms
from edgefmp.policies.bandit import SiteArms, SiteBandit
from edgefmp.policies.base import Decision, DecisionContext, SiteInfo
from edgefmp.trace import Trace


class _Arms(SiteArms):
    """UCB1 statistics of one site: `SiteArms` plus each backend's sum of rewards."""

    def __init__(self, names: tuple[str, ...], prior: np.ndarray) -> None:
        super().__init__(names, prior)
        self.sums = np.zeros(len(names))

    def observe(self, index: int, reward: float, cost: float) -> None:
        self.sums[index] += reward
        self.record(index, reward, cost)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "sums": self.sums.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Arms:
        arms = cls(tuple(state["names"]), np.zeros(len(state["names"])))
        arms.load_state_dict(state)
        arms.sums = np.asarray(state["sums"], dtype=np.float64).copy()
        return arms


class UCBPolicy(SiteBandit[_Arms]):
    """UCB1 per call site, with a cost term.

    `cost_weight` converts cost units (see `CostModel`; by default 1 unit = 1 ms) into reward
    units: with rewards of 0/1 per frame, 1e-3 makes one second of latency worth one correct
    answer. Untried backends are tried first, cheapest first. Deterministic: propensity 1.
    """

    name = "ucb"

    def __init__(self, c: float = 1.0, cost_weight: float = 1e-3, cost_model: CostModel | None = None) -> None:
        if c < 0 or cost_weight < 0:
            raise PolicyError(f"ucb: c and cost_weight must be >= 0, got c={c}, cost_weight={cost_weight}")
        super().__init__(cost_weight, cost_model)
        self.c = float(c)

    def scores(self, site: SiteInfo) -> np.ndarray:
        """Each backend's UCB score minus its weighted cost (inf for untried ones)."""
        arms = self._site_arms(site, _Arms)
        total = max(arms.counts.sum(), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(arms.counts > 0, arms.sums / np.maximum(arms.counts, 1.0), 0.0)
            bonus = self.c * arms.scale * np.sqrt(2.0 * math.log(total) / np.maximum(arms.counts, 1.0))
        score = mean + bonus - self.cost_weight * arms.cost.value
        # Untried arms first, cheapest (lowest index) first: a falling score keeps that order.
        return np.where(arms.counts > 0, score, np.inf)

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        mask = allowed_arms(site, context, self.name)
        score = np.where(mask, self.scores(site), -np.inf)
        return Decision(int(np.argmax(score)))

    def _learn(self, trace: Trace, arms: _Arms, credit: Credit, reward: float) -> None:
        arms.observe(credit.index, reward, self.cost_model.scalar(credit.cost))

    def _config(self) -> dict[str, float]:
        return {"c": self.c, "cost_weight": self.cost_weight}

    def _load_config(self, config: dict[str, Any]) -> None:
        self.c = float(config["c"])
        self.cost_weight = float(config["cost_weight"])

    def _arms_from_state(self, state: dict[str, Any]) -> _Arms:
        return _Arms.from_state(state)
