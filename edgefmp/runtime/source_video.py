"""Video files through cv2.VideoCapture: every frame, in order, none dropped.

Frame ids are ``<stem>:<index>`` where index is the 0-based position of the frame in the file
(with `loop`, it keeps counting across passes so ids stay unique within a run); stride leaves
gaps in the indices, so an id always points back to the same frame of the file.

A corrupt frame in the middle of a file makes `grab()` fail while the header still announces
more frames; the decoder can usually resync at the next key frame. Such failures are held back
and yielded as error frames once a later frame decodes, so a corrupt frame is recorded rather
than silently skipped. A file that stops early (truncated) ends with an "error" event instead of
a run of error frames, because nothing after that point can be decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from pathlib import Path

import cv2

from edgefmp.errors import SourceError
from edgefmp.frame import Frame
from edgefmp.runtime.source_base import Source, SourceEvent, SourceOptions, prepare_image

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


class VideoFileSource(Source):
    """Frames of a video file (anything FFMPEG decodes: mp4, avi, mkv, mov, webm...)."""

    kind = "video"

    def __init__(self, path: Path, options: SourceOptions) -> None:
        super().__init__(str(path), options)
        self.path = path
        self._cap = self._open()
        if not self._cap.grab():
            self._cap.release()
            raise SourceError(
                f"video {path} opened but no frame could be decoded; the file is empty, "
                "truncated or in a codec this OpenCV build lacks (check `edgefmp doctor`)"
            )
        self._pending_grab = True  # the probe above already grabbed frame 0
        cap_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = cap_fps if cap_fps > 0 else (options.fps or DEFAULT_FPS)
        self.frame_count = max(int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)

    def describe(self) -> str:
        count = self.frame_count or "unknown"
        return f"video {self.path} ({count} frames at {self.fps:.3g} fps)"

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(
                f"cannot open video {self.path}: OpenCV could not read it (not a video, corrupt "
                "header or missing codec); convert it with ffmpeg or pass an image folder"
            )
        return cap

    def _grab(self) -> bool:
        if self._pending_grab:
            self._pending_grab = False
            return True
        return bool(self._cap.grab())

    def _release(self) -> None:
        self._cap.release()

    def _items(self) -> Iterator[Frame | SourceEvent]:
        position = 0  # index across passes: the frame id
        ts_offset = 0.0
        pass_no = 0
        while not self.stopped:
            read, last_ts = yield from self._one_pass(position, ts_offset, pass_no)
            position += read
            if not self.options.loop or self.stopped or read == 0:
                return
            pass_no += 1
            ts_offset = last_ts + 1.0 / self.fps
            self._cap.release()
            try:
                self._cap = self._open()
            except SourceError as exc:
                self.stats.errors += 1
                yield self.event("error", f"cannot reopen {self.path} to loop: {exc}")
                return

    def _one_pass(
        self, start: int, ts_offset: float, pass_no: int
    ) -> Generator[Frame | SourceEvent, None, tuple[int, float]]:
        """Read the file once; return (frames consumed, timestamp of the last one)."""
        local = 0
        last_ts = ts_offset
        failed: list[int] = []  # local indices whose grab failed, not yet known to be mid-file
        stride = self.options.stride
        while not self.stopped:
            if not self._grab():
                if self.frame_count and local < self.frame_count:
                    failed.append(local)
                    local += 1
                    if len(failed) < self.options.max_read_failures:
                        continue
                break
            # A frame decoded again: the failures before it were corrupt frames mid-file.
            for bad in failed:
                self.stats.errors += 1
                if bad % stride == 0:
                    yield self._error_frame(start + bad, bad, ts_offset + bad / self.fps, pass_no)
            failed.clear()
            self.stats.frames_read += 1
            pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            ts = ts_offset + (pos_ms / 1000.0 if pos_ms > 0 or local == 0 else local / self.fps)
            last_ts = ts
            if local % stride == 0:
                yield self._frame(start + local, local, ts, pass_no)
            local += 1
        if failed:
            self.stats.errors += 1
            announced = self.frame_count
            yield self.event(
                "error",
                f"video {self.path} stops at frame {failed[0]} of the {announced} its header "
                f"announces ({announced - failed[0]} unreadable); the file is probably truncated",
                first_unreadable=failed[0],
                announced=announced,
            )
            local = failed[0]
        return local, last_ts

    def _frame(self, position: int, local: int, ts: float, pass_no: int) -> Frame:
        frame_id = f"{self.path.stem}:{position}"
        ts = round(ts, 6)  # media time to the microsecond: 0.3, not 0.30000000000000004
        meta = {"source": self.spec, "index": local, "pass": pass_no}
        ok, bgr = self._cap.retrieve()
        if not ok or bgr is None:
            self.stats.errors += 1
            return Frame(
                frame_id, ts, None, meta, error=f"cannot decode frame {local} of {self.path}: retrieve() failed"
            )
        return Frame(frame_id, ts, prepare_image(bgr, self.options.resize), meta)

    def _error_frame(self, position: int, local: int, ts: float, pass_no: int) -> Frame:
        logger.warning("video %s: frame %d is unreadable (corrupt data)", self.path, local)
        return Frame(
            f"{self.path.stem}:{position}",
            round(ts, 6),
            None,
            {"source": self.spec, "index": local, "pass": pass_no},
            error=f"cannot read frame {local} of {self.path}: the decoder returned no frame "
            "(corrupt data); later frames are still read",
        )
