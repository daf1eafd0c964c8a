"""Fixtures of the export tests: tiny frames, a tiny torch classifier exported to ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """transformers / optimum / torch.onnx emit User- and FutureWarnings about their own
    internals; they are not ours to fix, so they are not errors in these tests."""
    for item in items:
        if "tests/export" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings("ignore::UserWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore::FutureWarning"))


@pytest.fixture(scope="session")
def frames_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:02d}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    return folder


def export_classifier(path: Path, image_axes: dict[int, str]) -> Path:
    """The tiny torch classifier (images -> logits) as ONNX at `path`, `image_axes` dynamic."""
    import torch

    from edgefmp.export.torch_source import torch_export
    from tests.export.tiny_nets import build_classifier

    torch_export(
        build_classifier().eval(),
        (torch.rand(1, 3, 32, 32),),
        path,
        ["images"],
        ["logits"],
        {"images": image_axes, "logits": {0: "batch"}},
        17,
    )
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fp32 classifier (images -> logits), batch axis dynamic."""
    pytest.importorskip("torch")
    return export_classifier(tmp_path_factory.mktemp("onnx") / "cls.onnx", {0: "batch"})


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A typer group with only `edgefmp export` registered, as edgefmp.cli registers it."""
    from edgefmp.export.commands import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # a group, as in edgefmp.cli
        """edgefmp"""

    return app
