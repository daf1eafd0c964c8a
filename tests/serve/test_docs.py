"""The remote tier's documents work as written: DEPLOY.md's device catalog answers through a
real `edgefmp serve models/catalog.yaml` (on 127.0.0.1, port swapped in), and every catalog
snippet of DEPLOY.md and REMOTE.md is a valid catalog or remote entry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgefmp.backends.catalog import Catalog, load_catalog, parse_catalog
from edgefmp.backends.remote import RemoteBackend
from edgefmp.results import Detections, DetectRequest, Verdict, VerifyRequest
from tests.serve.conftest import red_circle

pytest.importorskip("fastapi")
from edgefmp.serve.app import create_app  # noqa: E402
from edgefmp.serve.runner import ServerThread  # noqa: E402
from edgefmp.serve.settings import ServeSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOCS = {name: REPO / "docs" / name for name in ("DEPLOY.md", "REMOTE.md")}
ZOO = REPO / "models" / "catalog.yaml"
TOKEN = "docs-check-token-5e1d"
DOC_PORT = "127.0.0.1:8000"


def blocks(doc: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)


def as_catalog(snippet: Any) -> dict[str, Any] | None:
    """A catalog mapping from a snippet: a whole catalog, a list of backend entries, or the
    `options:` of one remote entry."""
    if isinstance(snippet, dict) and "functions" in snippet:
        return snippet
    if isinstance(snippet, list):
        return {"functions": {"vqa": snippet}}
    if isinstance(snippet, dict) and "options" in snippet:
        return {"functions": {"vqa": [{"name": "doc", "kind": "remote", **snippet}]}}
    return None


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_catalog_snippet_is_valid(doc: str) -> None:
    checked = 0
    for text in blocks(DOCS[doc], "yaml"):
        catalog = as_catalog(yaml.safe_load(text))
        assert catalog is not None, f"{doc}: a yaml block that is no catalog snippet:\n{text}"
        parse_catalog(catalog, doc, REPO / "docs")
        checked += 1
    assert checked >= 2


def test_the_deploy_serve_command_serves_the_zoo_catalog() -> None:
    (command,) = [b for b in blocks(DOCS["DEPLOY.md"], "bash") if "edgefmp serve" in b]
    assert "edgefmp serve models/catalog.yaml" in command and "--token-env EDGEFMP_SERVE_TOKEN" in command


@pytest.fixture(scope="module")
def zoo_server() -> Iterator[str]:
    if not ZOO.is_file():
        pytest.skip("needs the zoo's models/catalog.yaml (a checkout)")
    pytest.importorskip("onnxruntime")
    with (
        Catalog.open(load_catalog(ZOO)) as zoo,
        ServerThread(create_app(zoo, ServeSettings(token=TOKEN))) as server,
    ):
        yield server.url


def test_the_deploy_device_catalog_answers_through_the_zoo_server(
    zoo_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (device,) = [b for b in blocks(DOCS["DEPLOY.md"], "yaml") if "name: device" in b]
    assert DOC_PORT in device
    path = tmp_path / "device.yaml"
    path.write_text(device.replace(f"http://{DOC_PORT}", zoo_server), encoding="utf-8")
    monkeypatch.setenv("EDGEFMP_SERVE_TOKEN", TOKEN)
    image = red_circle()
    with Catalog.open(load_catalog(path)) as catalog:
        remotes = [b for fn in catalog.functions for b in catalog.backends(fn) if isinstance(b, RemoteBackend)]
        assert {(b.function, b.options.protocol) for b in remotes} == {("detect", "kserve"), ("verify", "openai")}
        detect, verify = sorted(remotes, key=lambda b: b.function)
        found = detect.infer(DetectRequest(image, ("circle",)))
        assert isinstance(found, Detections) and len(found) == 1
        x1, y1, x2, y2 = (int(round(float(v))) for v in found.boxes[0])
        verdict = verify.infer(VerifyRequest(image[y1:y2, x1:x2].copy(), "circle", "red"))  # as a program does
        assert isinstance(verdict, Verdict) and verdict.value is True
