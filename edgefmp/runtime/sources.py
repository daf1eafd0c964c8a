"""Frame sources: `open_source(spec)` turns what the user typed into a stream of frames.

Accepted specs, checked in this order:

- an integer string ("0", "1"): a local camera by index (a file named "0" needs "./0");
- ``rtsp://``, ``rtsps://``, ``http://``, ``https://`` URLs: a network stream (RTSP, HTTP MJPEG);
- a folder: its images in natural order;
- an image file (.jpg, .png, ...): a one-frame stream;
- any other file: a video file.

Every source yields `Frame | SourceEvent`, has `stats`, `stop()` and `close()`, and is a context
manager. Example::

    with open_source("clip.mp4", stride=2, max_frames=100) as source:
        for item in source:
            if isinstance(item, Frame):
                ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgefmp.errors import SourceError
from edgefmp.runtime.source_base import (
    EVENT_KINDS,
    Source,
    SourceEvent,
    SourceOptions,
    SourceStats,
    prepare_image,
)
from edgefmp.runtime.source_images import IMAGE_EXTENSIONS, ImageFolderSource, natural_key
from edgefmp.runtime.source_live import (
    FreshestQueue,
    LiveSource,
    camera_opener,
    redact_url,
    stream_opener,
)
from edgefmp.runtime.source_video import VideoFileSource

STREAM_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "http", "https")
ACCEPTED_FORMS = (
    "a camera index such as '0', an rtsp:// or http(s):// stream URL, a video file, an image file or a folder of images"
)


def open_source(spec: str | int | os.PathLike[str], **opts: Any) -> Source:
    """Open the stream named by `spec` (see the module docstring) with `SourceOptions` opts.

    Raises SourceError naming the spec and the accepted forms when it cannot be opened.
    """
    text = str(spec).strip()
    options = SourceOptions.from_kwargs(text, opts)
    if not text:
        raise SourceError(f"empty source spec; expected {ACCEPTED_FORMS}")
    if text.isdigit():
        index = int(text)
        return LiveSource(text, options, camera_opener(index, options), kind="camera")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in STREAM_SCHEMES:
            raise SourceError(
                f"unsupported stream URL {redact_url(text)!r}: scheme {scheme!r} is not one of "
                f"{', '.join(STREAM_SCHEMES)}; expected {ACCEPTED_FORMS}"
            )
        return LiveSource(text, options, stream_opener(text, options), kind="stream")
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, options)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageFolderSource.single(path, options)
        return VideoFileSource(path, options)
    raise SourceError(
        f"source {text!r} is not a camera index, a URL, or an existing file or folder; expected {ACCEPTED_FORMS}"
    )


__all__ = [
    "EVENT_KINDS",
    "IMAGE_EXTENSIONS",
    "FreshestQueue",
    "ImageFolderSource",
    "LiveSource",
    "Source",
    "SourceEvent",
    "SourceOptions",
    "SourceStats",
    "VideoFileSource",
    "natural_key",
    "open_source",
    "prepare_image",
]
