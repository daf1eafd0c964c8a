"""The model manifest: everything the runtime needs to run an exported model, versioned.

A manifest travels with its model in two places, written by `edgefmp export`:
- inside the ONNX file, as the metadata_props entry `edgefmp.manifest` (JSON text), so a single
  file is enough;
- as a sidecar `<model file>.manifest.json` (or `manifest.json` in the model's folder), for
  engines that have no metadata (TensorRT plans) and for people and other tools.
When both exist the sidecar wins, so a user can fix labels or thresholds without re-exporting.
The format is documented in docs/MANIFEST.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefmp.errors import ConfigError

MANIFEST_FORMAT: Final = "edgefmp.manifest"
MANIFEST_VERSION = 1
ONNX_METADATA_KEY = "edgefmp.manifest"


class TensorSpec(BaseModel):
    """A model input or output. A dimension is an int, or a string for a dynamic axis."""

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int | str]
    dtype: Literal["float32", "float16", "int8", "uint8", "int32", "int64", "bool"] = "float32"


class Preprocess(BaseModel):
    """How an RGB uint8 image becomes the model's input tensor.

    The image is resized to `size` (height, width) by stretching or letterboxing (keeping the
    aspect ratio, padding with `pad_value`), converted to `color` order, cast, multiplied by
    `scale`, then normalised per channel: (x - mean) / std, and laid out as `layout`.
    """

    model_config = ConfigDict(extra="forbid")

    size: tuple[int, int] = Field(description="(height, width) the model expects")
    resize: Literal["stretch", "letterbox"] = "stretch"
    pad_value: int = Field(default=114, ge=0, le=255)
    color: Literal["RGB", "BGR"] = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: Literal["float32", "float16", "uint8"] = "float32"


class Postprocess(BaseModel):
    """How raw outputs become a result.

    kind:
    - `yolo`: one output (N, 4 + C) or (4 + C, N) per image, boxes cx,cy,w,h in input pixels,
      then class scores; decoded, thresholded, NMS through OpenCV.
    - `detr`: outputs `logits` (Q, C [+1 no-object]) and `pred_boxes` (Q, 4) normalised cx,cy,w,h.
    - `classify`: one output of class logits (or probabilities, `activation: none`); the result
      names the best label among the requested options.
    - `attributes`: one output of independent logits per label grouped by `groups`
      (for example colour and shape): answers verify (`property` in a group), classify, and
      template VQA questions that name a group ("what color ...?").
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["yolo", "detr", "classify", "attributes", "none"]
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.5, ge=0, le=1)
    max_detections: int = Field(default=100, ge=1)
    detr_no_object: bool = Field(default=True, description="DETR logits end with a no-object class")
    groups: dict[str, list[str]] = Field(default_factory=dict, description="label groups for `attributes`")
    verify_threshold: float = Field(default=0.5, ge=0, le=1)


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["minmax", "entropy", "percentile"]
    samples: int
    sha256: str = Field(description="hash of the calibration inputs, so results can be reproduced")


class Manifest(BaseModel):
    """Version 1 of the manifest (see docs/MANIFEST.md)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["edgefmp.manifest"] = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION
    name: str
    function: Literal["detect", "verify", "vqa", "classify", "ocr", "llm"]
    task: str = Field(description="source task, e.g. object-detection, image-classification")
    labels: list[str] = Field(default_factory=list)
    preprocess: Preprocess | None = None
    postprocess: Postprocess = Field(default_factory=lambda: Postprocess(kind="none"))
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    size: str = Field(default="", description="size tag within a family: n, s, m, l, ...")
    params: int | None = None
    flops: int | None = Field(default=None, description="estimated FLOPs of one forward pass")
    precision: Literal["fp32", "fp16", "int8", "int8-dynamic", "int8-static", "mixed"] = "fp32"
    source: str = ""
    sha256: str = ""
    tool_versions: dict[str, str] = Field(default_factory=dict)
    calibration: Calibration | None = None
    verification: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.version != MANIFEST_VERSION:
            raise ValueError(
                f"manifest version {self.version} is not supported (this edgefmp reads {MANIFEST_VERSION})"
            )
        if self.postprocess.kind in ("yolo", "detr", "classify", "attributes") and not self.labels:
            raise ValueError(f"postprocess kind {self.postprocess.kind!r} needs `labels`")
        for group, members in self.postprocess.groups.items():
            missing = [m for m in members if m not in self.labels]
            if missing:
                raise ValueError(f"postprocess.groups.{group}: {missing} are not in labels")
        return self

    def to_json_text(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)


def parse_manifest(data: Any, source: str) -> Manifest:
    """Validate manifest data; errors name `source` and the field."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: manifest is not valid JSON: {exc}") from exc
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConfigError(f"{source}: manifest field {field}: {first['msg']}") from exc


def sidecar_paths(model_path: Path) -> list[Path]:
    """Where a sidecar manifest for `model_path` may be, in the order they are tried."""
    return [model_path.with_name(model_path.name + ".manifest.json"), model_path.parent / "manifest.json"]


def write_sidecar(manifest: Manifest, model_path: Path) -> Path:
    """Write `<model>.manifest.json` atomically (a crash never leaves half a file)."""
    target = sidecar_paths(model_path)[0]
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(manifest.to_json_text(), encoding="utf-8")
    tmp.replace(target)
    return target


def read_sidecar(model_path: Path) -> Manifest | None:
    for candidate in sidecar_paths(model_path):
        if candidate.is_file():
            return parse_manifest(candidate.read_text(encoding="utf-8"), str(candidate))
    return None
