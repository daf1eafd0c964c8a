"""LinUCB per call site (disjoint arms): the contextual learned baseline.

Each site keeps, per backend, a ridge regression from the call's context features
(`context.context_features`: frame statistics, the request, what earlier calls returned) to
the frame reward. Selection is `theta_a . x + alpha * scale * sqrt(x' A_a^-1 x) -
cost_weight * cost_a`; `A^-1` is kept up to date by Sherman-Morrison, so a decision is a few
small matrix-vector products. As in `ucb`, cost is a separate measured estimate subtracted at
selection, never part of the regression target. The features a decision used travel in the
trace (`CallRecord.features`), which is what `update` learns from: a delayed reward needs no
per-frame memory in the policy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.arms import CostEstimate, allowed_arms, credited_calls, prior_costs
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo
from edgefmp.policies.context import FrameMemory, context_features
from edgefmp.trace import Trace

log = logging.getLogger(__name__)

STATE_VERSION = 1

Featurizer = Callable[[SiteInfo, DecisionContext], np.ndarray]


class LinearArms:
    """Disjoint ridge regressions (one per backend) of one site, plus its cost estimate."""

    def __init__(self, names: tuple[str, ...], dim: int, prior: np.ndarray, ridge: float = 1.0) -> None:
        k = len(names)
        self.names = names
        self.a_inv = np.repeat(np.eye(dim)[None] / ridge, k, axis=0)
        self.b = np.zeros((k, dim))
        self.counts = np.zeros(k)
        self.cost = CostEstimate(prior)
        self.r_min = math.inf
        self.r_max = -math.inf

    @property
    def dim(self) -> int:
        return int(self.b.shape[1])

    def mean_and_width(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted reward of each backend at `x`, and the confidence width sqrt(x' A^-1 x)."""
        ax = self.a_inv @ x  # (k, d)
        theta_x = np.einsum("kd,kd->k", ax, self.b)  # theta . x = b' A^-1 x (A^-1 symmetric)
        width = np.sqrt(np.maximum(ax @ x, 0.0))
        return theta_x, width

    @property
    def scale(self) -> float:
        """Range of rewards seen, so `alpha` means the same for 0/1 and +1000/-100 rewards."""
        return self.r_max - self.r_min if self.r_max > self.r_min else 1.0

    def observe(self, index: int, x: np.ndarray, reward: float, cost: float) -> None:
        a_inv = self.a_inv[index]
        ax = a_inv @ x
        a_inv -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        self.b[index] += reward * x
        self.counts[index] += 1.0
        self.cost.observe(index, cost)
        self.r_min = min(self.r_min, reward)
        self.r_max = max(self.r_max, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "a_inv": self.a_inv.copy(),
            "b": self.b.copy(),
            "counts": self.counts.copy(),
            "cost": self.cost.state_dict(),
            "r_min": None if math.isinf(self.r_min) else self.r_min,
            "r_max": None if math.isinf(self.r_max) else self.r_max,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LinearArms:
        b = np.asarray(state["b"], dtype=np.float64)
        arms = cls(tuple(state["names"]), b.shape[1], np.zeros(b.shape[0]))
        arms.a_inv = np.asarray(state["a_inv"], dtype=np.float64).copy()
        arms.b = b.copy()
        arms.counts = np.asarray(state["counts"], dtype=np.float64).copy()
        arms.cost.load_state_dict(state["cost"])
        arms.r_min = math.inf if state.get("r_min") is None else float(state["r_min"])
        arms.r_max = -math.inf if state.get("r_max") is None else float(state["r_max"])
        return arms


class LinUCBPolicy(Policy):
    """LinUCB per call site on the cheap context features, with a cost term.

    `features` replaces the featurizer (a function of site and context returning a fixed-size
    vector; tests pass synthetic ones). `cost_weight` and `cost_model` mean what they mean in
    `ucb`. Deterministic: propensity 1.
    """

    name = "linucb"

    def __init__(
        self,
        alpha: float = 1.0,
        ridge: float = 1.0,
        cost_weight: float = 1e-3,
        cost_model: CostModel | None = None,
        features: Featurizer | None = None,
    ) -> None:
        if alpha < 0 or ridge <= 0 or cost_weight < 0:
            raise PolicyError(
                f"{self.name}: need alpha >= 0, ridge > 0, cost_weight >= 0; "
                f"got alpha={alpha}, ridge={ridge}, cost_weight={cost_weight}"
            )
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self.cost_weight = float(cost_weight)
        self.cost_model = cost_model or CostModel()
        self._features = features
        self._memory = FrameMemory()
        self._sites: dict[str, LinearArms] = {}
        self._warned_no_features = False

    def featurize(self, site: SiteInfo, context: DecisionContext) -> np.ndarray:
        if self._features is not None:
            return np.asarray(self._features(site, context), dtype=np.float64)
        self._memory.prepare(context)
        x = context_features(site, context)
        self._memory.remember(context)
        return x

    def _arms(self, site: SiteInfo, dim: int) -> LinearArms:
        arms = self._sites.get(site.site_id)
        names = tuple(b.name for b in site.backends)
        if arms is None or arms.names != names or arms.dim != dim:
            arms = LinearArms(names, dim, prior_costs(site, self.cost_model), self.ridge)
            self._sites[site.site_id] = arms
        return arms

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        mask = allowed_arms(site, context, self.name)
        x = self.featurize(site, context)
        arms = self._arms(site, x.shape[0])
        mean, width = arms.mean_and_width(x)
        score = mean + self.alpha * arms.scale * width - self.cost_weight * arms.cost.value
        index = int(np.argmax(np.where(mask, score, -np.inf)))
        return Decision(index, propensity=1.0, features=tuple(float(v) for v in x))

    def update(self, trace: Trace, reward: float) -> None:
        if reward is None or not math.isfinite(reward):  # no label: nothing to learn
            return
        names = {sid: arms.names for sid, arms in self._sites.items()}
        for credit in credited_calls(trace, names):
            arms = self._sites[credit.site]
            if credit.features is None or len(credit.features) != arms.dim:
                if not self._warned_no_features:
                    log.warning(
                        "%s: frame %s, site %s: the call record carries no features of size %d; "
                        "the executor must copy Decision.features into CallRecord.features",
                        self.name,
                        trace.frame_id,
                        credit.site,
                        arms.dim,
                    )
                    self._warned_no_features = True
                continue
            x = np.asarray(credit.features, dtype=np.float64)
            arms.observe(credit.index, x, reward, self.cost_model.scalar(credit.cost))

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "version": STATE_VERSION,
            "config": {"alpha": self.alpha, "ridge": self.ridge, "cost_weight": self.cost_weight},
            "sites": {sid: arms.state_dict() for sid, arms in self._sites.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("policy") != self.name or state.get("version") != STATE_VERSION:
            raise PolicyError(
                f"{self.name}: cannot load state of policy {state.get('policy')!r} version "
                f"{state.get('version')!r} (expected {self.name!r} version {STATE_VERSION})"
            )
        config = state["config"]
        self.alpha, self.ridge = float(config["alpha"]), float(config["ridge"])
        self.cost_weight = float(config["cost_weight"])
        self._sites = {sid: LinearArms.from_state(s) for sid, s in state["sites"].items()}
