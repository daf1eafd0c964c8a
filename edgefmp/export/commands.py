"""The `edgefmp export` command: flags or a recipe -> ExportJob -> status table.

Thin on purpose: parsing and printing live here, the work in edgefmp.export.pipeline. The
lead wires `register(app)` into edgefmp/cli.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgefmp.errors import ConfigError

if TYPE_CHECKING:
    from edgefmp.export.pipeline import ExportJob, SizeSpec
    from edgefmp.export.sources import SourceOptions

log = logging.getLogger(__name__)


def parse_shape(text: str) -> list[list[int]]:
    """'1x3x320x320' or '1x3x224x224,1x16' -> [[1, 3, 320, 320], [1, 16]]."""
    shapes = []
    for item in text.split(","):
        try:
            dims = [int(d) for d in item.strip().lower().split("x")]
        except ValueError:
            raise ConfigError(f"--input-shape: {item!r} is not like 1x3x320x320") from None
        if not dims or any(d < 1 for d in dims):
            raise ConfigError(f"--input-shape: {item!r} needs positive dimensions")
        shapes.append(dims)
    return shapes


def parse_hw(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    dims = parse_shape(text.replace(",", "x"))[0]
    if len(dims) == 1:
        return (dims[0], dims[0])
    if len(dims) != 2:
        raise ConfigError(f"--image-size: {text!r} is not HxW")
    return (dims[0], dims[1])


def register(app: typer.Typer) -> None:
    """Add the `export` command to `app`."""

    @app.command("export")
    def export(
        model: Annotated[str | None, typer.Argument(help="hf:ID_OR_DIR, torch:MODULE:FACTORY or onnx:FILE")] = None,
        recipe: Annotated[Path | None, typer.Option(help="export every size x precision a recipe lists")] = None,
        out: Annotated[Path, typer.Option(help="output folder; one sub-folder per variant")] = Path("models/export"),
        task: Annotated[
            str | None, typer.Option(help="e.g. object-detection, zero-shot-object-detection, text-generation")
        ] = None,
        function: Annotated[str | None, typer.Option(help="detect, verify, vqa, classify, ocr, llm")] = None,
        precision: Annotated[
            str | None,
            typer.Option(
                help="comma list of fp32, fp16, int8, int8-dynamic, int8-static (default: fp32, or the recipe's)"
            ),
        ] = None,
        batch: Annotated[
            str | None,
            typer.Option(help="comma list of batch sizes and/or 'dynamic' (default: dynamic, or the recipe's)"),
        ] = None,
        sizes: Annotated[str | None, typer.Option(help="only these size tags of the recipe")] = None,
        size: Annotated[str, typer.Option(help="size tag of a single model")] = "",
        calib: Annotated[Path | None, typer.Option(help="calibration frames: an image folder or a video")] = None,
        calib_method: Annotated[
            str | None,
            typer.Option(help="minmax, entropy or percentile (default: minmax, or the recipe's)"),
        ] = None,
        calib_samples: Annotated[int, typer.Option(help="frames taken from --calib")] = 64,
        holdout: Annotated[Path | None, typer.Option(help="held-out frames for the task metric of fp16/int8")] = None,
        input_shape: Annotated[
            str | None, typer.Option(help="e.g. 1x3x320x320 (comma list for several inputs)")
        ] = None,
        input_names: Annotated[str | None, typer.Option(help="comma list of input names")] = None,
        output_names: Annotated[str | None, typer.Option(help="comma list of output names")] = None,
        image_size: Annotated[str | None, typer.Option(help="HxW the model expects")] = None,
        labels: Annotated[str | None, typer.Option(help="comma list of class labels")] = None,
        text_queries: Annotated[
            str | None,
            typer.Option(
                help="comma list of prompts of a zero-shot export: they become the manifest's labels "
                "(the text ids stay graph inputs, fed by whoever runs the model)"
            ),
        ] = None,
        opset: Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's choice)")] = None,
        exporter: Annotated[str, typer.Option(help="torchscript or dynamo (torch: sources)")] = "torchscript",
        atol: Annotated[float | None, typer.Option(help="fp32 absolute tolerance (default 1e-4)")] = None,
        to: Annotated[str, typer.Option(help="onnx, or onnx,tensorrt to also build engines")] = "onnx",
        allow_failed: Annotated[bool, typer.Option(help="exit 0 even when a variant failed")] = False,
    ) -> None:
        """Export a model to ONNX variants (and TensorRT engines), each verified and with a manifest."""
        from rich.console import Console
        from rich.markup import escape

        console = Console()
        from edgefmp.cli import user_errors  # here: cli imports this module while it loads

        with user_errors():
            job = build_job(
                model=model,
                recipe=recipe,
                out=out,
                task=task,
                function=function,
                precision=precision,
                batch=batch,
                sizes=sizes,
                size=size,
                calib=calib,
                calib_method=calib_method,
                calib_samples=calib_samples,
                holdout=holdout,
                input_shape=input_shape,
                input_names=input_names,
                output_names=output_names,
                image_size=image_size,
                labels=labels,
                text_queries=text_queries,
                opset=opset,
                exporter=exporter,
                atol=atol,
                to=to,
            )
            from edgefmp.export.pipeline import run_job

            results = run_job(job)
        from edgefmp.export.report import next_commands, status_table

        console.print(status_table(results))
        for line in next_commands(results):
            console.print(escape(line), highlight=False, soft_wrap=True)  # YAML lines stay whole
        bad = [r for r in results if r.status != "passed"]
        if bad and not allow_failed:
            raise typer.Exit(1)


def build_job(
    *,
    model: str | None,
    recipe: Path | None,
    out: Path,
    task: str | None = None,
    function: str | None = None,
    precision: str | None = None,
    batch: str | None = None,
    sizes: str | None = None,
    size: str = "",
    calib: Path | None = None,
    calib_method: str | None = None,
    calib_samples: int = 64,
    holdout: Path | None = None,
    input_shape: str | None = None,
    input_names: str | None = None,
    output_names: str | None = None,
    image_size: str | None = None,
    labels: str | None = None,
    text_queries: str | None = None,
    opset: int | None = None,
    exporter: str = "torchscript",
    atol: float | None = None,
    to: str = "onnx",
) -> ExportJob:
    """CLI values -> ExportJob. A recipe gives sizes and defaults; a flag given explicitly (not
    None) wins over the recipe, even when its value is the flag's default. Everything that can
    be checked without loading a model is checked here, so bad options fail in a second."""
    from edgefmp.export.pipeline import ExportJob, SizeSpec, check_out
    from edgefmp.export.quantize import CALIB_METHODS
    from edgefmp.export.recipes import load_recipe
    from edgefmp.export.sources import FUNCTIONS, SourceOptions, split_spec
    from edgefmp.export.variants import parse_batches, parse_csv, parse_precisions

    check_out(out)
    if calib_method is not None and calib_method not in CALIB_METHODS:
        raise ConfigError(f"--calib-method: {calib_method!r} is not one of {', '.join(CALIB_METHODS)}")
    if function is not None and function not in FUNCTIONS:
        raise ConfigError(f"--function: {function!r} is not one of {', '.join(FUNCTIONS)}")
    if exporter not in ("torchscript", "dynamo"):
        raise ConfigError(f"--exporter: {exporter!r} is not one of torchscript, dynamo")
    if calib_samples < 1:
        raise ConfigError(f"--calib-samples: {calib_samples} frames; take at least 1")
    targets = parse_csv(to, "--to")
    bad = [t for t in targets if t not in ("onnx", "tensorrt")]
    if bad:
        raise ConfigError(f"--to: {bad[0]!r} is not one of onnx, tensorrt")
    if "onnx" not in targets:
        targets.insert(0, "onnx")  # engines are built from the verified ONNX variants
    for flag, frames in (("--calib", calib), ("--holdout", holdout)):
        if frames is not None and not frames.exists():
            raise ConfigError(f"{flag} {frames}: no such file or folder (give an image folder or a video)")
    overrides = SourceOptions(
        task=task,
        function=function,
        labels=parse_csv(labels, "--labels") if labels else [],
        input_shapes=parse_shape(input_shape) if input_shape else [],
        input_names=parse_csv(input_names, "--input-names") if input_names else [],
        output_names=parse_csv(output_names, "--output-names") if output_names else [],
        image_size=parse_hw(image_size),
        text_queries=parse_csv(text_queries, "--text-queries") if text_queries else [],
        opset=opset,
        exporter=exporter,
    )
    precisions = parse_precisions(precision) if precision is not None else ["fp32"]
    batches: list[int | None] = parse_batches(batch) if batch is not None else [None]
    method = calib_method or "minmax"
    specs: list[SizeSpec] = []
    if recipe is not None:
        loaded = load_recipe(recipe)
        wanted = parse_csv(sizes, "--sizes") if sizes else None
        chosen = [s for s in loaded.sizes if wanted is None or s.tag in wanted]
        if wanted and not chosen:
            raise ConfigError(f"--sizes {sizes}: recipe {recipe} lists {', '.join(s.tag for s in loaded.sizes)}")
        for entry in chosen:
            opts = loaded.options(entry)
            _merge(opts, overrides)
            specs.append(SizeSpec(entry.tag, model if model and len(chosen) == 1 else entry.model, opts))
        if precision is None:
            precisions = parse_precisions(loaded.precisions, f"recipe {recipe}: field precisions")
        if batch is None:
            batches = parse_batches([str(b) for b in loaded.batch], f"recipe {recipe}: field batch")
        if calib_method is None:
            method = loaded.calib_method
    elif model:
        split_spec(model)
        specs.append(SizeSpec(size, model, overrides))
    else:
        raise ConfigError("export: give a MODEL (hf:..., torch:..., onnx:...) or --recipe FILE")
    for spec in specs:
        _check_source(spec)
    if "tensorrt" in targets:
        from edgefmp.export.tensorrt import import_tensorrt

        import_tensorrt()  # a clear error before any work when TensorRT is absent
    return ExportJob(
        sizes=specs,
        precisions=precisions,
        out=out,
        batches=batches,
        calib=calib,
        calib_method=method,
        calib_samples=calib_samples,
        holdout=holdout,
        targets=targets,
        atol=atol,
    )


def _check_source(spec: SizeSpec) -> None:
    """The checks of a source that need no model loaded: an `hf:` folder and its task."""
    from edgefmp.export.sources import split_spec

    kind, target = split_spec(spec.model)
    if kind == "hf":
        from edgefmp.export.hf import check_source

        check_source(target, spec.options.task)


def _merge(opts: SourceOptions, overrides: SourceOptions) -> None:
    """Explicit CLI values replace the recipe's."""
    defaults = type(overrides)()
    for name in overrides.__dataclass_fields__:
        value = getattr(overrides, name)
        if value != getattr(defaults, name):
            setattr(opts, name, value)
