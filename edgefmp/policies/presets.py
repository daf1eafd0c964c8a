"""Policy presets: a YAML file names a policy and its options; `load_preset` builds it.

```yaml
version: 1
policy: adaptive            # a name from edgefmp.policies.list_policies()
description: keep frames under 40 ms on average
options:                    # constructor options of that policy
  targets: {latency_ms: 40}
  seed: 0
```

Options of `adaptive` are validated field by field here (pydantic), so a typo fails when
the file is read, naming the file and the field (`adaptive-latency.yaml: options.targets.
latency_ms: Input should be greater than 0`); other policies validate their own options
when built, and their errors are re-raised naming the file. Presets shipped with the
project live in the top-level `policies/` folder; `resolve_preset("adaptive-latency")`
finds them by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefmp.errors import ConfigError, PolicyError
from edgefmp.files import read_text_file
from edgefmp.policies import create, list_policies
from edgefmp.policies.base import Policy

PRESET_VERSION = 1

Resource = Literal["latency_ms", "energy_j", "bytes"]


class TargetsSpec(BaseModel):
    """`adaptive` targets: means per frame, or points of accuracy below the largest."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, gt=0)
    energy_j: float | None = Field(default=None, gt=0)
    bytes: float | None = Field(default=None, gt=0)
    accuracy_gap: float | None = Field(default=None, ge=0, le=100)
    minimize: Resource = "latency_ms"
    cost_weights: dict[Resource, float] = Field(default_factory=dict)


class AdaptiveOptions(BaseModel):
    """Every option `AdaptivePolicy` takes, with its valid range."""

    model_config = ConfigDict(extra="forbid")

    targets: TargetsSpec = Field(default_factory=TargetsSpec)
    seed: int | None = None
    prior_mean: float = Field(default=0.5, ge=0, le=1)
    prior_precision: float = Field(default=1.0, gt=0)
    noise: float = Field(default=0.5, gt=0)
    explore: float = Field(default=1.0, ge=0)
    epsilon: float = Field(default=0.02, ge=0, le=1)
    propensity_samples: int = Field(default=64, ge=1, le=100_000)
    reward_mode: Literal["correct", "scaled"] = "correct"
    reward_scale: float = Field(default=1000.0, gt=0)
    cost_prior_strength: float = Field(default=1.0, gt=0)
    dual_step: float = Field(default=0.05, gt=0)
    lambda_max: float = Field(default=10.0, gt=0)
    gap_step: float = Field(default=1.0, gt=0)


OPTION_MODELS: dict[str, type[BaseModel]] = {"adaptive": AdaptiveOptions}


class PresetSpec(BaseModel):
    """The top level of a preset file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    policy: str
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = _field_path(tuple(first["loc"]))
    return f"{prefix}{where}: {first['msg']}" if where else f"{prefix.rstrip('.')}: {first['msg']}"


def default_presets_dir() -> Path:
    """The project's `policies/` folder (next to the package in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "policies"


def list_presets(folder: str | Path | None = None) -> list[str]:
    """Names of the presets in `folder` (default: the project's `policies/`)."""
    folder = Path(folder) if folder is not None else default_presets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_preset(name_or_path: str | Path) -> Path:
    """A preset file from a path, or from a name in the project's `policies/` folder."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = default_presets_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    available = ", ".join(list_presets()) or "none"
    raise ConfigError(f"no policy preset {str(name_or_path)!r}: not a file, and not one of: {available}")


def parse_preset(data: Any, source: str) -> PresetSpec:
    """Validate a preset mapping; `source` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'policy:', got {type(data).__name__}")
    try:
        spec = PresetSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from exc
    if spec.policy.partition(":")[0] not in list_policies():
        raise ConfigError(f"{source}: policy: unknown policy {spec.policy!r}; available: {', '.join(list_policies())}")
    model = OPTION_MODELS.get(spec.policy)
    if model is not None:
        try:
            spec.options = model.model_validate(spec.options).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_first_error(exc, 'options.')}") from exc
    return spec


def load_preset_spec(path: str | Path) -> PresetSpec:
    """Read and validate a preset file."""
    path = Path(path)
    text = read_text_file(path, "policy preset", "a YAML preset such as policies/template.yaml")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_preset(data, str(path))


def build_policy(spec: PresetSpec, source: str = "preset", **overrides: Any) -> Policy:
    """Create the policy a validated preset describes; `overrides` replace options."""
    options = {**spec.options, **overrides}
    try:
        return create(spec.policy, **options)
    except PolicyError as exc:
        raise ConfigError(f"{source}: options: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{source}: options: {spec.policy} does not take these options: {exc}") from exc


def load_preset(name_or_path: str | Path, **overrides: Any) -> Policy:
    """Build the policy of a preset file or name (see `resolve_preset`)."""
    path = resolve_preset(name_or_path)
    return build_policy(load_preset_spec(path), str(path), **overrides)


__all__ = [
    "PRESET_VERSION",
    "AdaptiveOptions",
    "PresetSpec",
    "TargetsSpec",
    "build_policy",
    "default_presets_dir",
    "list_presets",
    "load_preset",
    "load_preset_spec",
    "parse_preset",
    "resolve_preset",
]
