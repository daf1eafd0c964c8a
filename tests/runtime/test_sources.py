"""File sources: video files and image folders, including corrupt input, and spec dispatch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefmp.errors import SourceError
from edgefmp.frame import Frame
from edgefmp.runtime.sources import (
    ImageFolderSource,
    SourceEvent,
    VideoFileSource,
    natural_key,
    open_source,
)


def split(items: list[Frame | SourceEvent]) -> tuple[list[Frame], list[SourceEvent]]:
    frames = [i for i in items if isinstance(i, Frame)]
    events = [i for i in items if isinstance(i, SourceEvent)]
    return frames, events


def read_all(spec: str | Path, **opts: object) -> tuple[list[Frame], list[SourceEvent]]:
    with open_source(str(spec), **opts) as source:
        return split(list(source))


# --- video files ---------------------------------------------------------------------------


def test_video_yields_every_frame_in_order_as_rgb(make_video: Callable[..., Path]) -> None:
    path = make_video("clip.mp4", frames=30, fps=10.0)
    source = open_source(str(path))
    assert isinstance(source, VideoFileSource)
    frames, events = split(list(source))

    assert [f.frame_id for f in frames] == [f"clip:{i}" for i in range(30)]
    assert all(f.image is not None and f.error is None for f in frames)
    assert frames[0].image is not None
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    brightness = [float(np.median(f.image)) for f in frames if f.image is not None]
    assert brightness == sorted(brightness) and brightness[-1] - brightness[0] > 150
    assert [round(f.ts, 3) for f in frames] == [round(i / 10.0, 3) for i in range(30)]
    assert [e.kind for e in events] == ["opened", "end"]
    assert events[-1].counters["frames_read"] == 30
    assert source.stats.frames_read == 30 and source.stats.errors == 0
    assert source.stats.dropped == 0


def test_video_timestamps_are_rounded_to_the_microsecond(make_video: Callable[..., Path]) -> None:
    """Not 0.30000000000000004: the trace's `ts` is media time a person reads."""
    frames, _ = read_all(make_video("clip.mp4", frames=15, fps=10.0))
    assert [repr(f.ts) for f in frames] == [repr(i / 10) for i in range(15)]


def test_video_frames_are_converted_from_bgr_to_rgb(make_video: Callable[..., Path]) -> None:
    red_bgr = np.zeros((64, 64, 3), np.uint8)
    red_bgr[..., 2] = 255
    path = make_video("red.avi", frames=3, fourcc="MJPG", image=lambda i: red_bgr)
    frames, _ = read_all(path)
    assert len(frames) == 3
    image = frames[0].image
    assert image is not None
    r, g, b = (float(image[..., c].mean()) for c in range(3))
    assert r > 200 and g < 50 and b < 50


def test_corrupt_frames_mid_video_are_recorded_and_reading_goes_on(
    make_video: Callable[..., Path],
) -> None:
    path = make_video("corrupt.mp4", frames=30)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 1500] = np.random.default_rng(0).integers(0, 256, 1500, np.uint8).tobytes()
    path.write_bytes(bytes(data))

    frames, events = read_all(path)

    ids = [f.frame_id for f in frames]
    assert ids == [f"corrupt:{i}" for i in range(30)]  # one frame per index, failed or not
    bad = [f for f in frames if f.image is None]
    assert bad, "the corrupted bytes should make at least one frame unreadable"
    assert all(f.error and str(path) in f.error for f in bad)
    last_bad = int(bad[-1].frame_id.split(":")[1])
    assert any(f.image is not None for f in frames[last_bad + 1 :]), "reading went on"
    assert [e.kind for e in events] == ["opened", "end"]


def test_truncated_video_keeps_its_frames_and_ends_with_an_error_event(
    make_video: Callable[..., Path],
) -> None:
    path = make_video("cut.avi", frames=30, fourcc="MJPG")  # AVI: the index survives a cut
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])

    frames, events = read_all(path)

    assert 5 < len(frames) < 30
    assert [f.frame_id for f in frames] == [f"cut:{i}" for i in range(len(frames))]
    kinds = [e.kind for e in events]
    assert kinds == ["opened", "error", "end"]
    assert "truncated" in events[1].message and str(path) in events[1].message


def test_garbage_appended_to_a_video_changes_nothing(make_video: Callable[..., Path]) -> None:
    path = make_video("tail.mp4", frames=30)
    with path.open("ab") as f:
        f.write(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    frames, events = read_all(path)
    assert len(frames) == 30 and all(f.image is not None for f in frames)
    assert [e.kind for e in events] == ["opened", "end"]


def test_unreadable_video_raises_source_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 3000, np.uint8).tobytes())
    with pytest.raises(SourceError, match="junk.mp4"):
        open_source(str(path))


def test_stride_max_frames_and_resize(make_video: Callable[..., Path]) -> None:
    path = make_video("clip.mp4", frames=30)
    frames, _ = read_all(path, stride=3)
    assert [f.frame_id for f in frames] == [f"clip:{i}" for i in range(0, 30, 3)]

    frames, events = read_all(path, max_frames=4, resize=80)
    assert [f.frame_id for f in frames] == [f"clip:{i}" for i in range(4)]
    assert frames[0].image is not None and frames[0].image.shape == (60, 80, 3)
    assert events[-1].kind == "end" and "max_frames=4" in events[-1].message


def test_loop_restarts_the_file_with_unique_ids_and_rising_timestamps(
    make_video: Callable[..., Path],
) -> None:
    path = make_video("clip.mp4", frames=10)
    frames, _ = read_all(path, loop=True, max_frames=25)
    ids = [f.frame_id for f in frames]
    assert len(ids) == 25 and len(set(ids)) == 25
    assert ids[10] == "clip:10" and frames[10].meta["pass"] == 1
    ts = [f.ts for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))


def test_source_is_single_pass(make_video: Callable[..., Path]) -> None:
    source = open_source(str(make_video(frames=2)))
    list(source)
    with pytest.raises(SourceError, match="only once"):
        iter(source)


def test_stop_ends_the_stream_with_an_end_event(make_video: Callable[..., Path]) -> None:
    source = open_source(str(make_video(frames=30)))
    seen: list[Frame | SourceEvent] = []
    for item in source:
        seen.append(item)
        if isinstance(item, Frame) and item.frame_id == "clip:4":
            source.stop()
    frames, events = split(seen)
    assert len(frames) == 5
    assert events[-1].kind == "end" and "stopped" in events[-1].message


# --- image folders -------------------------------------------------------------------------


def write_png(path: Path, value: int) -> None:
    assert cv2.imwrite(str(path), np.full((20, 30, 3), value, np.uint8))


def test_image_folder_natural_order_and_corrupt_file(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        write_png(tmp_path / f"img{i}.png", 10 * i)
    good = (tmp_path / "img2.png").read_bytes()
    (tmp_path / "img3.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "crops").mkdir()
    write_png(tmp_path / "crops" / "img0.png", 0)

    source = open_source(str(tmp_path))
    assert isinstance(source, ImageFolderSource)
    frames, events = split(list(source))

    assert [f.frame_id for f in frames] == ["img1.png", "img2.png", "img3.png", "img10.png"]
    bad = frames[2]
    assert bad.image is None and bad.error is not None
    assert bad.error.startswith(f"cannot decode {tmp_path / 'img3.png'}: ")
    assert frames[3].image is not None and int(frames[3].image[0, 0, 0]) == 100
    assert [f.ts for f in frames] == [0.0, 1.0, 2.0, 3.0]
    assert source.stats.errors == 1 and source.stats.frames_read == 3
    assert [e.kind for e in events] == ["opened", "end"]


def test_empty_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("no images here")
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path))


def test_single_image_and_corrupt_single_image(tmp_path: Path) -> None:
    write_png(tmp_path / "one.png", 50)
    frames, _ = read_all(tmp_path / "one.png")
    assert [f.frame_id for f in frames] == ["one.png"]
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(SourceError, match="bad.jpg"):
        open_source(str(tmp_path / "bad.jpg"))


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["f10.png", "F2.png", "f1.png", "f1a.png", "g.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "f1a.png", "F2.png", "f10.png", "g.png"]


# --- dispatch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "opts", "fragment"),
    [
        ("does/not/exist.mp4", {}, "'does/not/exist.mp4' is not a camera index"),
        ("ftp://host/cam", {}, "scheme 'ftp'"),
        ("", {}, "empty source spec"),
        (".", {"strid": 2}, "unknown source option(s) strid"),
        (".", {"stride": 0}, "stride=0 is invalid"),
    ],
)
def test_bad_specs_raise_source_error_with_the_accepted_forms(
    spec: str, opts: dict[str, object], fragment: str
) -> None:
    with pytest.raises(SourceError) as info:
        open_source(spec, **opts)
    message = str(info.value)
    assert fragment in message
    if not opts:
        assert "camera index" in message and "folder of images" in message


def test_missing_camera_index_raises_source_error() -> None:
    with pytest.raises(SourceError, match="cannot open camera 63"):
        open_source("63", open_timeout_s=1.0)
