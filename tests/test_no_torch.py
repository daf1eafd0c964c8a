"""The core works where torch is not installed: `import edgefmp` and `edgefmp run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

# Setting sys.modules["torch"] = None makes every `import torch` raise ImportError, exactly as
# on a machine without torch, whatever is installed here.
BLOCK_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; "


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_import_edgefmp_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import edgefmp, edgefmp.cli, edgefmp.runtime.session, edgefmp.policies, edgefmp.backends.onnx; "
        "print('torch' in sys.modules and sys.modules['torch'] is not None)"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_edgefmp_run_without_torch(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(6):
        frame = np.full((120, 160, 3), 235, np.uint8)
        cv2.circle(frame, (40 + 10 * i, 60), 18, (0, 0, 220), -1)  # a red circle (BGR)
        writer.write(frame)
    writer.release()
    program = tmp_path / "prog.py"
    program.write_text("def execute_command(image):\n    return bool_to_yesno(image.exists('circle'))\n")
    traces = tmp_path / "traces.jsonl"
    code = (
        "from edgefmp.cli import main; sys.argv = ['edgefmp', 'run', 'prog.py', '--source', 'clip.mp4', "
        "'--out', 'traces.jsonl', '--quiet', '--policy', 'static:0']; main()"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    lines = [json.loads(x) for x in traces.read_text().splitlines()]
    frames = [x for x in lines if "frame_id" in x]
    assert len(frames) == 6
    assert all(x["error"] is None for x in frames), frames
    assert sum(x["answer"] == "yes" for x in frames) >= 5
