"""The catalog: for every function, its backends in order, cheapest first.

A catalog is a YAML file:

```yaml
version: 1
name: demo
functions:
  detect:
    - name: shapes-cv
      kind: classical
      options: {detector: shapes}
    - name: shapes-onnx-s
      kind: onnx
      model: ../models/shapedet-s/model.onnx     # relative to this file
```

Errors name the file and the field (`catalog.yaml: functions.detect[1].kind: ...`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgefmp.backends.base import Backend
from edgefmp.backends.registry import backend_class, create_backend
from edgefmp.errors import BackendUnavailable, ConfigError
from edgefmp.files import read_text_file
from edgefmp.results import FUNCTIONS

log = logging.getLogger(__name__)

CATALOG_VERSION = 1


class CostPrior(BaseModel):
    """What a backend is expected to cost before it has been measured (from `edgefmp profile`
    or written by hand). `params` feeds the paper's parameter-count cost proxy."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0)
    energy_j: float | None = Field(default=None, ge=0)
    bytes_per_call: float | None = Field(default=None, ge=0)
    params: float | None = Field(default=None, ge=0)


class BackendSpec(BaseModel):
    """One backend entry of a catalog."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: str
    function: str = ""
    model: str | None = None
    location: Literal["device", "remote"] | None = None
    power_w: float | None = Field(default=None, gt=0, description="power drawn while busy, for estimated energy")
    cost: CostPrior = Field(default_factory=CostPrior)
    accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "share of right answers measured offline (e.g. `edgefmp zoo evaluate`): the policies' accuracy prior"
        ),
    )
    options: dict[str, Any] = Field(default_factory=dict)
    base_dir: str = Field(default=".", description="folder relative paths resolve against")

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


class CatalogSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = CATALOG_VERSION
    name: str = "catalog"
    functions: dict[str, list[BackendSpec]]

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != CATALOG_VERSION:
            raise ValueError(f"catalog version {v} is not supported; this edgefmp reads version {CATALOG_VERSION}")
        return v

    @field_validator("functions")
    @classmethod
    def _known_functions(cls, v: dict[str, list[BackendSpec]]) -> dict[str, list[BackendSpec]]:
        for fn, backends in v.items():
            if fn not in FUNCTIONS:
                raise ValueError(f"unknown function {fn!r}; available: {', '.join(FUNCTIONS)}")
            if not backends:
                raise ValueError(f"function {fn!r} lists no backends")
            names = [b.name for b in backends]
            if len(set(names)) != len(names):
                raise ValueError(f"function {fn!r} lists a backend name twice: {names}")
        return v


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_catalog(data: Any, source: str, base_dir: Path) -> CatalogSpec:
    """Validate a catalog mapping; `source` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'functions:', got {type(data).__name__}")
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{source}: {_field_path(tuple(first['loc']))}: {first['msg']}") from exc
    for fn, backends in spec.functions.items():
        for i, b in enumerate(backends):
            b.function = fn
            b.base_dir = str(base_dir)
            where = f"{source}: functions.{fn}[{i}]"
            cls = backend_class_or_error(b.kind, where)
            try:
                cls.Options.model_validate(b.options)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ConfigError(f"{where}.options.{_field_path(tuple(first['loc']))}: {first['msg']}") from exc
    return spec


def backend_class_or_error(kind: str, where: str) -> type[Backend]:
    try:
        return backend_class(kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}.kind: {exc}") from exc


def load_catalog(path: str | Path) -> CatalogSpec:
    """Read and validate a catalog file."""
    path = Path(path)
    text = read_text_file(path, "catalog", "a catalog YAML such as edgefmp/data/demo_catalog.yaml")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_catalog(data, str(path), path.resolve().parent)


def default_catalog_path() -> Path:
    """The bundled demo catalog."""
    return Path(__file__).resolve().parent.parent / "data" / "demo_catalog.yaml"


class Catalog:
    """A catalog whose backends are created and ready to call."""

    def __init__(self, spec: CatalogSpec, backends: dict[str, list[Backend]]) -> None:
        self.spec = spec
        self._backends = backends

    @classmethod
    def open(cls, spec: CatalogSpec, *, warmup: bool = True) -> Catalog:
        created: dict[str, list[Backend]] = {}
        try:
            for fn, specs in spec.functions.items():
                created[fn] = []
                skipped: list[str] = []
                for b in specs:
                    try:
                        backend = create_backend(b)
                    except BackendUnavailable as exc:
                        # A backend this machine cannot run (no TensorRT, no GPU) must not stop
                        # the others: the catalog serves what it can, and says what it skipped.
                        log.warning("skipping backend %s for %s: %s", b.name, fn, exc)
                        skipped.append(f"{b.name}: {exc}")
                        continue
                    created[fn].append(backend)
                    if warmup:
                        backend.warmup()
                    log.info("backend %s (%s) opened for %s", b.name, b.kind, fn)
                if not created[fn]:
                    raise ConfigError(
                        f"catalog {spec.name!r}: no backend of function {fn!r} can run on this machine: "
                        + "; ".join(skipped)
                    )
        except Exception:
            for backends in created.values():
                for backend in backends:
                    backend.close()
            raise
        return cls(spec, created)

    @classmethod
    def from_backends(cls, backends: dict[str, list[Backend]], name: str = "in-memory") -> Catalog:
        """A catalog of backends built in code (tests, notebooks, benchmarks)."""
        spec = CatalogSpec(name=name, functions={fn: [b.spec for b in bs] for fn, bs in backends.items()})
        return cls(spec, backends)

    @property
    def functions(self) -> list[str]:
        return list(self._backends)

    def backends(self, function: str) -> list[Backend]:
        try:
            return self._backends[function]
        except KeyError:
            raise ConfigError(
                f"catalog {self.spec.name!r} has no backend for function {function!r}; "
                f"it serves: {', '.join(self._backends) or 'nothing'}"
            ) from None

    def close(self) -> None:
        for backends in self._backends.values():
            for backend in backends:
                backend.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
