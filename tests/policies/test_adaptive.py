"""`adaptive` on the synthetic contextual bandit: it learns, respects masks, logs honest
propensities, credits only sites that ran, and survives late or missing labels."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefmp.errors import PolicyError
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.base import BackendInfo, DecisionContext, SiteInfo
from edgefmp.policies.context import CONTEXT_DIM, FEATURES_KEY
from edgefmp.results import LLMRequest
from edgefmp.trace import CallRecord, Cost, Trace
from tests.policies.bandit_env import DIFFICULTY, BanditEnv, EnvSite, default_backends, run

PRICE = 0.002  # accuracy points per ms, for the regret's oracle and the policy alike


def priced(seed: int = 0, **kw) -> AdaptivePolicy:
    return AdaptivePolicy(targets={"cost_weights": {"latency_ms": PRICE}}, seed=seed, **kw)


def one_context(site: SiteInfo, x: np.ndarray, available: list[bool] | None = None, fid: str = "f") -> DecisionContext:
    frame = Frame(fid, 0.0, np.zeros((1, 1, 3), np.uint8))
    avail = available if available is not None else [True] * len(site.backends)
    return DecisionContext(frame, LLMRequest("q"), [], avail, 0, {FEATURES_KEY: x})


def test_registered_and_configurable() -> None:
    policy = create("adaptive", targets={"latency_ms": 40}, seed=1, epsilon=0.1)
    assert isinstance(policy, AdaptivePolicy) and policy.config.epsilon == 0.1
    with pytest.raises(PolicyError, match="unknown option.*'epsilom'"):
        create("adaptive", epsilom=0.1)
    with pytest.raises(PolicyError, match="epsilon"):
        AdaptivePolicy(epsilon=2.0)
    with pytest.raises(PolicyError, match="targets.latency_ms"):
        AdaptivePolicy(targets={"latency_ms": -1})


def test_regret_flattens_and_the_optimum_is_learned() -> None:
    env = BanditEnv(seed=1, price_ms=PRICE)
    policy = priced()
    log = run(env, policy, 2400)
    early, late = log.window(log.regret, 0, 300), log.window(log.regret, 1600)
    assert late < 0.5 * early
    assert late < 0.04
    assert log.window(log.optimal, 1600) > 0.6  # near the boundary the arms nearly tie
    # The optimum depends on the context: small on sharp frames, large on blurry ones.
    site = env.infos["s0"]
    for sharpness, best in [(0.95, 0), (0.05, 2)]:
        x = np.full(CONTEXT_DIM, 0.5)
        x[0], x[DIFFICULTY] = 1.0, sharpness
        picks = [policy.choose(site, one_context(site, x, fid=f"q{i}")).index for i in range(200)]
        assert np.mean(np.array(picks) == best) > 0.8
    # Flattening: the last third adds far less regret than the first third.
    thirds = np.array_split(log.regret, 3)
    assert thirds[2].sum() < 0.5 * thirds[0].sum()


def test_delayed_out_of_order_and_missing_labels_still_learn() -> None:
    env = BanditEnv(seed=2, price_ms=PRICE)
    policy = priced()
    log = run(env, policy, 2400, delay=20, shuffle=True, drop=0.5)
    assert 0.4 * 2400 < log.updates < 0.6 * 2400
    assert log.window(log.regret, 1600) < 0.5 * log.window(log.regret, 0, 300)
    assert log.window(log.optimal, 1600) > 0.65


def test_no_labels_at_all_learns_costs_not_accuracy() -> None:
    env = BanditEnv(seed=3)
    policy = AdaptivePolicy(seed=0)
    for i in range(50):
        o = env.run_frame(policy, i)
        policy.update(o.trace, math.nan if i % 2 else None)  # type: ignore[arg-type]
    model = policy.sites["s0"]
    assert model.n_acc.sum() == 0
    assert model.n_cost.sum() == 50
    assert policy.budgets.frames == 50


def test_costs_follow_measurements_from_the_prior() -> None:
    site = SiteInfo("s", "vqa", (BackendInfo("a", "device", prior=Cost(latency_ms=10.0)), BackendInfo("b", "device")))
    policy = AdaptivePolicy(seed=0)
    x = np.full(CONTEXT_DIM, 0.5)
    x[0] = 1.0
    policy.choose(site, one_context(site, x))
    assert policy.predict("s", x)["cost"][0][0] == pytest.approx(10.0)
    for i in range(200):
        d = policy.choose(site, one_context(site, x, fid=str(i)))
        call = CallRecord("s", "vqa", "a", 0, {}, cost=Cost(latency_ms=30.0), features=list(d.features))
        policy.observe(Trace(str(i), 0.0, [call]))
    assert policy.predict("s", x)["cost"][0][0] == pytest.approx(30.0, rel=0.02)


def test_observe_then_update_counts_a_frame_once() -> None:
    env = BanditEnv(seed=4)
    policy = AdaptivePolicy(targets={"latency_ms": 30}, seed=0)
    o = env.run_frame(policy, 0)
    policy.observe(o.trace)
    policy.observe(o.trace)
    policy.update(o.trace, 1.0)
    assert policy.budgets.frames == 1
    assert policy.sites["s0"].n_cost.sum() == 1 and policy.sites["s0"].n_acc.sum() == 1


def test_credit_goes_only_to_sites_that_ran() -> None:
    sites = (EnvSite("always", default_backends()), EnvSite("branch", default_backends(), run_prob=0.3))
    env = BanditEnv(sites, seed=5)
    policy = AdaptivePolicy(seed=0)
    ran = 0
    for i in range(300):
        o = env.run_frame(policy, i)
        ran += "branch" in o.contexts
        policy.update(o.trace, o.reward)
    assert policy.sites["always"].n_acc.sum() == 300
    assert policy.sites["branch"].n_acc.sum() == ran
    assert 50 < ran < 130


def test_records_without_features_are_skipped() -> None:
    env = BanditEnv(seed=6)
    policy = AdaptivePolicy(seed=0)
    o = env.run_frame(policy, 0)
    o.trace.calls[0].features = None
    policy.update(o.trace, 1.0)
    assert policy.sites["s0"].n_acc.sum() == 0 and policy.skipped_updates >= 1


@settings(max_examples=60, deadline=None)
@given(
    available=st.lists(st.booleans(), min_size=3, max_size=3),
    local_only=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_never_chooses_a_masked_or_forbidden_backend(available: list[bool], local_only: bool, seed: int) -> None:
    backends = (BackendInfo("a", "device"), BackendInfo("b", "remote"), BackendInfo("c", "remote"))
    site = SiteInfo("s", "vqa", backends, local_only=local_only)
    allowed = [a and not (local_only and b.location == "remote") for a, b in zip(available, backends, strict=True)]
    policy = AdaptivePolicy(seed=seed, epsilon=0.5)
    x = np.random.default_rng(seed).random(CONTEXT_DIM)
    if not any(allowed):
        with pytest.raises(PolicyError, match="no backend is available"):
            policy.choose(site, one_context(site, x, available))
        return
    for i in range(20):
        d = policy.choose(site, one_context(site, x, available, fid=str(i)))
        assert allowed[d.index]
        assert 0.0 < d.propensity <= 1.0


def test_mask_length_mismatch_is_an_error() -> None:
    site = SiteInfo("s", "vqa", (BackendInfo("a", "device"), BackendInfo("b", "device")))
    with pytest.raises(PolicyError, match="availability mask has 3"):
        AdaptivePolicy().choose(site, one_context(site, np.ones(CONTEXT_DIM), [True] * 3))


def test_logged_propensities_match_choice_frequencies() -> None:
    env = BanditEnv(seed=7)
    policy = AdaptivePolicy(seed=0, epsilon=0.1)
    run(env, policy, 60)  # an uncertain posterior: choices are genuinely random
    site = env.infos["s0"]
    x = env.context()
    decisions = [policy.choose(site, one_context(site, x, fid=f"p{i}")) for i in range(3000)]
    chosen = np.array([d.index for d in decisions])
    for arm in range(3):
        mask = chosen == arm
        if mask.sum() < 100:
            continue
        logged = np.mean([d.propensity for d in decisions if d.index == arm])
        assert logged == pytest.approx(mask.mean(), abs=0.06)
    probs = policy.probabilities(site, x)
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(probs >= 0.1 / 3 - 1e-12)


def test_decision_carries_the_features_it_used() -> None:
    env = BanditEnv(seed=8)
    policy = AdaptivePolicy(seed=0)
    o = env.run_frame(policy, 0)
    call = o.trace.calls[0]
    assert len(call.features) == CONTEXT_DIM
    assert np.allclose(call.features, o.contexts["s0"])


def test_site_whose_backends_change_starts_afresh(caplog: pytest.LogCaptureFixture) -> None:
    env = BanditEnv(seed=9)
    policy = AdaptivePolicy(seed=0)
    run(env, policy, 30)
    site = SiteInfo("s0", "vqa", (BackendInfo("other", "device"), BackendInfo("x", "device")))
    with caplog.at_level(logging.WARNING):
        policy.choose(site, one_context(site, env.context()))
    assert "starts afresh" in caplog.text
    assert policy.sites["s0"].n_acc.sum() == 0


def test_memory_per_site_is_small() -> None:
    backends = tuple(BackendInfo(f"b{i}", "device") for i in range(8))
    site = SiteInfo("s", "vqa", backends)
    policy = AdaptivePolicy(seed=0)
    policy.choose(site, one_context(site, np.ones(CONTEXT_DIM)))
    assert policy.memory_bytes("s") < 1 << 20


def test_decides_on_real_frames_with_motion_and_pressure() -> None:
    from edgefmp.results import DetectRequest

    site = SiteInfo("detect@1:4", "detect", (BackendInfo("s", "device"), BackendInfo("l", "remote")))
    policy = AdaptivePolicy(targets={"latency_ms": 10.0}, seed=0)
    rng = np.random.default_rng(0)
    feats = []
    for i in range(3):
        image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        ctx = DecisionContext(Frame(f"r{i}", float(i), image), DetectRequest(image, ("cat",)), [], [True, True], i)
        d = policy.choose(site, ctx)
        feats.append(np.array(d.features))
        call = CallRecord(
            site.site_id, "detect", "s", d.index, {}, cost=Cost(latency_ms=100.0), features=list(d.features)
        )
        policy.observe(Trace(f"r{i}", float(i), [call]))
    assert feats[0][5] == 0.0 and feats[1][5] > 0.0  # motion from the previous frame
    assert feats[1][14] > 0.0  # budget pressure after an over-budget frame


def test_catalog_accuracy_is_the_prior_and_data_moves_it() -> None:
    """A backend's offline accuracy is where its head starts, held like
    `accuracy_prior_strength` observations; backends without one start at prior_mean."""
    site = SiteInfo(
        "s",
        "vqa",
        (
            BackendInfo("small", "device", accuracy=0.6),
            BackendInfo("large", "device", accuracy=0.9),
            BackendInfo("x", "device"),
        ),
    )
    x = np.zeros(CONTEXT_DIM)
    x[0] = 1.0
    policy = AdaptivePolicy(seed=0, epsilon=0.0)
    picks = [policy.choose(site, one_context(site, x, fid=str(i))).index for i in range(300)]
    prediction = policy.predict("s", x)
    np.testing.assert_allclose(prediction["accuracy"], [0.6, 0.9, 0.5])
    # Right-or-wrong outcomes: a backend right 90% of the time is sampled with the spread of
    # that Bernoulli, 2 sqrt(0.9 * 0.1) = 0.6 of the unmeasured one's at the same precision.
    sd = prediction["accuracy_sd"]
    assert sd[1] / sd[0] == pytest.approx(math.sqrt(0.9 * 0.1) / math.sqrt(0.6 * 0.4), rel=0.05)
    fresh = AdaptivePolicy(seed=0)
    fresh.choose(site, one_context(site, x))
    unmeasured = fresh.predict("s", x)["accuracy_sd"]
    assert unmeasured[2] == pytest.approx(0.5 * math.sqrt(float(x @ x) / 1.0))  # noise, precision 1
    # The prior alone already separates the measured backends; the unmeasured one is explored.
    assert picks.count(1) > 0.6 * len(picks) and picks.count(0) < 0.02 * len(picks)
    assert picks.count(2) > 0.05 * len(picks)
    # 1000 observations that "small" is always right outweigh a prior worth 200.
    for i in range(1000):
        call = CallRecord("s", "vqa", "small", 0, {}, cost=Cost(latency_ms=1.0), features=list(x))
        policy.update(Trace(f"t{i}", 0.0, [call]), 1.0)
    acc = policy.predict("s", x)["accuracy"]
    assert acc[0] == pytest.approx((200 * 0.6 + 1000 * 1.0) / 1200, abs=0.01)
    assert acc[0] > acc[1]
    # The prior travels with the saved state.
    restored = AdaptivePolicy(seed=0)
    restored.load_state_dict(policy.state_dict())
    np.testing.assert_allclose(restored.predict("s", x)["accuracy"], acc)


def _imbalanced_stream(policy: AdaptivePolicy, site: SiteInfo, frames: int = 2000) -> None:
    """5% positives; backend 0 always says "no" (right on every negative, wrong on every
    positive), backend 1 is right on every frame; calls alternate between them."""
    rng = np.random.default_rng(0)
    x = np.zeros(CONTEXT_DIM)
    x[0] = 1.0
    for i in range(frames):
        k = i % 2
        truth = bool(rng.random() < 0.05)
        answer = False if k == 0 else truth
        call = CallRecord("s", "vqa", site.backends[k].name, k, {}, cost=Cost(latency_ms=1.0), features=list(x))
        policy.update(Trace(f"f{i}", 0.0, [call], answer=answer), 1.0 if answer == truth else -1.0)


def test_balanced_learning_sees_the_rare_positives() -> None:
    """On a stream with 5% positives, a backend that never says yes is 95% right per frame;
    class-balanced updates make it look like the coin flip it is on balanced accuracy, so
    the gap to a backend that finds the positives is ~50 points instead of ~5."""
    site = SiteInfo("s", "vqa", (BackendInfo("never-yes", "device"), BackendInfo("right", "device")))
    x = np.zeros(CONTEXT_DIM)
    x[0] = 1.0
    gaps = {}
    for balance in (False, True):
        policy = AdaptivePolicy(seed=0, balance=balance)
        policy.choose(site, one_context(site, x))
        _imbalanced_stream(policy, site)
        acc = policy.predict("s", x)["accuracy"]
        gaps[balance] = acc[1] - acc[0]
    assert 0.02 < gaps[False] < 0.1
    assert gaps[True] > 0.35
    # Open answers (not yes/no) are weighted 1: the counts stay untouched.
    policy = AdaptivePolicy(seed=0)
    assert policy._class_weight("red", True) == 1.0 and policy._class_counts == [0.0, 0.0]


def test_the_decisions_own_time_counts_against_a_latency_budget() -> None:
    """Frames whose backends cost 1 ms but whose decisions took 4 ms overspend a 3 ms budget."""
    policy = AdaptivePolicy(targets={"latency_ms": 3.0}, seed=0)
    site = SiteInfo("s", "vqa", (BackendInfo("a", "device"), BackendInfo("b", "device")))
    x = np.zeros(CONTEXT_DIM)
    x[0] = 1.0
    policy.choose(site, one_context(site, x))
    for i in range(20):
        call = CallRecord("s", "vqa", "a", 0, {}, cost=Cost(latency_ms=1.0), features=list(x), decision_us=4000.0)
        policy.observe(Trace(f"f{i}", 0.0, [call]))
    assert policy.budgets.mean_cost()["latency_ms"] == pytest.approx(5.0)
    assert policy.budgets.pressure() > 0.0


def test_a_frame_over_its_budget_prices_its_next_call_at_once() -> None:
    """Duals move between frames; within one, the calls after an expensive one pay for it."""
    backends = (
        BackendInfo("small", "device", prior=Cost(latency_ms=1.0), accuracy=0.5),
        BackendInfo("large", "remote", prior=Cost(latency_ms=100.0), accuracy=0.95),
    )
    site = SiteInfo("s", "vqa", backends)
    policy = AdaptivePolicy(targets={"latency_ms": 10.0}, seed=0, epsilon=0.0)
    x = np.full(CONTEXT_DIM, 0.5)
    first = [policy.choose(site, one_context(site, x, fid=f"f{i}")).index for i in range(20)]
    assert first == [1] * 20  # nothing priced yet: each frame's first call goes to the accurate one
    second = [policy.choose(site, one_context(site, x, fid=f"f{i}")).index for i in range(20)]
    assert second == [0] * 20  # the same frames, already 10x over their latency budget
    call = CallRecord("s", "vqa", "large", 1, {}, cost=Cost(latency_ms=200.0), features=list(x))
    policy.observe(Trace("f0", 0.0, [call]))
    assert "f0" not in policy.state_dict()["frame_spent"] and "f1" in policy.state_dict()["frame_spent"]
