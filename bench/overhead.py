"""Runtime overhead of the executor on the demo program with a static policy.

overhead = (sum of frame wall time - sum of time inside backends) / sum of time inside backends

It covers everything edgefmp adds around the models: program interpretation with its budget
checks, routing, cost metering and trace building. Run from the repository root:

    python bench/overhead.py --frames 300 [--catalog models/catalog.yaml] [--out bench/results/overhead.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefmp.backends.catalog import Catalog, load_catalog
from edgefmp.demo import DEMO_PROGRAM, DEMO_SEED
from edgefmp.policies import create
from edgefmp.program import load_program
from edgefmp.runtime.executor import Executor
from edgefmp.runtime.session import resolve_catalog_path
from edgefmp.runtime.sources import open_source
from edgefmp.scenes.video import write_scene_video


def measure(catalog_path: Path, policy: str, video: Path, frames: int, warmup: int) -> dict[str, float]:
    program = load_program(DEMO_PROGRAM)
    with Catalog.open(load_catalog(catalog_path)) as catalog:
        executor = Executor(program, catalog, create(policy))
        source = open_source(str(video))
        walls: list[float] = []
        backends: list[float] = []
        calls = 0
        try:
            index = 0
            for item in source:
                if not hasattr(item, "image"):
                    continue
                trace = executor.run_frame(item, index)
                index += 1
                if index <= warmup:
                    continue
                walls.append(trace.wall_ms)
                backends.append(trace.backend_ms)
                calls += len(trace.calls)
                if len(walls) >= frames:
                    break
        finally:
            source.close()
    wall, backend = sum(walls), sum(backends)
    return {
        "frames": len(walls),
        "calls_per_frame": calls / max(len(walls), 1),
        "wall_ms_per_frame": wall / max(len(walls), 1),
        "backend_ms_per_frame": backend / max(len(walls), 1),
        "overhead_ms_per_frame": (wall - backend) / max(len(walls), 1),
        "overhead_ratio": (wall - backend) / backend if backend else float("nan"),
        "p50_wall_ms": statistics.median(walls) if walls else float("nan"),
    }


def measure_null(video: Path, frames: int) -> dict[str, float]:
    """The runtime's own cost with zero-cost backends that replay fixed answers: the part of
    the overhead that does not depend on how heavy the models are (or on machine load from
    their threads)."""
    import numpy as np

    from edgefmp.backends.callable import CallableBackend
    from edgefmp.results import Detections, Verdict

    detect = CallableBackend.wrap(
        "null-detect",
        "detect",
        lambda r: Detections(
            boxes=np.array([[10, 10, 40, 40], [60, 60, 90, 90]]), scores=[0.9, 0.8], labels=["circle"] * 2
        ),
    )
    verify = CallableBackend.wrap("null-verify", "verify", lambda r: Verdict(value=False, confidence=0.9))
    executor = Executor(
        load_program(DEMO_PROGRAM), Catalog.from_backends({"detect": [detect], "verify": [verify]}), create("static:0")
    )
    source = open_source(str(video))
    images = [item for item in source if hasattr(item, "image")][:frames]
    source.close()
    for i, frame in enumerate(images[:20]):
        executor.run_frame(frame, i)
    walls, calls = [], 0
    for i, frame in enumerate(images):
        trace = executor.run_frame(frame, i)
        walls.append(trace.wall_ms - trace.backend_ms)
        calls += len(trace.calls)
    return {"us_per_frame": 1e3 * statistics.median(walls), "us_per_call": 1e3 * sum(walls) / max(calls, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--catalog", type=Path, action="append", help="repeat for several; default: the default catalog"
    )
    parser.add_argument("--policy", action="append", help="repeat for several; default: static:0 and static:-1")
    parser.add_argument("--out", type=Path, help="write a markdown table here")
    args = parser.parse_args()
    catalogs = args.catalog or [resolve_catalog_path(None)]
    policies = args.policy or ["static:0", "static:-1"]
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "overhead.mp4"
        write_scene_video(video, n_frames=args.frames + args.warmup, seed=DEMO_SEED)
        for catalog in catalogs:
            for policy in policies:
                rows.append((catalog, policy, measure(catalog, policy, video, args.frames, args.warmup)))
        null = measure_null(video, args.frames)
    table = Table(title="runtime overhead = (frame wall - backend time) / backend time; goal <= 5%")
    cols = (
        "catalog",
        "policy",
        "frames",
        "calls/frame",
        "wall ms/frame",
        "backend ms/frame",
        "overhead ms/frame",
        "overhead",
    )
    for col in cols:
        table.add_column(col)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for catalog, policy, m in rows:
        cells = [
            str(catalog),
            policy,
            f"{m['frames']:.0f}",
            f"{m['calls_per_frame']:.2f}",
            f"{m['wall_ms_per_frame']:.3f}",
            f"{m['backend_ms_per_frame']:.3f}",
            f"{m['overhead_ms_per_frame']:.3f}",
            f"{100 * m['overhead_ratio']:.2f}%",
        ]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    null_line = (
        f"Runtime's own cost with zero-cost backends (same program, same frames): "
        f"{null['us_per_frame']:.0f} us per frame (median), {null['us_per_call']:.0f} us per call."
    )
    console.print(null_line)
    if args.out:
        env = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
        command = "python bench/overhead.py " + " ".join(sys.argv[1:])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            f"# Runtime overhead\n\nCommand: `{command}`\n\nMachine: {env}\n\n"
            + "\n".join(lines)
            + f"\n\n{null_line}\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
