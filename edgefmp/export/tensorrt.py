"""TensorRT engines from exported ONNX variants, with the tensorrt Python API.

An engine is a plain serialized plan (`model.plan`) that trtexec (`--loadEngine`) and Triton
(`<repo>/<name>/1/model.plan`) load as is; since a plan has no room for metadata, its manifest
is a sidecar that also records the TensorRT version, the GPU and its compute capability,
because a plan only runs where it was built. Builds use a timing cache (shared per output
folder, so rebuilding is fast), optimisation profiles for dynamic axes, fp16, and int8 either
explicit (the ONNX already has Q/DQ nodes: our int8-static variants) or implicit with an
entropy calibrator whose cache is saved next to the engine.

The other route is ONNX Runtime's TensorRT execution provider with an engine cache:
`ort_tensorrt_providers()` gives the provider list for that.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefmp.backends.manifest import Manifest, TensorSpec, write_sidecar
from edgefmp.errors import ExportError
from edgefmp.export.publish import file_sha256, tool_versions

if TYPE_CHECKING:
    from edgefmp.export.pipeline import ExportJob, VariantResult

log = logging.getLogger(__name__)

ENGINE_FILE = "model.plan"
MISSING = (
    "TensorRT is not installed (import tensorrt failed): install it with `pip install 'edgefmp[trt]'` "
    "on a machine with an NVIDIA GPU, or run the ONNX variants through ONNX Runtime's TensorRT "
    "execution provider (onnxruntime-gpu)"
)


def import_tensorrt() -> Any:
    """The tensorrt module, or ExportError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise ExportError(MISSING) from exc
    return tensorrt


def engine_folder_name(variant_name: str) -> str:
    """`s-fp16` -> `s-fp16-trt`: engines live beside the ONNX variant they were built from."""
    return f"{variant_name}-trt"


@dataclass(frozen=True)
class Profile:
    """min / opt / max shapes of one input, for an optimisation profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def profiles_for(
    inputs: Sequence[TensorSpec], sample: dict[str, np.ndarray] | None = None, max_batch: int = 8
) -> dict[str, Profile]:
    """A profile per input with dynamic axes: batch from 1 to `max_batch` (optimised for 1),
    other dynamic axes pinned to the sample's size (or 1 when there is no sample)."""
    out: dict[str, Profile] = {}
    for spec in inputs:
        if all(isinstance(d, int) for d in spec.shape):
            continue
        seen = np.asarray(sample[spec.name]).shape if sample and spec.name in sample else None
        lo: list[int] = []
        hi: list[int] = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int):
                lo.append(d)
                hi.append(d)
            elif axis == 0:
                lo.append(1)
                hi.append(max_batch)
            else:
                size = int(seen[axis]) if seen is not None else 1
                lo.append(size)
                hi.append(size)
        out[spec.name] = Profile(tuple(lo), tuple(lo), tuple(hi))
    return out


class CalibrationCache:
    """The int8 calibration cache file: read if it exists, written after calibration, so a
    rebuild on the same device skips calibration (TensorRT checks the cache matches)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> bytes | None:
        if self.path.is_file() and self.path.stat().st_size > 0:
            log.info("using calibration cache %s", self.path)
            return self.path.read_bytes()
        return None

    def write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(bytes(data))
        tmp.replace(self.path)


class CalibrationBatches:
    """Calibration feeds grouped into contiguous float32 batches of `batch_size`, per input."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]], batch_size: int = 1) -> None:
        if not feeds:
            raise ExportError("TensorRT int8 calibration: the calibration set is empty")
        self.feeds = list(feeds)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.feeds) - self.batch_size + 1, self.batch_size):
            chunk = self.feeds[start : start + self.batch_size]
            yield {k: np.ascontiguousarray(np.concatenate([f[k] for f in chunk]), dtype=np.float32) for k in chunk[0]}


def make_calibrator(trt: Any, batches: CalibrationBatches, cache: CalibrationCache) -> Any:
    """An IInt8EntropyCalibrator2 that feeds `batches` through device buffers (torch.cuda)."""
    import torch

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._iter = iter(batches)
            self._keep: list[Any] = []

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._iter, None)
            if batch is None:
                return None
            self._keep = [torch.from_numpy(batch[n]).cuda() for n in names]
            return [int(t.data_ptr()) for t in self._keep]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read()

        def write_calibration_cache(self, data: Any) -> None:
            cache.write(bytes(data))

    return _Calibrator()


def gpu_info() -> dict[str, str]:
    """Name and compute capability of GPU 0 (torch.cuda, else NVML); empty when unknown."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return {"gpu": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}"}
    except ImportError:
        pass
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        return {
            "gpu": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"{major}.{minor}",
        }
    except Exception:  # no NVML or no GPU: the sidecar says unknown
        return {}


@dataclass
class EngineConfig:
    """How to build one engine."""

    precision: str = "fp16"
    workspace_mb: int = 1024
    profiles: dict[str, Profile] = field(default_factory=dict)
    timing_cache: Path | None = None
    calibration_cache: Path | None = None
    calibration_feeds: Sequence[dict[str, np.ndarray]] = ()


def engine_manifest(
    onnx_manifest: Manifest, engine_path: Path, config: EngineConfig, trt_version: str, gpu: dict[str, str]
) -> Manifest:
    """The sidecar manifest of an engine: the ONNX variant's, plus what the plan is tied to."""
    extra = dict(onnx_manifest.extra)
    extra["tensorrt"] = {
        "version": trt_version,
        "gpu": gpu.get("gpu", "unknown"),
        "compute_capability": gpu.get("compute_capability", "unknown"),
        "precision": config.precision,
        "workspace_mb": config.workspace_mb,
        "profiles": {
            k: {"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for k, p in config.profiles.items()
        },
        "timing_cache": str(config.timing_cache) if config.timing_cache else None,
        "calibration_cache": str(config.calibration_cache) if config.calibration_cache else None,
        "onnx_sha256": onnx_manifest.sha256,
    }
    return onnx_manifest.model_copy(
        update={
            "sha256": file_sha256(engine_path),
            "tool_versions": tool_versions({"tensorrt": trt_version}),
            "extra": extra,
        }
    )


def build_engine(onnx_path: Path, engine_path: Path, config: EngineConfig) -> str:
    """Build and write a serialized engine; returns the TensorRT version."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    build = builder.create_builder_config()
    build.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if config.precision in ("fp16", "int8-static", "int8-dynamic", "int8"):
        build.set_flag(trt.BuilderFlag.FP16)
    if config.precision.startswith("int8"):
        build.set_flag(trt.BuilderFlag.INT8)
    if config.profiles:
        profile = builder.create_optimization_profile()
        for name, p in config.profiles.items():
            profile.set_shape(name, p.min, p.opt, p.max)
        build.add_optimization_profile(profile)
        if config.calibration_feeds:
            build.set_calibration_profile(profile)
    if config.precision.startswith("int8") and config.calibration_feeds and config.calibration_cache:
        # implicit quantization (deprecated since TensorRT 10.1 but still what fp32 graphs need)
        build.int8_calibrator = make_calibrator(
            trt, CalibrationBatches(config.calibration_feeds), CalibrationCache(config.calibration_cache)
        )
    cache = None
    if config.timing_cache is not None:
        blob = config.timing_cache.read_bytes() if config.timing_cache.is_file() else b""
        cache = build.create_timing_cache(blob)
        build.set_timing_cache(cache, ignore_mismatch=False)
    try:
        plan = builder.build_serialized_network(network, build)
    except Exception as exc:
        raise ExportError(f"TensorRT build of {onnx_path} failed: {exc}") from exc
    if plan is None:
        raise ExportError(f"TensorRT build of {onnx_path} failed (see the TensorRT log above for the layer)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(plan))
    if config.timing_cache is not None:
        config.timing_cache.write_bytes(bytes(build.get_timing_cache().serialize()))
    return str(trt.__version__)


def check_engine_precision(precision: str) -> None:
    """TensorRT cannot run ONNX Runtime's dynamic quantization (DynamicQuantizeLinear and
    MatMulInteger); say so instead of failing deep in the parser."""
    if precision == "int8-dynamic":
        raise ExportError(
            "TensorRT does not build int8-dynamic graphs; ask for int8 with --calib (explicit Q/DQ, "
            "int8-static) or fp16"
        )


def build_variant_engine(result: VariantResult, job: ExportJob) -> Path:
    """Build the engine of one exported ONNX variant into `<variant>-trt/model.plan` with its sidecar."""
    trt = import_tensorrt()  # fail fast with the clear message
    if result.path is None or result.manifest is None:
        raise ExportError(f"{result.variant.name}: no ONNX model to build an engine from")
    check_engine_precision(result.variant.precision)
    folder = job.out / engine_folder_name(result.variant.name)
    folder.mkdir(parents=True, exist_ok=True)
    engine_path = folder / ENGINE_FILE
    config = EngineConfig(
        precision=result.variant.precision,
        workspace_mb=job.trt_workspace_mb,
        profiles=profiles_for(result.manifest.inputs),
        timing_cache=job.out / "timing.cache",
    )
    version = build_engine(result.path, engine_path, config)
    manifest = engine_manifest(result.manifest, engine_path, config, version or str(trt.__version__), gpu_info())
    write_sidecar(manifest, engine_path)
    return engine_path


def ort_tensorrt_providers(cache_dir: Path, fp16: bool = True, int8: bool = False) -> list[Any]:
    """ONNX Runtime provider list for the TensorRT EP with an engine and timing cache in
    `cache_dir`, falling back to CUDA then CPU."""
    options = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_fp16_enable": fp16,
        "trt_int8_enable": int8,
    }
    return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider", "CPUExecutionProvider"]
