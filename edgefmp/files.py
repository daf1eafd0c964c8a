"""Writing output files so that a crash or a bad path never loses what was there or what
was measured.

Every output goes to a temporary file in the target's folder, is flushed and fsync'ed, then
`os.replace`d over the target, and the folder is fsync'ed: a process killed at any point
(SIGKILL included) leaves the previous file or the new one, never a torn one. Commands that
measure for minutes call `check_output_file` / `check_output_dir` on their outputs first, so
that a path they cannot write is reported before the work, not after it: these create the
folder and also create and remove a file in it, since only that proves a file can be written
there (a folder can exist and still refuse new files: `/proc`, a read-only mount).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from edgefmp.errors import ConfigError


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc/self/status);
    elsewhere set and restored at once."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_text_file(path: Path, what: str, expected: str) -> str:
    """The UTF-8 text of an input file; a ConfigError naming the file, `what` it should be and
    the `expected` format when it cannot be read or is not text (a video given for a labels
    file, say)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}; expected {expected}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a {what}: it is not UTF-8 text (undecodable byte at offset {exc.start}); expected {expected}"
        ) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix.

    The file gets the mode a plain `open(path, "w")` would give it (the existing file's, else
    0666 less the umask), not mkstemp's private 0600."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def prepare_output(path: str | os.PathLike[str], what: str) -> Path:
    """Create the folder of output `path`; a ConfigError naming `what` and the path if that
    is impossible (a file in the way, no permission) or if `path` is a folder."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {what} to {target}: its folder {target.parent} cannot be created "
            f"({exc.strerror or exc}); choose another path"
        ) from exc
    if target.is_dir():
        raise ConfigError(f"cannot write {what} to {target}: it is a folder; give a file name")
    return target


def _probe(folder: Path, what: str, target: Path) -> None:
    """Create and remove a file in `folder`, or a ConfigError naming `what` and `target`."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".edgefmp-probe.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {what} to {target}: no file can be created in {folder} ({exc.strerror or exc}); "
            "choose another path"
        ) from exc
    os.close(fd)
    os.unlink(tmp)


def check_output_dir(folder: str | os.PathLike[str], what: str) -> Path:
    """Create the output folder `folder` if needed and check a file can be written in it."""
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"cannot write {what} to {target}: it is a file, and {what} go in a folder; give a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} to {target}: {exc.strerror or exc}; choose another folder") from exc
    _probe(target, what, target)
    return target


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """Create the folder of output file `path` if needed (`prepare_output`) and check a file
    can be written in it."""
    target = prepare_output(path, what)
    _probe(target.parent if str(target.parent) else Path("."), what, target)
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str, what: str) -> Path:
    """`text` (UTF-8) to `path` atomically, its folder created; errors as ConfigError."""
    target = prepare_output(path, what)
    try:
        atomic_write_bytes(target, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write {what} to {target}: {exc.strerror or exc}; choose another path") from exc
    return target


__all__ = [
    "atomic_write_bytes",
    "check_output_dir",
    "check_output_file",
    "prepare_output",
    "read_text_file",
    "write_text_atomic",
]
