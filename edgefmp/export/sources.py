"""Where a model comes from: `hf:`, `torch:` or `onnx:` specs, and what a source hands back.

A source turns its model into an fp32 ONNX export (one or more files) plus everything the
pipeline needs to derive and verify the other precisions: sample feeds, the source model's
own outputs on them, a manifest template and how to turn calibration frames into feeds.
Sources are found by name and imported only when used, so `hf:` pulls in transformers and
`onnx:` does not pull in torch.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np

from edgefmp.backends.manifest import Manifest
from edgefmp.errors import ConfigError
from edgefmp.export.verify import Outputs, TaskMetric, VerifyReport

Feed = dict[str, np.ndarray]

# What an export may be for: the manifest's `function` values.
FUNCTIONS: tuple[str, ...] = get_args(Manifest.model_fields["function"].annotation)

_SOURCES: dict[str, str] = {
    "onnx": "edgefmp.export.onnx_source:OnnxFileSource",
    "torch": "edgefmp.export.torch_source:TorchSource",
    "hf": "edgefmp.export.hf:HFSource",
}


@dataclass
class SourceOptions:
    """What the user said about the model besides where it is (CLI flags or recipe fields)."""

    task: str | None = None
    function: str | None = None
    labels: list[str] = field(default_factory=list)
    input_shapes: list[list[int]] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    image_size: tuple[int, int] | None = None
    text_queries: list[str] = field(default_factory=list)
    opset: int | None = None
    exporter: str = "torchscript"
    samples: int = 2
    seed: int = 0
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    preprocess: dict[str, Any] | None = None
    postprocess: dict[str, Any] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.function is not None and self.function not in FUNCTIONS:
            raise ConfigError(f"function {self.function!r} is not one of {', '.join(FUNCTIONS)}")


@dataclass
class Part:
    """One ONNX file of an export (most models have one; encoder-decoders and LLMs have more)."""

    name: str
    file: str
    feeds: list[Feed] = field(default_factory=list)
    reference: list[Outputs] | None = None
    static_int8: bool = True


@dataclass
class BaseExport:
    """An fp32 export in `folder` with what the pipeline needs to derive variants.

    `manifest` is the template for the main (first) part. `assets` are other files of the
    folder (tokenizer, processor config) copied into every variant. `calibration_feeds`
    turns RGB frames into feeds per part name; `end_to_end` runs a whole-model check of a
    variant folder (generation, multi-part models) and returns a report.
    """

    folder: Path
    parts: list[Part]
    manifest: Manifest
    assets: list[str] = field(default_factory=list)
    calibration_feeds: Callable[[Sequence[np.ndarray]], dict[str, list[Feed]]] | None = None
    end_to_end: Callable[[Path, str], VerifyReport] | None = None
    metric: TaskMetric | None = None

    @property
    def main(self) -> Part:
        return self.parts[0]


class Source(ABC):
    """A model to export. `spec` is what followed `kind:` on the command line."""

    kind: str = ""

    def __init__(self, spec: str, options: SourceOptions) -> None:
        self.spec = spec
        self.options = options

    @property
    def uri(self) -> str:
        return f"{self.kind}:{self.spec}"

    @abstractmethod
    def export_fp32(self, out: Path, batch: int | None) -> BaseExport:
        """Export in fp32 into `out`; `batch` None keeps the batch axis dynamic."""


def list_source_kinds() -> list[str]:
    return sorted(_SOURCES)


def split_spec(spec: str) -> tuple[str, str]:
    """'hf:google/owlvit-base-patch32' -> ('hf', 'google/owlvit-base-patch32')."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ConfigError(
            f"model {spec!r}: write it as KIND:TARGET with KIND one of {', '.join(list_source_kinds())} "
            "(e.g. hf:./model-dir, torch:pkg.module:factory, onnx:model.onnx)"
        )
    if kind not in _SOURCES:
        raise ConfigError(f"unknown model source {kind!r} in {spec!r}; available: {', '.join(list_source_kinds())}")
    return kind, target


def open_source(spec: str, options: SourceOptions) -> Source:
    """The Source for `spec`, its module imported only now."""
    kind, target = split_spec(spec)
    module_name, _, cls_name = _SOURCES[kind].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    source: Source = cls(target, options)
    return source


def random_feed(
    inputs: Sequence[tuple[str, str, Sequence[int | str]]],
    rng: np.random.Generator,
    dims: dict[str, int] | None = None,
    int_high: int = 10,
) -> Feed:
    """A feed of random values for inputs given as (name, onnx type string, shape).

    Dynamic dimensions take their value from `dims` (by name) or 1 for the leading batch axis
    and 8 elsewhere; integer inputs (token ids, masks) draw from [0, int_high).
    """
    feed: Feed = {}
    for name, dtype, shape in inputs:
        concrete = [_dim(d, axis, dims or {}) for axis, d in enumerate(shape)]
        if "int" in dtype:
            feed[name] = rng.integers(0, int_high, size=concrete).astype(np.int32 if "int32" in dtype else np.int64)
        elif "bool" in dtype:
            feed[name] = np.ones(concrete, dtype=bool)
        else:
            feed[name] = rng.standard_normal(concrete).astype(np.float16 if "float16" in dtype else np.float32)
    return feed


def _dim(d: int | str | None, axis: int, dims: dict[str, int]) -> int:
    """A concrete size for one axis; named sums such as `past_sequence_length + sequence_length`
    (optimum's attention masks) add up their parts so the inputs stay consistent."""
    if isinstance(d, int) and d > 0:
        return d
    name = str(d) if d else ""
    if "+" in name:
        return sum(_dim(part.strip(), 1, dims) for part in name.split("+"))
    return dims.get(name, 1 if axis == 0 else 8)
