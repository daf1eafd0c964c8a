from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefmp.errors import ExportError
from edgefmp.export.calibration import load_frames, split_holdout


def test_folder(frames_dir: Path) -> None:
    frames = load_frames(frames_dir, max_frames=4)
    assert len(frames) == 4 and frames[0].dtype == np.uint8 and frames[0].shape == (40, 48, 3)


def test_video(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 40))
    for i in range(20):
        writer.write(np.full((40, 48, 3), i * 10, np.uint8))
    writer.release()
    frames = load_frames(path, max_frames=5)
    assert len(frames) == 5 and frames[0].shape == (40, 48, 3)


def test_bad_sets(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such file"):
        load_frames(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="holds no images"):
        load_frames(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    with pytest.raises(ExportError, match="could be read"):
        load_frames(broken)
    notvideo = tmp_path / "clip.mp4"
    notvideo.write_bytes(b"nope")
    with pytest.raises(ExportError, match="clip.mp4"):
        load_frames(notvideo)


def test_messages_name_the_set(tmp_path: Path) -> None:
    """A held-out folder is not called a calibration set; a bad count names no internal argument."""
    empty = tmp_path / "held"
    empty.mkdir()
    with pytest.raises(ExportError, match=r"^held-out set .*held: the folder holds no images"):
        load_frames(empty, what="held-out set")
    with pytest.raises(ExportError, match="take at least 1 frame, not 0"):
        load_frames(empty, max_frames=0)


def test_split_holdout() -> None:
    frames = [np.zeros((2, 2, 3), np.uint8) + i for i in range(10)]
    calib, held = split_holdout(frames, 0.2)
    assert len(calib) == 8 and len(held) == 2
