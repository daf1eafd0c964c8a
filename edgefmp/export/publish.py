"""Write a variant's manifest where the runtime looks for it: inside the ONNX file and beside it.

The sha256 recorded is that of the ONNX model *without* the embedded manifest (serialised
deterministically), so it can be recomputed from the delivered file: embedding the manifest
would otherwise change the very hash it records.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from edgefmp.backends.manifest import ONNX_METADATA_KEY, Manifest, write_sidecar
from edgefmp.errors import ExportError

log = logging.getLogger(__name__)

TOOLS = ("edgefmp", "onnx", "onnxruntime", "torch", "transformers", "optimum", "optimum-onnx", "tensorrt")


def tool_versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Installed versions of the tools an export may use (read from package metadata, so no
    heavy import happens here)."""
    found: dict[str, str] = {}
    for name in TOOLS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    found.update(extra or {})
    return found


def _load(model_path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(model_path))
    except Exception as exc:
        raise ExportError(f"{model_path}: not a readable ONNX file: {exc}") from exc


def model_sha256(model: Any) -> str:
    """sha256 of an onnx.ModelProto with any embedded edgefmp manifest left out."""
    copy = type(model)()
    copy.CopyFrom(model)
    keep = [p for p in copy.metadata_props if p.key != ONNX_METADATA_KEY]
    del copy.metadata_props[:]
    copy.metadata_props.extend(keep)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_file_sha256(model_path: Path) -> str:
    return model_sha256(_load(model_path))


def embed_manifest(model_path: Path, manifest: Manifest) -> Manifest:
    """Fill `sha256`, embed the manifest under metadata_props[`edgefmp.manifest`], save the
    model and write the sidecar; returns the manifest as written."""
    import onnx

    model = _load(model_path)
    final = manifest.model_copy(update={"sha256": model_sha256(model)})
    keep = [p for p in model.metadata_props if p.key != ONNX_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, final.to_json_text()
    tmp = model_path.with_name(model_path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(model_path)
    write_sidecar(final, model_path)
    log.debug("manifest embedded in %s", model_path)
    return final


def onnx_params(model_path: Path) -> int:
    """Number of weights: elements of every float initializer of the graph."""
    import numpy as np

    model = _load(model_path)
    total = 0
    for init in model.graph.initializer:
        if init.data_type in (1, 10, 11, 16):  # float, float16, double, bfloat16
            total += int(np.prod(init.dims)) if init.dims else 1
    return total
