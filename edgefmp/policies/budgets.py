"""User targets and the dual variables that meet them online.

The user states what a frame may cost on average (latency, energy, network bytes), or how
many points of accuracy the policy may lose against always using the largest backends; the
policy then maximises accuracy (or minimises a resource) subject to those targets. The
Lagrangian turns each target into a price: a call's score is

    score_j = a * p_j - sum_k lambda_k * c_jk / T_k - sum_k w_k * c_jk

where p_j is the (sampled) chance backend j gets the call right, c_jk its predicted cost in
resource k and T_k the per-frame target. `lambda_k` rises after every frame that spent more
than T_k and falls (never below 0) after frames that spent less: projected dual subgradient
ascent, whose guarantee is that the running mean of the frame cost exceeds the target by at
most lambda_max * S_k / (step * frames). With an accuracy-gap target, `a` is itself a dual
variable (the price of accuracy) and the fixed objective becomes the cost of `minimize`.

The subgradient (frame cost / T_k - 1) is divided by S_k = max(1, R_k / T_k), where R_k is
the mean cost of a frame had every call gone to the largest backend (the policy reports it,
see `end_frame`): the subgradient is then at most about 1 whatever the target. Without it a
target of 5% of the largest's cost makes one remote call a 20-fold violation, the price
jumps twenty steps at once and, while it decays, the calls that never go remote are pushed
from a good local model to a weak one for the sake of a fraction of a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefmp.errors import PolicyError
from edgefmp.trace import Cost

RESOURCES: tuple[str, ...] = ("latency_ms", "energy_j", "bytes")
N_RESOURCES = len(RESOURCES)


def cost_vector(cost: Cost) -> np.ndarray:
    """A Cost as a vector in RESOURCES order (bytes = up + down)."""
    return np.array(cost_tuple(cost))


def cost_tuple(cost: Cost) -> tuple[float, float, float]:
    """A Cost as plain floats in RESOURCES order (bytes = up + down)."""
    return (float(cost.latency_ms), float(cost.energy_j), float(cost.bytes_up + cost.bytes_down))


@dataclass(frozen=True)
class Targets:
    """What the user asks for; every field is optional.

    `latency_ms`, `energy_j`, `bytes`: mean per frame. `accuracy_gap`: at most this many
    points (percent) of frame accuracy below always choosing the largest backend.
    `minimize`: the resource whose cost is minimised under an accuracy-gap target.
    `cost_weights`: fixed prices per unit (the paper's cost_weight), added to the duals.
    """

    latency_ms: float | None = None
    energy_j: float | None = None
    bytes: float | None = None
    accuracy_gap: float | None = None
    minimize: str = "latency_ms"
    cost_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in RESOURCES:
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise PolicyError(f"targets.{name}: expected a number > 0, got {v!r}")
        gap = self.accuracy_gap
        if gap is not None and not (math.isfinite(gap) and 0 <= gap <= 100):
            raise PolicyError(f"targets.accuracy_gap: expected points in [0, 100], got {gap!r}")
        if self.minimize not in RESOURCES:
            raise PolicyError(f"targets.minimize: {self.minimize!r} is not one of {', '.join(RESOURCES)}")
        for k, w in self.cost_weights.items():
            if k not in RESOURCES:
                raise PolicyError(f"targets.cost_weights: unknown resource {k!r}; available: {', '.join(RESOURCES)}")
            if not math.isfinite(w) or w < 0:
                raise PolicyError(f"targets.cost_weights.{k}: expected a number >= 0, got {w!r}")

    def budget_vector(self) -> np.ndarray:
        """Per-frame targets in RESOURCES order; inf where there is none."""
        return np.array([math.inf if getattr(self, r) is None else float(getattr(self, r)) for r in RESOURCES])

    def weight_vector(self) -> np.ndarray:
        return np.array([float(self.cost_weights.get(r, 0.0)) for r in RESOURCES])

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "energy_j": self.energy_j,
            "bytes": self.bytes,
            "accuracy_gap": self.accuracy_gap,
            "minimize": self.minimize,
            "cost_weights": dict(self.cost_weights),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Targets:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise PolicyError(
                f"targets: unknown field(s) {sorted(unknown)}; available: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)


class DualBudgets:
    """Dual variables for the targets, updated once per finished frame.

    `step` is the dual step per frame for a violation of 100% of the target; `gap_step` the
    step of the accuracy price per unit of (predicted gap - allowed gap); `lambda_max`
    bounds every price so that one burst (a remote timeout) cannot freeze the policy on the
    cheapest backend for long. The running means it keeps are what a user reads to check
    the targets are met.
    """

    def __init__(
        self,
        targets: Targets,
        step: float = 0.05,
        lambda_max: float = 10.0,
        gap_step: float = 1.0,
        mu_init: float = 1.0,
        mu_max: float = 100.0,
    ) -> None:
        if step <= 0 or gap_step <= 0 or lambda_max <= 0 or mu_max <= 0:
            raise PolicyError("DualBudgets: step, gap_step, lambda_max and mu_max must be > 0")
        self.targets = targets
        self.step = float(step)
        self.gap_step = float(gap_step)
        self.lambda_max = float(lambda_max)
        self.mu_max = float(mu_max)
        self.budget = targets.budget_vector()
        self.active = np.isfinite(self.budget)
        self.weights = targets.weight_vector()
        # Three resources: plain floats beat numpy's per-call overhead on the per-frame path.
        self._active_idx = [i for i in range(N_RESOURCES) if self.active[i]]
        self.active_any = bool(self._active_idx)
        self._inv_budget = [1.0 / float(self.budget[i]) if self.active[i] else 0.0 for i in range(N_RESOURCES)]
        self._lam = [0.0] * N_RESOURCES
        self._cost_sum = [0.0] * N_RESOURCES
        self._ref_sum = [0.0] * N_RESOURCES  # sum of R_k over the frames that reported it
        self._ref_frames = 0
        self._scale = [1.0] * N_RESOURCES  # S_k
        self.mu = float(mu_init) if targets.accuracy_gap is not None else 1.0
        self.frames = 0
        self.gap_sum = 0.0
        self._minimize = RESOURCES.index(targets.minimize)
        self._refresh()

    @property
    def lam(self) -> np.ndarray:
        """The dual variable (price of a whole per-frame budget) of each resource."""
        return np.array(self._lam)

    # ---------------------------------------------------------------- choosing

    def accuracy_price(self) -> float:
        """The factor `a` in front of the chance of a correct call."""
        return self.mu

    def prices(self, ref_cost: Sequence[float] | None = None, spent: Sequence[float] | None = None) -> list[float]:
        """Price per unit of each resource (RESOURCES order), so that
        score = a * p - sum(cost * price).

        `ref_cost` (the largest backend's predicted cost) normalises the minimised resource
        under an accuracy-gap target, so that its cost lies in [0, 1]. `spent` (what the
        frame's earlier calls cost, RESOURCES order) raises the price of a resource the frame
        has already overspent to what it would be if the frame ended now: the duals move only
        between frames, so without it a frame whose first call went to a remote model would
        price its second call as if nothing had been spent, and a frame of several calls
        could spend many frames' budget at once (a latency spike, then a price spike that
        pushes the following frames to the weakest models). Plain floats: the policy
        combines them with three-element cost vectors per backend, where numpy's per-call
        overhead would dominate.
        """
        prices = self._prices if spent is None else self._prices_after(spent)
        if self.targets.accuracy_gap is not None and ref_cost is not None:
            ref = float(ref_cost[self._minimize])
            if ref > 0:
                prices = list(prices)
                prices[self._minimize] += 1.0 / ref
        return prices

    def _prices_after(self, spent: Sequence[float]) -> list[float]:
        """The prices after a dual step on `spent`, for the resources it overspends only."""
        raised: list[float] | None = None
        for i in self._active_idx:
            over = spent[i] * self._inv_budget[i] - 1.0
            if over > 0.0:
                if raised is None:
                    raised = list(self._prices)
                lam = min(self._lam[i] + self.step * over / self._scale[i], self.lambda_max)
                raised[i] = lam * self._inv_budget[i] + float(self.weights[i])
        return self._prices if raised is None else raised

    def pressure(self) -> float:
        """A single number in [0, 1] for the context: how hard the budgets bite now."""
        return self._pressure

    def _rescale(self) -> None:
        if self._ref_frames:
            n = self._ref_frames
            self._scale = [max(1.0, s / n * b) for s, b in zip(self._ref_sum, self._inv_budget, strict=True)]

    def _refresh(self) -> None:
        self._prices = [self._lam[i] * self._inv_budget[i] + float(self.weights[i]) for i in range(N_RESOURCES)]
        self._pressure = max((self._lam[i] for i in self._active_idx), default=0.0) / self.lambda_max

    # ---------------------------------------------------------------- learning

    def end_frame(
        self, frame_cost: Sequence[float], frame_gap: float = 0.0, largest_cost: Sequence[float] | None = None
    ) -> None:
        """Dual ascent after one frame: `frame_cost` in RESOURCES order, `frame_gap` the
        predicted accuracy loss (in [0, 1]) of this frame's choices against the largest,
        `largest_cost` the predicted cost of the frame's calls had they all gone to the
        largest backend (R_k of the module docstring; None when unknown).

        The gap is predicted by the policy's own models, not observed: when a cheap backend
        ran, nobody measured what the largest would have said on that frame.
        """
        self.frames += 1
        self.gap_sum += frame_gap
        for i in range(N_RESOURCES):
            c = float(frame_cost[i])
            self._cost_sum[i] += c if math.isfinite(c) else 0.0
        if largest_cost is not None and all(math.isfinite(float(c)) for c in largest_cost):
            self._ref_frames += 1
            for i in range(N_RESOURCES):
                self._ref_sum[i] += float(largest_cost[i])
            self._rescale()
        if self._active_idx:
            for i in self._active_idx:
                c = float(frame_cost[i])
                violation = c * self._inv_budget[i] - 1.0 if math.isfinite(c) else 0.0
                self._lam[i] = min(max(self._lam[i] + self.step * violation / self._scale[i], 0.0), self.lambda_max)
            self._refresh()
        if self.targets.accuracy_gap is not None:
            eps = self.targets.accuracy_gap / 100.0
            self.mu = min(max(self.mu + self.gap_step * (frame_gap - eps), 0.0), self.mu_max)

    def mean_cost(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {r: self._cost_sum[i] / n for i, r in enumerate(RESOURCES)}

    # ---------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            "targets": self.targets.to_json(),
            "lam": np.array(self._lam),
            "mu": self.mu,
            "frames": self.frames,
            "cost_sum": np.array(self._cost_sum),
            "gap_sum": self.gap_sum,
            "ref_sum": np.array(self._ref_sum),
            "ref_frames": self._ref_frames,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        lam = np.asarray(state["lam"], dtype=np.float64)
        if lam.shape != (N_RESOURCES,):
            raise PolicyError(f"budgets state: 'lam' has shape {lam.shape}, expected ({N_RESOURCES},)")
        # Targets may have changed since the save: prices of resources still targeted are a
        # better start than zero; the others are dropped.
        self._lam = [float(v) if self.active[i] else 0.0 for i, v in enumerate(lam)]
        self.mu = float(state["mu"]) if self.targets.accuracy_gap is not None else 1.0
        self.frames = int(state["frames"])
        self._cost_sum = [float(v) for v in np.asarray(state["cost_sum"], dtype=np.float64).reshape(N_RESOURCES)]
        self.gap_sum = float(state["gap_sum"])
        if "ref_sum" in state:  # absent from states saved before the subgradient was scaled
            self._ref_sum = [float(v) for v in np.asarray(state["ref_sum"], dtype=np.float64).reshape(N_RESOURCES)]
            self._ref_frames = int(state["ref_frames"])
        self._rescale()
        self._refresh()


__all__ = ["N_RESOURCES", "RESOURCES", "DualBudgets", "Targets", "cost_tuple", "cost_vector"]
