"""`torch:pkg.module:factory` — a torch module built by a factory, exported with torch.onnx.

The factory is imported and called (with `factory_kwargs`), the module is run once on inputs
of `--input-shape` (so a shape mismatch is reported before exporting), then exported. The
default exporter is the TorchScript one (`dynamo=False`): it is what optimum uses, honours
`dynamic_axes` and takes well under a second on small models; `exporter="dynamo"` picks
torch.export instead.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.manifest import Manifest, Postprocess, Preprocess, TensorSpec
from edgefmp.errors import ConfigError, ExportError
from edgefmp.export.sources import BaseExport, Part, Source
from edgefmp.export.verify import Outputs

log = logging.getLogger(__name__)


def load_factory(spec: str) -> Any:
    """'pkg.module:factory' -> the callable, with errors that say which half is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"torch:{spec}: write the factory as MODULE:CALLABLE, e.g. torch:my_pkg.nets:build_detector")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExportError(f"torch:{spec}: cannot import module {module_name!r}: {exc}") from exc
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ExportError(f"torch:{spec}: module {module_name!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ExportError(f"torch:{spec}: {attr!r} is not callable")
    return factory


def flatten_outputs(value: Any, names: Sequence[str]) -> tuple[list[str], list[Any]]:
    """A module's return value (tensor, tuple, list, dict, ModelOutput) -> (names, tensors)."""
    import torch

    if isinstance(value, torch.Tensor):
        tensors, default = [value], ["output"]
    elif isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if isinstance(v, torch.Tensor)]
        tensors, default = [v for _, v in items], [k for k, _ in items]
    elif isinstance(value, (tuple, list)):
        tensors = [v for v in value if isinstance(v, torch.Tensor)]
        default = [f"output{i}" for i in range(len(tensors))]
    else:
        raise ExportError(f"the module returned {type(value).__name__}; return a tensor, a tuple or a dict of tensors")
    if names and len(names) != len(tensors):
        raise ExportError(f"--output-names gives {len(names)} names for {len(tensors)} outputs")
    return list(names) or default, tensors


def torch_export(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None,
    opset: int,
    exporter: str = "torchscript",
) -> None:
    """torch.onnx.export with warnings logged (not printed) and errors as ExportError."""
    import torch

    options: dict[str, Any] = (
        {"opset_version": max(opset, 18), "dynamo": True, "external_data": False}
        if exporter == "dynamo"
        else {"opset_version": opset, "dynamo": False, "do_constant_folding": True}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                **options,
            )
        except Exception as exc:
            raise ExportError(f"torch.onnx.export to {path} failed: {exc}") from exc
    for w in caught:
        log.debug("torch.onnx: %s", w.message)


class TorchSource(Source):
    kind = "torch"

    def build(self) -> Any:
        factory = load_factory(self.spec)
        try:
            module = factory(**self.options.factory_kwargs)
        except Exception as exc:
            raise ExportError(f"torch:{self.spec}: the factory raised {type(exc).__name__}: {exc}") from exc
        if not hasattr(module, "eval") or not hasattr(module, "forward"):
            raise ExportError(f"torch:{self.spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
        return module.eval()

    def export_fp32(self, out: Path, batch: int | None) -> BaseExport:
        import torch

        shapes = self.options.input_shapes
        if not shapes:
            raise ConfigError(f"torch:{self.spec}: give the input shape, e.g. --input-shape 1x3x320x320")
        if not self.options.function:
            raise ConfigError(
                f"torch:{self.spec}: say what the model does with --function (detect, verify, vqa, classify, ocr, llm)"
            )
        module = self.build()
        names = list(self.options.input_names) or (
            ["images"] if len(shapes) == 1 else [f"input{i}" for i in range(len(shapes))]
        )
        if len(names) != len(shapes):
            raise ConfigError(f"torch:{self.spec}: {len(names)} input names for {len(shapes)} input shapes")
        shapes = [[batch or s[0], *s[1:]] for s in shapes]
        generator = torch.Generator().manual_seed(self.options.seed)
        samples = [
            tuple(torch.rand(*s, generator=generator) for s in shapes) for _ in range(max(1, self.options.samples))
        ]
        try:
            with torch.no_grad():
                first = module(*samples[0])
        except Exception as exc:
            shown = ", ".join("x".join(map(str, s)) for s in shapes)
            raise ExportError(
                f"torch:{self.spec}: the module rejected inputs of shape {shown}: {type(exc).__name__}: {exc}; "
                "check --input-shape"
            ) from exc
        output_names, _ = flatten_outputs(first, self.options.output_names)
        dynamic = {n: {0: "batch"} for n in names + output_names} if batch is None else None
        out.mkdir(parents=True, exist_ok=True)
        target = out / "model.onnx"
        torch_export(
            module, samples[0], target, names, output_names, dynamic, self.options.opset or 17, self.options.exporter
        )

        feeds: list[dict[str, np.ndarray]] = []
        reference: list[Outputs] = []
        with torch.no_grad():
            for sample in samples:
                feeds.append({n: t.numpy() for n, t in zip(names, sample, strict=False)})
                _, tensors = flatten_outputs(module(*sample), output_names)
                reference.append({n: t.detach().float().numpy() for n, t in zip(output_names, tensors, strict=False)})
        manifest = self._manifest(names, shapes, output_names, reference[0], batch)
        return BaseExport(folder=out, parts=[Part("model", target.name, feeds, reference)], manifest=manifest)

    def _manifest(
        self, names: list[str], shapes: list[list[int]], output_names: list[str], outputs: Outputs, batch: int | None
    ) -> Manifest:
        def dims(shape: Sequence[int]) -> list[int | str]:
            return ["batch" if batch is None and i == 0 else d for i, d in enumerate(shape)]

        image = len(shapes) == 1 and len(shapes[0]) == 4 and shapes[0][1] == 3
        preprocess = Preprocess(size=(shapes[0][2], shapes[0][3])) if image else None
        if self.options.image_size and image:
            preprocess = Preprocess(size=self.options.image_size)
        post = Postprocess(kind="none")
        labels = list(self.options.labels)
        if labels and self.options.function in ("classify", "verify"):
            post = Postprocess(kind="classify")
        return Manifest(
            name=self.spec.rpartition(":")[2],
            function=self.options.function,  # type: ignore[arg-type]
            task=self.options.task or "custom",
            labels=labels,
            preprocess=preprocess,
            postprocess=post,
            inputs=[TensorSpec(name=n, shape=dims(s)) for n, s in zip(names, shapes, strict=False)],
            outputs=[TensorSpec(name=n, shape=dims(outputs[n].shape)) for n in output_names],
            source=self.uri,
        )
