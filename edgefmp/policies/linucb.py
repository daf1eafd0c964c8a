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
from collections.abc import Callable
from typing import Any

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.arms import Credit, allowed_arms
from edgefmp.policies.bandit import SiteArms, SiteBandit
from edgefmp.policies.base import Decision, DecisionContext, SiteInfo
from edgefmp.policies.context import FrameMemory, context_features
from edgefmp.trace import Trace

log = logging.getLogger(__name__)

Featurizer = Callable[[SiteInfo, DecisionContext], np.ndarray]


class LinearArms(SiteArms):
    """Disjoint ridge regressions (one per backend) of one site, plus what `SiteArms` keeps."""

    def __init__(self, names: tuple[str, ...], dim: int, prior: np.ndarray, ridge: float = 1.0) -> None:
        super().__init__(names, prior)
        k = len(names)
        self.a_inv = np.repeat(np.eye(dim)[None] / ridge, k, axis=0)
        self.b = np.zeros((k, dim))

    @property
    def dim(self) -> int:
        return int(self.b.shape[1])

    def mean_and_width(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted reward of each backend at `x`, and the confidence width sqrt(x' A^-1 x)."""
        ax = self.a_inv @ x  # (k, d)
        theta_x = np.einsum("kd,kd->k", ax, self.b)  # theta . x = b' A^-1 x (A^-1 symmetric)
        width = np.sqrt(np.maximum(ax @ x, 0.0))
        return theta_x, width

    def observe(self, index: int, x: np.ndarray, reward: float, cost: float) -> None:
        a_inv = self.a_inv[index]
        ax = a_inv @ x
        a_inv -= np.outer(ax, ax) / (1.0 + float(x @ ax))
        self.b[index] += reward * x
        self.record(index, reward, cost)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "a_inv": self.a_inv.copy(), "b": self.b.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LinearArms:
        b = np.asarray(state["b"], dtype=np.float64)
        arms = cls(tuple(state["names"]), b.shape[1], np.zeros(b.shape[0]))
        arms.load_state_dict(state)
        arms.a_inv = np.asarray(state["a_inv"], dtype=np.float64).copy()
        arms.b = b.copy()
        return arms


class LinUCBPolicy(SiteBandit[LinearArms]):
    """LinUCB per call site on the cheap context features, with a cost term.

    `features` replaces the featurizer (a function of site and context returning a fixed-size
    vector; tests pass synthetic ones). `cost_weight` and `cost_model` mean what they mean in
    `ucb`. Deterministic: propensity 1. Subclasses (`routing`) override `featurize` and `choose`.
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
        super().__init__(cost_weight, cost_model)
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self._features = features
        self._memory = FrameMemory()
        self._warned_no_features = False

    def featurize(self, site: SiteInfo, context: DecisionContext) -> np.ndarray:
        if self._features is not None:
            return np.asarray(self._features(site, context), dtype=np.float64)
        self._memory.prepare(context)
        x = context_features(site, context)
        self._memory.remember(context)
        return x

    def _arms(self, site: SiteInfo, dim: int) -> LinearArms:
        return self._site_arms(
            site,
            lambda names, prior: LinearArms(names, dim, prior, self.ridge),
            lambda arms: arms.dim == dim,
        )

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        mask = allowed_arms(site, context, self.name)
        x = self.featurize(site, context)
        arms = self._arms(site, x.shape[0])
        mean, width = arms.mean_and_width(x)
        score = mean + self.alpha * arms.scale * width - self.cost_weight * arms.cost.value
        index = int(np.argmax(np.where(mask, score, -np.inf)))
        return Decision(index, propensity=1.0, features=tuple(float(v) for v in x))

    def _learn(self, trace: Trace, arms: LinearArms, credit: Credit, reward: float) -> None:
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
            return
        x = np.asarray(credit.features, dtype=np.float64)
        arms.observe(credit.index, x, reward, self.cost_model.scalar(credit.cost))

    def _config(self) -> dict[str, float]:
        return {"alpha": self.alpha, "ridge": self.ridge, "cost_weight": self.cost_weight}

    def _load_config(self, config: dict[str, Any]) -> None:
        self.alpha, self.ridge = float(config["alpha"]), float(config["ridge"])
        self.cost_weight = float(config["cost_weight"])

    def _arms_from_state(self, state: dict[str, Any]) -> LinearArms:
        return LinearArms.from_state(state)
