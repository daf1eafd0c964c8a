"""The zoo registry and the `edgefmp zoo` commands (without building anything)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefmp.errors import ConfigError
from edgefmp.zoo.commands import register
from edgefmp.zoo.specs import ZOO, select, zoo_model


def test_registry_names_sizes_and_errors() -> None:
    names = [m.name for m in ZOO]
    assert len(set(names)) == len(names)
    for family in ("shapedet", "attrnet"):
        bases = [zoo_model(f"{family}-{s}").base for s in ("s", "m", "l", "xl")]
        assert bases[1] == 2 * bases[0] and bases[2] == 2 * bases[1] and bases[3] > bases[2]
        assert not zoo_model(f"{family}-s").robust and zoo_model(f"{family}-l").robust
    assert [m.name for m in select("attrnet-s, shapedet-l")] == ["attrnet-s", "shapedet-l"]
    with pytest.raises(ConfigError, match="available: shapedet-s"):
        zoo_model("shapedet-xxl")


def test_commands_are_registered() -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    result = CliRunner().invoke(app, ["zoo", "--help"])
    assert result.exit_code == 0
    assert "build" in result.output and "evaluate" in result.output
    bad = CliRunner().invoke(app, ["zoo", "build", "--models", "nope", "--out", "/nonexistent/x"])
    assert bad.exit_code == 2


def test_error_messages_keep_brackets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rich reads `[export]` as markup: unescaped, errors lose the text in brackets."""
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    monkeypatch.chdir(tmp_path)
    bad_model = CliRunner().invoke(app, ["zoo", "build", "--models", "nope[x]", "--out", "z"])
    assert bad_model.exit_code == 2 and "'nope[x]'" in bad_model.output, bad_model.output
    empty = CliRunner().invoke(app, ["zoo", "evaluate", "--models-dir", "z[export]"])
    assert empty.exit_code == 2 and "no zoo models under z[export]" in empty.output, empty.output
