"""Output locations of `edgefmp bench` and `edgefmp profile`, checked before any work.

A sweep measures for many minutes and a profile for one; a results folder that is a file, or
a folder where nothing can be created (`/proc`, a read-only mount), must fail before that, not
when the results are written. `edgefmp.files.prepare_output` creates the folder of an output;
here a file is also created in it and removed, since only that proves a file can be written
there (a folder can exist and still refuse new files).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgefmp.errors import ConfigError
from edgefmp.files import prepare_output


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


__all__ = ["check_output_dir", "check_output_file"]
