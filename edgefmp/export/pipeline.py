"""Run an export job: every size x batch x precision, each verified, each with its manifest.

One fp32 export is made per (size, batch); the other precisions are derived from it. A
variant that fails is recorded with its reason and the job goes on, so the status table
at the end shows every cell: passed, exported but failed verification, or failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgefmp.backends.manifest import Manifest, Postprocess, Preprocess
from edgefmp.errors import ConfigError, EdgeFMPError, ExportError
from edgefmp.export.calibration import image_feeds, load_frames
from edgefmp.export.flops import estimate_flops
from edgefmp.export.publish import embed_manifest, onnx_params, tool_versions
from edgefmp.export.quantize import StaticQuantConfig, convert_fp16, quantize_dynamic_int8, quantize_static_int8
from edgefmp.export.sources import BaseExport, Feed, Part, SourceOptions, open_source
from edgefmp.export.variants import Variant, expand
from edgefmp.export.verify import (
    TaskMetric,
    Tolerance,
    VerifyReport,
    default_tolerance,
    detr_map50,
    open_session,
    run_onnx,
    top1_accuracy,
    verify_onnx,
)

log = logging.getLogger(__name__)

Status = Literal["passed", "unverified", "failed"]


@dataclass
class SizeSpec:
    """One model size of a family: its tag (n, s, m...) and where the model comes from."""

    tag: str
    model: str
    options: SourceOptions = field(default_factory=SourceOptions)


@dataclass
class ExportJob:
    """Everything one `edgefmp export` run does (from CLI flags or a recipe)."""

    sizes: list[SizeSpec]
    precisions: list[str]
    out: Path
    batches: list[int | None] = field(default_factory=lambda: [None])
    calib: Path | None = None
    calib_method: str = "minmax"
    calib_samples: int = 64
    holdout: Path | None = None
    targets: list[str] = field(default_factory=lambda: ["onnx"])
    atol: float | None = None
    keep_io_types: bool = True
    trt_workspace_mb: int = 1024


@dataclass
class VariantResult:
    """One row of the status table."""

    variant: Variant
    status: Status
    reason: str = ""
    path: Path | None = None
    manifest: Manifest | None = None
    target: str = "onnx"

    @property
    def name(self) -> str:
        return self.variant.name + ("-trt" if self.target == "tensorrt" else "")


def check_out(out: Path) -> None:
    """ConfigError when `out` cannot be the output folder (a file, or under a file), found
    without creating anything."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out}: a file of that name exists; give a folder (--out)")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"output folder {out}: {parent} is a file, not a folder; give another --out")


def prepare_out(out: Path) -> list[Path]:
    """Create the output folder before any slow work; returns the folders this call created
    (deepest first) so that a run that wrote nothing can remove them again."""
    check_out(out)
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output folder {out}: cannot create it ({exc.strerror or exc}); give another --out") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {out}: not writable; give another --out")
    return created


def _remove_empty(folders: Sequence[Path]) -> None:
    for folder in folders:  # deepest first; stops at the first one that holds something
        try:
            folder.rmdir()
        except OSError:
            return


def run_job(job: ExportJob) -> list[VariantResult]:
    """Export every variant of `job`; never raises for a single failing variant.

    The output folder is created first; when the run writes nothing into it (every variant
    failed, or an error stopped it) the folders it created are removed again."""
    if not job.sizes:
        raise ConfigError("export: nothing to export (no model and no sizes in the recipe)")
    created = prepare_out(job.out)
    try:
        return _run(job)
    finally:
        _remove_empty(created)


def _run(job: ExportJob) -> list[VariantResult]:
    frames = load_frames(job.calib, job.calib_samples, "calibration set") if job.calib else None
    holdout = load_frames(job.holdout, job.calib_samples, "held-out set") if job.holdout else None
    results: list[VariantResult] = []
    for size in job.sizes:
        variants = expand([size.tag], job.precisions, job.batches, frames is not None)
        for batch in job.batches:
            cells = [v for v in variants if v.batch == batch]
            with tempfile.TemporaryDirectory(prefix="edgefmp-export-") as tmp:
                try:
                    source = open_source(size.model, size.options)
                    base = source.export_fp32(Path(tmp) / "fp32", batch)
                    _apply_overrides(base, size)
                except Exception as exc:  # a broken source fails its cells, not the job
                    reason = _reason(exc)
                    log.error("export of %s failed: %s", size.model, reason, exc_info=not isinstance(exc, EdgeFMPError))
                    results += [VariantResult(v, "failed", reason) for v in cells]
                    continue
                context = _Context(job, base, frames, holdout, size.tag)
                for variant in cells:
                    result = _produce(context, variant)
                    results.append(result)
                    if "tensorrt" in job.targets and result.path is not None and result.status != "failed":
                        results.append(_tensorrt(job, result))
    return results


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EdgeFMPError) else f"{type(exc).__name__}: {exc}"


def _apply_overrides(base: BaseExport, size: SizeSpec) -> None:
    """Recipe/CLI `preprocess`, `postprocess`, `labels` and `name` win over what the source guessed."""
    update: dict[str, Any] = {}
    opts = size.options
    if opts.preprocess:
        current = base.manifest.preprocess.model_dump() if base.manifest.preprocess else {}
        update["preprocess"] = Preprocess.model_validate({**current, **opts.preprocess})
    if opts.postprocess:
        update["postprocess"] = Postprocess.model_validate(
            {**base.manifest.postprocess.model_dump(), **opts.postprocess}
        )
    if opts.labels:
        update["labels"] = list(opts.labels)
    if opts.name:
        update["name"] = opts.name
    if update:
        base.manifest = Manifest.model_validate({**base.manifest.model_dump(), **update})


@dataclass
class _Context:
    job: ExportJob
    base: BaseExport
    frames: list[np.ndarray] | None
    holdout: list[np.ndarray] | None
    size: str
    _calib: dict[str, list[Feed]] | None = None
    _metric: tuple[TaskMetric, list[Feed], list[Any]] | None = None
    _stats: tuple[int | None, int | None] | None = None

    def calibration(self) -> dict[str, list[Feed]]:
        if self._calib is None:
            if self.frames is None:
                raise ExportError(
                    "int8-static needs calibration frames: give --calib FOLDER_OR_VIDEO (or use int8-dynamic)"
                )
            self._calib = frames_to_feeds(self.base, self.frames)
        return self._calib

    def metric(self) -> tuple[TaskMetric, list[Feed], list[Any]] | None:
        if self._metric is None and self.holdout is not None:
            metric = self.base.metric or default_metric(self.base.manifest)
            if metric is None:
                log.warning(
                    "no task metric for %s/%s; held-out set unused",
                    self.base.manifest.function,
                    self.base.manifest.task,
                )
                return None
            feeds = frames_to_feeds(self.base, self.holdout)[self.base.main.name]
            reference = run_onnx(self.base.folder / self.base.main.file, feeds)
            self._metric = (metric, feeds, reference)
        return self._metric

    def stats(self) -> tuple[int | None, int | None]:
        """(params, flops) of the fp32 main part, computed once."""
        if self._stats is None:
            main = self.base.folder / self.base.main.file
            sample = self.base.main.feeds[0] if self.base.main.feeds else None
            self._stats = (onnx_params(main), estimate_flops(main, sample))
        return self._stats


def frames_to_feeds(base: BaseExport, frames: Sequence[np.ndarray]) -> dict[str, list[Feed]]:
    """Frames -> feeds per part: the source's own recipe, else the manifest's preprocessing
    into the main image input with the other inputs (text ids...) taken from a sample feed."""
    if base.calibration_feeds is not None:
        return base.calibration_feeds(frames)
    pre = base.manifest.preprocess
    if pre is None:
        raise ExportError(
            f"{base.manifest.source}: cannot turn frames into inputs without preprocessing; "
            "give --image-size HxW (or a recipe `preprocess`)"
        )
    main = base.main
    image_inputs = [name for name, value in main.feeds[0].items() if np.asarray(value).ndim == 4]
    if not image_inputs:
        raise ExportError(f"{base.manifest.source}: no image input (4-D) to calibrate with frames")
    extra = {k: v for k, v in main.feeds[0].items() if k != image_inputs[0]}
    return {main.name: image_feeds(frames, pre, image_inputs[0], extra)}


def default_metric(manifest: Manifest) -> TaskMetric | None:
    """A task metric from the manifest: top-1 agreement for classifiers, mAP@0.5 for DETR heads."""
    if not manifest.outputs:
        return None
    if manifest.postprocess.kind in ("classify", "attributes") or manifest.function == "classify":
        return top1_accuracy(manifest.outputs[0].name, threshold=0.8)
    if manifest.postprocess.kind == "detr":
        return detr_map50(no_object=manifest.postprocess.detr_no_object)
    return None


def _lower(ctx: _Context, part: Part, precision: str, src: Path, dst: Path) -> Any:
    """Write `dst` as `src` at `precision`; returns the Calibration entry for static int8."""
    if precision == "fp32":
        shutil.copyfile(src, dst)
    elif precision == "fp16":
        convert_fp16(src, dst, keep_io_types=ctx.job.keep_io_types)
    elif precision == "int8-dynamic":
        quantize_dynamic_int8(src, dst)
    elif precision == "int8-static":
        if not part.static_int8:
            log.info("part %s is quantized dynamically (static calibration does not apply to it)", part.name)
            quantize_dynamic_int8(src, dst)
            return None
        feeds = ctx.calibration().get(part.name)
        if not feeds:
            raise ExportError(
                f"int8-static: no calibration feeds for part {part.name!r}; use int8-dynamic for this model"
            )
        config = StaticQuantConfig(method=ctx.job.calib_method)  # type: ignore[arg-type]
        return quantize_static_int8(src, dst, feeds, config)
    else:
        raise ConfigError(f"unknown precision {precision!r}")
    return None


def _tolerance(job: ExportJob, precision: str) -> Tolerance:
    tol = default_tolerance(precision)
    if job.atol is not None and precision == "fp32":
        tol = Tolerance(atol=job.atol, rtol=tol.rtol, min_cosine=tol.min_cosine)
    return tol


def _produce(ctx: _Context, variant: Variant) -> VariantResult:
    job, base = ctx.job, ctx.base
    if variant.precision == "int8-static" and not any(p.static_int8 for p in base.parts):
        log.info("%s: no part takes calibrated int8; exporting int8-dynamic instead", base.manifest.source)
        variant = Variant(variant.size, "int8-dynamic", variant.batch)
    folder = job.out / variant.name
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for asset in base.assets:
            src = base.folder / asset
            if src.is_dir():
                shutil.copytree(src, folder / asset)
            elif src.is_file():
                shutil.copyfile(src, folder / asset)
        calibration = None
        for part in base.parts:
            found = _lower(ctx, part, variant.precision, base.folder / part.file, folder / part.file)
            calibration = calibration or found
        reports: dict[str, VerifyReport] = {}
        tol = _tolerance(job, variant.precision)
        metric = ctx.metric() if variant.precision != "fp32" else None
        for index, part in enumerate(base.parts):
            main = index == 0
            reports[part.name] = verify_onnx(
                folder / part.file,
                part.feeds,
                part.reference,
                expected_outputs=base.manifest.outputs if main and base.manifest.outputs else None,
                tolerance=tol,
                metric=metric[0] if main and metric else None,
                metric_feeds=metric[1] if main and metric else None,
                metric_reference=metric[2] if main and metric else None,
            )
        if base.end_to_end is not None:
            reports["end_to_end"] = base.end_to_end(folder, variant.precision)
    except Exception as exc:
        reason = _reason(exc)
        log.error("variant %s failed: %s", variant.name, reason, exc_info=not isinstance(exc, EdgeFMPError))
        shutil.rmtree(folder, ignore_errors=True)  # half a variant is worse than none
        return VariantResult(variant, "failed", reason)

    failures = [f"{name}: {r.reason}" if len(reports) > 1 else r.reason for name, r in reports.items() if not r.passed]
    verification = _verification_dict(reports)
    params, flops = ctx.stats()
    manifest = None
    try:
        for index, part in enumerate(base.parts):
            written = embed_manifest(
                folder / part.file, _part_manifest(ctx, variant, part, index, calibration, verification, params, flops)
            )
            manifest = manifest or written
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)  # a model without its manifest cannot be served
        return VariantResult(variant, "failed", f"writing the manifest: {_reason(exc)}")
    status: Status = "passed" if not failures else "unverified"
    return VariantResult(variant, status, "; ".join(failures), folder / base.main.file, manifest)


def _verification_dict(reports: dict[str, VerifyReport]) -> dict[str, Any]:
    if list(reports) == ["model"]:
        return reports["model"].to_dict()
    return {
        "status": "passed" if all(r.passed for r in reports.values()) else "failed",
        "parts": {name: r.to_dict() for name, r in reports.items()},
    }


def _part_manifest(
    ctx: _Context,
    variant: Variant,
    part: Part,
    index: int,
    calibration: Any,
    verification: dict[str, Any],
    params: int | None,
    flops: int | None,
) -> Manifest:
    from edgefmp.export.onnx_source import tensor_specs

    base = ctx.base.manifest
    extra = dict(base.extra)
    extra.update({"variant": variant.name, "batch": variant.batch or "dynamic", "flops_estimated": True})
    if len(ctx.base.parts) > 1:
        extra["parts"] = {p.name: p.file for p in ctx.base.parts}
        extra["part"] = part.name
    update: dict[str, Any] = {
        "precision": variant.precision,
        "size": variant.size or base.size,
        "params": params,
        "flops": flops,
        "tool_versions": tool_versions(),
        "calibration": calibration,
        "verification": verification,
        "extra": extra,
        "name": variant_model_name(base.name, variant),
    }
    session = open_session(ctx.job.out / variant.name / part.file)
    io = {"inputs": tensor_specs(session.get_inputs()), "outputs": tensor_specs(session.get_outputs())}
    if index == 0:
        if base.inputs and variant.precision in ("fp32", "int8-dynamic", "int8-static"):
            io.pop("inputs")
        if base.outputs and variant.precision in ("fp32", "int8-dynamic", "int8-static"):
            io.pop("outputs")
        update.update(io)
    else:
        update.update(io)
        update["name"] = f"{update['name']}-{part.name}"
        update["postprocess"] = Postprocess(kind="none")
        update["labels"] = base.labels
    return Manifest.model_validate({**base.model_dump(), **update})


def variant_model_name(base: str, variant: Variant) -> str:
    """The manifest name of a variant: `vit-b16` + `b16-int8-static` -> `vit-b16-int8-static`
    (a size tag the base name already ends with is not repeated)."""
    suffix = variant.name
    if variant.size and (base == variant.size or base.endswith(f"-{variant.size}")):
        suffix = suffix[len(variant.size) :].lstrip("-")
    return f"{base}-{suffix}" if suffix else base


def _tensorrt(job: ExportJob, onnx_result: VariantResult) -> VariantResult:
    from edgefmp.export.tensorrt import build_variant_engine

    variant = onnx_result.variant
    try:
        path = build_variant_engine(onnx_result, job)
    except Exception as exc:
        return VariantResult(variant, "failed", _reason(exc), None, target="tensorrt")
    # the engine's sidecar is the ONNX variant's manifest plus what the plan is tied to
    return VariantResult(variant, "passed", "", path, onnx_result.manifest, target="tensorrt")
