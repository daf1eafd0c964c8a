"""Baseline policies (random, cascade, ucb, linucb, routing) on small synthetic bandits.

The helpers at the top build sites, contexts and traces the way the executor does (it copies
`Decision.features` into `CallRecord.features`); test_paper.py reuses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgefmp.errors import PolicyError
from edgefmp.frame import Frame
from edgefmp.policies import Decision, DecisionContext, Policy, SiteInfo, create
from edgefmp.policies.base import BackendInfo
from edgefmp.policies.cascade import CascadePolicy
from edgefmp.policies.routing import ROUTING_FEATURES, RoutingPolicy, routing_program
from edgefmp.policies.ucb import UCBPolicy
from edgefmp.results import VerifyRequest
from edgefmp.trace import Attempt, CallRecord, Cost, Trace

IMAGE = np.full((8, 8, 3), 128, np.uint8)
BASELINES = ["random", "cascade", "ucb", "linucb", "routing"]


def make_site(
    site_id: str = "verify@2:11",
    latencies: tuple[float, ...] = (5.0, 50.0, 500.0),
    remote_last: bool = True,
    local_only: bool = False,
    function: str = "verify",
    params: tuple[float, ...] | None = None,
) -> SiteInfo:
    n = len(latencies)
    backends = tuple(
        BackendInfo(
            name=f"b{i}",
            location="remote" if remote_last and i == n - 1 else "device",
            prior=Cost(latency_ms=lat),
            params=None if params is None else params[i],
        )
        for i, lat in enumerate(latencies)
    )
    return SiteInfo(site_id, function, backends, local_only=local_only)


def make_context(
    frame_index: int,
    n: int = 3,
    available: list[bool] | None = None,
    image: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> DecisionContext:
    image = IMAGE if image is None else image
    frame = Frame(f"f{frame_index}", float(frame_index), image, meta=dict(meta or {}))
    return DecisionContext(
        frame=frame,
        request=VerifyRequest(image, "person", "holding an umbrella"),
        calls_so_far=[],
        available=[True] * n if available is None else list(available),
        frame_index=frame_index,
    )


def make_record(site: SiteInfo, decision: Decision, latency_ms: float, policy: str = "") -> CallRecord:
    return CallRecord(
        site=site.site_id,
        function=site.function,
        backend=site.backends[decision.index].name,
        backend_index=decision.index,
        args={},
        cost=Cost(latency_ms=latency_ms),
        policy=policy,
        propensity=decision.propensity,
        features=None if decision.features is None else list(decision.features),
    )


def run_bandit(
    policy: Policy,
    site: SiteInfo,
    reward_fn: Callable[[int, DecisionContext, np.random.Generator], float],
    steps: int,
    cost_ms: tuple[float, ...],
    seed: int = 0,
    meta_fn: Callable[[int, np.random.Generator], dict[str, Any]] | None = None,
) -> list[tuple[int, DecisionContext]]:
    """Run `steps` one-call frames; returns (chosen index, context) per frame."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        ctx = make_context(t, len(site.backends), meta=meta_fn(t, rng) if meta_fn else None)
        decision = policy.choose(site, ctx)
        reward = reward_fn(decision.index, ctx, rng)
        trace = Trace(
            ctx.frame.frame_id,
            float(t),
            calls=[make_record(site, decision, cost_ms[decision.index])],
        )
        policy.update(trace, reward)
        out.append((decision.index, ctx))
    return out


def assert_saveable(tree: Any, where: str = "state") -> None:
    """A state is JSON values plus numpy arrays, nothing else (no pickle needed)."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            assert_saveable(v, f"{where}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            assert_saveable(v, f"{where}[{i}]")
    elif isinstance(tree, np.ndarray):
        assert not tree.dtype.hasobject, where
    else:
        json.dumps(tree)


# ------------------------------------------------------------------------------ all baselines


@pytest.mark.parametrize("name", BASELINES)
def test_created_by_name(name: str) -> None:
    policy = create(name)
    assert policy.name == name


def test_policies_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgefmp.policies import create\n"
        f"for n in {BASELINES!r}: create(n)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", BASELINES)
def test_masked_backend_never_chosen(name: str) -> None:
    policy = create(name)
    site = make_site(function="vqa")
    for t in range(40):
        ctx = make_context(t, available=[True, False, True])
        d = policy.choose(site, ctx)
        assert d.index != 1
        policy.update(Trace(ctx.frame.frame_id, 0.0, calls=[make_record(site, d, 1.0)]), float(d.index == 2))


@pytest.mark.parametrize("name", BASELINES)
def test_never_remote_at_local_only_site(name: str) -> None:
    # The remote backend is the best and cheapest and even marked available: still never chosen.
    policy = create(name)
    site = make_site(latencies=(50.0, 60.0, 1.0), local_only=True, function="vqa")
    for t in range(40):
        ctx = make_context(t)
        d = policy.choose(site, ctx)
        assert site.backends[d.index].location != "remote"
        policy.update(Trace(ctx.frame.frame_id, 0.0, calls=[make_record(site, d, 1.0)]), 0.0)
    if isinstance(policy, CascadePolicy):
        record = make_record(site, Decision(1), 1.0)
        record.confidence = 0.0
        assert policy.escalate(site, make_context(99), record) is None


@pytest.mark.parametrize("name", BASELINES)
def test_nothing_allowed_is_an_error_naming_the_site(name: str) -> None:
    site = make_site(local_only=True, function="vqa")
    with pytest.raises(PolicyError, match="verify@2:11"):
        create(name).choose(site, make_context(0, available=[False, False, True]))


@pytest.mark.parametrize("name", BASELINES)
def test_state_round_trip_gives_the_same_choices(name: str) -> None:
    site = make_site(function="vqa")
    policy = create(name)
    run_bandit(policy, site, lambda a, c, r: float(r.random() < 0.3 * (a + 1)), 30, (1.0, 10.0, 100.0))
    state = policy.state_dict()
    assert_saveable(state)
    clone = create(name)
    clone.load_state_dict(json.loads(json.dumps(state, default=lambda a: a.tolist())))
    for t in range(100, 110):
        assert clone.choose(site, make_context(t)) == policy.choose(site, make_context(t))


def test_loading_another_policys_state_fails() -> None:
    with pytest.raises(PolicyError, match="ucb"):
        create("ucb").load_state_dict(create("linucb").state_dict())


# --------------------------------------------------------------------------------------- random


def test_random_propensity_is_one_over_allowed_and_uniform() -> None:
    policy = create("random", seed=1)
    site = make_site(latencies=(1.0, 2.0, 3.0, 4.0), remote_last=False)
    counts = np.zeros(4)
    for t in range(4000):
        d = policy.choose(site, make_context(t, 4, available=[True, True, False, True]))
        assert d.propensity == pytest.approx(1 / 3)
        counts[d.index] += 1
    assert counts[2] == 0
    np.testing.assert_allclose(counts[[0, 1, 3]] / 4000, 1 / 3, atol=0.03)


# -------------------------------------------------------------------------------------- cascade


def _record(index: int, confidence: float | None) -> CallRecord:
    return CallRecord("verify@2:11", "verify", f"b{index}", index, {}, confidence=confidence)


def test_cascade_starts_cheapest_and_escalates_on_low_confidence() -> None:
    policy = CascadePolicy(threshold=0.6)
    site = make_site(latencies=(1.0, 2.0, 3.0, 4.0), remote_last=False)
    ctx = make_context(0, 4)
    assert policy.choose(site, ctx).index == 0
    assert policy.escalate(site, ctx, _record(0, 0.3)) == 1
    assert policy.escalate(site, ctx, _record(0, 0.9)) is None
    assert policy.escalate(site, ctx, _record(1, 0.3)) == 2
    assert policy.escalate(site, ctx, _record(2, 0.3)) is None  # max_escalations = 2 reached
    assert CascadePolicy(threshold=0.6, max_escalations=5).escalate(site, ctx, _record(3, 0.1)) is None  # top


def test_cascade_skips_unavailable_tiers_and_knows_per_function_thresholds() -> None:
    policy = CascadePolicy(threshold=0.5, thresholds={"verify": 0.9})
    site = make_site()
    ctx = make_context(0, available=[False, True, True])
    assert policy.choose(site, ctx).index == 1
    assert policy.escalate(site, ctx, _record(1, 0.8)) == 2  # 0.8 < 0.9 for verify
    ctx = make_context(0, available=[True, False, True])
    assert policy.escalate(site, ctx, _record(0, 0.2)) == 2


def test_cascade_without_confidence_escalates_only_when_told() -> None:
    site = make_site()
    ctx = make_context(0)
    assert CascadePolicy().escalate(site, ctx, _record(0, None)) is None
    assert CascadePolicy(escalate_unknown=True).escalate(site, ctx, _record(0, None)) == 1


def test_cascade_rejects_bad_thresholds() -> None:
    with pytest.raises(PolicyError, match="threshold"):
        CascadePolicy(threshold=1.5)


# ------------------------------------------------------------------------------------------ ucb

P_RIGHT = (0.3, 0.8, 0.85)
COST_MS = (1.0, 10.0, 400.0)


def _bernoulli(a: int, ctx: DecisionContext, rng: np.random.Generator) -> float:
    return float(rng.random() < P_RIGHT[a])


def _regret_halves(chosen: list[int], net: np.ndarray) -> tuple[float, float]:
    gaps = net.max() - net[np.array(chosen)]
    half = len(gaps) // 2
    return float(gaps[:half].sum()), float(gaps[half:].sum())


def test_ucb_regret_flattens() -> None:
    policy = UCBPolicy(c=1.0, cost_weight=1e-3)
    net = np.array(P_RIGHT) - 1e-3 * np.array(COST_MS)  # best: backend 1 (0.79)
    chosen = [a for a, _ in run_bandit(policy, make_site(), _bernoulli, 2000, COST_MS)]
    first, second = _regret_halves(chosen, net)
    assert second < 0.5 * first
    assert np.mean(np.array(chosen[-300:]) == 1) > 0.8


def test_ucb_credits_only_sites_that_ran_and_the_chosen_backend_on_fallback() -> None:
    policy = UCBPolicy()
    a, b = make_site("find@1:0"), make_site("verify@3:4")
    ctx = make_context(0)
    da, _ = policy.choose(a, ctx), policy.choose(b, ctx)
    # Site a chose backend 2 (remote), which failed; the executor fell back to backend 0.
    record = make_record(a, Decision(0), 5.0)
    record.attempts = [Attempt("b2", "timeout", Cost(latency_ms=2000.0))]
    policy.update(Trace("f0", 0.0, calls=[record]), 0.0)
    state = policy.state_dict()["sites"]
    assert da.index == 0
    np.testing.assert_array_equal(state["find@1:0"]["counts"], [0, 0, 1])
    assert state["find@1:0"]["cost"]["value"][2] == pytest.approx(2005.0)
    np.testing.assert_array_equal(state["verify@3:4"]["counts"], [0, 0, 0])


# --------------------------------------------------------------------------------------- linucb


def _contextual(a: int, ctx: DecisionContext, rng: np.random.Generator) -> float:
    # Backend 0 suffices on easy frames, backend 1 is needed on hard ones, 2 is never worth it.
    hard = ctx.frame.meta["hard"]
    p = ((0.9, 0.2), (0.9, 0.9), (0.95, 0.95))[a][hard]
    return float(rng.random() < p)


def _hard_feature(site: SiteInfo, ctx: DecisionContext) -> np.ndarray:
    return np.array([1.0, float(ctx.frame.meta["hard"])])


def test_linucb_regret_flattens_and_beats_every_static_choice() -> None:
    policy = create("linucb", alpha=1.0, cost_weight=1e-3, features=_hard_feature)
    cost_ms = (1.0, 200.0, 400.0)
    costs = np.array(cost_ms)
    steps = 2000
    runs = run_bandit(
        policy,
        make_site(),
        _contextual,
        steps,
        cost_ms,
        meta_fn=lambda t, r: {"hard": int(r.random() < 0.5)},
    )
    means = np.array([[0.9, 0.2], [0.9, 0.9], [0.95, 0.95]]) - 1e-3 * costs[:, None]
    gaps = np.array([means[:, c.frame.meta["hard"]].max() - means[a, c.frame.meta["hard"]] for a, c in runs])
    assert gaps[steps // 2 :].sum() < 0.5 * gaps[: steps // 2].sum()
    last = runs[-500:]
    learned = np.mean([means[a, c.frame.meta["hard"]] for a, c in last])
    best_static = max(np.mean([means[k, c.frame.meta["hard"]] for _, c in last]) for k in range(3))
    assert learned > best_static + 0.05  # optimum 0.80, best static 0.70


def test_linucb_stores_features_in_the_decision() -> None:
    d = create("linucb").choose(make_site(), make_context(0))
    assert d.features is not None and len(d.features) == 16


# -------------------------------------------------------------------------------------- routing


def test_routing_cost_weight_still_decides_after_training() -> None:
    # Backend 1 is slightly more often right; backend 0 is 100x cheaper.
    policy = RoutingPolicy(alpha=0.0, cost_weight=1e-2)
    site = make_site(latencies=(1.0, 100.0), remote_last=False, function="vqa")
    p = (0.9, 0.95)
    explore = RoutingPolicy(alpha=0.0)
    rng = np.random.default_rng(0)
    for t in range(400):  # train on both backends (round robin), as a retraining would
        a = t % 2
        ctx = make_context(t, 2)
        d = policy.choose(site, ctx)
        explore.choose(site, ctx)
        record = make_record(site, Decision(a, features=d.features), (1.0, 100.0)[a])
        policy.update(Trace(ctx.frame.frame_id, 0.0, calls=[record]), float(rng.random() < p[a]))
    ctx = make_context(1000, 2)
    assert policy.choose(site, ctx).index == 0  # 0.9 - 0.01 > 0.95 - 1.0
    policy.cost_weight = 0.0
    assert policy.choose(site, ctx).index == 1  # the weight, not the training, made the choice


def test_routing_uses_frame_features_and_serves_one_site() -> None:
    policy = RoutingPolicy()
    site = make_site(function="vqa")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    d = policy.choose(site, make_context(0, image=image))
    assert d.features is not None and len(d.features) == len(ROUTING_FEATURES)
    with pytest.raises(PolicyError, match="one monolithic call"):
        policy.choose(make_site("find@3:0"), make_context(0))


def test_routing_program_is_one_query() -> None:
    source = routing_program("Is there a dog?")
    assert source == "def execute_command(image):\n    return image.answer('Is there a dog?')\n"
    with pytest.raises(PolicyError):
        routing_program("  ")
