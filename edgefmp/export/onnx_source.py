"""`onnx:model.onnx` — an existing ONNX file, re-issued as variants with manifests.

The file itself is the reference: the fp32 variant must reproduce it exactly and the fp16 /
int8 variants are compared with it. An edgefmp manifest already embedded in (or beside) the
file is reused, so labels and preprocessing survive a re-quantization.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.manifest import ONNX_METADATA_KEY, Manifest, Preprocess, TensorSpec, parse_manifest, read_sidecar
from edgefmp.errors import ConfigError, ExportError
from edgefmp.export.sources import FUNCTIONS, BaseExport, Part, Source, random_feed
from edgefmp.export.verify import check_onnx, open_session, run_onnx

log = logging.getLogger(__name__)

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def tensor_specs(session_args: list[object]) -> list[TensorSpec]:
    """TensorSpecs of ONNX Runtime inputs or outputs (dynamic axes keep their names)."""
    specs = []
    for arg in session_args:
        shape = [d if isinstance(d, int) else (d or f"dim{i}") for i, d in enumerate(arg.shape)]  # type: ignore[attr-defined]
        specs.append(TensorSpec(name=arg.name, shape=shape, dtype=_DTYPES.get(arg.type, "float32")))  # type: ignore[attr-defined,arg-type]
    return specs


def embedded_manifest(model_path: Path) -> Manifest | None:
    """The manifest in the file's metadata, or its sidecar (the sidecar wins)."""
    import onnx

    sidecar = read_sidecar(model_path)
    if sidecar is not None:
        return sidecar
    model = onnx.load(str(model_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            return parse_manifest(prop.value, f"{model_path} metadata {ONNX_METADATA_KEY}")
    return None


def _dynamic(d: object) -> bool:
    return not (isinstance(d, int) and d > 0)


class OnnxFileSource(Source):
    kind = "onnx"

    def export_fp32(self, out: Path, batch: int | None) -> BaseExport:
        path = Path(self.spec).expanduser()
        if not path.is_file():
            raise ExportError(f"onnx:{self.spec}: no such file")
        check_onnx(path)  # corrupt or invalid files stop here with the checker's reason
        session = open_session(path)
        inputs = session.get_inputs()
        found = embedded_manifest(path)
        dims = self._shape_dims(inputs)
        dims.update(self._image_dims(inputs, found, dims))
        if batch is not None:
            for arg in inputs:
                if arg.shape and isinstance(arg.shape[0], str):
                    dims[arg.shape[0]] = batch
        guessed = [
            f"{arg.name}[{axis}] {d or '?'}"
            for arg in inputs
            for axis, d in enumerate(arg.shape)
            if axis > 0 and _dynamic(d) and str(d or "") not in dims
        ]
        rng = np.random.default_rng(self.options.seed)
        specs = [(a.name, a.type, list(a.shape)) for a in inputs]
        feeds = [random_feed(specs, rng, dims) for _ in range(max(1, self.options.samples))]
        try:
            reference = run_onnx(path, feeds, session)
        except ExportError as exc:
            if not guessed:
                raise
            shapes = ", ".join("x".join(str(v) for v in feed.shape) for feed in feeds[0].values())
            raise ExportError(
                f"onnx:{self.spec}: cannot tell the size of dynamic axes {', '.join(guessed)} (no edgefmp "
                f"manifest with a `preprocess` says it); the model rejected the guess {shapes}. "
                "Give the input shapes with --input-shape, e.g. --input-shape 1x3x224x224"
            ) from exc

        out.mkdir(parents=True, exist_ok=True)
        target = out / "model.onnx"
        shutil.copyfile(path, target)
        manifest = self._manifest(path, session, found)
        return BaseExport(folder=out, parts=[Part("model", target.name, feeds, reference)], manifest=manifest)

    def _shape_dims(self, inputs: list[Any]) -> dict[str, int]:
        """Sizes of named dynamic axes from --input-shape."""
        shapes = self.options.input_shapes
        if not shapes:
            return {}
        if len(shapes) != len(inputs):
            raise ExportError(
                f"onnx:{self.spec}: --input-shape gives {len(shapes)} shapes, the model has "
                f"{len(inputs)} inputs ({', '.join(i.name for i in inputs)})"
            )
        dims: dict[str, int] = {}
        for arg, want in zip(inputs, shapes, strict=True):
            if len(want) != len(arg.shape):
                raise ExportError(
                    f"onnx:{self.spec}: input {arg.name} has rank {len(arg.shape)}, --input-shape gives {want}"
                )
            for d, w in zip(arg.shape, want, strict=True):
                if not _dynamic(d) and d != w:
                    raise ExportError(
                        f"onnx:{self.spec}: input {arg.name} has shape {list(arg.shape)}, --input-shape gives {want}"
                    )
                if _dynamic(d):
                    dims[str(d or "")] = w
        return dims

    def _image_dims(self, inputs: list[Any], found: Manifest | None, known: dict[str, int]) -> dict[str, int]:
        """Sizes of the image input's dynamic axes (channels, height, width) from the preprocess
        of the file's manifest, else from --image-size: the shape the runtime will feed."""
        from edgefmp.backends.processing import input_shape

        pre = found.preprocess if found is not None and found.preprocess is not None else None
        if pre is None and self.options.image_size:
            pre = Preprocess(size=self.options.image_size)
        if pre is None:
            return {}
        expected = input_shape(pre)
        dims: dict[str, int] = {}
        for arg in inputs:
            shape = list(arg.shape)
            if "float" not in arg.type or len(shape) != len(expected):
                continue
            if any(not _dynamic(d) and d != expected[axis] for axis, d in enumerate(shape) if axis > 0):
                continue  # not the image input (fixed axes disagree with the preprocess)
            for axis, d in enumerate(shape):
                if axis > 0 and _dynamic(d) and str(d or "") not in known:
                    dims[str(d or "")] = expected[axis]
        return dims

    def _manifest(self, path: Path, session: Any, found: Manifest | None) -> Manifest:
        inputs = tensor_specs(session.get_inputs())
        outputs = tensor_specs(session.get_outputs())
        io: dict[str, object] = {"inputs": inputs, "outputs": outputs, "source": self.uri}
        if found is not None:
            # a re-export of an edgefmp variant: drop the old precision (and batch) from the name,
            # so `vit-b16-fp32` re-issued as int8 is `vit-b16-int8-static`, not `vit-b16-fp32-int8-static`
            name = found.name
            variant = found.extra.get("variant")
            if isinstance(variant, str) and found.size and variant.startswith(f"{found.size}-"):
                variant = variant[len(found.size) + 1 :]  # the size stays: the manifest keeps it
            for suffix in (found.extra.get("part"), variant):
                if isinstance(suffix, str) and suffix and name.endswith(f"-{suffix}"):
                    name = name[: -len(suffix) - 1]
            return found.model_copy(update={**io, "name": name, "verification": {}, "calibration": None, "sha256": ""})
        if not self.options.function:
            raise ConfigError(
                f"onnx:{self.spec} carries no edgefmp manifest; say what it does with --function "
                f"({', '.join(FUNCTIONS)}) or a recipe's `function` field"
            )
        preprocess = None
        if self.options.image_size:
            preprocess = Preprocess(size=self.options.image_size)
        return Manifest(
            name=path.stem,
            function=self.options.function,  # type: ignore[arg-type]
            task=self.options.task or "custom",
            labels=list(self.options.labels),
            preprocess=preprocess,
            inputs=inputs,
            outputs=outputs,
            source=self.uri,
        )
