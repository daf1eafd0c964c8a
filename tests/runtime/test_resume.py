"""`edgefmp run --state`: a run killed with SIGKILL leaves a readable state file, and a
restarted run continues learning from it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from edgefmp.demo import DEMO_PROGRAM, demo_truth
from edgefmp.policies.state import read_state
from edgefmp.scenes.video import write_scene_video


def _frames_learned(path: Path) -> int:
    return int(read_state(path)["state"]["budgets"]["frames"])


def _run(tmp: Path, video: str, *extra: str) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "edgefmp.cli",
        "run",
        str(DEMO_PROGRAM),
        "--source",
        str(tmp / video),
        "--policy",
        "adaptive",
        "--state",
        str(tmp / "state.json"),
        "--labels",
        str(tmp / "labels.jsonl"),
        "--save-every",
        "5",
        "--quiet",
        *extra,
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_continues_learning(tmp_path: Path) -> None:
    # Two clips, so the resumed run's frame ids are new to the policy.
    with open(tmp_path / "labels.jsonl", "w") as f:
        for stem, n, seed in (("v", 40, 11), ("w", 15, 12)):
            truth = write_scene_video(tmp_path / f"{stem}.mp4", n_frames=n, seed=seed)
            for i, t in enumerate(truth):
                f.write(json.dumps({"frame_id": f"{stem}:{i}", "label": demo_truth(t.objects) == "yes"}) + "\n")
    state = tmp_path / "state.json"

    first = _run(tmp_path, "v.mp4", "--out", str(tmp_path / "first.jsonl"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if state.exists() and _frames_learned(state) >= 10:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.stderr is not None
    first.stderr.close()
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed; use a longer video"
    learned_before = _frames_learned(state)  # readable: saves are atomic, a kill never tears them
    assert learned_before >= 10

    second = _run(tmp_path, "w.mp4", "--out", str(tmp_path / "second.jsonl"))
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert _frames_learned(state) == learned_before + 15
