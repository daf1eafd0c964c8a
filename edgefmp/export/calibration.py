"""Calibration and held-out frames: read from an image folder or a video, turn into model feeds.

Static int8 quantization needs representative inputs; the user has frames of their own scene
(a folder of pictures or a clip), so that is what we read. The same code turns the frames into
feeds through the manifest's `Preprocess`, so calibration sees exactly what the runtime feeds.
The sha256 of the feeds goes into the manifest, so a quantized model can be reproduced.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edgefmp.backends.manifest import Preprocess
from edgefmp.errors import ExportError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

Feed = dict[str, np.ndarray]


def load_frames(path: str | Path, max_frames: int = 64, what: str = "calibration set") -> list[np.ndarray]:
    """Read up to `max_frames` RGB uint8 frames from an image folder, one image, or a video.

    Frames of a video are taken evenly spaced over the clip (not the first N, which are often
    near-identical). Unreadable images in a folder are skipped with a warning; if nothing at all
    could be read the error says where and what was looked for. `what` names the set in
    messages ("calibration set", "held-out set").
    """
    import cv2

    if max_frames < 1:
        raise ExportError(f"{what}: take at least 1 frame, not {max_frames}")
    src = Path(path)
    if not src.exists():
        raise ExportError(f"{what} {src}: no such file or folder")
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ExportError(f"{what} {src}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        step = max(1, len(files) // max_frames)
        frames: list[np.ndarray] = []
        for file in files[::step][:max_frames]:
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                log.warning("%s: cannot read image %s; skipped", what, file)
                continue
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not frames:
            raise ExportError(f"{what} {src}: none of its {len(files)} images could be read")
        return frames
    if src.suffix.lower() in IMAGE_SUFFIXES:
        bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ExportError(f"{what} {src}: OpenCV cannot read the image")
        return [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)]
    return _video_frames(src, max_frames, what)


def _video_frames(src: Path, max_frames: int, what: str) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(src))
    try:
        if not cap.isOpened():
            raise ExportError(
                f"{what} {src}: OpenCV cannot open it as a video "
                f"(give an image folder or a video: {', '.join(VIDEO_SUFFIXES)})"
            )
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        stride = max(1, total // max_frames) if total > 0 else 1
        frames: list[np.ndarray] = []
        index = 0
        while len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            if index % stride == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()
    if not frames:
        raise ExportError(f"{what} {src}: the video has no readable frames")
    return frames


def preprocess_image(image: np.ndarray, spec: Preprocess) -> np.ndarray:
    """One RGB uint8 image -> a batch-of-one tensor, exactly as the runtime's OnnxBackend
    prepares it (same function), so calibration sees the runtime's inputs."""
    from edgefmp.backends.processing import preprocess

    tensor, _ = preprocess(image, spec)
    return tensor


def image_feeds(
    images: Iterable[np.ndarray],
    spec: Preprocess,
    input_name: str,
    extra: Mapping[str, np.ndarray] | None = None,
) -> list[Feed]:
    """Feeds for a vision model: each image preprocessed into `input_name`, plus fixed `extra`
    inputs (for example the token ids of a zero-shot detector's text queries)."""
    feeds = []
    for image in images:
        feed: Feed = {input_name: preprocess_image(image, spec)}
        if extra:
            feed.update({k: np.asarray(v) for k, v in extra.items()})
        feeds.append(feed)
    return feeds


def feeds_sha256(feeds: Sequence[Mapping[str, np.ndarray]]) -> str:
    """A stable hash of calibration inputs (names, dtypes, shapes and bytes, in order)."""
    digest = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(name.encode())
            digest.update(str(array.dtype).encode())
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def split_holdout(frames: Sequence[np.ndarray], holdout_fraction: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split frames into (calibration, held-out) by interleaving, so both cover the whole clip."""
    if not 0.0 <= holdout_fraction < 1.0:
        raise ExportError(f"calibration: holdout fraction must lie in [0, 1), got {holdout_fraction}")
    if holdout_fraction == 0.0 or len(frames) < 2:
        return list(frames), []
    every = max(2, round(1.0 / holdout_fraction))
    held = [f for i, f in enumerate(frames) if i % every == every - 1]
    calib = [f for i, f in enumerate(frames) if i % every != every - 1]
    return calib, held
