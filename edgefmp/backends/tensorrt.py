"""TensorRTBackend: a serialized TensorRT engine (`.plan` / `.engine`) run directly.

A plan has no metadata, so its manifest is the sidecar `<plan>.manifest.json` (or
`manifest.json` next to it), written by `edgefmp export`. The manifest and file checks run
first, so a wrong catalog entry fails with the same messages on every machine; TensorRT and
cuda-python are imported only after that, inside the class, so `import edgefmp` never needs
them. Without them the backend raises BackendUnavailable with the install hint.

Pre- and post-processing are the ONNX backend's (processing.py): the same manifest gives the
same results whichever engine runs the model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgefmp.backends import processing
from edgefmp.backends.base import Backend
from edgefmp.backends.manifest import Manifest, read_sidecar, sidecar_paths
from edgefmp.backends.onnx import check_serves, model_path, with_overrides
from edgefmp.errors import BackendError, BackendUnavailable, ConfigError
from edgefmp.results import Request, Result

if TYPE_CHECKING:
    from edgefmp.backends.catalog import BackendSpec

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install edgefmp[trt] on a machine with TensorRT (an NVIDIA GPU or Jetson)"


class TensorRTOptions(BaseModel):
    """`options:` of a tensorrt backend in a catalog."""

    model_config = ConfigDict(extra="forbid")

    device: int = Field(default=0, ge=0, description="CUDA device index")
    warmup_runs: int = Field(default=2, ge=0)
    score_threshold: float | None = Field(default=None, ge=0, le=1)
    iou_threshold: float | None = Field(default=None, ge=0, le=1)
    max_detections: int | None = Field(default=None, ge=1)
    verify_threshold: float | None = Field(default=None, ge=0, le=1)


def read_plan_manifest(spec: BackendSpec, options: BaseModel) -> tuple[Path, Manifest]:
    """The plan file of `spec` and its sidecar manifest (with the catalog's overrides)."""
    path = model_path(spec)
    manifest = read_sidecar(path)
    if manifest is None:
        raise ConfigError(
            f"{path}: a TensorRT plan needs a sidecar manifest ({', '.join(p.name for p in sidecar_paths(path))}); "
            f"`edgefmp export` writes it, or copy the ONNX model's manifest (see docs/MANIFEST.md)"
        )
    manifest = with_overrides(manifest, options)
    check_serves(manifest, spec.function, str(path))
    return path, manifest


def _import_engine() -> tuple[Any, Any]:
    """tensorrt and cuda-python's runtime module, or BackendUnavailable saying how to get them."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed: {INSTALL_HINT}") from exc
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as exc:
            raise BackendUnavailable(
                f"cuda-python is not installed (TensorRT needs it for buffers): {INSTALL_HINT}"
            ) from exc
    return trt, cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python returns (error, *values); raise BackendError on a non-zero error."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f"CUDA call {what} failed with error {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTBackend(Backend):
    """Runs a TensorRT plan; see the module docstring."""

    kind = "tensorrt"
    Options = TensorRTOptions

    def __init__(self, spec: BackendSpec, options: BaseModel) -> None:
        opts = options if isinstance(options, TensorRTOptions) else TensorRTOptions.model_validate(options.model_dump())
        super().__init__(spec, opts)
        self.opts = opts
        self.path, self._manifest = read_plan_manifest(spec, opts)
        self._trt, self._cudart = _import_engine()
        self._buffers: dict[str, tuple[int, np.ndarray]] = {}
        self._stream: Any = None
        self._load()

    # ---------------------------------------------------------------------- engine

    def _load(self) -> None:  # pragma: no cover - needs TensorRT and a GPU
        trt, cudart = self._trt, self._cudart
        _check(cudart.cudaSetDevice(self.opts.device), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise ConfigError(
                f"{self.path}: TensorRT cannot deserialize this plan (built for another TensorRT version or GPU?); "
                f"rebuild it on this device with `edgefmp export`"
            )
        self._engine, self._context = engine, engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ConfigError(f"{self.path}: the plan has inputs {inputs}; edgefmp feeds one image tensor")
        self._input, self._outputs = inputs[0], [n for n in names if n not in inputs]
        pre = self._manifest.preprocess
        if pre is None:
            raise ConfigError(f"{self.path}: manifest has no `preprocess`")
        shape = processing.input_shape(pre)
        self._context.set_input_shape(self._input, shape)
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        for name in names:
            dims = tuple(self._context.get_tensor_shape(name))
            if any(d < 0 for d in dims):
                raise ConfigError(f"{self.path}: tensor {name!r} has unresolved shape {dims}")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            host = np.empty(dims, dtype)
            ptr = _check(cudart.cudaMalloc(max(host.nbytes, 1)), "cudaMalloc")
            self._context.set_tensor_address(name, ptr)
            self._buffers[name] = (ptr, host)
        expected = self._buffers[self._input][1]
        if list(expected.shape) != shape or expected.dtype != np.dtype(pre.dtype):
            raise ConfigError(
                f"{self.path}: the plan's input {self._input!r} is {list(expected.shape)} {expected.dtype}, "
                f"the manifest's preprocess makes {shape} {pre.dtype}; fix the manifest or rebuild the plan"
            )
        log.info("tensorrt backend %s: %s on device %d", self.spec.name, self.path.name, self.opts.device)

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - needs a GPU
        """Copy the input in, execute, copy the outputs back."""
        if self._stream is None:
            raise BackendUnavailable(f"backend {self.name!r} is closed")
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        try:
            ptr, host = self._buffers[self._input]
            src = np.ascontiguousarray(tensor, dtype=host.dtype)
            _check(cudart.cudaMemcpyAsync(ptr, src.ctypes.data, src.nbytes, h2d, self._stream), "memcpy in")
            if not self._context.execute_async_v3(self._stream):
                raise BackendError(f"backend {self.name!r}: TensorRT execution failed on {self.path.name}")
            out = {}
            for name in self._outputs:
                ptr, host = self._buffers[name]
                _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self._stream), "memcpy out")
                out[name] = host
            _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"backend {self.name!r}: TensorRT failed on {self.path.name}: {exc}") from exc
        return {k: v.copy() for k, v in out.items()}

    # ------------------------------------------------------------------- interface

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def available(self) -> bool:
        return self._stream is not None

    def infer(self, request: Request) -> Result:  # pragma: no cover - needs a GPU
        image = getattr(request, "image", None)
        pre = self._manifest.preprocess
        if image is None or pre is None:
            raise BackendError(f"backend {self.name!r} needs an image request, got {request.function!r}")
        tensor, resize = processing.preprocess(image, pre)
        return processing.postprocess(self._manifest, self.run(tensor), request, resize)

    def warmup(self) -> None:  # pragma: no cover - needs a GPU
        pre = self._manifest.preprocess
        if pre is None:
            return
        dummy = np.zeros(processing.input_shape(pre), dtype=pre.dtype)
        for _ in range(self.opts.warmup_runs):
            self.run(dummy)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": str(self.path),
            "manifest": self._manifest.name,
            "precision": self._manifest.precision,
            "device": self.opts.device,
        }

    def close(self) -> None:  # pragma: no cover - needs a GPU
        if self._stream is None:
            return
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._cudart.cudaStreamDestroy(self._stream)
        self._buffers, self._stream = {}, None
