"""The bookkeeping shared by the per-site bandits `ucb` and `linucb` (and `routing`, a `linucb`).

Each call site keeps its own arms: per backend, how often it was credited, a measured cost
estimate (`arms.CostEstimate`, subtracted at selection, never learned into the reward model) and
the range of rewards seen (so an exploration weight means the same for 0/1 and +1000/-100
rewards). `SiteBandit` keeps those arms per site, rebuilds a site's arms when its backends
change, credits the calls of a labelled frame, and saves and loads the versioned state; a
subclass says what its arms learn and which settings it saves.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from edgefmp.cost.model import CostModel
from edgefmp.errors import PolicyError
from edgefmp.policies.arms import CostEstimate, Credit, credited_calls, prior_costs
from edgefmp.policies.base import Policy, SiteInfo
from edgefmp.trace import Trace

STATE_VERSION = 1


class SiteArms:
    """The statistics every bandit keeps for the backends of one site."""

    def __init__(self, names: tuple[str, ...], prior: np.ndarray) -> None:
        self.names = names
        self.counts = np.zeros(len(names))
        self.cost = CostEstimate(prior)
        self.r_min = math.inf
        self.r_max = -math.inf

    @property
    def scale(self) -> float:
        """Range of rewards seen (1 until two differ), so exploration weights mean the same for
        0/1 and +1000/-100 rewards."""
        return self.r_max - self.r_min if self.r_max > self.r_min else 1.0

    def record(self, index: int, reward: float, cost: float) -> None:
        """Count a credited call of backend `index`, its measured scalar cost and its reward."""
        self.counts[index] += 1.0
        self.cost.observe(index, cost)
        self.r_min = min(self.r_min, reward)
        self.r_max = max(self.r_max, reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "counts": self.counts.copy(),
            "cost": self.cost.state_dict(),
            "r_min": None if math.isinf(self.r_min) else self.r_min,
            "r_max": None if math.isinf(self.r_max) else self.r_max,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `SiteArms.state_dict` wrote (subclasses restore their own keys)."""
        self.counts = np.asarray(state["counts"], dtype=np.float64).copy()
        self.cost.load_state_dict(state["cost"])
        self.r_min = math.inf if state.get("r_min") is None else float(state["r_min"])
        self.r_max = -math.inf if state.get("r_max") is None else float(state["r_max"])


ArmsT = TypeVar("ArmsT", bound=SiteArms)


def check_state(state: dict[str, Any], policy: str, version: int) -> None:
    """Raise PolicyError unless `state` was saved by `policy` at state `version`."""
    if state.get("policy") != policy or state.get("version") != version:
        raise PolicyError(
            f"{policy}: cannot load state of policy {state.get('policy')!r} "
            f"version {state.get('version')!r} (expected {policy!r} version {version})"
        )


class SiteBandit(Policy, Generic[ArmsT]):
    """A policy with one `SiteArms` per call site and a cost term `cost_weight x cost`.

    Subclasses implement `choose`, `_learn` (what one credited call teaches the site's arms),
    `_config` / `_load_config` (the settings saved with the state) and `_arms_from_state`.
    """

    def __init__(self, cost_weight: float, cost_model: CostModel | None) -> None:
        self.cost_weight = float(cost_weight)
        self.cost_model = cost_model or CostModel()
        self._sites: dict[str, ArmsT] = {}

    def _site_arms(
        self,
        site: SiteInfo,
        make: Callable[[tuple[str, ...], np.ndarray], ArmsT],
        fits: Callable[[ArmsT], bool] = lambda arms: True,
    ) -> ArmsT:
        """The arms of `site`; new ones from `make(names, prior costs)` when the site is new,
        its backends changed, or the stored arms do not `fit` any more."""
        arms = self._sites.get(site.site_id)
        names = tuple(b.name for b in site.backends)
        if arms is None or arms.names != names or not fits(arms):
            arms = make(names, prior_costs(site, self.cost_model))
            self._sites[site.site_id] = arms
        return arms

    def update(self, trace: Trace, reward: float) -> None:
        if reward is None or not math.isfinite(reward):  # no label: nothing to learn
            return
        names = {sid: arms.names for sid, arms in self._sites.items()}
        for credit in credited_calls(trace, names):
            self._learn(trace, self._sites[credit.site], credit, reward)

    @abstractmethod
    def _learn(self, trace: Trace, arms: ArmsT, credit: Credit, reward: float) -> None:
        """Learn `reward` for the credited call `credit` of `trace` into the site's `arms`."""

    @abstractmethod
    def _config(self) -> dict[str, float]:
        """The settings saved with the state."""

    @abstractmethod
    def _load_config(self, config: dict[str, Any]) -> None:
        """Restore what `_config` returned."""

    @abstractmethod
    def _arms_from_state(self, state: dict[str, Any]) -> ArmsT:
        """Arms restored from what their `state_dict` returned."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "version": STATE_VERSION,
            "config": self._config(),
            "sites": {sid: arms.state_dict() for sid, arms in self._sites.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state(state, self.name, STATE_VERSION)
        self._load_config(state["config"])
        self._sites = {sid: self._arms_from_state(s) for sid, s in state["sites"].items()}
