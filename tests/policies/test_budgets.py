"""Targets and dual variables: validation, the ascent itself, and budgets met online."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.errors import PolicyError
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.budgets import RESOURCES, DualBudgets, Targets
from tests.policies.bandit_env import BanditEnv, run

WARMUP = 600


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latency_ms": 0}, "targets.latency_ms"),
        ({"energy_j": float("nan")}, "targets.energy_j"),
        ({"accuracy_gap": 120}, "targets.accuracy_gap"),
        ({"minimize": "watts"}, "targets.minimize"),
        ({"cost_weights": {"money": 1.0}}, "targets.cost_weights"),
        ({"cost_weights": {"latency_ms": -1.0}}, "targets.cost_weights.latency_ms"),
    ],
)
def test_invalid_targets_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(PolicyError, match=field.replace(".", "\\.")):
        Targets(**kwargs)


def test_targets_round_trip_and_reject_unknown_fields() -> None:
    t = Targets(latency_ms=40, accuracy_gap=2.0, cost_weights={"bytes": 1e-6})
    assert Targets.from_json(t.to_json()) == t
    with pytest.raises(PolicyError, match="unknown field"):
        Targets.from_json({"latency": 40})


def test_dual_ascent_rises_when_over_and_falls_when_under() -> None:
    duals = DualBudgets(Targets(latency_ms=10.0), step=0.1, lambda_max=1.0)
    assert duals.prices() == [0.0, 0.0, 0.0] and duals.pressure() == 0.0
    duals.end_frame([20.0, 5.0, 0.0])  # 100% over
    assert duals.lam[0] == pytest.approx(0.1) and duals.lam[1] == 0.0
    assert duals.prices()[0] == pytest.approx(0.1 / 10.0)
    for _ in range(100):
        duals.end_frame([100.0, 0.0, 0.0])
    assert duals.lam[0] == 1.0 and duals.pressure() == 1.0  # capped
    for _ in range(100):
        duals.end_frame([0.0, 0.0, 0.0])
    assert duals.lam[0] == 0.0  # never negative
    duals.end_frame([float("nan"), 0.0, 0.0])  # a broken meter does not poison the dual
    assert duals.lam[0] == 0.0
    assert duals.mean_cost()["latency_ms"] == pytest.approx((20 + 100 * 100) / 202)


def test_prices_within_a_frame_rise_only_for_what_it_already_overspent() -> None:
    targets = Targets(latency_ms=10.0, energy_j=1.0)
    duals = DualBudgets(targets, step=0.1, lambda_max=1.0)
    assert duals.prices(spent=[5.0, 0.5, 1e9]) == duals.prices() == [0.0, 0.0, 0.0]  # within budget
    ended = DualBudgets(targets, step=0.1, lambda_max=1.0)
    ended.end_frame([30.0, 0.5, 0.0])
    raised = duals.prices(spent=[30.0, 0.5, 1e9])  # as if the frame ended now, for latency only
    assert raised[0] > 0.0 and raised[0] == pytest.approx(ended.prices()[0]) and raised[1:] == [0.0, 0.0]
    assert duals.lam[0] == 0.0  # nothing moved: the frame has not ended
    assert duals.prices(spent=[1e6, 0.0, 0.0])[0] == pytest.approx(1.0 / 10.0)  # capped at lambda_max


def test_a_target_far_below_the_largest_cost_moves_its_price_in_proportion() -> None:
    """With a target at 5% of what the largest backends cost, one frame on them is a 20-fold
    violation; the subgradient is measured against that scale, so the price moves one step,
    not twenty, and a frame far under the target lowers it by at most a twentieth of a step."""
    duals = DualBudgets(Targets(latency_ms=10.0), step=0.1, lambda_max=5.0)
    duals.end_frame([210.0, 0.0, 0.0], largest_cost=[200.0, 0.0, 0.0])  # on the largest backends
    assert duals.lam[0] == pytest.approx(0.1 * 20.0 / 20.0)
    assert duals.prices(spent=[210.0, 0.0, 0.0])[0] == pytest.approx((0.1 + 0.1) / 10.0)
    duals.end_frame([0.0, 0.0, 0.0], largest_cost=[200.0, 0.0, 0.0])
    assert duals.lam[0] == pytest.approx(0.1 - 0.1 / 20.0)
    unscaled = DualBudgets(Targets(latency_ms=10.0), step=0.1, lambda_max=5.0)
    unscaled.end_frame([210.0, 0.0, 0.0])  # no reference reported: the plain subgradient
    assert unscaled.lam[0] == pytest.approx(2.0)
    resumed = DualBudgets(Targets(latency_ms=10.0), step=0.1, lambda_max=5.0)
    resumed.load_state_dict(duals.state_dict())
    resumed.end_frame([0.0, 0.0, 0.0])
    duals.end_frame([0.0, 0.0, 0.0])
    assert resumed.lam[0] == pytest.approx(duals.lam[0])  # the scale survives a restart


def test_state_round_trip_keeps_only_targeted_prices() -> None:
    a = DualBudgets(Targets(latency_ms=10.0, energy_j=1.0))
    for _ in range(5):
        a.end_frame([30.0, 3.0, 0.0])
    b = DualBudgets(Targets(latency_ms=10.0, energy_j=1.0))
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.lam, b.lam) and b.frames == 5 and b.prices() == a.prices()
    c = DualBudgets(Targets(latency_ms=10.0))
    c.load_state_dict(a.state_dict())
    assert c.lam[0] == a.lam[0] and c.lam[1] == 0.0


@pytest.mark.parametrize(
    ("resource", "target"),
    [("latency_ms", 15.0), ("latency_ms", 40.0), ("energy_j", 0.5), ("bytes", 10_000.0)],
)
def test_adaptive_meets_a_budget_within_5_percent_after_warmup(resource: str, target: float) -> None:
    env = BanditEnv(seed=11)
    policy = AdaptivePolicy(targets={resource: target}, seed=0)
    log = run(env, policy, 2000)
    spent = {"latency_ms": log.latency_ms, "energy_j": log.energy_j, "bytes": log.bytes}[resource]
    mean = spent[WARMUP:].mean()
    assert mean <= 1.05 * target
    # ...and it spends the budget on accuracy rather than hoarding it.
    assert mean >= 0.85 * target
    assert log.correct[WARMUP:].mean() > 0.6
    assert policy.budgets.mean_cost()[resource] == pytest.approx(spent.mean())


def test_budget_holds_with_delayed_and_missing_labels() -> None:
    env = BanditEnv(seed=12)
    log = run(env, AdaptivePolicy(targets={"latency_ms": 30.0}, seed=0), 2000, delay=15, shuffle=True, drop=0.6)
    assert log.latency_ms[WARMUP:].mean() <= 1.05 * 30.0


def test_a_tighter_budget_buys_less_accuracy() -> None:
    means = []
    for target in (10.0, 60.0):
        log = run(BanditEnv(seed=13), AdaptivePolicy(targets={"latency_ms": target}, seed=0), 1500)
        means.append(log.correct[WARMUP:].mean())
    assert means[0] < means[1]


def test_accuracy_gap_target_trades_cost_for_bounded_accuracy_loss() -> None:
    env_truth = 0.92 + 0.05 * 0.5  # the largest backend's mean accuracy in the env
    results = {}
    for gap in (3.0, 25.0):
        log = run(BanditEnv(seed=14), AdaptivePolicy(targets={"accuracy_gap": gap}, seed=0), 2000)
        acc, lat = log.correct[WARMUP:].mean(), log.latency_ms[WARMUP:].mean()
        assert acc >= env_truth - gap / 100.0 - 0.02  # within sampling noise of the target
        results[gap] = (acc, lat)
    assert results[25.0][1] < 0.5 * results[3.0][1]  # a looser target is much cheaper
    assert results[3.0][1] < 80.0  # and even a tight one does not always use the largest


def test_resources_order_is_documented() -> None:
    assert RESOURCES == ("latency_ms", "energy_j", "bytes")
