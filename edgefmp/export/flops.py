"""Estimate the FLOPs of one forward pass from an ONNX graph.

Counted: MatMul, Gemm, Conv, ConvTranspose (2 x multiply-adds), which dominate vision and
transformer models; everything else is ignored, so the figure is an estimate and the manifest
says so in `extra.flops_estimated`. Shapes come from ONNX shape inference after the dynamic
input dimensions are pinned to those of a sample feed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _dims(value_info: Any) -> list[int] | None:
    shape = value_info.type.tensor_type.shape
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim]
    return dims if dims and all(d > 0 for d in dims) else None


def estimate_flops(model_path: str | Path, sample: Mapping[str, np.ndarray] | None = None) -> int | None:
    """FLOPs of one forward pass, or None when shapes cannot be inferred."""
    import onnx

    try:
        model = onnx.load(str(model_path))
        for inp in model.graph.input:
            dims = inp.type.tensor_type.shape.dim
            if sample and inp.name in sample:
                for d, size in zip(dims, np.asarray(sample[inp.name]).shape, strict=False):
                    d.ClearField("dim_param")
                    d.dim_value = int(size)
            elif dims and not dims[0].dim_value:  # one sample per pass: batch 1
                dims[0].ClearField("dim_param")
                dims[0].dim_value = 1
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # estimation is best effort
        log.debug("flops: shape inference failed on %s: %s", model_path, exc)
        return None
    graph = inferred.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = _dims(vi)
        if dims:
            shapes[vi.name] = dims
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if out is None:
            continue
        if node.op_type in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(node.input[0])
            if not a:
                continue
            k = a[-1]
            if node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute):
                k = a[0]
            total += 2 * int(np.prod(out)) * k
        elif node.op_type in ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv"):
            w_index = 3 if node.op_type == "QLinearConv" else 1
            w = shapes.get(node.input[w_index]) if len(node.input) > w_index else None
            if not w:
                continue
            per_out = int(np.prod(w[1:]))
            if node.op_type == "ConvTranspose":
                total += 2 * int(np.prod(shapes.get(node.input[0], [0]))) * int(np.prod([w[1], *w[2:]]))
            else:
                total += 2 * int(np.prod(out)) * per_out
    return total or None
