"""Export recipes: YAML files in export/ that list a model family's sizes and precisions.

A recipe is what `edgefmp export --recipe export/owlvit.yaml` expands into an ExportJob:
every size it lists times every precision (and batch mode). `family` names the transformers
architecture, which the tests use to build a tiny random model of the same family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefmp.errors import ConfigError
from edgefmp.export.sources import SourceOptions
from edgefmp.export.variants import parse_batches, parse_precisions


class RecipeSize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag: str
    model: str = Field(description="source spec: hf:ID_OR_DIR, torch:MODULE:FACTORY or onnx:FILE")
    image_size: tuple[int, int] | None = None
    notes: str = ""


class Recipe(BaseModel):
    """One model family. Fields other than `sizes` apply to every size."""

    model_config = ConfigDict(extra="forbid")

    name: str
    family: str = Field(description="transformers model_type (or 'custom'), for tests and docs")
    function: str
    task: str
    sizes: list[RecipeSize]
    precisions: list[str] = Field(default_factory=lambda: ["fp32", "fp16", "int8"])
    batch: list[str | int] = Field(default_factory=lambda: ["dynamic"])  # type: ignore[arg-type]
    labels: list[str] = Field(default_factory=list)
    text_queries: list[str] = Field(default_factory=list)
    preprocess: dict[str, Any] | None = None
    postprocess: dict[str, Any] | None = None
    calib_method: str = "minmax"
    opset: int | None = None
    notes: str = ""

    def options(self, size: RecipeSize) -> SourceOptions:
        return SourceOptions(
            task=self.task,
            function=self.function,
            labels=list(self.labels),
            text_queries=list(self.text_queries),
            image_size=size.image_size,
            opset=self.opset,
            preprocess=self.preprocess,
            postprocess=self.postprocess,
            name=f"{self.name}-{size.tag}",
        )


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe; errors name the file and the field."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"recipe {file}: no such file")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {file}: not valid YAML: {exc}") from exc
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConfigError(f"recipe {file}: field {field}: {first['msg']}") from exc
    try:
        parse_precisions(recipe.precisions)
        parse_batches([str(b) for b in recipe.batch])
    except ConfigError as exc:
        raise ConfigError(f"recipe {file}: {exc}") from exc
    if not recipe.sizes:
        raise ConfigError(f"recipe {file}: field sizes: list at least one size")
    return recipe


def list_recipes(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob("*.yaml"))
