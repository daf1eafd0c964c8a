"""The paper's router (structured REINFORCE + neural Thompson sampling), at a tiny size.

Inputs are 32x32, the ResNet-18 is 8 channels wide instead of 64, and retraining fires every
4 inputs with one epoch, so the file runs in seconds; one test builds the full-width network,
and the benchmark runs the paper's own sizes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from edgefmp.errors import PolicyError
from edgefmp.policies import create
from edgefmp.policies.base import Decision
from edgefmp.policies.state import load_policy_state, save_policy_state
from edgefmp.trace import Trace
from tests.policies.test_baselines import assert_saveable, make_context, make_record, make_site

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TINY: dict[str, Any] = {
    "resolution": 32,
    "width": 8,
    "retrain_every": 4,
    "epochs": 1,
    "batch_size": 2,
    "propensity_samples": 64,
}
PARAMS = (1e9, 3e9, 7e10)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """One torch thread: tiny networks gain nothing from more, and lose a lot on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _image(t: int) -> np.ndarray:
    return np.random.default_rng(t).integers(0, 255, (24, 40, 3), dtype=np.uint8)


def _frame(policy: Any, t: int, sites: list[Any], ran: list[Any], reward: float = 1.0) -> list[Decision]:
    ctx = make_context(t, image=_image(t))
    decisions = [policy.choose(site, ctx) for site in sites]
    calls = [make_record(s, d, 1.0) for s, d in zip(sites, decisions, strict=True) if s in ran]
    policy.update(Trace(ctx.frame.frame_id, float(t), calls=calls), reward)
    return decisions


def test_choose_and_update_run_and_decisions_are_per_site_per_frame() -> None:
    policy = create("paper", **TINY)
    site = make_site(params=PARAMS)
    ctx = make_context(0, image=_image(0))
    first = policy.choose(site, ctx)
    assert 0 <= first.index < 3 and 0.0 < first.propensity <= 1.0
    assert policy.choose(site, ctx) == first  # a site's second call on the frame reuses the draw
    policy.update(Trace("f0", 0.0, calls=[make_record(site, first, 1.0)]), 1.0)
    assert policy.inputs_seen == 1


def test_retraining_fires_every_n_inputs_and_clears_the_buffer() -> None:
    policy = create("paper", **TINY)
    site = make_site(params=PARAMS)
    before = {k: v.clone() for k, v in policy_state_tensors(policy, site).items()}
    for t in range(3):
        _frame(policy, t, [site], [site], reward=float(t))
    assert policy.retrainings == 0 and len(policy._sites[site.site_id].buffer_arm) == 3
    _frame(policy, 3, [site], [site], reward=-1.0)
    assert policy.retrainings == 1 and policy._sites[site.site_id].buffer_arm == []
    after = policy_state_tensors(policy, site)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for t in range(4, 8):
        _frame(policy, t, [site], [site])
    assert policy.retrainings == 2


def policy_state_tensors(policy: Any, site: Any) -> dict[str, Any]:
    policy.choose(site, make_context(999, image=_image(999)))  # creates the site's network
    return dict(policy._sites[site.site_id].model.state_dict())


def test_credit_goes_only_to_sites_that_ran() -> None:
    policy = create("paper", **TINY)
    a, b = make_site("exists@2:7", params=PARAMS), make_site("query@3:11", params=PARAMS)
    _frame(policy, 0, [a, b], ran=[a])
    assert len(policy._sites[a.site_id].buffer_arm) == 1
    assert len(policy._sites[b.site_id].buffer_arm) == 0


def test_cost_enters_selection_as_weight_times_cost() -> None:
    site = make_site(params=PARAMS, remote_last=False)
    cheap_last = make_site("query@4:0", params=tuple(reversed(PARAMS)), remote_last=False)
    heavy = create("paper", cost_weight=10.0, **TINY)
    assert {heavy.choose(site, make_context(t, image=_image(t))).index for t in range(6)} == {0}
    assert {heavy.choose(cheap_last, make_context(t, image=_image(t))).index for t in range(6, 12)} == {2}
    # Without the cost term the untrained networks pick by their outputs and exploration alone.
    free = create("paper", cost_weight=0.0, nu=100.0, **TINY)
    assert len({free.choose(site, make_context(t, image=_image(t))).index for t in range(12)}) > 1


def test_masks_and_local_only() -> None:
    policy = create("paper", cost_weight=0.0, nu=100.0, **TINY)
    masked = make_site(params=PARAMS)
    local = make_site("verify@5:0", params=PARAMS, local_only=True)
    for t in range(8):
        ctx = make_context(t, image=_image(t), available=[True, False, True])
        assert policy.choose(masked, ctx).index != 1
        assert policy.choose(local, make_context(t, image=_image(t))).index != 2


def test_uncertainty_accumulator_grows_with_choices() -> None:
    policy = create("paper", **{**TINY, "width": 64})
    site = make_site(params=PARAMS)
    policy.choose(site, make_context(0, image=_image(0)))
    u = policy._sites[site.site_id].u
    assert all(bool((x >= 1e-4).all()) for x in u) and any(bool((x > 1e-4).any()) for x in u)
    mem = policy.memory_bytes()[site.site_id]
    assert mem["U"] == mem["weights"] > 40e6  # ResNet-18: ~11.2M float32 weights


def test_state_round_trip(tmp_path: Any) -> None:
    policy = create("paper", **TINY)
    site = make_site(params=PARAMS)
    for t in range(6):  # one retraining (optimiser state exists) and two buffered inputs
        _frame(policy, t, [site], [site], reward=float(t % 2))
    state = policy.state_dict()
    assert_saveable(state)
    json.dumps(state["config"])
    save_policy_state(policy, tmp_path / "paper.npz")
    clone = create("paper", **TINY)
    load_policy_state(clone, tmp_path / "paper.npz")
    a, b = policy._sites[site.site_id], clone._sites[site.site_id]
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert all(torch.equal(x, y) for x, y in zip(a.u, b.u, strict=True))
    assert b.buffer_arm == a.buffer_arm and b.buffer_reward == a.buffer_reward
    assert all(torch.equal(x, y) for x, y in zip(a.buffer_x, b.buffer_x, strict=True))
    assert len(b.optimizer.state) == len(a.optimizer.state)
    x = torch.zeros(1, 3, 32, 32)
    assert torch.equal(a.model(x), b.model(x))
    _frame(clone, 6, [site], [site])
    _frame(clone, 7, [site], [site])
    assert clone.retrainings == 2


def test_bad_options_name_the_valid_ones() -> None:
    with pytest.raises(PolicyError, match="valid: resolution"):
        create("paper", learning_rate=1.0)
    with pytest.raises(PolicyError, match="cost must be"):
        create("paper", cost="flops")
