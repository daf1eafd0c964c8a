"""`edgefmp demo`: the main job on the bundled default.

Writes a camera-like video of easy-VQA shapes (test split) with its ground truth, runs the
bundled example program ("is there a red circle?") on it through `edgefmp run`'s own code path
with the truth as feedback (so the router learns as it goes), and scores the answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from edgefmp.runtime.session import RunOptions, run_program
from edgefmp.runtime.summary import RunSummary

DEMO_PROGRAM = Path(__file__).resolve().parent / "data" / "demo_program.py"
DEMO_SEED = 7


@dataclass
class DemoResult:
    summary: RunSummary
    correct: int
    scored: int
    traces_path: Path
    video_path: Path

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0


def demo_truth(objects: Sequence[object]) -> str:
    """The demo question's true answer for one frame's objects."""
    red_circle = any(getattr(o, "shape", "") == "circle" and getattr(o, "color", "") == "red" for o in objects)
    return "yes" if red_circle else "no"


def run_demo(
    workdir: Path,
    frames: int = 150,
    policy: str | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> DemoResult:
    from edgefmp.scenes.video import write_scene_video

    workdir.mkdir(parents=True, exist_ok=True)
    video = workdir / "demo_scene.mp4"
    truth = write_scene_video(video, n_frames=frames, seed=DEMO_SEED)
    # The ground truth doubles as immediate feedback, so the router learns during the demo.
    labels = workdir / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"frame_id": f"{video.stem}:{i}", "label": demo_truth(t.objects) == "yes"}) + "\n"
            for i, t in enumerate(truth)
        ),
        encoding="utf-8",
    )
    traces_path = workdir / "traces.jsonl"
    annotated = workdir / "annotated.mp4"
    summary = run_program(
        RunOptions(
            program=DEMO_PROGRAM,
            source=str(video),
            out=traces_path,
            policy=policy,
            labels=labels,
            video_out=annotated,
            summary_out=workdir / "summary.json",
            progress=progress,
        ),
        console=console,
    )
    answers = [json.loads(line) for line in traces_path.read_text(encoding="utf-8").splitlines()]
    answers = [a for a in answers if "frame_id" in a]
    scored = correct = 0
    for trace, frame_truth in zip(answers, truth, strict=False):  # a cut-short run scores what ran
        scored += 1
        correct += trace.get("answer") == demo_truth(frame_truth.objects)
    return DemoResult(summary, correct, scored, traces_path, annotated)
