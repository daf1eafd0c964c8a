"""Policy state files: exact round trips, clear errors, atomic writes, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgefmp.errors import PolicyError
from edgefmp.policies import create
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.state import (
    STATE_FORMAT,
    STATE_VERSION,
    load_policy_state,
    read_state,
    save_policy_state,
    write_state,
)
from tests.policies.bandit_env import BanditEnv, run

REPO = Path(__file__).resolve().parents[2]

TREE = {
    "a": np.arange(12, dtype=np.float64).reshape(3, 4) / 7.0,
    "nan": np.array([np.nan, np.inf, -0.0, 1e-300]),
    "ints": np.arange(5, dtype=np.int32),
    "bools": np.array([True, False]),
    "nested": {"list": [1, 2.5, "x", None, True, {"deep": np.eye(2)}], "big": 2**100},
    "scalar": np.float32(1.5),
}


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.generic):
        return a.item() == b
    return bool(a == b)


@pytest.mark.parametrize("suffix", [".npz", ".json", ".state"])
def test_tree_round_trips_bit_for_bit(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"s{suffix}"
    write_state(TREE, path, policy="demo")
    header = read_state(path)
    assert header["format"] == STATE_FORMAT and header["version"] == STATE_VERSION and header["policy"] == "demo"
    assert same(TREE, header["state"])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_npz_is_plain_npz_and_json(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    write_state({"w": np.ones(3)}, path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["__state_json__"].tobytes())
        assert meta["state"]["w"] == {"__ndarray__": "a0"}
        assert np.array_equal(npz["a0"], np.ones(3))


def test_objects_that_need_pickle_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"state\.bad.*object arrays"):
        write_state({"bad": np.array([object()])}, tmp_path / "s.npz")
    with pytest.raises(PolicyError, match=r"state\.fn.*cannot save a builtin"):
        write_state({"fn": len}, tmp_path / "s.json")


def test_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    with pytest.raises(PolicyError, match="missing.npz: no such policy state file"):
        read_state(missing)
    torn = tmp_path / "torn.npz"
    torn.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PolicyError, match="torn.npz: not a readable policy state"):
        read_state(torn)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PolicyError, match="other.json: not a readable policy state file: not an edgefmp"):
        read_state(other)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format": STATE_FORMAT, "version": 99, "state": {}}))
    with pytest.raises(PolicyError, match="future.json: policy state version 99 is not supported"):
        read_state(future)


def test_adaptive_round_trip_is_exact_and_continues_identically(tmp_path: Path) -> None:
    env = BanditEnv(seed=21)
    a = AdaptivePolicy(targets={"latency_ms": 30.0}, seed=3)
    run(env, a, 300)
    path = tmp_path / "adaptive.npz"
    save_policy_state(a, path)
    b = AdaptivePolicy(targets={"latency_ms": 30.0}, seed=999)
    load_policy_state(b, path)
    assert same(a.state_dict(), b.state_dict())
    # Same state, same generator: the two make the same decisions and learn the same.
    env_a, env_b = BanditEnv(seed=5), BanditEnv(seed=5)
    log_a, log_b = run(env_a, a, 50, start=300), run(env_b, b, 50, start=300)
    assert [t.calls[0].backend_index for t in log_a.traces] == [t.calls[0].backend_index for t in log_b.traces]
    assert same(a.state_dict(), b.state_dict())


def test_loading_into_the_wrong_policy_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    save_policy_state(AdaptivePolicy(), path)
    with pytest.raises(PolicyError, match="a.json: holds the state of policy 'adaptive', not of 'static:0'"):
        load_policy_state(create("static:0"), path)
    header = read_state(path)
    header["state"]["context_dim"] = 7
    write_state(header["state"], path, policy="adaptive")
    with pytest.raises(PolicyError, match="a.json: adaptive state was learned on context"):
        load_policy_state(AdaptivePolicy(), path)
    header["state"]["context_dim"] = 16
    header["state"]["sites"] = {"s": {"backends": ["x"], "remote": np.array([False]), "a_inv": np.eye(3)}}
    write_state(header["state"], path, policy="adaptive")
    with pytest.raises(PolicyError, match="a.json: "):
        load_policy_state(AdaptivePolicy(), path)


WRITER = """
import sys, numpy as np
from edgefmp.policies.state import write_state
path = sys.argv[1]
i = 0
while True:
    i += 1
    write_state({"i": i, "w": np.full((64, 64), float(i))}, path, policy="demo")
    print(i, flush=True)
"""


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_sigkill_during_writes_never_leaves_a_corrupt_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"state{suffix}"
    rng = np.random.default_rng(0)
    last = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one complete write
        time.sleep(float(rng.uniform(0.0, 0.15)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        state = read_state(path)["state"]
        assert np.all(state["w"] == float(state["i"]))  # whole, never torn
        last = state["i"]
    assert last >= 1


LEARNER = """
import sys
from pathlib import Path
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.state import load_policy_state, save_policy_state
from tests.policies.bandit_env import BanditEnv, run
path, frames = Path(sys.argv[1]), int(sys.argv[2])
policy = AdaptivePolicy(targets={"cost_weights": {"latency_ms": 0.002}}, seed=0)
start = 0
if path.exists():
    load_policy_state(policy, path)
    start = policy.budgets.frames
env = BanditEnv(seed=start, price_ms=0.002)
for block in range(start, start + frames, 50):
    log = run(env, policy, 50, start=block, seed=block)
    save_policy_state(policy, path)
    print(block + 50, round(float(log.regret.mean()), 4), flush=True)
"""


def test_a_killed_run_resumes_learning_from_its_state_file(tmp_path: Path) -> None:
    path = tmp_path / "run.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", LEARNER, str(path), "100000"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first_regret = None
    while True:
        line = proc.stdout.readline()
        assert line, "the learner died before it was killed"
        done, regret = line.split()
        first_regret = first_regret if first_regret is not None else float(regret)
        if int(done) >= 600:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    killed = AdaptivePolicy()
    load_policy_state(killed, path)
    seen = killed.budgets.frames
    assert seen >= 600 and killed.sites["s0"].n_acc.sum() == seen
    out = subprocess.run(
        [sys.executable, "-c", LEARNER, str(path), "300"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    resumed = AdaptivePolicy()
    load_policy_state(resumed, path)
    assert resumed.budgets.frames == seen + 300  # it went on from where it was, not from zero
    assert resumed.sites["s0"].n_acc.sum() == seen + 300
    late_regret = np.mean([float(r) for r in out[1::2]])
    assert late_regret < 0.6 * first_regret  # and it kept what it had learned
