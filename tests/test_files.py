"""Output files: written whole or not at all, and a path that cannot be written is named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edgefmp.errors import ConfigError
from edgefmp.files import prepare_output, write_text_atomic


def test_write_text_atomic_creates_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.json"
    assert write_text_atomic(target, "first", "the test output") == target
    write_text_atomic(target, "second é", "the test output")
    assert target.read_text(encoding="utf-8") == "second é"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_unwritable_paths_are_named_with_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot write the profile to .*blocker.*choose another path"):
        prepare_output(blocker / "p.json", "the profile")
    with pytest.raises(ConfigError, match="it is a folder"):
        write_text_atomic(tmp_path, "text", "the page")
    assert blocker.read_text() == "x"


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; results others read must not end up private."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    fresh = tmp_path / "fresh.txt"
    write_text_atomic(fresh, "x", "the test output")
    assert stat.S_IMODE(fresh.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o640)
    write_text_atomic(kept, "y", "the test output")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "y"
