"""Off-policy evaluation from logged traces against the env's known values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgefmp.errors import ConfigError, PolicyError
from edgefmp.policies import create
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.replay import frame_reward, load_traces, replay
from edgefmp.trace import Trace
from tests.policies.bandit_env import BanditEnv, EnvSite, default_backends, run

# Mean accuracy of each backend over contexts uniform in [0, 1] (clipping is negligible).
TRUE_ACC = [0.15 + 0.85 * 0.5, 0.55 + 0.40 * 0.5, 0.92 + 0.05 * 0.5]
TRUE_LAT = [5.0, 20.0, 80.0]


@pytest.fixture(scope="module")
def logged() -> list[Trace]:
    """A log from an exploring adaptive policy (epsilon 0.5: every backend well covered)."""
    return run(BanditEnv(seed=41), AdaptivePolicy(seed=1, epsilon=0.5), 2500).traces


@pytest.mark.parametrize("arm", [0, 1, 2])
def test_ips_and_dr_recover_static_policies(logged: list[Trace], arm: int) -> None:
    est = replay(logged, create(f"static:{arm}"))
    assert est.frames == est.labelled == 2500
    assert est.accuracy_ips == pytest.approx(TRUE_ACC[arm], abs=0.08)  # IPS is the noisy one
    for value in (est.accuracy_snips, est.accuracy_dr):
        assert value == pytest.approx(TRUE_ACC[arm], abs=0.05)
    assert est.cost_dr["latency_ms"] == pytest.approx(TRUE_LAT[arm], rel=0.05)
    assert est.cost_ips["latency_ms"] == pytest.approx(TRUE_LAT[arm], rel=0.15)
    assert 0 < est.ess <= est.frames and 0 < est.support < 1


def test_dr_has_lower_error_than_ips_over_resamples(logged: list[Trace]) -> None:
    rng = np.random.default_rng(0)
    errs_ips, errs_dr = [], []
    for _ in range(4):
        sample = [logged[i] for i in rng.integers(0, len(logged), 400)]
        est = replay(sample, create("static:0"))
        errs_ips.append(abs(est.accuracy_ips - TRUE_ACC[0]))
        errs_dr.append(abs(est.accuracy_dr - TRUE_ACC[0]))
    assert np.mean(errs_dr) < np.mean(errs_ips)


def test_replay_of_the_logging_policy_matches_the_log(logged: list[Trace]) -> None:
    behaviour = AdaptivePolicy(seed=0, epsilon=1.0)  # uniform: easy to reason about
    est = replay(logged[:300], behaviour, samples=64)
    assert est.accuracy_dr == pytest.approx(np.mean(TRUE_ACC), abs=0.07)
    assert est.cost_dr["latency_ms"] == pytest.approx(np.mean(TRUE_LAT), rel=0.1)


def test_multi_site_frames_and_a_callable_target(logged: list[Trace]) -> None:
    env = BanditEnv((EnvSite("a", default_backends()), EnvSite("b", default_backends(), run_prob=0.5)), seed=42)
    traces = run(env, AdaptivePolicy(seed=0, epsilon=1.0), 1500).traces

    def always_small(site, record, earlier):
        return np.eye(len(site.backends))[0]

    est = replay(traces, always_small)
    # Frame correct = every call correct; site b runs on half the frames, with its own
    # independent context, so P(both right) = E[p]^2.
    truth = TRUE_ACC[0] * (0.5 + 0.5 * TRUE_ACC[0])
    assert est.accuracy_dr == pytest.approx(truth, abs=0.06)
    assert est.cost_dr["latency_ms"] == pytest.approx(5.0 * 1.5, rel=0.1)


def test_trace_files_and_their_errors(tmp_path: Path, logged: list[Trace]) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(json.dumps(t.to_json()) for t in logged[:200]) + "\n")
    from_file = replay(path, create("static:2"))
    from_list = replay(logged[:200], create("static:2"))
    assert from_file.accuracy_ips == pytest.approx(from_list.accuracy_ips, abs=1e-3)
    assert len(load_traces(path)) == 200
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(logged[0].to_json()) + "\n{not json\n")
    with pytest.raises(ConfigError, match="bad.jsonl:2: not a trace"):
        load_traces(bad)
    with pytest.raises(ConfigError, match="missing.jsonl: cannot read"):
        load_traces(tmp_path / "missing.jsonl")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42\xed\xff\x00")  # a video's first bytes: not text
    with pytest.raises(ConfigError, match="clip.mp4: not a trace file: it is not UTF-8 text"):
        load_traces(video)
    with pytest.raises(PolicyError, match="no traces"):
        replay([], create("static:0"))


def test_rewards_from_a_mapping_and_unlabelled_frames(logged: list[Trace]) -> None:
    traces = [Trace(t.frame_id, t.ts, t.calls, t.answer) for t in logged[:100]]  # no meta: unlabelled
    assert frame_reward(traces[0], None) is None
    est = replay(traces, create("static:0"), rewards={t.frame_id: 1.0 for t in traces[:50]})
    assert est.labelled == 50 and est.frames == 100
    assert est.cost_dr["latency_ms"] > 0
    unlabelled = replay(traces, create("static:0"))
    assert unlabelled.accuracy_ips is None and unlabelled.labelled == 0


def test_missing_and_invalid_propensities(logged: list[Trace]) -> None:
    traces = [Trace.from_json(t.to_json()) for t in logged[:50]]
    for t in traces:
        t.calls[0].propensity = None
    est = replay(traces, create("static:0"))
    assert any("no logged propensity" in n for n in est.notes)
    traces[0].calls[0].propensity = 0.0
    with pytest.raises(PolicyError, match="propensity 0.0 is not in"):
        replay(traces, create("static:0"))
