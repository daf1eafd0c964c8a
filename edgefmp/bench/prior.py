"""A profile as the policies' cost prior: read it, fold it into a catalog, write that catalog.

`apply_profile(catalog_spec, profile)` is how `edgefmp bench --profile` (and any session that
wants the device's measured costs) turns an `edgefmp profile` JSON into the catalog's `cost:`
priors; `catalog_yaml` writes such a catalog so `edgefmp run --catalog` can use it as is.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from edgefmp.backends.catalog import CatalogSpec
from edgefmp.bench.profile import PROFILE_FORMAT, PROFILE_VERSION
from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)


def read_profile(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the profile: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ConfigError(f"{path}: not an edgefmp profile (format {PROFILE_FORMAT!r})")
    if data.get("version") != PROFILE_VERSION:
        raise ConfigError(f"{path}: profile version {data.get('version')!r}; this edgefmp reads {PROFILE_VERSION}")
    return data


def apply_profile(catalog: CatalogSpec, profile: dict[str, Any], statistic: str = "mean") -> CatalogSpec:
    """A copy of `catalog` whose backends' `cost:` priors are what `profile` measured.

    Backends are matched by (function, name); a backend the profile lacks (or whose row has
    an error) keeps its prior. `latency_ms` takes the chosen statistic (the mean by default,
    because budgets bound means), `energy_j` and `bytes_per_call` the means per call,
    `params` the counted parameters when the catalog gives none.
    """
    if statistic not in ("mean", "p50", "p90", "p95", "p99"):
        raise ConfigError(f"apply_profile: statistic must be mean, p50, p90, p95 or p99, got {statistic!r}")
    rows = {(r["function"], r["name"]): r for r in profile.get("backends", []) if not r.get("error")}
    out = catalog.model_copy(deep=True)
    applied = 0
    for fn, backends in out.functions.items():
        for b in backends:
            row = rows.get((fn, b.name))
            if row is None or not row.get("latency_ms"):
                continue
            lat = float(row["latency_ms"][statistic])
            b.cost.latency_ms = lat if math.isfinite(lat) else b.cost.latency_ms
            if row.get("energy_j_per_call") is not None:
                b.cost.energy_j = float(row["energy_j_per_call"])
            if row.get("bytes_per_call") is not None:
                b.cost.bytes_per_call = float(row["bytes_per_call"])
            if b.cost.params is None and row.get("params"):
                b.cost.params = float(row["params"])
            applied += 1
    log.info("profile applied to %d backends of catalog %s", applied, catalog.name)
    return out


def catalog_yaml(spec: CatalogSpec, out_dir: str | Path) -> str:
    """A catalog spec as YAML to be written in `out_dir`: model paths are rewritten relative
    to that folder, so the new file finds the same models wherever it is written."""
    import yaml

    data = spec.model_dump(exclude_defaults=True)
    for fn, backends in data["functions"].items():
        for b, model in zip(backends, spec.functions[fn], strict=True):
            b.pop("function", None)
            b.pop("base_dir", None)
            if model.model is not None and model.kind in ("onnx", "tensorrt"):  # a file, not a model name
                b["model"] = os.path.relpath(model.resolve(model.model).resolve(), Path(out_dir).resolve())
    return str(yaml.safe_dump(data, sort_keys=False))


__all__ = ["apply_profile", "catalog_yaml", "read_profile"]
