"""`adaptive`: per-call-site Thompson sampling over Bayesian linear heads, under budgets.

For every call site and every backend the policy keeps two ridge (Bayesian linear) models
over the CONTEXT_DIM context features of `edgefmp.policies.context`:

- accuracy: P(correct | x) ~ m_k + theta . x, posterior N(theta, sigma_k^2 A^-1);
  A = s_k * I + sum w x x^T, kept as A^-1 by Sherman-Morrison rank-1 updates so an update
  costs O(d^2) and no matrix is ever inverted. m_k is the backend's offline accuracy
  (BackendInfo.accuracy, the catalog's `accuracy:`) held with s_k = accuracy_prior_strength,
  or prior_mean with s_k = prior_precision when the catalog has none. The weight w is 1, or
  with `balance` the inverse share of a yes/no frame's truth class (see `_class_weight`).
  sigma_k = noise * 2 sqrt(m_k (1 - m_k)): a right-or-wrong outcome whose chance is m_k has
  that standard deviation (relative to a coin's 0.5), so a model known to be right 95% of
  the time is explored less than one with no prior, whose sigma is `noise` itself;
- cost: latency_ms, energy_j, bytes per call ~ prior + Theta^T x, a ridge on the residual
  from the backend's prior (BackendInfo.prior, i.e. the catalog / `edgefmp profile`), so
  with no data it predicts the prior and with data it follows what was measured.

Choosing: sample each backend's accuracy from its posterior *at this x* (the marginal of
theta . x is a scalar Gaussian, so one normal draw per backend replaces a d-dimensional
draw), then take the argmax of `a * sampled_accuracy - predicted_costs @ prices`, where `a`
and `prices` come from the dual variables of `DualBudgets` (budgets.py), raised for a
resource the frame's earlier calls have already overspent (predicted costs). Unavailable
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
import operator
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgefmp.errors import PolicyError
from edgefmp.policies.base import BackendInfo, Decision, DecisionContext, Policy, SiteInfo
from edgefmp.policies.budgets import N_RESOURCES, DualBudgets, Targets, cost_vector
from edgefmp.policies.context import (
    CONTEXT_DIM,
    CONTEXT_VERSION,
    PRESSURE_KEY,
    FrameMemory,
    context_values,
)
from edgefmp.policies.feedback import as_bool
from edgefmp.trace import Cost, Trace

log = logging.getLogger(__name__)

ADAPTIVE_STATE_VERSION = 1
_MAX_REMEMBERED_FRAMES = 1024


@dataclass(frozen=True)
class AdaptiveConfig:
    """Hyper-parameters of `AdaptivePolicy` (see its docstring)."""

    prior_mean: float = 0.5
    prior_precision: float = 1.0
    accuracy_prior_strength: float = 200.0
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
    balance: bool = True
    max_class_weight: float = 20.0

    def __post_init__(self) -> None:
        positive = (
            "prior_precision",
            "accuracy_prior_strength",
            "noise",
            "reward_scale",
            "cost_prior_strength",
            "dual_step",
            "lambda_max",
            "gap_step",
            "max_class_weight",
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

    Choosing reads everything it needs from one matrix `wa` (d, K + K*R + K*d): the
    accuracy weights, the cost weights and the K inverse precision matrices side by side, so
    `x @ wa` gives in one product the K accuracy means, the K*R cost predictions and the K
    vectors x^T A_k^-1 whose dot with x is the posterior variance. `theta`, `ctheta` and
    `a_inv` are views into `wa` (no copies to keep in step); the saved state holds them as
    separate arrays, as before. `buf` and `y` are scratch space, so a policy must not be
    called from two threads at once (the runtime holds `executor.policy_lock`).
    """

    def __init__(self, site: SiteInfo, cfg: AdaptiveConfig) -> None:
        k, d, r = len(site.backends), CONTEXT_DIM, N_RESOURCES
        if k == 0:
            raise PolicyError(f"adaptive: site {site.site_id} has no backends")
        self.info = site
        self.k = k
        self.names = tuple(b.name for b in site.backends)
        self.remote = np.array([b.location == "remote" for b in site.backends])
        self.off = k + k * r  # column where the a_inv blocks start in wa
        self.wa = np.zeros((d, self.off + k * d))
        self.theta = self.wa[:, :k].T  # (k, d) view
        self.ctheta = self.wa[:, k : self.off].reshape(d, k, r).transpose(1, 0, 2)  # (k, d, r) view
        self.a_inv = self.wa[:, self.off :].reshape(d, k, d).transpose(1, 0, 2)  # (k, d, d) view
        assert all(np.shares_memory(v, self.wa) for v in (self.theta, self.ctheta, self.a_inv))
        # A backend with an offline accuracy (catalog `accuracy:`) starts at that mean, held
        # as firmly as `accuracy_prior_strength` observations; the others at prior_mean.
        self.acc_prior = np.array([cfg.prior_mean if b.accuracy is None else b.accuracy for b in site.backends])
        self.base_noise = cfg.noise
        for i, backend in enumerate(site.backends):
            strength = cfg.prior_precision if backend.accuracy is None else cfg.accuracy_prior_strength
            self.a_inv[i] = np.eye(d) / strength
        self.b = np.zeros((k, d))
        self.n_acc = np.zeros(k)
        self.c_inv = np.repeat(np.eye(d)[None] / cfg.cost_prior_strength, k, axis=0)
        self.cb = np.zeros((k, d, r))
        self.n_cost = np.zeros(k)
        self.cost_prior = np.zeros((k, r))
        for i, backend in enumerate(site.backends):
            if backend.prior is not None:
                self.cost_prior[i] = cost_vector(backend.prior)
        self.buf = np.empty((d, d))  # scratch for the rank-1 updates
        self.y = np.empty(self.off + k * d)  # x @ wa, written in place by choose
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the derived plain-Python lists and per-backend views (numpy indexing
        costs a fraction of a microsecond per view, several times per call)."""
        k = self.k
        self.y_head = self.y[: self.off]
        self.y_quad = self.y[self.off :].reshape(k, CONTEXT_DIM)
        self.a_rows = list(self.a_inv)
        self.b_rows = list(self.b)
        self.theta_rows = list(self.theta)
        self.c_rows = list(self.c_inv)
        self.cb_rows = list(self.cb)
        self.ctheta_rows = list(self.ctheta)
        self.remote_list = [bool(r) for r in self.remote]
        self.all_allowed = [True] * self.k
        self.local_allowed = [not r for r in self.remote_list]
        self.prior_flat = self.cost_prior.reshape(-1).tolist()
        self.prior_rows = self.cost_prior.tolist()
        self.acc_prior_list = self.acc_prior.tolist()
        p = np.clip(self.acc_prior, 0.05, 0.95)
        self.noise_list = (self.base_noise * 2.0 * np.sqrt(p * (1.0 - p))).tolist()  # sigma_k (module docstring)

    def set_theta(self, i: int) -> None:
        np.matmul(self.a_rows[i], self.b_rows[i], out=self.theta_rows[i])

    def set_ctheta(self, i: int) -> None:
        np.matmul(self.c_rows[i], self.cb_rows[i], out=self.ctheta_rows[i])

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
            "acc_prior": self.acc_prior.copy(),
        }

    def load(self, state: dict[str, Any], where: str) -> None:
        for key in ("a_inv", "b", "theta", "n_acc", "c_inv", "cb", "ctheta", "n_cost", "cost_prior"):
            arr = np.asarray(state[key], dtype=np.float64)
            current = getattr(self, key)
            if arr.shape != current.shape:
                raise PolicyError(f"{where}.{key}: shape {arr.shape}, expected {current.shape}")
            current[...] = arr  # in place: theta, ctheta and a_inv are views into wa
        if "acc_prior" in state:  # absent from states saved before accuracy priors
            arr = np.asarray(state["acc_prior"], dtype=np.float64)
            if arr.shape != self.acc_prior.shape:
                raise PolicyError(f"{where}.acc_prior: shape {arr.shape}, expected {self.acc_prior.shape}")
            self.acc_prior[...] = arr
        self.refresh()

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray) and v.base is None)


def _sherman_morrison(inv: np.ndarray, x: np.ndarray, buf: np.ndarray | None = None) -> None:
    """In place: inv <- (inv^-1 + x x^T)^-1, O(d^2) and no inversion; `buf` (d, d) scratch."""
    v = inv @ x
    outer = np.multiply.outer(v, v, out=buf)
    outer *= 1.0 / (1.0 + float(x @ v))
    inv -= outer


def _frame_cost(trace: Trace) -> list[float]:
    """A frame's total cost in RESOURCES order, failed attempts included (= trace.cost), with
    the time the runtime measured for the policy's decisions in the latency.

    A budget of 5% of the largest backend's latency is a budget for what the user waits for,
    and at that budget the decisions are a sizeable share of it. (The update's own time is not
    counted: it runs after the frame, and timing it here would make runs irreproducible.)"""
    t0 = t1 = t2 = 0.0
    for call in trace.calls:
        cost = call.cost
        t0 += float(cost.latency_ms) + call.decision_us / 1e3
        t1 += float(cost.energy_j)
        t2 += float(cost.bytes_up + cost.bytes_down)
        for attempt in call.attempts:
            cost = attempt.cost
            t0 += float(cost.latency_ms)
            t1 += float(cost.energy_j)
            t2 += float(cost.bytes_up + cost.bytes_down)
    return [t0, t1, t2]


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
        # per frame, predicted: what its calls cost, then what the largest backends would have
        # cost (2 * N_RESOURCES floats, RESOURCES order); see DualBudgets
        self._frame_spent: OrderedDict[str, list[float]] = OrderedDict()
        self._observed: OrderedDict[str, None] = OrderedDict()
        self._class_counts = [0.0, 0.0]  # labelled yes/no frames whose truth was no / yes
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
        """The mask of backends this call may use (a list the caller must not modify)."""
        if len(available) != model.k:
            raise PolicyError(
                f"adaptive: site {site.site_id} has {model.k} backends but the "
                f"availability mask has {len(available)} entries"
            )
        if all(available):
            allowed = model.local_allowed if site.local_only else model.all_allowed
        elif site.local_only:
            allowed = [bool(a) and not r for a, r in zip(available, model.remote_list, strict=True)]
        else:
            allowed = [bool(a) for a in available]
        if not any(allowed):
            rule = " (local_only: remote backends are forbidden)" if site.local_only else ""
            raise PolicyError(f"adaptive: site {site.site_id}: no backend is available{rule}")
        return allowed

    def _scores(
        self, model: _SiteModel, x: np.ndarray, spent: list[float] | None = None
    ) -> tuple[list[float], list[float], list[float], list[float]]:
        """Per backend: posterior mean accuracy, its posterior sd, the cost penalty (priced
        after what the frame has `spent`), and the predicted costs (K*R, RESOURCES order).

        Two small matrix products in numpy (`x @ wa`, then the K quadratic forms); the
        K-sized arithmetic in plain floats, which is faster than numpy calls on 3-element
        vectors.
        """
        k = model.k
        np.matmul(x, model.wa, out=model.y)
        out = model.y_head.tolist()
        var = (model.y_quad @ x).tolist()
        cost = [0.0 if c < 0.0 else c for c in map(operator.add, out[k:], model.prior_flat)]  # = max(c, 0.0)
        r = N_RESOURCES
        p0, p1, p2 = self.budgets.prices(cost[(k - 1) * r : k * r], spent)  # RESOURCES: latency_ms, energy_j, bytes
        mean = list(map(operator.add, model.acc_prior_list, out[:k]))
        sd = [n * math.sqrt(v) if v > 0.0 else 0.0 for n, v in zip(model.noise_list, var, strict=True)]
        it = iter(cost)
        penalty = [c0 * p0 + c1 * p1 + c2 * p2 for c0, c1, c2 in zip(it, it, it, strict=True)]
        return mean, sd, penalty, cost

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

    def _feature_values(self, site: SiteInfo, context: DecisionContext) -> list[float]:
        self._memory.prepare(context)
        context.cache[PRESSURE_KEY] = self.budgets.pressure()
        values = context_values(site, context)
        self._memory.remember(context)
        return values

    def features(self, site: SiteInfo, context: DecisionContext) -> np.ndarray:
        """The context vector this policy decides on (motion memory and pressure filled in)."""
        return np.array(self._feature_values(site, context), dtype=np.float64)

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        model = self._site(site)
        allowed = self._allowed(site, model, context.available)
        values = self._feature_values(site, context)
        frame_id = context.frame.frame_id
        spent = self._frame_spent.get(frame_id)
        mean, sd, penalty, cost = self._scores(model, np.array(values, dtype=np.float64), spent)
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
        if self.budgets.active_any:
            self._note_spent(frame_id, spent, cost, index)
        if self.targets.accuracy_gap is not None:
            self._note_gap(frame_id, mean, sd, index)
        return Decision(index=index, propensity=min(propensity, 1.0), features=tuple(values))

    def probabilities(
        self, site: SiteInfo, features: np.ndarray, available: list[bool] | None = None, samples: int = 2000
    ) -> np.ndarray:
        """This policy's probability of choosing each backend at `features` (for replay),
        estimated from `samples` Thompson draws, epsilon mixing included."""
        model = self._site(site)
        allowed = self._allowed(site, model, available if available is not None else [True] * model.k)
        mean, sd, penalty, _ = self._scores(model, np.asarray(features, dtype=np.float64))
        winners = self._draw(mean, sd, penalty, allowed, samples)
        eps = self.config.epsilon
        wins = np.bincount(winners, minlength=model.k) / samples
        return (1.0 - eps) * wins + np.where(allowed, eps / sum(allowed), 0.0)

    def _note_spent(self, frame_id: str, spent: list[float] | None, cost: list[float], index: int) -> None:
        """Add the chosen and the largest backend's predicted costs to the frame's (see
        DualBudgets.prices and end_frame); forgotten when the frame is observed."""
        r = N_RESOURCES
        both = cost[index * r : (index + 1) * r] + cost[-r:]
        if spent is None:
            self._frame_spent[frame_id] = both
            while len(self._frame_spent) > _MAX_REMEMBERED_FRAMES:
                self._frame_spent.popitem(last=False)
        else:
            spent[:] = map(operator.add, spent, both)

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
        sites = self.sites
        for call in trace.calls:
            model = sites.get(call.site)
            k = call.backend_index
            if model is None or k is None or call.features is None or call.error is not None:
                self.skipped_updates += 1
                continue
            x = np.asarray(call.features, dtype=np.float64)
            if x.shape != (CONTEXT_DIM,) or not 0 <= k < model.k:
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
            p0, p1, p2 = model.prior_rows[k]
            residual = (
                float(cost.latency_ms) - p0,
                float(cost.energy_j) - p1,
                float(cost.bytes_up + cost.bytes_down) - p2,
            )
            _sherman_morrison(model.c_rows[k], x, model.buf)
            cb = model.cb_rows[k]
            cb += np.multiply.outer(x, residual)
            model.set_ctheta(k)
            model.n_cost[k] += 1
        spent = self._frame_spent.pop(trace.frame_id, None)
        gap = min(self._frame_gap.pop(trace.frame_id, 0.0), 1.0) if self._frame_gap else 0.0
        self.budgets.end_frame(_frame_cost(trace), gap, None if spent is None else spent[N_RESOURCES:])

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
        w = self._class_weight(trace.answer, reward > 0) if cfg.balance else 1.0
        root = math.sqrt(w)
        for model, k, x, _ in records:
            _sherman_morrison(model.a_rows[k], root * x if w != 1.0 else x, model.buf)
            b = model.b_rows[k]
            b += (w * (y - model.acc_prior_list[k])) * x
            model.set_theta(k)
            model.n_acc[k] += 1

    def _class_weight(self, answer: Any, correct: bool) -> float:
        """Weight of a labelled frame with a yes/no answer: inverse to its truth class's share.

        On a stream with 7% positives every backend is right on most frames (the easy
        negatives), so per-frame correctness barely separates a detector that misses half the
        positives from one that finds them; weighting each class to the same total makes the
        heads learn balanced accuracy, whose differences show within a few dozen positives.
        The truth class follows from the answer and whether it was right. Open answers: 1.
        """
        said = as_bool(answer)
        if said is None:
            return 1.0
        truth = int(said == correct)
        counts = self._class_counts
        counts[truth] += 1.0
        seen = (counts[0] > 0.0) + (counts[1] > 0.0)  # weights average 1 over the classes seen
        w = (counts[0] + counts[1]) / (seen * counts[truth])
        return min(w, self.config.max_class_weight)

    # ------------------------------------------------------------------ inspection

    def predict(self, site_id: str, features: np.ndarray) -> dict[str, np.ndarray]:
        """Per backend of a site: posterior mean accuracy, its posterior sd (what Thompson
        sampling draws with, before `explore`) and the predicted cost vector."""
        model = self.sites.get(site_id)
        if model is None:
            raise PolicyError(f"adaptive: no model for site {site_id!r} yet")
        x = np.asarray(features, dtype=np.float64)
        cost = np.maximum(model.cost_prior + x @ model.ctheta, 0.0)
        var = np.maximum(np.einsum("i,kij,j->k", x, model.a_inv, x), 0.0)
        sd = np.asarray(model.noise_list) * np.sqrt(var)
        return {"accuracy": model.acc_prior + model.theta @ x, "accuracy_sd": sd, "cost": cost}

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
            "frame_spent": {k: list(v) for k, v in self._frame_spent.items()},
            "observed": list(self._observed),
            "class_counts": list(self._class_counts),
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
        spent = state.get("frame_spent", {})
        self._frame_spent = OrderedDict((str(k), [float(c) for c in v]) for k, v in spent.items())
        self._observed = OrderedDict((str(k), None) for k in state.get("observed", []))
        self._class_counts = [float(c) for c in state.get("class_counts", (0.0, 0.0))]


__all__ = ["ADAPTIVE_STATE_VERSION", "AdaptiveConfig", "AdaptivePolicy"]
