"""The demo zoo: small detectors and attribute classifiers trained on composed scenes.

`edgefmp zoo build` trains them (torch, CPU, seeded) and exports ONNX fp32 + int8 static with
manifests into models/; `edgefmp zoo evaluate` measures accuracy under camera corruptions,
latency and size, and writes models/README.md and models/catalog.yaml.

Modules: `specs` (the models by name, no torch), `data` (training and test sets from
edgefmp.scenes), `nets` and `train` (torch), `export` (ONNX, int8, manifests), `evaluate`,
`metrics` and `report` (ONNX Runtime measurements), `catalog`, `build`, `commands` (CLI).
torch is imported only by `nets`, `train` and inside the functions of `build` and `export`
that need it, so measuring the zoo works without torch.
"""

from __future__ import annotations

from edgefmp.zoo.specs import ZOO, ZooModel, select, zoo_model

__all__ = ["ZOO", "ZooModel", "select", "zoo_model"]
