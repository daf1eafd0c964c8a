"""Image folders (and single images) as a stream, in natural order.

Natural order ("img2" before "img10") matters because datasets and frame dumps are numbered
without zero padding, and a stream must keep its temporal order. Frame ids are the file name
relative to the folder (e.g. ``img_0007.jpg``), so labels keyed by file name match them; with
`loop`, later passes append ``@<pass>`` to stay unique. Timestamps are ``position / fps`` with
the `fps` option (default 1 image per second), since images carry no time of their own.

Only the folder's own files are read (not sub-folders), so a folder of crops next to the frames
does not leak into the stream.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from edgefmp.errors import SourceError
from edgefmp.frame import Frame
from edgefmp.runtime.source_base import Source, SourceEvent, SourceOptions, prepare_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pnm",
)
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers by value: 'f2.png' < 'f10.png'."""
    parts = _DIGITS.split(name.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def list_images(folder: Path) -> list[Path]:
    """The folder's image files in natural order (hidden files skipped)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def decode_image(path: Path) -> np.ndarray:
    """Read `path` as 8-bit BGR; raise ValueError saying why it cannot be used.

    Reads the bytes with numpy and decodes them with imdecode, so paths with non-ASCII
    characters work on every platform (cv2.imread does not on Windows).
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot read file ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise ValueError("the file is empty")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image (corrupt, truncated or unsupported format)")
    return bgr


class ImageFolderSource(Source):
    """Images of a folder (or a given list of files) yielded as frames, one per file."""

    kind = "image folder"

    def __init__(
        self,
        folder: Path,
        options: SourceOptions,
        files: Sequence[Path] | None = None,
        *,
        spec: str | None = None,
    ) -> None:
        super().__init__(spec or str(folder), options)
        self.folder = folder
        self.files = list(files) if files is not None else list_images(folder)
        if not self.files:
            raise SourceError(
                f"image folder {folder} holds no images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )

    @classmethod
    def single(cls, path: Path, options: SourceOptions) -> ImageFolderSource:
        """A one-frame stream of a single image file; an undecodable file is a SourceError."""
        try:
            decode_image(path)
        except ValueError as exc:
            raise SourceError(
                f"cannot open image {path}: {exc}; expected one of {', '.join(IMAGE_EXTENSIONS)}"
            ) from exc
        source = cls(path.parent, options, files=[path], spec=str(path))
        source.kind = "image"
        return source

    def describe(self) -> str:
        return f"{self.kind} {self.spec} ({len(self.files)} images)"

    def _items(self) -> Iterator[Frame | SourceEvent]:
        fps = self.options.fps or 1.0
        position = 0
        pass_no = 0
        while not self.stopped:
            for local, path in enumerate(self.files):
                if self.stopped:
                    return
                if local % self.options.stride == 0:
                    yield self._frame(path, local, round(position / fps, 6), pass_no)
                position += 1
            if not self.options.loop:
                return
            pass_no += 1

    def _frame(self, path: Path, local: int, ts: float, pass_no: int) -> Frame:
        inside = path.is_relative_to(self.folder)
        name = path.relative_to(self.folder).as_posix() if inside else path.name
        frame_id = name if pass_no == 0 else f"{name}@{pass_no}"
        meta = {"source": self.spec, "path": str(path), "index": local, "pass": pass_no}
        try:
            bgr = decode_image(path)
        except ValueError as exc:
            self.stats.errors += 1
            logger.warning("image %s skipped: %s", path, exc)
            return Frame(frame_id, ts, None, meta, error=f"cannot decode {path}: {exc}")
        self.stats.frames_read += 1
        return Frame(frame_id, ts, prepare_image(bgr, self.options.resize), meta)
