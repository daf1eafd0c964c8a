"""The link syntax is documented where the rest of the docs send readers (docs/REMOTE.md), and
every link spec written in the docs parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgefmp.netem import NetConditions
from edgefmp.netem.conditions import _KEYS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end > 0 else len(text)]


def test_remote_md_documents_every_key_of_the_link_syntax() -> None:
    section = _section((DOCS / "REMOTE.md").read_text(encoding="utf-8"), "## Network conditions")
    assert "--remote-link" in section and "EDGEFMP_TEST_NETEM" in section
    for key in _KEYS:
        assert f"| `{key}`" in section or f", `{key}`" in section, f"key {key!r} is not in REMOTE.md's table"
    examples = re.findall(r"```\n(.*?)```", section, re.DOTALL)
    specs = [line.strip() for block in examples for line in block.splitlines() if line.strip()]
    assert len(specs) >= 2
    for spec in specs:
        assert NetConditions.parse(spec).shaped, spec


def _specs_in_docs() -> list[str]:
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        found += re.findall(r"--remote-link[ =]([a-z0-9=.,%_]+)", text)
        found += re.findall(r'EDGEFMP_TEST_NETEM="([^"]+)"', text)
    return found


@pytest.mark.parametrize("spec", _specs_in_docs())
def test_link_specs_in_the_docs_parse(spec: str) -> None:
    assert NetConditions.parse(spec).shaped
