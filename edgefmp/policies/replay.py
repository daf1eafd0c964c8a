"""Off-policy evaluation: what another policy would have scored, from logged traces alone.

A trace logs, for every call, the context features the logging policy decided on, the
backend it chose and the probability it had of choosing it (`propensity`). For a target
policy pi, a frame whose calls chose a_1..a_T with logged probabilities mu_t weighs

    w = prod_t pi(a_t | x_t) / mu_t

(the program's branches depend only on what ran, so they cancel). Estimates, per frame then
averaged: IPS `w * R`; self-normalised IPS `sum(w R) / sum(w)`; and sequential doubly robust
(Jiang & Li, 2016), backwards over the calls with ridge models q(x, a) per site and backend
fitted on the same log:

    V_{T+1} = 0;  V_t = sum_a pi(a | x_t) q(x_t, a) + rho_t * (r_t + V_{t+1} - q(x_t, a_t))

For accuracy, r_t is the frame's reward at the last call and 0 before; q predicts it. For
cost, r_t is the call's own measured cost (failed attempts included) and q predicts that;
cost estimates need no labels, so they use every frame. DR is unbiased when either the
propensities or q are right, and its variance is usually far below IPS.

Assumptions, stated: the target is evaluated frozen (it does not learn during replay); it
decides from the logged features (`context.FEATURES_KEY`) and the earlier calls of the frame,
so policies that look at pixels (paper) or re-route after a call (cascade escalation)
cannot be replayed faithfully; backends are assumed available. Calls logged without a
propensity count as deterministic (mu = 1), which is only valid where the target agrees.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.errors import ConfigError, PolicyError
from edgefmp.files import read_text_file
from edgefmp.frame import Frame
from edgefmp.policies.base import BackendInfo, DecisionContext, Policy, SiteInfo
from edgefmp.policies.budgets import N_RESOURCES, RESOURCES, cost_tuple
from edgefmp.policies.context import CONTEXT_DIM, FEATURES_KEY
from edgefmp.results import LLMRequest
from edgefmp.trace import CallRecord, Trace

log = logging.getLogger(__name__)

# (site, record, earlier records of the frame) -> probability of each backend
TargetFn = Callable[[SiteInfo, CallRecord, list[CallRecord]], np.ndarray]

_IMAGE = np.zeros((1, 1, 3), dtype=np.uint8)
_REQUEST = LLMRequest(prompt="")


@dataclass
class ReplayEstimate:
    """Estimated mean per frame under the target policy, with the log's own figures."""

    policy: str
    frames: int
    labelled: int
    accuracy_ips: float | None
    accuracy_snips: float | None
    accuracy_dr: float | None
    cost_ips: dict[str, float]
    cost_dr: dict[str, float]
    logged_accuracy: float | None
    logged_cost: dict[str, float]
    ess: float  # effective sample size of the importance weights, in frames
    max_weight: float
    support: float  # share of frames the target could have produced (w > 0)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_traces(path: str | Path) -> list[Trace]:
    """Read a JSONL trace file; errors name the file and line."""
    path = Path(path)
    expected = "the JSONL that `edgefmp run --out` writes, one trace per line"
    lines = read_text_file(path, "trace file", expected).splitlines()
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if isinstance(row, dict) and "event" in row and "frame_id" not in row:
                continue  # a source status line of the trace file, not a frame
            out.append(Trace.from_json(row))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: not a trace: {exc}") from exc
    return out


def frame_reward(trace: Trace, rewards: Mapping[str, float] | None) -> float | None:
    """The frame's reward: `rewards[frame_id]`, else trace.meta 'reward', else 'correct'."""
    if rewards is not None and trace.frame_id in rewards:
        return float(rewards[trace.frame_id])
    if "reward" in trace.meta and trace.meta["reward"] is not None:
        return float(trace.meta["reward"])
    if "correct" in trace.meta and trace.meta["correct"] is not None:
        return 1.0 if trace.meta["correct"] else 0.0
    return None


class _Ridge:
    """Per (site, backend) ridge regressions of a vector target on the logged features,
    shrunk towards the global mean (so a backend seen rarely predicts the average)."""

    def __init__(self, width: int, ridge: float = 1.0) -> None:
        self.width = width
        self.ridge = ridge
        self._rows: dict[tuple[str, int], tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._coef: dict[tuple[str, int], np.ndarray] = {}
        self._mean = np.zeros(width)

    def add(self, site: str, arm: int, x: np.ndarray, y: np.ndarray) -> None:
        xs, ys = self._rows.setdefault((site, arm), ([], []))
        xs.append(x)
        ys.append(y)

    def fit(self) -> None:
        all_y = [y for _, ys in self._rows.values() for y in ys]
        self._mean = np.mean(all_y, axis=0) if all_y else np.zeros(self.width)
        for key, (xs, ys) in self._rows.items():
            x, y = np.array(xs), np.array(ys) - self._mean
            self._coef[key] = np.linalg.solve(x.T @ x + self.ridge * np.eye(x.shape[1]), x.T @ y)

    def predict(self, site: str, arm: int, x: np.ndarray) -> np.ndarray:
        coef = self._coef.get((site, arm))
        return self._mean if coef is None else self._mean + x @ coef


def _site_infos(traces: list[Trace], target: Any, sites: Mapping[str, SiteInfo] | None) -> dict[str, SiteInfo]:
    names: dict[str, dict[int, str]] = {}
    functions: dict[str, str] = {}
    for trace in traces:
        for call in trace.calls:
            functions.setdefault(call.site, call.function)
            if call.backend_index is not None:
                names.setdefault(call.site, {})[call.backend_index] = call.backend or f"backend{call.backend_index}"
    out: dict[str, SiteInfo] = {}
    for sid, fn in functions.items():
        if sites is not None and sid in sites:
            out[sid] = sites[sid]
            continue
        model = getattr(target, "sites", {}).get(sid) if isinstance(getattr(target, "sites", None), dict) else None
        info = getattr(model, "info", None)
        if isinstance(info, SiteInfo):
            out[sid] = info
            continue
        by_index = names.get(sid, {})
        k = max(by_index, default=-1) + 1
        out[sid] = SiteInfo(sid, fn, tuple(BackendInfo(by_index.get(i, f"backend{i}"), "device") for i in range(k)))
    return out


def policy_target(policy: Policy, samples: int = 256) -> TargetFn:
    """Probabilities of a Policy's choices at logged calls.

    Uses `policy.probabilities(site, features, available)` when the policy has it
    (adaptive); otherwise calls `choose` on a context rebuilt from the log: once when it
    reports propensity 1 (deterministic), else `samples` times to estimate frequencies.
    """
    exact = getattr(policy, "probabilities", None)

    def target(site: SiteInfo, record: CallRecord, earlier: list[CallRecord]) -> np.ndarray:
        k = len(site.backends)
        if callable(exact) and record.features is not None:
            return np.asarray(exact(site, np.asarray(record.features, dtype=np.float64), [True] * k))
        cache: dict[str, Any] = {}
        if record.features is not None:
            cache[FEATURES_KEY] = np.asarray(record.features, dtype=np.float64)
        frame = Frame(record.site, 0.0, _IMAGE)
        counts = np.zeros(k)
        n = 0
        while True:
            ctx = DecisionContext(frame, _REQUEST, list(earlier), [True] * k, 0, dict(cache))
            d = policy.choose(site, ctx)
            counts[d.index] += 1
            n += 1
            if d.propensity >= 1.0 or n >= samples:
                break
        return counts / n

    return target


def replay(
    traces: Iterable[Trace] | str | Path,
    target: Policy | TargetFn,
    *,
    rewards: Mapping[str, float] | None = None,
    sites: Mapping[str, SiteInfo] | None = None,
    samples: int = 256,
    ridge: float = 1.0,
) -> ReplayEstimate:
    """Estimate `target`'s mean reward (accuracy for 0/1 rewards) and mean cost per frame
    from logged traces (a list, or the path of a JSONL trace file)."""
    if isinstance(traces, (str, Path)):
        traces = load_traces(traces)
    traces = list(traces)
    if not traces:
        raise PolicyError("replay: no traces to evaluate")
    name = target.name if isinstance(target, Policy) else getattr(target, "__name__", "target")
    fn = policy_target(target, samples) if isinstance(target, Policy) else target
    infos = _site_infos(traces, target, sites)
    notes: list[str] = []

    # Fit the outcome and cost models of DR on the whole log.
    acc_model, cost_model = _Ridge(1, ridge), _Ridge(N_RESOURCES, ridge)
    labels = [frame_reward(t, rewards) for t in traces]
    no_features = 0
    for trace, reward in zip(traces, labels, strict=True):
        for call in trace.calls:
            if call.backend_index is None:
                continue
            x = _features(call)
            if x is None:
                no_features += 1
                x = _BIAS
            cost_model.add(call.site, call.backend_index, x, np.array(_call_cost(call)))
            if reward is not None:
                acc_model.add(call.site, call.backend_index, x, np.array([reward]))
    acc_model.fit()
    cost_model.fit()
    if no_features:
        notes.append(f"{no_features} calls were logged without features: their models use an intercept only")

    weights, acc_ips, acc_dr, cost_ips, cost_dr = [], [], [], [], []
    missing_propensity = 0
    for trace, reward in zip(traces, labels, strict=True):
        steps = []
        for i, call in enumerate(trace.calls):
            if call.backend_index is None:
                continue
            site = infos[call.site]
            probs = np.asarray(fn(site, call, trace.calls[:i]), dtype=np.float64)
            mu = call.propensity
            if mu is None:
                missing_propensity += 1
                mu = 1.0
            if not 0 < mu <= 1:
                raise PolicyError(
                    f"replay: frame {trace.frame_id} site {call.site}: propensity {mu!r} is not in (0, 1]"
                )
            x = _features(call)
            x = _BIAS if x is None else x
            q_acc = np.array([float(acc_model.predict(call.site, a, x)[0]) for a in range(len(probs))])
            q_cost = np.array([cost_model.predict(call.site, a, x) for a in range(len(probs))])
            steps.append(
                (probs[call.backend_index] / mu, probs, call.backend_index, q_acc, q_cost, np.array(_call_cost(call)))
            )
        w = float(np.prod([s[0] for s in steps])) if steps else 1.0
        weights.append(w)
        # Per-decision IPS for cost: the cost of call t depends only on decisions up to t.
        rho, c_ips = 1.0, np.zeros(N_RESOURCES)
        for s in steps:
            rho *= s[0]
            c_ips += rho * s[5]
        cost_ips.append(c_ips)
        v_acc, v_cost = 0.0, np.zeros(N_RESOURCES)
        for t in range(len(steps) - 1, -1, -1):
            r, probs, a, q_acc, q_cost, c = steps[t]
            r_t = (reward or 0.0) if t == len(steps) - 1 else 0.0
            v_acc = float(probs @ q_acc) + r * (r_t + v_acc - q_acc[a])
            v_cost = probs @ q_cost + r * (c + v_cost - q_cost[a])
        cost_dr.append(v_cost)
        if reward is not None:
            acc_ips.append(w * reward)
            acc_dr.append(v_acc if steps else reward)
    if missing_propensity:
        notes.append(f"{missing_propensity} calls had no logged propensity and were taken as deterministic")

    w_all = np.array(weights)
    labelled_w = np.array([w for w, r in zip(weights, labels, strict=True) if r is not None])
    labelled_r = np.array([r for r in labels if r is not None])
    ess = float(w_all.sum() ** 2 / max(float((w_all**2).sum()), 1e-300))
    logged_cost = np.mean([_frame_cost(t) for t in traces], axis=0)
    return ReplayEstimate(
        policy=name,
        frames=len(traces),
        labelled=len(labelled_r),
        accuracy_ips=float(np.mean(acc_ips)) if acc_ips else None,
        accuracy_snips=float(labelled_w @ labelled_r / labelled_w.sum())
        if len(labelled_r) and labelled_w.sum() > 0
        else None,
        accuracy_dr=float(np.mean(acc_dr)) if acc_dr else None,
        cost_ips=dict(zip(RESOURCES, np.mean(cost_ips, axis=0).tolist(), strict=True)),
        cost_dr=dict(zip(RESOURCES, np.mean(cost_dr, axis=0).tolist(), strict=True)),
        logged_accuracy=float(labelled_r.mean()) if len(labelled_r) else None,
        logged_cost=dict(zip(RESOURCES, logged_cost.tolist(), strict=True)),
        ess=ess,
        max_weight=float(w_all.max()),
        support=float(np.mean(w_all > 0)),
        notes=notes,
    )


_BIAS = np.eye(CONTEXT_DIM)[0]


def _features(call: CallRecord) -> np.ndarray | None:
    if call.features is None or len(call.features) != CONTEXT_DIM:
        return None
    return np.asarray(call.features, dtype=np.float64)


def _call_cost(call: CallRecord) -> tuple[float, float, float]:
    total = list(cost_tuple(call.cost))
    for attempt in call.attempts:
        c = cost_tuple(attempt.cost)
        total = [a + b for a, b in zip(total, c, strict=True)]
    return (total[0], total[1], total[2])


def _frame_cost(trace: Trace) -> list[float]:
    total = [0.0] * N_RESOURCES
    for call in trace.calls:
        for i, v in enumerate(_call_cost(call)):
            total[i] += v
    return total


__all__ = ["ReplayEstimate", "TargetFn", "frame_reward", "load_traces", "policy_target", "replay"]
