"""A synthetic contextual-bandit environment with a known optimum, for testing policies.

Every frame draws a context vector per call site (CONTEXT_DIM entries, bias first, the rest
uniform in [0, 1]); a backend's chance of a correct call is linear in one feature
(`DIFFICULTY` = "sharpness": blurry frames are hard for small models), clipped to
[0.02, 0.98], and its cost is fixed up to a small multiplicative jitter. The optimum for a
fixed price per millisecond is then known in closed form per context, so regret is exact.

The env hands the vector to the policy through `cache[FEATURES_KEY]`, the same path replay
uses, so the policy's real `context_features` runs and no pixels are needed. A frame runs
its sites in order; a site with `run_prob < 1` is skipped on some frames (a branch not
taken), which tests that credit goes only to sites that ran. The frame is correct when
every call that ran was correct; its reward is 1.0 or 0.0.

Usable by any Policy: `env.run_frame(policy, i)` returns the trace and the outcome; the
caller decides when (or whether) to call `policy.update(trace, reward)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgefmp.frame import Frame
from edgefmp.policies.base import BackendInfo, DecisionContext, Policy, SiteInfo
from edgefmp.policies.context import CONTEXT_DIM, FEATURES_KEY
from edgefmp.results import LLMRequest
from edgefmp.trace import CallRecord, Cost, Trace

DIFFICULTY = 3  # index of the feature that drives correctness (the "sharpness" slot)
_IMAGE = np.zeros((1, 1, 3), dtype=np.uint8)
_REQUEST = LLMRequest(prompt="synthetic")


@dataclass(frozen=True)
class EnvBackend:
    """`p(x) = clip(acc_base + acc_slope * x[DIFFICULTY], 0.02, 0.98)`; costs per call."""

    name: str
    latency_ms: float
    acc_base: float
    acc_slope: float
    energy_j: float = 0.0
    bytes: int = 0
    location: str = "device"

    def p_correct(self, x: np.ndarray) -> float:
        return float(np.clip(self.acc_base + self.acc_slope * x[DIFFICULTY], 0.02, 0.98))


@dataclass(frozen=True)
class EnvSite:
    site_id: str
    backends: tuple[EnvBackend, ...]
    function: str = "vqa"
    local_only: bool = False
    run_prob: float = 1.0


def default_backends() -> tuple[EnvBackend, ...]:
    """Small, medium, large: the small one is good only on easy (sharp) contexts."""
    return (
        EnvBackend("small", latency_ms=5.0, acc_base=0.15, acc_slope=0.85, energy_j=0.05),
        EnvBackend("medium", latency_ms=20.0, acc_base=0.55, acc_slope=0.40, energy_j=0.3),
        EnvBackend(
            "large", latency_ms=80.0, acc_base=0.92, acc_slope=0.05, energy_j=1.5, bytes=50_000, location="remote"
        ),
    )


@dataclass
class FrameOutcome:
    trace: Trace
    correct: bool
    reward: float
    regret: float  # expected, against the per-call oracle for `price_ms`
    optimal: int  # calls that chose the oracle's backend
    calls: int
    contexts: dict[str, np.ndarray] = field(default_factory=dict)


class BanditEnv:
    """Sites with backends of known cost and context-dependent accuracy.

    `price_ms` is the price of one millisecond in accuracy points used for regret (the
    oracle maximises p - price_ms * latency); set it to the cost weight the policy is given.
    """

    def __init__(
        self,
        sites: tuple[EnvSite, ...] | None = None,
        seed: int = 0,
        price_ms: float = 0.0,
        jitter: float = 0.05,
    ) -> None:
        self.sites = sites or (EnvSite("s0", default_backends()),)
        self.rng = np.random.default_rng(seed)
        self.price_ms = price_ms
        self.jitter = jitter
        self.infos = {
            s.site_id: SiteInfo(
                s.site_id,
                s.function,
                tuple(
                    BackendInfo(
                        b.name, b.location, prior=Cost(latency_ms=b.latency_ms, energy_j=b.energy_j, bytes_up=b.bytes)
                    )
                    for b in s.backends
                ),
                local_only=s.local_only,
            )
            for s in self.sites
        }

    def context(self) -> np.ndarray:
        x = self.rng.random(CONTEXT_DIM)
        x[0] = 1.0
        return x

    def value(self, site: EnvSite, j: int, x: np.ndarray) -> float:
        b = site.backends[j]
        return b.p_correct(x) - self.price_ms * b.latency_ms

    def optimum(self, site: EnvSite, x: np.ndarray, available: list[bool] | None = None) -> int:
        """The oracle's backend at context x (among the allowed ones)."""
        allowed = self.allowed(site, available)
        vals = [self.value(site, j, x) if allowed[j] else -np.inf for j in range(len(site.backends))]
        return int(np.argmax(vals))

    def allowed(self, site: EnvSite, available: list[bool] | None) -> list[bool]:
        avail = available or [True] * len(site.backends)
        pairs = zip(avail, site.backends, strict=True)
        return [a and not (site.local_only and b.location == "remote") for a, b in pairs]

    def run_frame(self, policy: Policy, index: int, available: dict[str, list[bool]] | None = None) -> FrameOutcome:
        frame = Frame(f"f{index}", float(index), _IMAGE)
        cache: dict[str, object] = {}
        trace = Trace(frame_id=frame.frame_id, ts=frame.ts)
        correct, regret, optimal = True, 0.0, 0
        contexts: dict[str, np.ndarray] = {}
        for site in self.sites:
            if site.run_prob < 1.0 and self.rng.random() >= site.run_prob:
                continue
            x = self.context()
            contexts[site.site_id] = x
            cache[FEATURES_KEY] = x
            avail = (available or {}).get(site.site_id) or self.allowed(site, None)
            ctx = DecisionContext(frame, _REQUEST, list(trace.calls), list(avail), index, cache)
            d = policy.choose(self.infos[site.site_id], ctx)
            b = site.backends[d.index]
            ok = bool(self.rng.random() < b.p_correct(x))
            correct &= ok
            best = self.optimum(site, x, avail)
            regret += self.value(site, best, x) - self.value(site, d.index, x)
            optimal += int(best == d.index)
            jit = float(np.exp(self.rng.normal(0.0, self.jitter)))
            trace.calls.append(
                CallRecord(
                    site=site.site_id,
                    function=site.function,
                    backend=b.name,
                    backend_index=d.index,
                    args={},
                    result=ok,
                    confidence=None,
                    cost=Cost(latency_ms=b.latency_ms * jit, energy_j=b.energy_j * jit, bytes_up=b.bytes),
                    policy=policy.name,
                    propensity=d.propensity,
                    features=None if d.features is None else list(d.features),
                )
            )
        trace.answer = correct
        trace.meta["correct"] = correct
        return FrameOutcome(trace, correct, 1.0 if correct else 0.0, regret, optimal, len(trace.calls), contexts)


@dataclass
class RunLog:
    regret: np.ndarray
    optimal: np.ndarray  # share of calls of each frame that chose the oracle's backend
    correct: np.ndarray
    latency_ms: np.ndarray
    energy_j: np.ndarray
    bytes: np.ndarray
    updates: int
    traces: list[Trace]

    def window(self, values: np.ndarray, start: int, stop: int | None = None) -> float:
        return float(values[start:stop].mean())


def run(
    env: BanditEnv,
    policy: Policy,
    frames: int,
    *,
    start: int = 0,
    delay: int = 0,
    shuffle: bool = False,
    drop: float = 0.0,
    observe: bool = True,
    seed: int = 0,
) -> RunLog:
    """Run `frames` frames with feedback `delay` frames late (shuffled within the delay
    window when `shuffle`), a share `drop` of labels never arriving, and `observe(trace)`
    after every frame (as the runtime does)."""
    rng = np.random.default_rng(seed)
    pending: list[tuple[int, FrameOutcome]] = []
    regret, optimal, correct, lat, energy, nbytes, traces = [], [], [], [], [], [], []
    updates = 0
    for i in range(start, start + frames):
        o = env.run_frame(policy, i)
        if observe:
            policy.observe(o.trace)
        regret.append(o.regret)
        optimal.append(o.optimal / max(o.calls, 1))
        correct.append(o.correct)
        cost = o.trace.cost
        lat.append(cost.latency_ms)
        energy.append(cost.energy_j)
        nbytes.append(cost.bytes_up + cost.bytes_down)
        traces.append(o.trace)
        if rng.random() >= drop:
            due = i + (int(rng.integers(0, delay + 1)) if shuffle else delay)
            pending.append((due, o))
        ready = [p for p in pending if p[0] <= i]
        pending = [p for p in pending if p[0] > i]
        if shuffle:
            rng.shuffle(ready)  # type: ignore[arg-type]
        for _, done in ready:
            policy.update(done.trace, done.reward)
            updates += 1
    return RunLog(
        np.array(regret),
        np.array(optimal),
        np.array(correct, dtype=float),
        np.array(lat),
        np.array(energy),
        np.array(nbytes, dtype=float),
        updates,
        traces,
    )
