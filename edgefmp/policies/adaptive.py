"""`adaptive`: per-call-site Thompson sampling over Bayesian linear heads, under budgets.

For every call site and every backend the policy keeps two ridge (Bayesian linear) models
over the CONTEXT_DIM context features of `edgefmp.policies.context`:

- accuracy: P(correct | x) ~ prior_mean + theta . x, posterior N(theta, noise^2 A^-1);
  A = prior_precision * I + sum x x^T, kept as A^-1 by Sherman-Morrison rank-1 updates so an
  update costs O(d^2) and no matrix is ever inverted;
- cost: latency_ms, energy_j, bytes per call ~ prior + Theta^T x, a ridge on the residual
  from the backend's prior (BackendInfo.prior, i.e. the catalog / `edgefmp profile`), so
  with no data it predicts the prior and with data it follows what was measured.

Choosing: sample each backend's accuracy from its posterior *at this x* (the marginal of
theta . x is a scalar Gaussian, so one normal draw per backend replaces a d-dimensional
draw), then take the argmax of `a * sampled_accuracy - predicted_costs @ prices`, where `a`
and `prices` come from the dual variables of `DualBudgets` (budgets.py). Unavailable
backends and remote backends of `local_only` sites are masked before the argmax.

Propensity (for off-policy evaluation): with probability `epsilon` the policy picks
uniformly among allowed backends, otherwise by Thompson sampling. The Thompson part's
probability of the chosen backend is estimated from `propensity_samples` further draws of
the same posterior (Monte Carlo; standard error <= 0.5/sqrt(M)); the logged propensity is
`(1 - epsilon) * p_ts + epsilon / n_allowed`, so it is never below `epsilon / n_allowed` and
IPS weights stay bounded.

Learning: `update(trace, reward)` credits the frame's reward to every call record of the
trace (only sites that ran appear there), using the features stored in the record at
choose time, so feedback can come k frames later, out of order, or never. Rewards map to
correctness (`reward > 0`), or, with reward_mode="scaled", to reward / reward_scale.
`observe(trace)` (also run by `update` for frames not yet observed) learns the measured
costs and moves the budget duals; it is idempotent per frame id. Calls another policy chose
(an audit run, a replayed log) teach the heads just as well: they are supervised
regressions of what happened given the context, not of what this policy intended.

Accuracy-gap targets compare each call's predicted accuracy with the largest backend's,
pessimistically (largest at mean + 1 posterior sd), because a loose target rarely runs the
largest backend and would otherwise under-state the loss; see `_note_gap`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgefmp.errors import PolicyError
from edgefmp.policies.base import BackendInfo, Decision, DecisionContext, Policy, SiteInfo
from edgefmp.policies.budgets import N_RESOURCES, DualBudgets, Targets, cost_tuple, cost_vector
from edgefmp.policies.context import (
    CONTEXT_DIM,
    CONTEXT_VERSION,
    PRESSURE_KEY,
    FrameMemory,
    context_features,
)
from edgefmp.trace import Cost, Trace

log = logging.getLogger(__name__)

ADAPTIVE_STATE_VERSION = 1
_MAX_REMEMBERED_FRAMES = 1024


@dataclass(frozen=True)
class AdaptiveConfig:
    """Hyper-parameters of `AdaptivePolicy` (see its docstring)."""

    prior_mean: float = 0.5
    prior_precision: float = 1.0
    noise: float = 0.5
    explore: float = 1.0
    epsilon: float = 0.02
    propensity_samples: int = 64
    reward_mode: str = "correct"
    reward_scale: float = 1000.0
    cost_prior_strength: float = 1.0
    dual_step: float = 0.05
    lambda_max: float = 10.0
    gap_step: float = 1.0

    def __post_init__(self) -> None:
        positive = (
            "prior_precision",
            "noise",
            "reward_scale",
            "cost_prior_strength",
            "dual_step",
            "lambda_max",
            "gap_step",
        )
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise PolicyError(f"adaptive.{name}: expected a number > 0, got {v!r}")
        if not 0.0 <= self.explore < 1e6:
            raise PolicyError(f"adaptive.explore: expected a number >= 0, got {self.explore!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise PolicyError(f"adaptive.epsilon: expected a probability in [0, 1], got {self.epsilon!r}")
        if not 1 <= self.propensity_samples <= 100_000:
            raise PolicyError(f"adaptive.propensity_samples: expected 1..100000, got {self.propensity_samples!r}")
        if self.reward_mode not in ("correct", "scaled"):
            raise PolicyError(f"adaptive.reward_mode: expected 'correct' or 'scaled', got {self.reward_mode!r}")


class _SiteModel:
    """The arrays of one call site: K backends, d features, R cost resources.

    `w` (d, K + K*R) stacks the accuracy weights and the cost weights so that choosing costs
    one vector-matrix product; it is derived from `theta` and `ctheta` and kept in step.
    """

    def __init__(self, site: SiteInfo, cfg: AdaptiveConfig) -> None:
        k, d = len(site.backends), CONTEXT_DIM
        if k == 0:
            raise PolicyError(f"adaptive: site {site.site_id} has no backends")
        self.info = site
        self.k = k
        self.names = tuple(b.name for b in site.backends)
        self.remote = np.array([b.location == "remote" for b in site.backends])
        self.a_inv = np.repeat(np.eye(d)[None] / cfg.prior_precision, k, axis=0)
        self.b = np.zeros((k, d))
        self.theta = np.zeros((k, d))
        self.n_acc = np.zeros(k)
        self.c_inv = np.repeat(np.eye(d)[None] / cfg.cost_prior_strength, k, axis=0)
        self.cb = np.zeros((k, d, N_RESOURCES))
        self.ctheta = np.zeros((k, d, N_RESOURCES))
        self.n_cost = np.zeros(k)
        self.cost_prior = np.zeros((k, N_RESOURCES))
        for i, backend in enumerate(site.backends):
            if backend.prior is not None:
                self.cost_prior[i] = cost_vector(backend.prior)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the derived arrays from the learned ones."""
        k, d = self.k, CONTEXT_DIM
        self.w = np.empty((d, k + k * N_RESOURCES))
        self.w[:, :k] = self.theta.T
        self.w[:, k:] = self.ctheta.transpose(1, 0, 2).reshape(d, k * N_RESOURCES)
        self.remote_list = [bool(r) for r in self.remote]
        self.prior_flat = self.cost_prior.reshape(-1).tolist()

    def set_theta(self, i: int) -> None:
        np.matmul(self.a_inv[i], self.b[i], out=self.theta[i])
        self.w[:, i] = self.theta[i]

    def set_ctheta(self, i: int) -> None:
        np.matmul(self.c_inv[i], self.cb[i], out=self.ctheta[i])
        r = N_RESOURCES
        self.w[:, self.k + i * r : self.k + (i + 1) * r] = self.ctheta[i]

    def arrays(self) -> dict[str, Any]:
        return {
            "backends": list(self.names),
            "remote": self.remote.copy(),
            "a_inv": self.a_inv.copy(),
            "b": self.b.copy(),
            "theta": self.theta.copy(),
            "n_acc": self.n_acc.copy(),
            "c_inv": self.c_inv.copy(),
            "cb": self.cb.copy(),
            "ctheta": self.ctheta.copy(),
            "n_cost": self.n_cost.copy(),
            "cost_prior": self.cost_prior.copy(),
        }

    def load(self, state: dict[str, Any], where: str) -> None:
        for key in ("a_inv", "b", "theta", "n_acc", "c_inv", "cb", "ctheta", "n_cost", "cost_prior"):
            arr = np.asarray(state[key], dtype=np.float64)
            if arr.shape != getattr(self, key).shape:
                raise PolicyError(f"{where}.{key}: shape {arr.shape}, expected {getattr(self, key).shape}")
            setattr(self, key, arr.copy())
        self.refresh()

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


def _sherman_morrison(inv: np.ndarray, x: np.ndarray) -> None:
    """In place: inv <- (inv^-1 + x x^T)^-1, O(d^2) and no inversion."""
    v = inv @ x
    inv -= (v[:, None] * v) * (1.0 / (1.0 + float(x @ v)))


def _frame_cost(trace: Trace) -> list[float]:
    """A frame's total cost in RESOURCES order, failed attempts included (= trace.cost)."""
    total = [0.0, 0.0, 0.0]
    for call in trace.calls:
        for cost in (call.cost, *(a.cost for a in call.attempts)):
            c = cost_tuple(cost)
            total[0] += c[0]
            total[1] += c[1]
            total[2] += c[2]
    return total


class AdaptivePolicy(Policy):
    """Thompson sampling per call site over Bayesian linear accuracy and cost heads, with
    user targets met by dual variables.

    Args:
        targets: a `Targets`, or a dict of its fields (latency_ms, energy_j, bytes: mean per
            frame; accuracy_gap: points below the largest backend; minimize; cost_weights).
            None: maximise accuracy with no cost term (add cost_weights for the paper's
            fixed trade-off).
        seed: seed of the policy's own random generator (its state is saved and resumed).
        **config: fields of `AdaptiveConfig` (prior_mean, prior_precision, noise, explore,
            epsilon, propensity_samples, reward_mode, reward_scale, cost_prior_strength,
            dual_step, lambda_max, gap_step).
    """

    name = "adaptive"

    def __init__(self, targets: Targets | dict[str, Any] | None = None, seed: int | None = None, **config: Any) -> None:
        unknown = set(config) - set(AdaptiveConfig.__dataclass_fields__)
        if unknown:
            raise PolicyError(
                f"adaptive: unknown option(s) {sorted(unknown)}; available: "
                f"targets, seed, {', '.join(sorted(AdaptiveConfig.__dataclass_fields__))}"
            )
        self.config = AdaptiveConfig(**config)
        self.targets = targets if isinstance(targets, Targets) else Targets.from_json(targets)
        self.budgets = DualBudgets(
            self.targets, step=self.config.dual_step, lambda_max=self.config.lambda_max, gap_step=self.config.gap_step
        )
        self.rng = np.random.default_rng(seed)
        self.sites: dict[str, _SiteModel] = {}
        self._memory = FrameMemory()
        self._frame_gap: OrderedDict[str, float] = OrderedDict()
        self._observed: OrderedDict[str, None] = OrderedDict()
        self.skipped_updates = 0

    # ------------------------------------------------------------------ choosing

    def _site(self, site: SiteInfo) -> _SiteModel:
        model = self.sites.get(site.site_id)
        if model is not None and model.info is site:
            return model
        names = tuple(b.name for b in site.backends)
        if model is None or model.names != names:
            if model is not None:
                log.warning(
                    "adaptive: site %s now has backends %s (was %s); its model starts afresh",
                    site.site_id,
                    names,
                    model.names,
                )
            model = _SiteModel(site, self.config)
            self.sites[site.site_id] = model
        model.info = site
        return model

    def _allowed(self, site: SiteInfo, model: _SiteModel, available: list[bool]) -> list[bool]:
        if len(available) != model.k:
            raise PolicyError(
                f"adaptive: site {site.site_id} has {model.k} backends but the "
                f"availability mask has {len(available)} entries"
            )
        if site.local_only:
            allowed = [bool(a) and not r for a, r in zip(available, model.remote_list, strict=True)]
        else:
            allowed = [bool(a) for a in available]
        if not any(allowed):
            rule = " (local_only: remote backends are forbidden)" if site.local_only else ""
            raise PolicyError(f"adaptive: site {site.site_id}: no backend is available{rule}")
        return allowed

    def _scores(self, model: _SiteModel, x: np.ndarray) -> tuple[list[float], list[float], list[float]]:
        """Per backend: posterior mean accuracy, its posterior sd, and the cost penalty.

        Two small matrix products in numpy; the K-sized arithmetic in plain floats, which
        is faster than numpy calls on 3-element vectors.
        """
        cfg = self.config
        k, r = model.k, N_RESOURCES
        out = (x @ model.w).tolist()
        var = ((model.a_inv @ x) @ x).tolist()
        prior = model.prior_flat
        cost = [max(out[k + j] + prior[j], 0.0) for j in range(k * r)]
        prices = self.budgets.prices(cost[(k - 1) * r : k * r])
        mean = [cfg.prior_mean + out[i] for i in range(k)]
        sd = [cfg.noise * math.sqrt(v) if v > 0.0 else 0.0 for v in var]
        p0, p1, p2 = prices  # RESOURCES: latency_ms, energy_j, bytes
        penalty = [cost[i * r] * p0 + cost[i * r + 1] * p1 + cost[i * r + 2] * p2 for i in range(k)]
        return mean, sd, penalty

    def _draw(
        self, mean: list[float], sd: list[float], penalty: list[float], allowed: list[bool], samples: int
    ) -> list[int]:
        """Winners of `samples` Thompson draws (the backend index of each draw)."""
        a = self.budgets.accuracy_price()
        spread = a * self.config.explore
        scores = self.rng.standard_normal((samples, len(mean)))
        scores *= np.array([spread * s for s in sd])
        scores += np.array([a * m - p for m, p in zip(mean, penalty, strict=True)])
        if not all(allowed):
            scores[:, [not ok for ok in allowed]] = -np.inf
        return scores.argmax(axis=1).tolist()  # type: ignore[no-any-return]

    def features(self, site: SiteInfo, context: DecisionContext) -> np.ndarray:
        """The context vector this policy decides on (motion memory and pressure filled in)."""
        self._memory.prepare(context)
        context.cache[PRESSURE_KEY] = self.budgets.pressure()
        x = context_features(site, context)
        self._memory.remember(context)
        return x

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        model = self._site(site)
        allowed = self._allowed(site, model, context.available)
        x = self.features(site, context)
        mean, sd, penalty = self._scores(model, x)
        m = self.config.propensity_samples
        winners = self._draw(mean, sd, penalty, allowed, m + 1)
        eps = self.config.epsilon
        index = winners[0]
        if eps > 0.0 and self.rng.random() < eps:
            index = int(self.rng.choice([i for i, ok in enumerate(allowed) if ok]))
        # Further draws of the same posterior estimate P(Thompson picks `index`); the floor
        # keeps a winner the draws happened to miss from being logged with probability 0.
        p_ts = max(winners.count(index) - (winners[0] == index), 1) / m
        propensity = (1.0 - eps) * p_ts + eps / sum(allowed)
        if self.targets.accuracy_gap is not None:
            self._note_gap(context.frame.frame_id, mean, sd, index)
        return Decision(index=index, propensity=min(propensity, 1.0), features=tuple(x.tolist()))

    def probabilities(
        self, site: SiteInfo, features: np.ndarray, available: list[bool] | None = None, samples: int = 2000
    ) -> np.ndarray:
        """This policy's probability of choosing each backend at `features` (for replay),
        estimated from `samples` Thompson draws, epsilon mixing included."""
        model = self._site(site)
        allowed = self._allowed(site, model, available if available is not None else [True] * model.k)
        mean, sd, penalty = self._scores(model, np.asarray(features, dtype=np.float64))
        winners = self._draw(mean, sd, penalty, allowed, samples)
        eps = self.config.epsilon
        wins = np.bincount(winners, minlength=model.k) / samples
        return (1.0 - eps) * wins + np.where(allowed, eps / sum(allowed), 0.0)

    def _note_gap(self, frame_id: str, mean: list[float], sd: list[float], index: int) -> None:
        """Add this call's predicted accuracy loss against the largest backend to its frame.

        Pessimistic about the reference (largest at mean + 1 sd): a loose target makes the
        policy rarely run the largest backend, whose accuracy then stays uncertain and
        shrunk towards the prior, so a plain mean difference under-states the loss; the
        pessimism sends calls to the largest backend until its estimate is tight enough.
        """
        if index == len(mean) - 1:
            return
        largest = min(max(mean[-1] + sd[-1], 0.0), 1.0)
        chosen = min(max(mean[index], 0.0), 1.0)
        gap = max(largest - chosen, 0.0)
        self._frame_gap[frame_id] = self._frame_gap.get(frame_id, 0.0) + gap
        while len(self._frame_gap) > _MAX_REMEMBERED_FRAMES:
            self._frame_gap.popitem(last=False)

    # ------------------------------------------------------------------ learning

    def _records(self, trace: Trace) -> list[tuple[_SiteModel, int, np.ndarray, Cost]]:
        out = []
        for call in trace.calls:
            model = self.sites.get(call.site)
            k = call.backend_index
            if model is None or k is None or call.features is None or call.error is not None:
                self.skipped_updates += 1
                continue
            x = np.asarray(call.features, dtype=np.float64)
            if x.shape != (CONTEXT_DIM,) or not 0 <= k < len(model.names):
                self.skipped_updates += 1
                continue
            out.append((model, k, x, call.cost))
        return out

    def observe(self, trace: Trace) -> None:
        """Learn the measured costs of a finished frame and move the budget duals (once per
        frame id; later calls for the same frame do nothing)."""
        self._observe(trace, self._records(trace))

    def _observe(self, trace: Trace, records: list[tuple[_SiteModel, int, np.ndarray, Cost]]) -> None:
        if trace.frame_id in self._observed:
            return
        self._observed[trace.frame_id] = None
        if len(self._observed) > _MAX_REMEMBERED_FRAMES:
            self._observed.popitem(last=False)
        for model, k, x, cost in records:
            c = np.array(cost_tuple(cost))
            c -= model.cost_prior[k]
            inv = model.c_inv[k]
            _sherman_morrison(inv, x)
            cb = model.cb[k]
            cb += x[:, None] * c
            model.set_ctheta(k)
            model.n_cost[k] += 1
        gap = min(self._frame_gap.pop(trace.frame_id, 0.0), 1.0) if self._frame_gap else 0.0
        self.budgets.end_frame(_frame_cost(trace), gap)

    def update(self, trace: Trace, reward: float | None) -> None:
        """Credit `reward` to every call of `trace`. None or NaN: costs only (no label)."""
        records = self._records(trace)
        self._observe(trace, records)
        if reward is None or not math.isfinite(reward):
            return
        cfg = self.config
        if cfg.reward_mode == "correct":
            y = 1.0 if reward > 0 else 0.0
        else:
            y = max(-1.0, min(1.0, reward / cfg.reward_scale))
        for model, k, x, _ in records:
            inv = model.a_inv[k]
            _sherman_morrison(inv, x)
            b = model.b[k]
            b += (y - cfg.prior_mean) * x
            model.set_theta(k)
            model.n_acc[k] += 1

    # ------------------------------------------------------------------ inspection

    def predict(self, site_id: str, features: np.ndarray) -> dict[str, np.ndarray]:
        """Posterior mean accuracy and predicted cost vectors of every backend of a site."""
        model = self.sites.get(site_id)
        if model is None:
            raise PolicyError(f"adaptive: no model for site {site_id!r} yet")
        x = np.asarray(features, dtype=np.float64)
        cost = np.maximum(model.cost_prior + x @ model.ctheta, 0.0)
        return {"accuracy": self.config.prior_mean + model.theta @ x, "cost": cost}

    def memory_bytes(self, site_id: str) -> int:
        """Bytes of numpy state one site holds."""
        return self.sites[site_id].nbytes()

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "version": ADAPTIVE_STATE_VERSION,
            "context_version": CONTEXT_VERSION,
            "context_dim": CONTEXT_DIM,
            "config": asdict(self.config),
            "budgets": self.budgets.state_dict(),
            "rng": self.rng.bit_generator.state,
            "sites": {sid: m.arrays() for sid, m in self.sites.items()},
            "frame_gap": dict(self._frame_gap),
            "observed": list(self._observed),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore learned arrays, duals, generator and bookkeeping. Hyper-parameters and
        targets stay those given to the constructor (a resumed run may change them)."""
        if state.get("version") != ADAPTIVE_STATE_VERSION:
            raise PolicyError(
                f"adaptive state version {state.get('version')!r} is not supported (expected {ADAPTIVE_STATE_VERSION})"
            )
        if state.get("context_dim") != CONTEXT_DIM or state.get("context_version") != CONTEXT_VERSION:
            raise PolicyError(
                f"adaptive state was learned on context v{state.get('context_version')} "
                f"({state.get('context_dim')} features); this edgefmp has v{CONTEXT_VERSION} ({CONTEXT_DIM})"
            )
        if state.get("config") != asdict(self.config):
            log.info(
                "adaptive: resuming with new hyper-parameters %s (saved: %s)", asdict(self.config), state.get("config")
            )
        sites: dict[str, _SiteModel] = {}
        for sid, arrays in state["sites"].items():
            names = tuple(arrays["backends"])
            remote = np.asarray(arrays["remote"], dtype=bool)
            backends = (BackendInfo(n, "remote" if r else "device") for n, r in zip(names, remote, strict=True))
            info = SiteInfo(sid, "", tuple(backends))
            model = _SiteModel(info, self.config)
            model.load(arrays, f"sites.{sid}")
            sites[sid] = model
        self.budgets.load_state_dict(state["budgets"])
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self.rng = rng
        self.sites = sites
        self._frame_gap = OrderedDict((str(k), float(v)) for k, v in state.get("frame_gap", {}).items())
        self._observed = OrderedDict((str(k), None) for k in state.get("observed", []))


__all__ = ["ADAPTIVE_STATE_VERSION", "AdaptiveConfig", "AdaptivePolicy"]
