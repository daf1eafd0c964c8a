"""Lower an fp32 ONNX model to fp16, int8 dynamic or int8 static (calibrated) precision.

Each function reads one ONNX file and writes another; none of them touches the manifest,
so the caller (the export pipeline, or the demo-zoo builder) decides what to record. Static
quantization returns the `Calibration` entry the manifest needs (method, samples, hash).

Example (int8 static from a folder of frames, for a model with a manifest preprocess)::

    from edgefmp.export.quantize import StaticQuantConfig, quantize_images_static_int8
    calib = quantize_images_static_int8(
        "det.onnx", "det.int8.onnx", images=load_frames("frames/"),
        preprocess=manifest.preprocess, config=StaticQuantConfig(method="entropy"))
    manifest = manifest.model_copy(update={"precision": "int8-static", "calibration": calib})

The engines are ONNX Runtime's own tools (onnxruntime.quantization, and
onnxruntime.transformers.float16 for fp16); their errors are re-raised as ExportError.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgefmp.backends.manifest import Calibration, Preprocess
from edgefmp.errors import ExportError
from edgefmp.export.calibration import feeds_sha256, image_feeds

log = logging.getLogger(__name__)

CalibMethod = Literal["minmax", "entropy", "percentile"]
CALIB_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class StaticQuantConfig:
    """Options of int8 static quantization.

    QDQ format with uint8 activations and int8 per-channel weights is what ONNX Runtime's CPU
    and TensorRT execution providers both run fastest, hence the defaults.
    `exclude_op_types` keeps numerically fragile ops (Softmax, LayerNorm-like) in float when
    a model loses too much accuracy; `exclude_nodes` does the same by node name.
    """

    method: CalibMethod = "minmax"
    per_channel: bool = True
    percentile: float = 99.999
    symmetric_activations: bool = False
    activation_type: Literal["uint8", "int8"] = "uint8"
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    op_types: tuple[str, ...] | None = None
    exclude_op_types: tuple[str, ...] = ()
    exclude_nodes: tuple[str, ...] = ()
    preprocess_graph: bool = True
    extra_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in CALIB_METHODS:
            raise ExportError(
                f"calibration method {self.method!r} is not supported; choose one of {', '.join(CALIB_METHODS)}"
            )
        if not 0.0 < self.percentile <= 100.0:
            raise ExportError(f"calibration percentile must lie in (0, 100], got {self.percentile}")


def _check_source(model_path: Path) -> None:
    if not model_path.is_file():
        raise ExportError(f"quantize: model {model_path} does not exist")


def convert_fp16(
    model_path: str | Path,
    out_path: str | Path,
    keep_io_types: bool = True,
    op_block_list: Sequence[str] | None = None,
) -> Path:
    """Write an fp16 copy of `model_path`.

    `keep_io_types` keeps float32 inputs and outputs (casts inside the graph) so the runtime's
    preprocessing and decoding do not change with precision; turn it off on devices where the
    two casts matter.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src, dst = Path(model_path), Path(out_path)
    _check_source(src)
    try:
        model = onnx.load(str(src))
        kwargs: dict[str, Any] = {"keep_io_types": keep_io_types}
        if op_block_list is not None:
            kwargs["op_block_list"] = list(op_block_list)
        converted = convert_float_to_float16(model, **kwargs)
        topological_sort(converted.graph)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(converted, str(dst))
    except Exception as exc:  # engine errors of many kinds
        raise ExportError(f"fp16 conversion of {src} failed: {exc}") from exc
    log.info("fp16: %s -> %s", src, dst)
    return dst


def _subgraph_inputs(node: Any) -> set[str]:
    """Names a node's subgraphs (If/Loop/Scan bodies) read from the enclosing scope."""
    import onnx

    names: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            local = {i.name for i in graph.initializer} | {i.name for i in graph.input}
            local |= {out for inner in graph.node for out in inner.output}
            for inner in graph.node:
                names.update(n for n in inner.input if n not in local)
                names |= _subgraph_inputs(inner) - local
    return names


def topological_sort(graph: Any) -> None:
    """Reorder `graph.node` in place so every node comes after its producers.

    onnxruntime's float16 converter appends the casts it inserts for `keep_io_types` at the
    end of the graph, which onnx.checker rightly rejects; this repairs the order.
    """
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    deps: list[set[int]] = []
    for node in graph.node:
        wanted = set(node.input) | _subgraph_inputs(node)
        deps.append({producer[name] for name in wanted if name in producer})
    order: list[int] = []
    state = [0] * len(graph.node)  # 0 new, 1 visiting, 2 done
    for start in range(len(graph.node)):
        stack = [(start, iter(sorted(deps[start])))]
        if state[start]:
            continue
        state[start] = 1
        while stack:
            index, pending = stack[-1]
            nxt = next(pending, None)
            if nxt is None:
                stack.pop()
                state[index] = 2
                order.append(index)
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(deps[nxt]))))
            elif state[nxt] == 1:
                raise ExportError(f"graph {graph.name!r} has a cycle through node {graph.node[nxt].name!r}")
    nodes = [graph.node[i] for i in order]
    copies = [type(n)() for n in nodes]
    for copy, node in zip(copies, nodes, strict=False):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def quantize_dynamic_int8(
    model_path: str | Path,
    out_path: str | Path,
    per_channel: bool = False,
    op_types: Sequence[str] | None = None,
) -> Path:
    """Write an int8 dynamic-quantized copy: weights int8, activations quantized at run time.

    Needs no calibration data; best for transformer and LSTM models on CPU (MatMul-heavy).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(model_path), Path(out_path)
    _check_source(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types) if op_types else None,
        )
    except Exception as exc:
        raise ExportError(f"int8 dynamic quantization of {src} failed: {exc}") from exc
    log.info("int8 dynamic: %s -> %s", src, dst)
    return dst


def _excluded_nodes(model_path: Path, config: StaticQuantConfig) -> list[str]:
    names = list(config.exclude_nodes)
    if config.exclude_op_types:
        import onnx

        graph = onnx.load(str(model_path), load_external_data=False).graph
        names += [n.name for n in graph.node if n.op_type in config.exclude_op_types and n.name]
    return names


def _preprocess_graph(src: Path, workdir: Path) -> Path:
    """Shape inference + graph optimisation that ORT recommends before static quantization;
    if it fails on an exotic graph we quantize the original and say so."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = workdir / "preprocessed.onnx"
    try:
        # symbolic shape inference is skipped: when it is incomplete (common on transformer
        # graphs) ONNX Runtime dumps sym_shape_infer_temp.onnx + a .data file into the
        # current directory; plain ONNX shape inference and the graph optimisation still run.
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
        return out
    except Exception as exc:
        log.warning("quantization pre-processing of %s failed (%s); quantizing the model as is", src, exc)
        return src


def quantize_static_int8(
    model_path: str | Path,
    out_path: str | Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    config: StaticQuantConfig | None = None,
) -> Calibration:
    """Write an int8 static-quantized copy, calibrated on `feeds` (input name -> array).

    Returns the manifest's `Calibration` entry (method, number of samples, sha256 of feeds).
    An empty calibration set is an error rather than a silent fallback to dynamic ranges.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    cfg = config or StaticQuantConfig()
    src, dst = Path(model_path), Path(out_path)
    _check_source(src)
    samples = [dict(f) for f in feeds]
    if not samples:
        raise ExportError(f"int8 static quantization of {src}: the calibration set is empty")

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, data: list[dict[str, np.ndarray]]) -> None:
            self._iter: Iterator[dict[str, np.ndarray]] = iter(data)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._iter, None)

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    extra: dict[str, Any] = {"CalibTensorRangeSymmetric": cfg.symmetric_activations}
    if cfg.method == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    extra.update(cfg.extra_options)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgefmp-quant-") as tmp:
        source = _preprocess_graph(src, Path(tmp)) if cfg.preprocess_graph else src
        try:
            quantize_static(
                str(source),
                str(dst),
                _Reader(samples),
                quant_format=QuantFormat.QDQ if cfg.quant_format == "qdq" else QuantFormat.QOperator,
                per_channel=cfg.per_channel,
                activation_type=QuantType.QUInt8 if cfg.activation_type == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(cfg.op_types) if cfg.op_types else None,
                nodes_to_exclude=_excluded_nodes(source, cfg) or None,
                calibrate_method=methods[cfg.method],
                extra_options=extra,
            )
        except Exception as exc:
            raise ExportError(
                f"int8 static quantization of {src} ({cfg.method}, {len(samples)} samples) failed: {exc}"
            ) from exc
    log.info("int8 static (%s, %d samples): %s -> %s", cfg.method, len(samples), src, dst)
    return Calibration(method=cfg.method, samples=len(samples), sha256=feeds_sha256(samples))


def quantize_images_static_int8(
    model_path: str | Path,
    out_path: str | Path,
    images: Iterable[np.ndarray],
    preprocess: Preprocess,
    config: StaticQuantConfig | None = None,
    input_name: str | None = None,
    extra_inputs: Mapping[str, np.ndarray] | None = None,
) -> Calibration:
    """Static int8 for a vision model: RGB uint8 `images` -> feeds through `preprocess`.

    `input_name` defaults to the model's first graph input; `extra_inputs` are fed unchanged
    with every image (for example fixed text-query token ids).
    """
    src = Path(model_path)
    _check_source(src)
    if input_name is None:
        input_name = first_input_name(src)
    feeds = image_feeds(images, preprocess, input_name, extra_inputs)
    return quantize_static_int8(src, out_path, feeds, config)


def first_input_name(model_path: Path) -> str:
    """The name of the first real input of an ONNX graph (initializers are not inputs)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]
    if not names:
        raise ExportError(f"{model_path}: the graph has no inputs")
    return str(names[0])


__all__ = [
    "CALIB_METHODS",
    "StaticQuantConfig",
    "convert_fp16",
    "first_input_name",
    "quantize_dynamic_int8",
    "quantize_images_static_int8",
    "quantize_static_int8",
    "topological_sort",
]
