"""OnnxBackend: an exported model run by ONNX Runtime on the best execution provider here.

The model file carries its manifest (metadata_props `edgefmp.manifest`) or has a sidecar
`<model>.manifest.json` next to it; the sidecar wins so a user can fix labels or thresholds
without re-exporting. Everything is checked when the backend is built (file, manifest, input
shape, functions served), so a bad catalog fails at start-up with a message naming the file,
not on the first frame.

```python
from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.onnx import OnnxBackend, OnnxOptions
spec = BackendSpec(name="shapes-s", kind="onnx", function="detect", model="models/shapedet-s/model.onnx")
backend = OnnxBackend(spec, OnnxOptions(providers=["CPU"], intra_op_threads=2))
```
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field

from edgefmp.backends import processing
from edgefmp.backends.base import Backend
from edgefmp.backends.manifest import ONNX_METADATA_KEY, Manifest, parse_manifest, read_sidecar, sidecar_paths
from edgefmp.backends.providers import CPU, TensorRTSettings, select_providers, session_providers
from edgefmp.backends.scene_questions import WHOLE_FRAME_FUNCTION, check_labels
from edgefmp.errors import BackendError, BackendUnavailable, ConfigError
from edgefmp.results import Request, Result

if TYPE_CHECKING:
    from edgefmp.backends.catalog import BackendSpec

log = logging.getLogger(__name__)

# onnxruntime's element type names -> the manifest's dtype names.
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


class OnnxOptions(BaseModel):
    """`options:` of an onnx backend in a catalog."""

    model_config = ConfigDict(extra="forbid")

    providers: list[str] | None = Field(
        default=None, description="execution providers in priority order, e.g. [CUDA, CPU]; default TensorRT, CUDA, CPU"
    )
    intra_op_threads: int = Field(default=0, ge=0, description="threads inside one operator; 0 = onnxruntime's choice")
    inter_op_threads: int = Field(default=0, ge=0, description="threads across operators; 0 = onnxruntime's choice")
    trt_engine_cache: str | None = Field(
        default=None, description="folder for TensorRT EP engines (relative to the catalog); default <model>.trt-cache"
    )
    trt_fp16: bool = False
    warmup_runs: int = Field(default=1, ge=0)
    score_threshold: float | None = Field(default=None, ge=0, le=1)
    iou_threshold: float | None = Field(default=None, ge=0, le=1)
    max_detections: int | None = Field(default=None, ge=1)
    verify_threshold: float | None = Field(default=None, ge=0, le=1)


def model_path(spec: BackendSpec) -> Path:
    """The model file of `spec`, checked to exist."""
    if not spec.model:
        raise ConfigError(f"backend {spec.name!r}: kind {spec.kind!r} needs `model:`, the path of the model file")
    path = spec.resolve(spec.model)
    if not path.is_file():
        raise ConfigError(
            f"backend {spec.name!r}: model file {path} does not exist; fix `model:` in the catalog "
            f"or create it with `edgefmp export`"
        )
    return path


def with_overrides(manifest: Manifest, options: BaseModel) -> Manifest:
    """The manifest with postprocess thresholds replaced by the catalog's options, if given."""
    keys = ("score_threshold", "iou_threshold", "max_detections", "verify_threshold")
    changes = {k: getattr(options, k) for k in keys if getattr(options, k, None) is not None}
    if not changes:
        return manifest
    return manifest.model_copy(update={"postprocess": manifest.postprocess.model_copy(update=changes)})


def check_serves(manifest: Manifest, function: str, source: str) -> None:
    """ConfigError unless the manifest's model can answer `function`."""
    if manifest.preprocess is None:
        raise ConfigError(f"{source}: manifest has no `preprocess`; edgefmp needs it to feed images to the model")
    served = processing.SERVES[manifest.postprocess.kind]
    if function and function not in served:
        raise ConfigError(
            f"{source}: a model with postprocess kind {manifest.postprocess.kind!r} cannot serve {function!r}; "
            f"it serves: {', '.join(served) or 'nothing'}. List it under another function or fix the manifest"
        )
    if function == WHOLE_FRAME_FUNCTION:  # answered from the detections as a scene of shapes
        check_labels(manifest.labels, source)


def check_input(manifest: Manifest, name: str, shape: list[Any], dtype: str, source: str) -> None:
    """ConfigError when the model's input does not match what the manifest's preprocess makes."""
    if manifest.preprocess is None:
        raise ConfigError(f"{source}: manifest has no `preprocess`; edgefmp needs it to feed images to the model")
    expected = processing.input_shape(manifest.preprocess)
    fixed = [(i, d) for i, d in enumerate(shape) if isinstance(d, int) and d > 0]
    if len(shape) != len(expected) or any(expected[i] != d for i, d in fixed):
        raise ConfigError(
            f"{source}: input {name!r} has shape {list(shape)} but the manifest's preprocess "
            f"(size {list(manifest.preprocess.size)}, layout {manifest.preprocess.layout}) makes {expected}; "
            f"fix preprocess.size/layout in the manifest or re-export the model"
        )
    if dtype != manifest.preprocess.dtype:
        raise ConfigError(
            f"{source}: input {name!r} takes {dtype} but the manifest's preprocess.dtype is "
            f"{manifest.preprocess.dtype}; set preprocess.dtype: {dtype}"
        )
    for spec in manifest.inputs[:1]:
        if spec.name != name:
            raise ConfigError(f"{source}: manifest input {spec.name!r} is not the model's input {name!r}")


class OnnxBackend(Backend):
    """Runs an ONNX model with ONNX Runtime; see the module docstring."""

    kind = "onnx"
    Options = OnnxOptions

    def __init__(self, spec: BackendSpec, options: BaseModel) -> None:
        opts = options if isinstance(options, OnnxOptions) else OnnxOptions.model_validate(options.model_dump())
        super().__init__(spec, opts)
        self.path = model_path(spec)
        source = str(self.path)
        sidecar = read_sidecar(self.path)
        self._session: ort.InferenceSession | None = self._open_session(opts)
        manifest = sidecar or self._embedded_manifest()
        if manifest is None:
            raise ConfigError(
                f"{source}: no manifest; neither metadata {ONNX_METADATA_KEY!r} in the model nor a sidecar "
                f"({', '.join(p.name for p in sidecar_paths(self.path))}). Re-export with `edgefmp export` "
                f"or write one (see docs/MANIFEST.md)"
            )
        self._manifest = with_overrides(manifest, opts)
        check_serves(self._manifest, spec.function, source)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(
                f"{source}: the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                f"edgefmp feeds one image tensor, so re-export with a single input"
            )
        self._input = inputs[0].name
        dtype = _ORT_DTYPES.get(inputs[0].type, inputs[0].type)
        check_input(self._manifest, self._input, list(inputs[0].shape), dtype, source)
        self._outputs = [o.name for o in self._session.get_outputs()]

    # ------------------------------------------------------------------------- session

    def _open_session(self, opts: OnnxOptions) -> ort.InferenceSession:
        where = f"backend {self.spec.name!r}: options.providers"
        names = select_providers(opts.providers, where=where)
        cache = (
            self.spec.resolve(opts.trt_engine_cache)
            if opts.trt_engine_cache
            else self.path.with_name(self.path.name + ".trt-cache")
        )
        providers = session_providers(names, TensorRTSettings(engine_cache=cache, fp16=opts.trt_fp16))
        so = ort.SessionOptions()
        so.intra_op_num_threads = opts.intra_op_threads
        so.inter_op_num_threads = opts.inter_op_threads
        so.log_severity_level = 3  # onnxruntime's own warnings go to stderr; ours go to logging
        try:
            session = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises several pybind types
            if names == [CPU]:
                raise ConfigError(
                    f"{self.path}: onnxruntime cannot load this model ({exc}); the file may be corrupt or "
                    f"truncated: re-export it with `edgefmp export`"
                ) from exc
            log.warning("%s: session with %s failed (%s); retrying on CPU", self.path, names, exc)
            try:
                session = ort.InferenceSession(str(self.path), sess_options=so, providers=[CPU])
            except Exception as exc2:
                raise ConfigError(
                    f"{self.path}: onnxruntime cannot load this model ({exc2}); the file may be corrupt or "
                    f"truncated: re-export it with `edgefmp export`"
                ) from exc2
        log.info("onnx backend %s: %s on %s (asked %s)", self.spec.name, self.path.name, session.get_providers(), names)
        return session

    def _embedded_manifest(self) -> Manifest | None:
        if self._session is None:
            return None
        meta = self._session.get_modelmeta().custom_metadata_map
        text = meta.get(ONNX_METADATA_KEY)
        return None if text is None else parse_manifest(text, f"{self.path} (metadata {ONNX_METADATA_KEY})")

    # ---------------------------------------------------------------------- interface

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def providers(self) -> list[str]:
        """The providers the session really uses, best first."""
        return list(self._session.get_providers()) if self._session is not None else []

    def available(self) -> bool:
        return self._session is not None

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run the session on one input tensor; engine errors become BackendError."""
        if self._session is None:
            raise BackendUnavailable(f"backend {self.name!r} is closed")
        try:
            values = self._session.run(self._outputs, {self._input: tensor})
        except Exception as exc:
            raise BackendError(f"backend {self.name!r}: onnxruntime failed on {self.path.name}: {exc}") from exc
        return dict(zip(self._outputs, values, strict=True))

    def infer(self, request: Request) -> Result:
        image = getattr(request, "image", None)
        pre = self._manifest.preprocess
        if image is None or pre is None:
            raise BackendError(f"backend {self.name!r} needs an image request, got {request.function!r}")
        tensor, resize = processing.preprocess(image, pre)
        return processing.postprocess(self._manifest, self.run(tensor), request, resize)

    def warmup(self) -> None:
        pre = self._manifest.preprocess
        if pre is None:
            return
        dummy = np.zeros(processing.input_shape(pre), dtype=pre.dtype)
        for _ in range(self.options.warmup_runs):  # type: ignore[attr-defined]
            self.run(dummy)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": str(self.path),
            "manifest": self._manifest.name,
            "precision": self._manifest.precision,
            "providers": self.providers,
        }

    def close(self) -> None:
        self._session = None
