"""Export recipes: YAML files in export/ that list a model family's sizes and precisions.

A recipe is what `edgefmp export --recipe export/owlvit.yaml` expands into an ExportJob:
every size it lists times every precision (and batch mode). `family` names the transformers
architecture, which the tests use to build a tiny random model of the same family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from edgefmp.errors import ConfigError
from edgefmp.export.quantize import CALIB_METHODS
from edgefmp.export.sources import FUNCTIONS, SourceOptions
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

    @field_validator("function", "calib_method")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        allowed = FUNCTIONS if info.field_name == "function" else CALIB_METHODS
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

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
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            owner = RecipeSize if field.startswith("sizes.") else Recipe
            message = f"unknown field; the fields are {', '.join(owner.model_fields)}"
        raise ConfigError(f"recipe {file}: field {field}: {message}") from exc
    parse_precisions(recipe.precisions, f"recipe {file}: field precisions")
    parse_batches([str(b) for b in recipe.batch], f"recipe {file}: field batch")
    if not recipe.sizes:
        raise ConfigError(f"recipe {file}: field sizes: list at least one size")
    if any(size.model.startswith("hf:") for size in recipe.sizes):
        from edgefmp.export.hf import supported_tasks

        if recipe.task not in supported_tasks():
            raise ConfigError(
                f"recipe {file}: field task: {recipe.task!r} is not a task hf: models are exported for; "
                f"supported: {', '.join(supported_tasks())}"
            )
    return recipe


def list_recipes(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob("*.yaml"))
