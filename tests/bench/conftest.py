"""Tiny suites for bench tests: two or three queries, a dozen frames each, a small shape pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "bench" / "programs"


def tiny_suite_data(frames: int = 12, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": 1,
        "name": "tiny",
        "seed": 7,
        "images": {"source": "easy-vqa", "split": "test", "limit": 150},
        "scene": {"objects": [2, 3]},
        "corruptions": [
            {"type": "segment", "start": 0, "end": 4, "kind": "clean"},
            {"type": "cycle", "kind": "low_light", "period": 8, "severities": [0, 2]},
            {"type": "bursts", "kinds": ["blur"], "every": 5, "length": [1, 2], "severity": [2, 3]},
        ],
        "defaults": {"frames": frames, "positives": 0.25, "lookalikes": 0.5},
        "queries": [
            {
                "id": "red-circle",
                "question": "Is there a red circle?",
                "program": str(PROGRAMS / "verify_brown_circle.py"),
                "task": {"kind": "exists", "object": {"color": "red", "shape": "circle"}},
            },
            {
                "id": "color-triangle",
                "question": "What color is the triangle?",
                "answer": "open",
                "program": str(PROGRAMS / "color_of_triangle.py"),
                "positives": 0.5,
                "task": {"kind": "attribute", "subject": {"shape": "triangle"}, "ask": "color"},
            },
        ],
    }
    data.update(overrides)
    return data


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """write_suite(data=None, name="tiny.yaml", **overrides) -> path of a suite file."""

    def write(data: dict[str, Any] | None = None, name: str = "tiny.yaml", **overrides: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data if data is not None else tiny_suite_data(**overrides), sort_keys=False))
        return path

    return write
