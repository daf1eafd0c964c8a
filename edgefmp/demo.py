"""`edgefmp demo`: the main job on the bundled default.

Writes a camera-like video of easy-VQA shapes (test split) with its ground truth, runs the
bundled example program ("is there a red circle?") on it through `edgefmp run`'s own code path
with the truth as feedback (each frame's true answer is its label, given right after the
frame, so the router learns as it goes), and scores the answers against that same truth. Then
it runs the largest backends alone (`static:-1`, no learning) on the same frames, so the cost
of the routed run can be read as a fraction of theirs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from edgefmp.backends.catalog import load_catalog
from edgefmp.runtime.session import RunOptions, resolve_catalog_path, run_program
from edgefmp.runtime.summary import RunSummary

DEMO_PROGRAM = Path(__file__).resolve().parent / "data" / "demo_program.py"
DEMO_SEED = 7


@dataclass
class Scored:
    """A run of the demo and how many of its answers were right."""

    summary: RunSummary
    correct: int
    scored: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0


@dataclass
class DemoResult:
    summary: RunSummary
    correct: int
    scored: int
    traces_path: Path
    video_path: Path
    labels_path: Path
    largest: Scored | None = None  # the largest backends on the same frames; None: nothing larger

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0

    def comparison(self) -> str | None:
        """This run's measured cost per frame as a share of the largest backends' on the same frames."""
        if self.largest is None:
            return None
        ours, big = self.summary.to_json()["cost"]["per_frame"], self.largest.summary.to_json()["cost"]["per_frame"]

        def share(key: str, unit: str) -> str:
            a, b = ours.get(key) or 0.0, big.get(key) or 0.0
            ratio = f" ({100.0 * a / b:.0f}%)" if b > 0 else ""
            return f"{a:.3g} {unit}/frame vs {b:.3g}{ratio}"

        return (
            f"cost against the largest backends alone (static:-1, measured on the same {self.largest.scored} "
            f"frames): backend latency {share('latency_ms', 'ms')}; energy ({self.summary.energy_label}) "
            f"{share('energy_j', 'J')}; accuracy {100.0 * self.accuracy:.1f}% vs {100.0 * self.largest.accuracy:.1f}%"
        )


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
    if console is not None:
        console.print(
            f"demo: {frames} frames of easy-VQA shapes ({video}), question 'is there a red circle?'. "
            f"Online feedback: each frame's true answer is given to the router as its label right after "
            f"the frame ({labels}); the answers are scored against the same truth.",
            highlight=False,
        )
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
    correct, scored = _score(traces_path, truth)
    largest = None
    if _catalog_offers_choice():
        largest_traces = workdir / "largest_traces.jsonl"
        largest_summary = run_program(
            RunOptions(program=DEMO_PROGRAM, source=str(video), out=largest_traces, policy="static:-1", progress=False)
        )
        largest = Scored(largest_summary, *_score(largest_traces, truth))
    return DemoResult(summary, correct, scored, traces_path, annotated, labels, largest)


def _score(traces_path: Path, truth: Sequence[object]) -> tuple[int, int]:
    """(correct, scored) of a trace file against the demo's truth."""
    answers = [json.loads(line) for line in traces_path.read_text(encoding="utf-8").splitlines()]
    answers = [a for a in answers if "frame_id" in a]
    scored = correct = 0
    for trace, frame_truth in zip(answers, truth, strict=False):  # a cut-short run scores what ran
        scored += 1
        correct += trace.get("answer") == demo_truth(getattr(frame_truth, "objects", ()))
    return correct, scored


def _catalog_offers_choice() -> bool:
    """Whether the default catalog has a larger backend anywhere (the bundled one has one each)."""
    spec = load_catalog(resolve_catalog_path(None))
    return any(len(backends) > 1 for backends in spec.functions.values())
