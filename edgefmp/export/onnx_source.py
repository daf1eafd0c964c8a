"""`onnx:model.onnx` — an existing ONNX file, re-issued as variants with manifests.

The file itself is the reference: the fp32 variant must reproduce it exactly and the fp16 /
int8 variants are compared with it. An edgefmp manifest already embedded in (or beside) the
file is reused, so labels and preprocessing survive a re-quantization.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from edgefmp.backends.manifest import ONNX_METADATA_KEY, Manifest, Preprocess, TensorSpec, parse_manifest, read_sidecar
from edgefmp.errors import ConfigError, ExportError
from edgefmp.export.sources import BaseExport, Part, Source, random_feed
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


class OnnxFileSource(Source):
    kind = "onnx"

    def export_fp32(self, out: Path, batch: int | None) -> BaseExport:
        path = Path(self.spec).expanduser()
        if not path.is_file():
            raise ExportError(f"onnx:{self.spec}: no such file")
        check_onnx(path)  # corrupt or invalid files stop here with the checker's reason
        session = open_session(path)
        inputs = session.get_inputs()
        shapes = self.options.input_shapes
        if shapes and len(shapes) != len(inputs):
            raise ExportError(
                f"onnx:{self.spec}: --input-shape gives {len(shapes)} shapes, the model has "
                f"{len(inputs)} inputs ({', '.join(i.name for i in inputs)})"
            )
        dims: dict[str, int] = {}
        for index, arg in enumerate(inputs):
            if not shapes:
                break
            want = shapes[index]
            if len(want) != len(arg.shape):
                raise ExportError(
                    f"onnx:{self.spec}: input {arg.name} has rank {len(arg.shape)}, --input-shape gives {want}"
                )
            for d, w in zip(arg.shape, want, strict=False):
                if isinstance(d, int) and d > 0 and d != w:
                    raise ExportError(
                        f"onnx:{self.spec}: input {arg.name} has shape {list(arg.shape)}, --input-shape gives {want}"
                    )
                if isinstance(d, str):
                    dims[d] = w
        if batch is not None:
            for arg in inputs:
                if arg.shape and isinstance(arg.shape[0], str):
                    dims[arg.shape[0]] = batch
        rng = np.random.default_rng(self.options.seed)
        specs = [(a.name, a.type, list(a.shape)) for a in inputs]
        feeds = [random_feed(specs, rng, dims) for _ in range(max(1, self.options.samples))]
        reference = run_onnx(path, feeds, session)

        out.mkdir(parents=True, exist_ok=True)
        target = out / "model.onnx"
        shutil.copyfile(path, target)
        manifest = self._manifest(path, session)
        return BaseExport(folder=out, parts=[Part("model", target.name, feeds, reference)], manifest=manifest)

    def _manifest(self, path: Path, session: object) -> Manifest:
        found = embedded_manifest(path)
        inputs = tensor_specs(session.get_inputs())  # type: ignore[attr-defined]
        outputs = tensor_specs(session.get_outputs())  # type: ignore[attr-defined]
        io: dict[str, object] = {"inputs": inputs, "outputs": outputs, "source": self.uri}
        if found is not None:
            return found.model_copy(update={**io, "verification": {}, "calibration": None, "sha256": ""})
        if not self.options.function:
            raise ConfigError(
                f"onnx:{self.spec} carries no edgefmp manifest; say what it does with --function "
                "(detect, verify, vqa, classify, ocr, llm) or a recipe's `function` field"
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
