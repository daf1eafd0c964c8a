"""Export a trained zoo model: ONNX fp32, int8 static, manifests, parity checks.

Each model gets a folder `<out>/<name>/` with `model.onnx` (fp32) and `model.int8.onnx`
(int8 static, QDQ, per-channel weights, calibrated on training-split frames), each with the
manifest embedded and beside it. The batch axis is dynamic so evaluation can batch; the
runtime feeds batches of one. Both files are checked against the torch model (fp32 within
1e-4, int8 by cosine similarity) and the report goes into the manifest's `verification`; the
build (edgefmp.zoo.build) drops an int8 variant that fails its check and keeps the fp32 one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.manifest import Calibration, Manifest, Postprocess, Preprocess, TensorSpec
from edgefmp.errors import ExportError
from edgefmp.export.flops import estimate_flops
from edgefmp.export.publish import embed_manifest, onnx_params, tool_versions
from edgefmp.export.quantize import StaticQuantConfig, quantize_static_int8
from edgefmp.export.verify import Tolerance, VerifyReport, default_tolerance, verify_onnx
from edgefmp.scenes import COLORS, SHAPES
from edgefmp.zoo.specs import ATTR_INPUT_HW, DET_INPUT_HW, ZooModel

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "images"
DET_OUTPUT = "output0"
ATTR_OUTPUT = "logits"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"

# Detector classes, shape-major: index = shape * 8 + colour, as ShapeDet.decode lays them out.
DET_LABELS: list[str] = [f"{c} {s}" for s in SHAPES for c in COLORS]
ATTR_LABELS: list[str] = [*COLORS, *SHAPES]

# Only convolutions (and what ORT fuses into them) are quantized: the detector's in-graph
# decoding (softplus, softmax, products) stays float, where int8 would cost accuracy for no speed.
QUANT_OP_TYPES: tuple[str, ...] = ("Conv", "Relu", "MaxPool", "GlobalAveragePool", "Gemm", "MatMul")


def preprocess_of(model: ZooModel) -> Preprocess:
    size = DET_INPUT_HW if model.family == "shapedet" else ATTR_INPUT_HW
    return Preprocess(size=size, resize="stretch", color="RGB", scale=1.0 / 255.0, layout="NCHW", dtype="float32")


def base_manifest(model: ZooModel, extra: dict[str, Any]) -> Manifest:
    """The manifest before export facts (params, flops, hashes, verification) are known."""
    pre = preprocess_of(model)
    h, w = pre.size
    common: dict[str, Any] = {
        "name": model.name,
        "size": model.size,
        "preprocess": pre,
        "inputs": [TensorSpec(name=INPUT_NAME, shape=["batch", 3, h, w])],
        "source": f"edgefmp.zoo ({model.family}, base width {model.base}); rebuild with `edgefmp zoo build`",
        "extra": extra,
    }
    if model.family == "shapedet":
        n = (h // 8) * (w // 8)
        return Manifest(
            function="detect",
            task="object-detection",
            labels=DET_LABELS,
            postprocess=Postprocess(
                kind="yolo", activation="none", score_threshold=0.3, iou_threshold=0.5, max_detections=20
            ),
            outputs=[TensorSpec(name=DET_OUTPUT, shape=["batch", 4 + len(DET_LABELS), n])],
            **common,
        )
    return Manifest(
        function="verify",
        task="image-attributes",
        labels=ATTR_LABELS,
        postprocess=Postprocess(
            kind="attributes",
            activation="softmax",
            groups={"color": list(COLORS), "shape": list(SHAPES)},
            verify_threshold=0.5,
        ),
        outputs=[TensorSpec(name=ATTR_OUTPUT, shape=["batch", len(ATTR_LABELS)])],
        **common,
    )


def export_fp32(module: Any, model: ZooModel, path: Path) -> None:
    """torch module (the exported graph: ShapeDet with decoding, or AttrNet) -> ONNX."""
    import torch

    from edgefmp.export.torch_source import torch_export

    pre = preprocess_of(model)
    sample = torch.rand(1, 3, *pre.size)
    out_name = DET_OUTPUT if model.family == "shapedet" else ATTR_OUTPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    torch_export(
        module,
        (sample,),
        path,
        input_names=[INPUT_NAME],
        output_names=[out_name],
        dynamic_axes={INPUT_NAME: {0: "batch"}, out_name: {0: "batch"}},
        opset=OPSET,
    )


def feeds_of(images: np.ndarray) -> list[dict[str, np.ndarray]]:
    """uint8 (N, H, W, 3) images already at the input size -> one feed per image."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    return [{INPUT_NAME: np.ascontiguousarray(x[i : i + 1])} for i in range(len(x))]


def quantize(
    fp32: Path, int8: Path, calib_images: np.ndarray, method: str = "minmax", quant_format: str = "qdq"
) -> Calibration:
    """int8 static quantization calibrated on `calib_images` (uint8, at the input size)."""
    config = StaticQuantConfig(
        method=method,  # type: ignore[arg-type]
        per_channel=True,
        quant_format=quant_format,  # type: ignore[arg-type]
        op_types=QUANT_OP_TYPES,
    )
    return quantize_static_int8(fp32, int8, feeds_of(calib_images), config)


def verify_export(
    path: Path,
    manifest: Manifest,
    precision: str,
    parity_feeds: Sequence[dict[str, np.ndarray]],
    reference: Sequence[dict[str, np.ndarray]],
    tolerance: Tolerance | None = None,
) -> VerifyReport:
    """Check `path` (checker, output names and shapes) and compare its outputs with `reference`,
    within `tolerance` (default: the precision's). Never raises for a failed check: the caller
    decides what a failure means (publish raises; the zoo build drops a failed int8 variant)."""
    return verify_onnx(
        path,
        parity_feeds,
        reference_outputs=reference,
        expected_outputs=manifest.outputs,
        tolerance=tolerance or default_tolerance(precision),
    )


def publish(
    path: Path,
    manifest: Manifest,
    precision: str,
    flops: int | None,
    parity_feeds: Sequence[dict[str, np.ndarray]],
    reference: Sequence[dict[str, np.ndarray]],
    calibration: Calibration | None = None,
    accuracy: dict[str, Any] | None = None,
    tolerance: Tolerance | None = None,
) -> Manifest:
    """Verify `path` against `reference` outputs, then embed and write its manifest.

    Raises ExportError when verification fails: a zoo model that does not match its source
    must not be committed.
    """
    report = verify_export(path, manifest, precision, parity_feeds, reference, tolerance)
    if not report.passed:
        raise ExportError(f"{path}: verification failed: {report.reason}")
    return embed_verified(path, manifest, precision, flops, report, calibration, accuracy)


def embed_verified(
    path: Path,
    manifest: Manifest,
    precision: str,
    flops: int | None,
    report: VerifyReport,
    calibration: Calibration | None = None,
    accuracy: dict[str, Any] | None = None,
) -> Manifest:
    """Embed and write the manifest of `path`, which passed verification (`report`)."""
    if not report.passed:
        raise ExportError(f"{path}: verification failed: {report.reason}")
    verification = report.to_dict()
    if accuracy is not None:
        verification["accuracy"] = accuracy
    final = manifest.model_copy(
        update={
            "precision": precision,
            "flops": flops,
            "tool_versions": tool_versions(),
            "calibration": calibration,
            "verification": verification,
            "extra": {**manifest.extra, "flops_estimated": True, "file_bytes": path.stat().st_size},
        }
    )
    return embed_manifest(path, final)


def graph_facts(path: Path, model: ZooModel) -> tuple[int, int | None]:
    """(weights, estimated FLOPs of one forward pass) of an fp32 export; the int8 variant
    records the same figures, those of the network it approximates."""
    pre = preprocess_of(model)
    return onnx_params(path), estimate_flops(path, {INPUT_NAME: np.zeros((1, 3, *pre.size), np.float32)})
