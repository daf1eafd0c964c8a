"""Scene videos: deterministic frames, drifting objects, scene changes, corruption schedule."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefmp.errors import ConfigError
from edgefmp.scenes import load_shape_pool, scene_frames, truth_to_jsonl, write_scene_video


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    return load_shape_pool("test", limit=80)


def test_frames_are_deterministic_and_drift(pool) -> None:  # type: ignore[no-untyped-def]
    a = list(scene_frames(40, seed=3, pool=pool, scene_seconds=(1.0, 2.0)))
    b = list(scene_frames(40, seed=3, pool=pool, scene_seconds=(1.0, 2.0)))
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b, strict=True))
    truths = [t for _, t in a]
    assert truths[-1].scene >= 2
    moved = 0
    for prev, cur in zip(truths, truths[1:], strict=False):
        if prev.scene == cur.scene:
            assert [o.label for o in prev.objects] == [o.label for o in cur.objects]
            for p, c in zip(prev.objects, cur.objects, strict=True):
                assert max(abs(u - v) for u, v in zip(p.box, c.box, strict=True)) <= 3
                moved += p.box != c.box
    assert moved > 0


def test_schedule_segments(pool) -> None:  # type: ignore[no-untyped-def]
    schedule = [(0, None, 0), (5, "jpeg", 4), (8, None, 0)]
    truths = [t for _, t in scene_frames(10, seed=0, pool=pool, corruption_schedule=schedule)]
    assert [t.corruption for t in truths] == [None] * 5 + ["jpeg"] * 3 + [None] * 2
    assert truths[6].severity == 4
    with pytest.raises(ConfigError, match="corruption_schedule"):
        list(scene_frames(2, seed=0, pool=pool, corruption_schedule=[(0, "fog", 1)]))


def test_write_video_and_truth(tmp_path: Path, pool) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "v.mp4"
    truths = write_scene_video(video, 12, seed=1, fps=10, size=(96, 128), pool=pool)
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert ok and frame.shape == (96, 128, 3) and count == 12
    out = truth_to_jsonl(truths, tmp_path / "truth.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and rows[3]["frame"] == 3 and abs(rows[3]["time_s"] - 0.3) < 1e-9
    assert {"shape", "color", "label", "box"} <= set(rows[0]["objects"][0])
