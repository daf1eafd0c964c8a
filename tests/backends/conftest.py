"""Tiny real ONNX models for backend tests, built with the onnx helper API.

Each model computes its answer from the pixels, so a test exercises preprocessing, the real
onnxruntime session and postprocessing together:
- `yolo` / `detr`: find the box around the pixels whose first channel is > 0.5;
- `classify` / `attributes`: colour from channel means, shape from how much of the image is
  filled (a square fills all of it, a disc about 79%).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.manifest import ONNX_METADATA_KEY, Manifest, write_sidecar

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # only the toy-model fixtures need it; other tests here still run
    onnx = None

OPSET = 17


class _Graph:
    """A small helper to write ONNX graphs node by node."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        self._n += 1
        name = f"c{self._n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._n += 1
        out = f"t{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def model(self, inputs: list[Any], outputs: list[tuple[str, str, list[Any]]]) -> Any:
        outs = []
        for internal, name, shape in outputs:
            self.nodes.append(helper.make_node("Identity", [internal], [name]))
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        graph = helper.make_graph(self.nodes, "edgefmp-test", inputs, outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _image_input(g: _Graph, h: int, w: int, dtype: str) -> tuple[Any, str]:
    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    inp = helper.make_tensor_value_info("images", elem, [1, 3, h, w])
    x = g.op("Cast", "images", to=TensorProto.FLOAT) if dtype == "float16" else "images"
    return inp, x


def _box_of_bright(g: _Graph, x: str, h: int, w: int) -> tuple[str, str, str, str, str]:
    """x1, y1, x2, y2 (input pixels, x2/y2 exclusive) of pixels with channel 0 > 0.5, and
    `found` (1.0 when there are any); each of shape [1, 1, 1]."""
    c0 = g.op("Slice", x, g.const([0], np.int64), g.const([1], np.int64), g.const([1], np.int64))
    mask = g.op("Greater", c0, g.const(0.5))
    xs = np.broadcast_to(np.arange(w, dtype=np.float32), (1, 1, h, w))
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (1, 1, h, w))
    big, neg = g.const(1e6), g.const(-1e6)
    shape = g.const([1, 1, 1], np.int64)

    def red(op: str, v: str) -> str:
        return g.op("Reshape", g.op(op, v, keepdims=1), shape)

    one = g.const(1.0)
    x1 = red("ReduceMin", g.op("Where", mask, g.const(xs), big))
    y1 = red("ReduceMin", g.op("Where", mask, g.const(ys), big))
    x2 = g.op("Add", red("ReduceMax", g.op("Where", mask, g.const(xs), neg)), one)
    y2 = g.op("Add", red("ReduceMax", g.op("Where", mask, g.const(ys), neg)), one)
    found = red("ReduceMax", g.op("Cast", mask, to=TensorProto.FLOAT))
    return x1, y1, x2, y2, found


def yolo_model(h: int = 64, w: int = 64, channels_last: bool = False, dtype: str = "float32") -> Any:
    """Labels [a, b]; 3 anchors on the bright box: a (score 0.9), a again (0.72, to be
    suppressed by NMS) and b (0.63, kept: NMS is per class). Output (1, 6, 3) or (1, 3, 6)."""
    g = _Graph()
    inp, x = _image_input(g, h, w, dtype)
    x1, y1, x2, y2, found = _box_of_bright(g, x, h, w)
    half = g.const(0.5)
    cx = g.op("Mul", g.op("Add", x1, x2), half)
    cy = g.op("Mul", g.op("Add", y1, y2), half)
    bw, bh = g.op("Sub", x2, x1), g.op("Sub", y2, y1)
    zero = g.op("Mul", found, g.const(0.0))

    def anchor(sa: float, sb: float) -> str:
        return g.op("Concat", cx, cy, bw, bh, g.op("Mul", found, g.const(sa)), g.op("Mul", found, g.const(sb)), axis=1)

    out = g.op("Concat", anchor(0.9, 0.05), anchor(0.72, 0.05), anchor(0.1, 0.63), axis=2)  # (1, 6, 3)
    out = g.op("Add", out, zero)
    shape: list[Any] = [1, 6, 3]
    if channels_last:
        out, shape = g.op("Transpose", out, perm=[0, 2, 1]), [1, 3, 6]
    return g.model([inp], [(out, "output0", shape)])


def detr_model(h: int = 64, w: int = 64) -> Any:
    """Labels [a, b] + no-object; query 0 = class a on the bright box, query 1 = no-object."""
    g = _Graph()
    inp, x = _image_input(g, h, w, "float32")
    x1, y1, x2, y2, found = _box_of_bright(g, x, h, w)
    half = g.const(0.5)
    cx = g.op("Div", g.op("Mul", g.op("Add", x1, x2), half), g.const(float(w)))
    cy = g.op("Div", g.op("Mul", g.op("Add", y1, y2), half), g.const(float(h)))
    bw = g.op("Div", g.op("Sub", x2, x1), g.const(float(w)))
    bh = g.op("Div", g.op("Sub", y2, y1), g.const(float(h)))
    q0 = g.op("Concat", cx, cy, bw, bh, axis=2)  # (1, 1, 4)
    boxes = g.op("Concat", q0, g.const(np.full((1, 1, 4), 0.25)), axis=1)  # (1, 2, 4)
    logit_a = g.op("Sub", g.op("Mul", found, g.const(10.0)), g.const(5.0))  # +5 if found else -5
    row0 = g.op("Concat", logit_a, g.const([[[0.0]]]), g.const([[[0.0]]]), axis=2)
    logits = g.op("Concat", row0, g.const([[[0.0, 0.0, 6.0]]]), axis=1)  # (1, 2, 3)
    return g.model([inp], [(logits, "logits", [1, 2, 3]), (boxes, "pred_boxes", [1, 2, 4])])


def colour_model(h: int = 16, w: int = 16, dtype: str = "float32", attributes: bool = False) -> Any:
    """Logits red, green, blue = 10 x channel means; with `attributes`, also circle and square
    from the filled fraction (a square fills the image, a disc ~0.79 of it)."""
    g = _Graph()
    inp, x = _image_input(g, h, w, dtype)
    means = g.op("Reshape", g.op("ReduceMean", x, axes=[2, 3], keepdims=1), g.const([1, 3], np.int64))
    logits = g.op("Mul", means, g.const(10.0))
    n = 3
    if attributes:
        filled = g.op(
            "Cast", g.op("Greater", g.op("ReduceMax", x, axes=[1], keepdims=1), g.const(0.5)), to=TensorProto.FLOAT
        )
        fill = g.op("Reshape", g.op("ReduceMean", filled, keepdims=1), g.const([1, 1], np.int64))
        square = g.op("Mul", g.op("Sub", fill, g.const(0.9)), g.const(40.0))
        circle = g.op("Neg", square)
        logits = g.op("Concat", logits, circle, square, axis=1)
        n = 5
    return g.model([inp], [(logits, "logits", [1, n])])


def manifest_for(kind: str, size: tuple[int, int] = (64, 64), **overrides: Any) -> Manifest:
    base: dict[str, Any] = {
        "yolo": dict(
            name="toy-yolo",
            function="detect",
            task="object-detection",
            labels=["a", "b"],
            postprocess={"kind": "yolo", "activation": "none", "score_threshold": 0.3},
        ),
        "detr": dict(
            name="toy-detr",
            function="detect",
            task="object-detection",
            labels=["a", "b"],
            postprocess={"kind": "detr", "activation": "softmax", "score_threshold": 0.5},
        ),
        "classify": dict(
            name="toy-cls",
            function="classify",
            task="image-classification",
            labels=["red", "green", "blue"],
            postprocess={"kind": "classify"},
        ),
        "attributes": dict(
            name="toy-attr",
            function="vqa",
            task="attributes",
            labels=["red", "green", "blue", "circle", "square"],
            postprocess={
                "kind": "attributes",
                "activation": "softmax",
                "groups": {"color": ["red", "green", "blue"], "shape": ["circle", "square"]},
            },
        ),
    }[kind]
    pre = {"size": list(size), "resize": "letterbox", "pad_value": 0}
    pre.update(overrides.pop("preprocess", {}))
    base["preprocess"] = pre
    base.update(overrides)
    return Manifest.model_validate(base)


def save(model: Any, path: Path, manifest: Manifest | None = None, sidecar: Manifest | None = None) -> Path:
    if manifest is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = ONNX_METADATA_KEY, manifest.to_json_text()
    onnx.save(model, str(path))
    if sidecar is not None:
        write_sidecar(sidecar, path)
    return path


ModelFactory = Callable[..., Path]


@pytest.fixture
def make_model(tmp_path: Path) -> ModelFactory:
    """make_model(kind, manifest=..., sidecar=..., **builder_kwargs) -> path of a saved model."""
    builders = {
        "yolo": yolo_model,
        "detr": detr_model,
        "classify": colour_model,
        "attributes": lambda **kw: colour_model(attributes=True, **kw),
    }
    count = iter(range(1000))

    if onnx is None:
        pytest.skip("building toy ONNX models needs the onnx package (pip install edgefmp[dev])")

    def factory(kind: str, manifest: Manifest | None = None, sidecar: Manifest | None = None, **kw: Any) -> Path:
        path = tmp_path / f"{kind}-{next(count)}" / "model.onnx"
        path.parent.mkdir()
        return save(builders[kind](**kw), path, manifest, sidecar)

    return factory


def spec_for(path: Path, function: str, name: str = "toy") -> BackendSpec:
    return BackendSpec(name=name, kind="onnx", function=function, model=str(path))


@pytest.fixture
def toy_manifest() -> Callable[..., Manifest]:
    """toy_manifest(kind, size=(h, w), **overrides) -> a valid manifest for the toy models."""
    return manifest_for


@pytest.fixture
def onnx_spec() -> Callable[..., BackendSpec]:
    """onnx_spec(path, function, name='toy') -> a BackendSpec of kind onnx."""
    return spec_for
