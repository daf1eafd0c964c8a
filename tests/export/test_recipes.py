from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.errors import ConfigError
from edgefmp.export.commands import build_job
from edgefmp.export.recipes import load_recipe

EXPORT = Path(__file__).resolve().parents[2] / "export"


def test_recipe_expands_to_a_job(tmp_path: Path) -> None:
    job = build_job(model=None, recipe=EXPORT / "owlvit.yaml", out=tmp_path, sizes="b32,b16")
    assert [s.tag for s in job.sizes] == ["b32", "b16"]
    assert job.precisions == ["fp32", "fp16", "int8"] and job.batches == [None]
    assert job.sizes[0].model == "hf:google/owlvit-base-patch32"
    assert job.sizes[0].options.task == "zero-shot-object-detection"
    flags = build_job(model=None, recipe=EXPORT / "owlvit.yaml", out=tmp_path, precision="fp16", batch="1")
    assert flags.precisions == ["fp16"] and flags.batches == [1] and len(flags.sizes) == 3


def test_recipe_errors_name_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfamily: vit\nfunction: classify\ntask: image-classification\nsizes: [{tag: s}]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: field sizes.0.model"):
        load_recipe(bad)
    bad.write_text(
        "name: x\nfamily: vit\nfunction: classify\ntask: t\nprecisions: [fp9]\nsizes: [{tag: s, model: 'hf:x'}]\n"
    )
    with pytest.raises(ConfigError, match="bad.yaml.*fp9"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="--sizes"):
        build_job(model=None, recipe=EXPORT / "owlvit.yaml", out=tmp_path, sizes="xxl")
