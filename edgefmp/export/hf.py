"""`hf:ID_OR_FOLDER` — a transformers model exported through optimum-onnx.

optimum knows how to trace each architecture (which inputs, which dynamic axes, how to split
an encoder-decoder or add past key/values); we add what it does not do: the source's own
outputs as the parity reference, a manifest (labels, preprocessing, postprocessing) and an
end-to-end check of generative models (logits and greedy tokens of the ONNX Runtime model
against the torch model). Decoder-style VLMs (SmolVLM / Idefics3), which optimum cannot
export, go through edgefmp's own torch.onnx path instead (edgefmp.export.vlm).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.manifest import Manifest, Postprocess, Preprocess
from edgefmp.errors import ConfigError, ExportError
from edgefmp.export.onnx_source import tensor_specs
from edgefmp.export.sources import BaseExport, Feed, Part, Source, random_feed
from edgefmp.export.verify import Outputs, VerifyReport, compare, default_tolerance, open_session, run_onnx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """How one task is exported and checked."""

    optimum_task: str
    function: str
    auto_class: str
    ort_class: str | None = None  # an optimum.onnxruntime class for the end-to-end check


TASKS: dict[str, TaskSpec] = {
    "object-detection": TaskSpec("object-detection", "detect", "AutoModelForObjectDetection"),
    "zero-shot-object-detection": TaskSpec(
        "zero-shot-object-detection", "detect", "AutoModelForZeroShotObjectDetection"
    ),
    "zero-shot-image-classification": TaskSpec(
        "zero-shot-image-classification", "classify", "AutoModelForZeroShotImageClassification"
    ),
    "image-classification": TaskSpec("image-classification", "classify", "AutoModelForImageClassification"),
    "image-to-text": TaskSpec("image-to-text-with-past", "ocr", "AutoModelForVision2Seq", "ORTModelForVision2Seq"),
    "visual-question-answering": TaskSpec(
        "image-to-text-with-past", "vqa", "Pix2StructForConditionalGeneration", "ORTModelForPix2Struct"
    ),
    "text-generation": TaskSpec("text-generation-with-past", "llm", "AutoModelForCausalLM", "ORTModelForCausalLM"),
}
VLM_FAMILIES = ("idefics3", "smolvlm")
VLM_TASK = "image-text-to-text"  # decoder-style VLMs, exported by edgefmp's own path (edgefmp.export.vlm)
SIGMOID_DETECTORS = ("rt_detr", "rt_detr_v2", "d_fine", "deformable_detr", "conditional_detr", "dab-detr")
# optimum writes a merged decoder (an If node over the two below) besides the separate ones;
# we keep the separate pair: fp16 conversion cannot rewrite If subgraph outputs, and
# ONNX Runtime's runtime classes load either layout.
REDUNDANT = ("decoder_model_merged.onnx",)


def _is_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists()


def supported_tasks() -> list[str]:
    """Every `--task` an `hf:` source takes: optimum's tasks and edgefmp's own VLM path."""
    return sorted([*TASKS, VLM_TASK])


def check_task(spec: str, task: str | None) -> str:
    """`task` if an `hf:` source can be exported for it; a ConfigError listing the tasks otherwise."""
    choices = ", ".join(supported_tasks())
    if not task:
        raise ConfigError(f"hf:{spec}: give --task (or a recipe's `task`); supported: {choices}")
    if task not in TASKS and task != VLM_TASK:
        raise ConfigError(f"hf:{spec}: unsupported task {task!r}; supported: {choices}")
    return task


def check_model_folder(spec: str) -> None:
    """Fail fast (before transformers is imported) when `spec` names a local folder that is
    missing or was not written by save_pretrained; hub ids are left to transformers."""
    where = Path(spec).expanduser()
    if _is_path(spec) and not where.is_dir():
        raise ConfigError(f"hf:{spec}: no such model folder (a folder saved by transformers' save_pretrained)")
    if where.is_dir() and not (where / "config.json").is_file():
        raise ConfigError(f"hf:{spec}: the folder has no config.json; save the model with save_pretrained()")


def check_source(spec: str, task: str | None) -> None:
    """The checks of an `hf:` source that load no model: the folder, the task, and (for a local
    folder, from its config.json) whether the task fits a decoder-style VLM."""
    check_model_folder(spec)
    check_task(spec, task)
    config = Path(spec).expanduser() / "config.json"
    if not config.is_file():
        return
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return  # transformers will say what is wrong with it
    if (model_type in VLM_FAMILIES) != (task == VLM_TASK):
        raise ConfigError(
            f"hf:{spec}: a {model_type!r} model cannot be exported with --task {task}; --task {VLM_TASK} "
            f"is for decoder-style VLMs ({', '.join(VLM_FAMILIES)}) and only for them"
        )


def load_config(spec: str, trust_remote_code: bool = False) -> Any:
    """The model's transformers config, with errors that say whether the folder or the id is wrong."""
    from transformers import AutoConfig

    check_model_folder(spec)
    where = Path(spec).expanduser()
    try:
        return AutoConfig.from_pretrained(str(where) if where.is_dir() else spec, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ExportError(
            f"hf:{spec}: cannot load the model config ({exc}); offline, download the model first "
            "or give a local folder: hf:./model-dir"
        ) from exc


def read_preprocess(folder: Path, image_size: tuple[int, int] | None) -> Preprocess | None:
    """The manifest's preprocessing from the saved image processor (preprocessor_config.json)."""
    file = folder / "preprocessor_config.json"
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    if "image_processor" in data:  # processor configs nest it
        data = data["image_processor"]
    size = image_size
    raw = data.get("size")
    if size is None and isinstance(raw, dict):
        if "height" in raw and "width" in raw:
            size = (int(raw["height"]), int(raw["width"]))
        elif "shortest_edge" in raw:
            size = (int(raw["shortest_edge"]), int(raw["shortest_edge"]))
    elif size is None and isinstance(raw, int):
        size = (raw, raw)
    if size is None:
        return None
    normalize = data.get("do_normalize", True)
    mean = tuple(data.get("image_mean", (0.0, 0.0, 0.0))) if normalize else (0.0, 0.0, 0.0)
    std = tuple(data.get("image_std", (1.0, 1.0, 1.0))) if normalize else (1.0, 1.0, 1.0)
    scale = float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else 1.0
    return Preprocess.model_validate({"size": size, "scale": scale, "mean": mean, "std": std})


def vocab_size(config: Any) -> int:
    for owner in (config, getattr(config, "text_config", None), getattr(config, "decoder", None)):
        size = getattr(owner, "vocab_size", None) if owner is not None else None
        if size:
            return int(size)
    return 100


def model_labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


class HFSource(Source):
    kind = "hf"

    def __init__(self, spec: str, options: Any) -> None:
        super().__init__(spec, options)
        self._torch_model: Any = None

    # ------------------------------------------------------------------------ helpers

    def task_spec(self, config: Any) -> tuple[str, TaskSpec]:
        task = check_task(self.spec, self.options.task)
        if task == VLM_TASK:  # VLM families never get here (export_fp32 hands them to vlm.py)
            raise ConfigError(
                f"hf:{self.spec}: --task {VLM_TASK} exports decoder-style VLMs ({', '.join(VLM_FAMILIES)}); "
                f"this model is {config.model_type!r}: pick another task"
            )
        return task, TASKS[task]

    def model_dir(self) -> str:
        where = Path(self.spec).expanduser()
        return str(where) if where.is_dir() else self.spec

    def torch_model(self, spec: TaskSpec) -> Any:
        """The source model in torch (eval, fp32), loaded once per source."""
        if self._torch_model is None:
            import transformers

            cls = getattr(transformers, spec.auto_class)
            try:
                self._torch_model = cls.from_pretrained(
                    self.model_dir(), trust_remote_code=self.options.trust_remote_code
                ).eval()
            except Exception as exc:
                raise ExportError(f"hf:{self.spec}: transformers cannot load it as {spec.auto_class}: {exc}") from exc
        return self._torch_model

    # ------------------------------------------------------------------------- export

    def export_fp32(self, out: Path, batch: int | None) -> BaseExport:
        config = load_config(self.spec, self.options.trust_remote_code)
        if config.model_type in VLM_FAMILIES:  # optimum cannot export them: edgefmp's own path
            from edgefmp.export.vlm import export_vlm

            return export_vlm(self, config, out, batch)
        task, spec = self.task_spec(config)
        self._optimum_export(spec, out, config)
        parts = self._parts(out)
        if batch is not None:
            for part in parts:
                fix_batch(out / part, batch)
        folder = Path(self.model_dir()) if Path(self.model_dir()).is_dir() else out
        preprocess = read_preprocess(
            out if (out / "preprocessor_config.json").is_file() else folder, self.options.image_size
        )
        dims = self._dims(config, preprocess, batch)
        rng = np.random.default_rng(self.options.seed)
        first = open_session(out / parts[0])
        inputs = [(a.name, a.type, list(a.shape)) for a in first.get_inputs()]
        vocab = vocab_size(config)
        feeds = [self._feed(inputs, rng, dims, vocab) for _ in range(max(1, self.options.samples))]
        manifest = self._manifest(task, spec, config, preprocess, first)
        if spec.ort_class is None:
            reference = self._torch_reference(spec, feeds)
            main = Part("model", parts[0], feeds, reference)
            return BaseExport(folder=out, parts=[main], manifest=manifest, assets=self._assets(out, parts))
        # generative: per-part checks against the fp32 ONNX parts, parity with torch end to end.
        # Decoders (and encoders fed with patches or text) take dynamic int8: frames do not
        # calibrate token inputs.
        part_list = []
        for file in parts:
            session = open_session(out / file)
            specs = [(a.name, a.type, list(a.shape)) for a in session.get_inputs()]
            part_feeds = [self._feed(specs, rng, dims, vocab) for _ in range(max(1, self.options.samples))]
            part_list.append(
                Part(Path(file).stem, file, part_feeds, run_onnx(out / file, part_feeds, session), static_int8=False)
            )
        base = BaseExport(folder=out, parts=part_list, manifest=manifest, assets=self._assets(out, parts))
        encoder = next((p for p in part_list if p.name == "encoder_model"), None)
        if encoder is not None and preprocess is not None and "pixel_values" in encoder.feeds[0]:
            encoder.static_int8 = True
            base.calibration_feeds = lambda frames: self.calibration_feeds(preprocess, "pixel_values", frames)
        base.end_to_end = lambda folder, precision: self.end_to_end(spec, config, preprocess, folder, precision)
        return base

    def _optimum_export(self, spec: TaskSpec, out: Path, config: Any) -> None:
        try:
            from optimum.exporters.onnx import main_export
        except ImportError as exc:
            raise ExportError("hf: sources need optimum-onnx: pip install 'edgefmp[export]'") from exc
        kwargs: dict[str, Any] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                main_export(
                    self.model_dir(),
                    str(out),
                    task=spec.optimum_task,
                    opset=self.options.opset,
                    do_validation=False,
                    library_name="transformers",
                    trust_remote_code=self.options.trust_remote_code,
                    **kwargs,
                )
            except Exception as exc:
                raise ExportError(
                    f"hf:{self.spec}: optimum could not export {config.model_type} for {spec.optimum_task}: {exc}"
                ) from exc
        for w in caught:
            log.debug("optimum: %s", w.message)

    def _parts(self, out: Path) -> list[str]:
        files = sorted(p.name for p in out.glob("*.onnx"))
        if not files:
            raise ExportError(f"hf:{self.spec}: optimum wrote no ONNX file into {out}")
        if "decoder_with_past_model.onnx" in files:
            for name in REDUNDANT:
                if name in files:
                    (out / name).unlink()
                    files.remove(name)
        order = {"model.onnx": 0, "encoder_model.onnx": 1, "decoder_model.onnx": 2, "decoder_with_past_model.onnx": 3}
        return sorted(files, key=lambda f: (order.get(f, 9), f))

    @staticmethod
    def _assets(out: Path, parts: Sequence[str]) -> list[str]:
        return sorted(p.name for p in out.iterdir() if p.name not in parts and not p.name.endswith(".onnx_data"))

    def _dims(self, config: Any, preprocess: Preprocess | None, batch: int | None) -> dict[str, int]:
        dims = {
            "batch_size": batch or 1,
            "text_batch_size": max(2, len(self.options.text_queries)),
            "sequence_length": 8,
            "decoder_sequence_length": 8,
            "encoder_sequence_length": 8,
            "past_sequence_length": 8,
            "past_decoder_sequence_length": 8,
            "num_channels": 3,
        }
        if preprocess is not None:
            dims["height"], dims["width"] = preprocess.size
        if config.model_type == "pix2struct":
            dims["flattened_patch_length"] = 16
        return dims

    def _feed(
        self,
        inputs: Sequence[tuple[str, str, Sequence[int | str]]],
        rng: np.random.Generator,
        dims: dict[str, int],
        vocab: int,
    ) -> Feed:
        feed = random_feed(inputs, rng, dims, int_high=vocab)
        for name in feed:
            if "mask" in name:
                feed[name] = np.ones_like(feed[name])
            if name == "flattened_patches":  # row/column indices first: keep them valid
                feed[name] = rng.random(feed[name].shape).astype(np.float32)
            if name == "position_ids":
                feed[name] = (
                    np.broadcast_to(np.arange(feed[name].shape[-1]), feed[name].shape).astype(feed[name].dtype).copy()
                )
        return feed

    def _torch_reference(self, spec: TaskSpec, feeds: Sequence[Feed]) -> list[Outputs]:
        import torch

        model = self.torch_model(spec)
        reference = []
        with torch.no_grad():
            for feed in feeds:
                out = model(**{k: torch.from_numpy(np.asarray(v)) for k, v in feed.items()})
                reference.append({k: v.detach().float().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)})
        return reference

    def _manifest(
        self, task: str, spec: TaskSpec, config: Any, preprocess: Preprocess | None, session: Any
    ) -> Manifest:
        labels = list(self.options.labels) or (list(self.options.text_queries) if task.startswith("zero-shot") else [])
        if not labels and task in ("object-detection", "image-classification"):
            labels = model_labels(config)
        post = Postprocess(kind="none")
        if task == "object-detection" and labels:
            sigmoid = config.model_type in SIGMOID_DETECTORS
            post = Postprocess(kind="detr", activation="sigmoid" if sigmoid else "softmax", detr_no_object=not sigmoid)
        elif task == "image-classification" and labels:
            post = Postprocess(kind="classify")
        name = self.options.name or Path(self.spec.rstrip("/")).name
        return Manifest(
            name=name,
            function=self.options.function or spec.function,  # type: ignore[arg-type]
            task=task,
            labels=labels,
            preprocess=preprocess,
            postprocess=post,
            inputs=tensor_specs(session.get_inputs()),
            outputs=tensor_specs(session.get_outputs()),
            source=self.uri,
            extra={"model_type": config.model_type, "optimum_task": spec.optimum_task},
        )

    # --------------------------------------------------------------- end-to-end check

    def end_to_end(
        self, spec: TaskSpec, config: Any, preprocess: Preprocess | None, folder: Path, precision: str
    ) -> VerifyReport:
        """Load `folder` with optimum's ORT class, compare first-step logits with torch and
        greedy tokens (text match); fp32 must match both, reduced precision the cosine floor."""
        import torch

        tol = default_tolerance(precision)
        report = VerifyReport(checker="ok", tolerance=tol, samples=1)
        try:
            import optimum.onnxruntime as ortm

            ort_model = getattr(ortm, spec.ort_class or "").from_pretrained(
                str(folder), provider="CPUExecutionProvider"
            )
        except Exception as exc:
            report.failures.append(f"optimum.onnxruntime cannot load {folder}: {exc}")
            return report
        model = self.torch_model(spec)
        inputs = self._generation_inputs(config, preprocess)
        with torch.no_grad():
            ref = model(**inputs).logits.float().numpy()
            got = ort_model(**inputs).logits
            got = got.float().numpy() if hasattr(got, "float") else np.asarray(got, np.float32)
            stats = compare(got, ref)
            gen_in = {k: v for k, v in inputs.items() if k != "decoder_input_ids"}
            ref_tokens = model.generate(**gen_in, max_new_tokens=4, do_sample=False).tolist()
            got_tokens = ort_model.generate(**gen_in, max_new_tokens=4, do_sample=False).tolist()
        match = float(ref_tokens == got_tokens)
        report.outputs["logits"] = {
            "shape": list(got.shape),
            "max_abs_diff": stats["max_abs_diff"],
            "min_cosine": stats["cosine"],
        }
        report.metric = {
            "name": "greedy_text_match",
            "value": match,
            "threshold": 1.0 if precision == "fp32" else 0.0,
            "samples": 1,
        }
        if got.shape != ref.shape:
            report.failures.append(f"logits shape {list(got.shape)}, torch gives {list(ref.shape)}")
        elif tol.atol is not None and not np.allclose(got, ref, atol=tol.atol, rtol=tol.rtol):
            report.failures.append(f"logits: max abs diff {stats['max_abs_diff']:.3g} exceeds atol {tol.atol:g}")
        elif tol.min_cosine is not None and stats["cosine"] < tol.min_cosine:
            report.failures.append(f"logits: cosine {stats['cosine']:.4f} below {tol.min_cosine:g}")
        if precision == "fp32" and match < 1.0:
            report.failures.append(f"greedy tokens differ: torch {ref_tokens} vs onnx {got_tokens}")
        return report

    def calibration_feeds(
        self, preprocess: Preprocess | None, encoder_input: str, frames: Sequence[np.ndarray]
    ) -> dict[str, list[Feed]]:
        """Frames -> encoder feeds (image-to-text encoders calibrate on the user's frames)."""
        from edgefmp.export.calibration import image_feeds

        if preprocess is None:
            raise ExportError(f"hf:{self.spec}: no image preprocessing known to calibrate with frames")
        return {"encoder_model": image_feeds(frames, preprocess, encoder_input)}

    def _generation_inputs(self, config: Any, preprocess: Preprocess | None) -> dict[str, Any]:
        import torch

        gen = torch.Generator().manual_seed(self.options.seed)
        vocab = vocab_size(config)
        if config.model_type == "pix2struct":
            patch = int(config.vision_config.patch_embed_hidden_size) + 2
            return {
                "flattened_patches": torch.rand(1, 16, patch, generator=gen),
                "attention_mask": torch.ones(1, 16, dtype=torch.long),
                "decoder_input_ids": torch.zeros(1, 1, dtype=torch.long),
            }
        if preprocess is not None:
            h, w = preprocess.size
            start = getattr(config, "decoder_start_token_id", None) or 0
            return {
                "pixel_values": torch.randn(1, 3, h, w, generator=gen),
                "decoder_input_ids": torch.full((1, 1), start, dtype=torch.long),
            }
        ids = torch.randint(3, vocab, (1, 6), generator=gen)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def fix_batch(model_path: Path, batch: int) -> None:
    """Pin the dynamic batch axis (`batch_size`) of an exported model to `batch`."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    model = onnx.load(str(model_path))
    make_dim_param_fixed(model.graph, "batch_size", batch)
    try:
        fix_output_shapes(model)
    except Exception as exc:  # output shapes are informative only
        log.debug("fix_output_shapes on %s: %s", model_path, exc)
    onnx.save(model, str(model_path))
