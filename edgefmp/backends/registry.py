"""Backend kinds by name, imported only when first used (so `import edgefmp` stays light)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgefmp.errors import ConfigError

if TYPE_CHECKING:
    from edgefmp.backends.base import Backend
    from edgefmp.backends.catalog import BackendSpec

BACKEND_KINDS: dict[str, str] = {
    "classical": "edgefmp.backends.classical:ClassicalBackend",
    "onnx": "edgefmp.backends.onnx:OnnxBackend",
    "tensorrt": "edgefmp.backends.tensorrt:TensorRTBackend",
    "remote": "edgefmp.backends.remote:RemoteBackend",
    "callable": "edgefmp.backends.callable:CallableBackend",
    "vlm": "edgefmp.backends.vlm:VLMBackend",
}


def list_backend_kinds() -> list[str]:
    return sorted(BACKEND_KINDS)


def backend_class(kind: str) -> type[Backend]:
    """The class implementing `kind`; the error lists the kinds that exist."""
    target = BACKEND_KINDS.get(kind)
    if target is None:
        raise ConfigError(f"unknown backend kind {kind!r}; available: {', '.join(list_backend_kinds())}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"backend kind {kind!r} cannot be loaded: {exc}") from exc
    cls: type[Backend] = getattr(module, attr)
    return cls


def create_backend(spec: BackendSpec) -> Backend:
    """The backend of one catalog entry, its `options` validated by its kind's Options model
    (a typo in an option fails here, naming the field)."""
    cls = backend_class(spec.kind)
    return cls(spec, cls.Options.model_validate(spec.options))
