"""Feedback: reward shapes, label matching in any order, label files, audit sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefmp.errors import ConfigError, PolicyError
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.feedback import (
    PAPER_REWARD,
    AuditSampler,
    BinaryReward,
    DelayedLabels,
    Feedback,
    LabelMatcher,
    agreement_reward,
    as_bool,
    correctness_reward,
    normalize_answer,
    read_labels,
    reward_for,
)
from edgefmp.trace import CallRecord, Cost, Trace
from tests.policies.bandit_env import BanditEnv


def trace(fid: str, answer=None, latency: float = 0.0) -> Trace:
    return Trace(fid, 0.0, [CallRecord("s", "vqa", "b", 0, {}, cost=Cost(latency_ms=latency))], answer=answer)


@pytest.mark.parametrize(
    ("answer", "truth", "reward"),
    [
        (True, True, 1000.0),
        (False, False, 1.0),
        (True, False, -100.0),
        (False, True, -100.0),
        ("yes", True, 1000.0),
        ("No.", False, 1.0),
        (None, True, -100.0),
        (None, False, -100.0),
    ],
)
def test_paper_binary_reward(answer, truth, reward: float) -> None:
    assert PAPER_REWARD(answer, truth) == reward
    assert reward_for(answer, truth) == reward


def test_custom_binary_shape_and_bad_labels() -> None:
    assert BinaryReward(tp=1, tn=1, fp=0, fn=0)(True, "yes") == 1
    with pytest.raises(PolicyError, match="not a yes/no value"):
        PAPER_REWARD(True, "maybe")


def test_open_answers_are_normalised() -> None:
    assert normalize_answer("  The Red  Car! ") == "red car"
    assert correctness_reward("a red car", "Red car.") == 1.0
    assert correctness_reward("blue", ["navy", "Blue"]) == 1.0
    assert correctness_reward("blue", "red") == 0.0
    assert correctness_reward(None, "red") == 0.0
    assert reward_for("two", "2") == 0.0  # no number words: stated, not guessed
    assert as_bool(1) is True and as_bool("TRUE") is True and as_bool(2) is None
    assert agreement_reward("yes", True) == 1.0 and agreement_reward("cat", "a cat") == 1.0


def test_immediate_delayed_and_out_of_order_labels_match_by_frame_id() -> None:
    m = LabelMatcher(capacity=10)
    assert m.add_trace(trace("f1")) == []
    assert [t.frame_id for t, _ in m.add_label("f1", True)] == ["f1"]  # immediate
    m.add_trace(trace("f2"))
    m.add_trace(trace("f3"))
    assert [(t.frame_id, y) for t, y in m.add_label("f3", "b")] == [("f3", "b")]  # out of order
    assert [(t.frame_id, y) for t, y in m.add_label("f2", "a")] == [("f2", "a")]
    assert m.add_label("f4", "early") == []  # the label came before its frame
    assert [(t.frame_id, y) for t, y in m.add_trace(trace("f4"))] == [("f4", "early")]
    assert m.add_label("f4", "again") == [] and m.duplicate_labels == 1
    assert m.stats()["matched"] == 4 and m.pending_traces == 0


def test_labels_that_never_come_are_evicted_within_bounds() -> None:
    evicted: list[str] = []
    m = LabelMatcher(capacity=3, on_evict=lambda t: evicted.append(t.frame_id))
    for i in range(10):
        m.add_trace(trace(f"f{i}"))
    assert m.pending_traces == 3 and m.evicted_traces == 7 and evicted[:2] == ["f0", "f1"]
    assert m.add_label("f0", True) == [] and m.late_labels == 1
    for i in range(10):
        m.add_label(f"future{i}", True)
    assert m.pending_labels == 3 and m.evicted_labels == 7
    aged = LabelMatcher(capacity=100, max_age=2)
    for i in range(5):
        aged.add_trace(trace(f"g{i}"))
    assert aged.pending_traces == 3 and aged.evicted_traces == 2
    with pytest.raises(PolicyError):
        LabelMatcher(capacity=0)


def test_feedback_observes_every_frame_and_updates_on_labels() -> None:
    env = BanditEnv(seed=31)
    policy = AdaptivePolicy(seed=0)
    fb = Feedback(policy, reward_fn=lambda answer, label: 1.0 if answer == label else 0.0, capacity=50)
    outcomes = [env.run_frame(policy, i) for i in range(40)]
    for o in outcomes:
        fb.on_trace(o.trace)
    for o in reversed(outcomes[::2]):  # half the labels, late and in reverse order
        fb.on_label(o.trace.frame_id, o.correct)
    assert policy.budgets.frames == 40  # costs of every frame, labelled or not
    assert fb.updates == 20 and policy.sites["s0"].n_acc.sum() == 20
    assert fb.reward_sum == 20.0  # the answer is the env's correctness, so each label agrees


def test_read_labels_and_release_them_after_their_delay(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    rows = [
        {"frame_id": "a", "label": True, "delay": 2},
        {"frame_id": "b", "label": "cat"},
        {"frame_id": "c", "label": False, "delay": 1},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    records = read_labels(path)
    assert [r.delay for r in records] == [2, 0, 1]
    feed = DelayedLabels(records)
    arrived = [feed.after_frame(fid) for fid in ["a", "b", "c", "d", "e"]]
    assert arrived == [[], [("b", "cat")], [("a", True)], [("c", False)], []]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{bad json", "labels.jsonl:2: not valid JSON"),
        ('{"frame_id": "x"}', "labels.jsonl:2: expected an object with 'frame_id' and 'label'"),
        ('{"frame_id": "x", "label": 1, "delay": -1}', "labels.jsonl:2: delay"),
        ('{"frame_id": "x", "label": 1, "lag": 1}', "labels.jsonl:2: unknown field"),
    ],
)
def test_bad_label_files_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"frame_id": "ok", "label": 1}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message.replace("[", "\\[")):
        read_labels(path)
    with pytest.raises(ConfigError, match="nope.jsonl: cannot read"):
        read_labels(tmp_path / "nope.jsonl")


def test_audit_sampler_is_stateless_uniform_and_counts_cost() -> None:
    sampler = AuditSampler(0.1, seed=7)
    picks = [sampler.should_audit(f"frame-{i}") for i in range(5000)]
    assert 0.08 < sum(picks) / 5000 < 0.12
    assert picks == [AuditSampler(0.1, seed=7).should_audit(f"frame-{i}") for i in range(5000)]  # survives restarts
    assert AuditSampler(0.0).should_audit("x") is False and AuditSampler(1.0).should_audit("x") is True
    label = sampler.record(trace("f1", answer="yes", latency=80.0))
    sampler.record(trace("f2", answer="no", latency=20.0))
    assert label == "yes" and sampler.audits == 2 and sampler.cost.latency_ms == 100.0
    restored = AuditSampler(0.1, seed=7)
    restored.load_state_dict(sampler.state_dict())
    assert restored.audits == 2 and restored.cost.latency_ms == 100.0
    with pytest.raises(PolicyError):
        AuditSampler(1.5)


def test_audit_mode_learns_without_labels() -> None:
    """No labels: a fifth of the frames also run the largest backend and the policy learns
    from agreement with it; it still finds the context-dependent optimum."""
    import numpy as np

    env = BanditEnv(seed=32, price_ms=0.002)
    # balance=False: the env's answers are correctness flags, not yes/no answers with classes,
    # and its optimum is defined on plain accuracy.
    policy = AdaptivePolicy(targets={"cost_weights": {"latency_ms": 0.002}}, seed=0, balance=False)
    fb = Feedback(policy, reward_fn=agreement_reward)
    sampler = AuditSampler(0.2, seed=1)
    rng = np.random.default_rng(0)
    largest = env.sites[0].backends[-1]
    regret = []
    for i in range(2000):
        o = env.run_frame(policy, i)
        fb.on_trace(o.trace)
        regret.append(o.regret)
        if sampler.should_audit(o.trace.frame_id):
            ref_ok = bool(rng.random() < largest.p_correct(o.contexts["s0"]))
            ref = Trace(
                o.trace.frame_id,
                0.0,
                [CallRecord("s0", "vqa", "large", 2, {}, cost=Cost(latency_ms=80.0))],
                answer=ref_ok,
            )
            fb.on_label(o.trace.frame_id, sampler.record(ref))
    assert 300 < sampler.audits < 500 and sampler.cost.latency_ms == 80.0 * sampler.audits
    # Slower than with true labels on every frame (a fifth of the frames, and agreement is
    # a biased proxy of correctness), but it learns the context-dependent choice.
    assert np.mean(regret[1400:]) < 0.7 * np.mean(regret[:200])
    for sharpness, best in [(0.95, 0), (0.05, 2)]:
        x = np.full(16, 0.5)
        x[0], x[3] = 1.0, sharpness
        assert int(np.argmax(policy.predict("s0", x)["accuracy"] - 0.002 * np.array([5.0, 20.0, 80.0]))) == best
