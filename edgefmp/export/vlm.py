"""`hf:` decoder-style small VLMs (SmolVLM / Idefics3) exported by edgefmp's own torch.onnx path.

optimum cannot export these models, so `HFSource` hands them here. The model is cut into the
three parts an ONNX Runtime generate loop needs (edgefmp.backends.vlm runs them):

- `vision_encoder.onnx`: pixel_values (B, 3, S, S) -> image_features (B, image_seq_len, hidden),
  the SigLIP-style encoder plus the pixel-shuffle connector and projection;
- `embed_tokens.onnx`: input_ids -> inputs_embeds (the text embedding table);
- `decoder_model_merged.onnx`: inputs_embeds, attention_mask, position_ids and
  past_key_values.{i}.key/value -> logits and present.{i}.key/value. The first step runs with
  an empty past (length 0), so one file serves prefill and decoding and no If node is needed.

Why wrappers instead of tracing the transformers forward as is: the vision embeddings compute
position ids per image with `bucketize` in a Python loop over a patch mask (no ONNX symbolic,
and the loop would be unrolled for the traced batch); for a full, fixed-size image those ids
are a constant, which the wrapper records from the module once and keeps as a buffer. Image
splitting (tiles plus a global image) is a data-dependent number of images and prompt
tokens, so this path turns it off: one image, stretched to the encoder's square size,
`image_seq_len` tokens (docs/EXPORT.md). The decoder's 4-D causal mask is built in the
wrapper from the 2-D attention mask, so transformers' mask helpers (which branch on tracing
and torch versions) stay out of the graph.

Every part is checked against the same torch modules (values), and each variant end to end:
first-step logits and greedy tokens of the ONNX Runtime loop against transformers' generate.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgefmp.backends.manifest import Manifest, Postprocess, Preprocess
from edgefmp.backends.vlm import IMAGE, PART_FILES, QUESTION, Tokenizer, VLMLayout, VLMRunner
from edgefmp.errors import ConfigError, ExportError
from edgefmp.export.onnx_source import tensor_specs
from edgefmp.export.sources import BaseExport, Feed, Part, Source
from edgefmp.export.verify import Outputs, VerifyReport, compare, default_tolerance, open_session

log = logging.getLogger(__name__)

TASK = "image-text-to-text"
OPSET = 17
# SmolVLM's chat format, used when the folder has no chat template to render.
DEFAULT_TEMPLATE = "<|im_start|>User:{image}{question}<end_of_utterance>\nAssistant:"
DEFAULT_IMAGE_PROMPT = "<fake_token_around_image><global-img>{image}<fake_token_around_image>"
END_OF_UTTERANCE = "<end_of_utterance>"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".onnx_data", ".gguf")
CHECK_TOKENS = 8


def export_vlm(source: Source, config: Any, out: Path, batch: int | None) -> BaseExport:
    """Export the VLM of `source` (a folder or hub id) in fp32 into `out` as three parts."""
    task = source.options.task
    if task not in (None, TASK):
        raise ConfigError(f"{source.uri}: {config.model_type} is exported with --task {TASK}, not {task!r}")
    if source.options.function not in (None, "vqa"):
        raise ConfigError(f"{source.uri}: a VLM export serves 'vqa', not {source.options.function!r}")
    model = _load_model(source)
    out.mkdir(parents=True, exist_ok=True)
    processor, tokenizer = _save_assets(source, model, out)
    layout = build_layout(config, processor, tokenizer, out)
    if source.options.image_size not in (None, (layout.image_size, layout.image_size)):
        raise ConfigError(
            f"{source.uri}: image_size {source.options.image_size} differs from the vision encoder's "
            f"{layout.image_size}x{layout.image_size}; its position embeddings are fixed, leave image_size out"
        )
    preprocess = read_preprocess(out, layout.image_size)
    modules = torch_parts(model)
    trace_batch = batch or 2
    _export_parts(modules, layout, out, trace_batch, dynamic_batch=batch is None, opset=source.options.opset or OPSET)
    if batch is not None:
        from edgefmp.export.hf import fix_batch

        for file in PART_FILES.values():
            fix_batch(out / file, batch)

    rng = np.random.default_rng(source.options.seed)
    samples = max(1, source.options.samples)
    parts: list[Part] = []
    for name, feeds in _sample_feeds(layout, batch or 1, samples, rng).items():
        parts.append(Part(name, PART_FILES[name], feeds, torch_outputs(modules[name], name, feeds), static_int8=False))
    parts[0].static_int8 = True  # the vision encoder calibrates on frames; token parts go dynamic
    main = open_session(out / PART_FILES["vision_encoder"])
    manifest = Manifest(
        name=source.options.name or Path(source.spec.rstrip("/")).name,
        function="vqa",
        task=TASK,
        preprocess=preprocess,
        postprocess=Postprocess(kind="none"),
        inputs=tensor_specs(main.get_inputs()),
        outputs=tensor_specs(main.get_outputs()),
        source=source.uri,
        extra={
            "model_type": config.model_type,
            "exporter": "edgefmp.export.vlm (torch.onnx)",
            "parts": dict(PART_FILES),
            "params_total": int(sum(p.numel() for p in model.parameters())),
            "vlm": layout.model_dump(),
        },
    )
    assets = sorted(p.name for p in out.iterdir() if p.name not in PART_FILES.values())
    base = BaseExport(folder=out, parts=parts, manifest=manifest, assets=assets)

    def calibration(frames: Sequence[np.ndarray]) -> dict[str, list[Feed]]:
        from edgefmp.export.calibration import image_feeds

        return {"vision_encoder": image_feeds(frames, preprocess, "pixel_values")}

    base.calibration_feeds = calibration
    seed = source.options.seed
    base.end_to_end = lambda folder, precision: end_to_end(model, layout, preprocess, folder, precision, seed)
    return base


# ------------------------------------------------------------------------------ source side


def _load_model(source: Source) -> Any:
    """The transformers model (eval, fp32, eager attention: the plainest graph to trace)."""
    import transformers

    where = Path(source.spec).expanduser()
    target = str(where) if where.is_dir() else source.spec
    try:
        model = transformers.AutoModelForImageTextToText.from_pretrained(
            target, attn_implementation="eager", trust_remote_code=source.options.trust_remote_code
        )
    except Exception as exc:
        raise ExportError(f"{source.uri}: transformers cannot load it as AutoModelForImageTextToText: {exc}") from exc
    loaded: Any = model
    return loaded.float().eval()


def _save_assets(source: Source, model: Any, out: Path) -> tuple[Any, Any]:
    """Copy the tokenizer, processor and configs beside the parts; returns (processor,
    tokenizer), either None when missing (SmolVLM2's processor needs torchvision, for one):
    the prompt then falls back to the tokenizer's chat template or SmolVLM's format."""
    import transformers

    where = Path(source.spec).expanduser()
    target = str(where) if where.is_dir() else source.spec
    if where.is_dir():
        for file in where.iterdir():
            if file.is_file() and not file.name.endswith(WEIGHT_SUFFIXES):
                shutil.copyfile(file, out / file.name)
    else:
        model.config.save_pretrained(out)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(out)
    processor = _try_load(transformers.AutoProcessor, target, source.uri)
    tokenizer = getattr(processor, "tokenizer", None)
    if processor is not None and not hasattr(processor, "image_processor"):
        processor, tokenizer = None, processor  # AutoProcessor gave back a bare tokenizer
    if tokenizer is None:
        tokenizer = _try_load(transformers.AutoTokenizer, target, source.uri)
    saver = processor or tokenizer
    if not where.is_dir() and saver is not None:
        saver.save_pretrained(out)
    if tokenizer is None:
        log.warning("%s: no tokenizer; the vlm backend will need one beside the parts", source.uri)
    return processor, tokenizer


def _try_load(auto: Any, target: str, uri: str) -> Any:
    try:
        return auto.from_pretrained(target)
    except Exception as exc:
        log.warning("%s: %s found nothing (%s)", uri, auto.__name__, str(exc).splitlines()[0])
        return None


def build_layout(config: Any, processor: Any, tokenizer: Any, folder: Path) -> VLMLayout:
    """The runtime's view of the model: image tokens, prompt template, cache shapes, eos ids."""
    vision, text = config.vision_config, config.text_config
    scale = int(getattr(config, "scale_factor", 1) or 1)
    patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
    image_seq_len = patches // (scale * scale)
    image_token = str(getattr(processor, "image_token", None) or "<image>")
    if processor is not None and getattr(processor, "image_seq_len", image_seq_len) != image_seq_len:
        raise ExportError(
            f"{folder}: the processor expands an image into {processor.image_seq_len} tokens but the "
            f"model makes {image_seq_len} features ({patches} patches / scale {scale}^2)"
        )
    heads = int(text.num_attention_heads)
    return VLMLayout(
        image_size=int(vision.image_size),
        image_token=image_token,
        image_token_id=int(config.image_token_id),
        image_seq_len=image_seq_len,
        image_prompt=_image_prompt(processor),
        prompt_template=_prompt_template(processor or tokenizer, image_token),
        eos_token_ids=_eos_ids(config, folder, tokenizer),
        num_layers=int(text.num_hidden_layers),
        num_kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(text, "head_dim", None) or text.hidden_size // heads),
        hidden_size=int(text.hidden_size),
        vocab_size=int(text.vocab_size),
        image_splitting=False,
    )


def _image_prompt(processor: Any) -> str:
    if processor is None:
        return DEFAULT_IMAGE_PROMPT
    fake = getattr(processor, "fake_image_token", None) or "<fake_token_around_image>"
    glob = getattr(processor, "global_image_tag", None) or getattr(processor, "global_image_token", None)
    return f"{fake}{glob or '<global-img>'}{IMAGE}{fake}"


def _prompt_template(renderer: Any, image_token: str) -> str:
    """The chat template (of the processor, else the tokenizer) rendered for one user turn
    (image, then the question) with the assistant's turn opened; `{image}` and `{question}`
    left in as placeholders."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    try:
        rendered = str(renderer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    except Exception as exc:
        log.info("no chat template to render (%s); using SmolVLM's format", exc)
        return DEFAULT_TEMPLATE
    if image_token not in rendered or QUESTION not in rendered:
        log.warning("the chat template renders %r without an image or question slot; using SmolVLM's", rendered)
        return DEFAULT_TEMPLATE
    return rendered.replace(image_token, IMAGE, 1)


def _eos_ids(config: Any, folder: Path, tokenizer: Any) -> list[int]:
    """Generation config eos ids (else the text config's), plus `<end_of_utterance>`, which
    ends an assistant turn in SmolVLM's chat format."""
    ids: list[int] = []
    file = folder / "generation_config.json"
    raw = json.loads(file.read_text(encoding="utf-8")).get("eos_token_id") if file.is_file() else None
    if raw is None:
        raw = getattr(config.text_config, "eos_token_id", None) or getattr(config, "eos_token_id", None)
    ids += [int(raw)] if isinstance(raw, int) else [int(i) for i in raw or []]
    if tokenizer is not None:
        found = tokenizer.convert_tokens_to_ids(END_OF_UTTERANCE)
        if isinstance(found, int) and found != tokenizer.unk_token_id and found not in ids:
            ids.append(found)
    if not ids:
        raise ExportError(f"{folder}: no eos token id in generation_config.json or the text config")
    return ids


def read_preprocess(folder: Path, size: int) -> Preprocess:
    """Rescale and normalisation from the saved image processor; the size is the encoder's."""
    file = folder / "preprocessor_config.json"
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    data = data.get("image_processor", data)
    normalize = data.get("do_normalize", True)
    mean = tuple(data.get("image_mean", (0.5, 0.5, 0.5))) if normalize else (0.0, 0.0, 0.0)
    std = tuple(data.get("image_std", (0.5, 0.5, 0.5))) if normalize else (1.0, 1.0, 1.0)
    scale = float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else 1.0
    return Preprocess.model_validate({"size": (size, size), "scale": scale, "mean": mean, "std": std})


# ----------------------------------------------------------------------------- torch parts


def torch_parts(model: Any) -> dict[str, Any]:
    """The three parts as torch modules (shared weights), in PART_FILES order."""
    import torch
    from transformers.cache_utils import DynamicCache

    inner = model.model

    class VisionEncoder(torch.nn.Module):
        """pixel_values -> projected image features for one full, square image."""

        def __init__(self) -> None:
            super().__init__()
            self.vision = inner.vision_model
            self.connector = inner.connector
            self.register_buffer("position_ids", full_image_position_ids(self.vision.embeddings), persistent=False)

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            emb = self.vision.embeddings
            x = emb.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
            x = x + emb.position_embedding(self.position_ids)
            x = self.vision.encoder(inputs_embeds=x, attention_mask=None).last_hidden_state
            features: torch.Tensor = self.connector(self.vision.post_layernorm(x))
            return features

    class EmbedTokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = inner.text_model.get_input_embeddings()

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            embeds: torch.Tensor = self.embed(input_ids)
            return embeds

    class Decoder(torch.nn.Module):
        """One decoder step over any number of new positions, with the cache in and out."""

        def __init__(self) -> None:
            super().__init__()
            self.text = inner.text_model
            self.lm_head = model.lm_head

        def forward(
            self,
            inputs_embeds: torch.Tensor,
            attention_mask: torch.Tensor,
            position_ids: torch.Tensor,
            *past: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            cache = DynamicCache([(past[i], past[i + 1]) for i in range(0, len(past), 2)])
            total, new = attention_mask.shape[1], inputs_embeds.shape[1]
            keys = torch.arange(total, device=inputs_embeds.device)
            queries = torch.arange(new, device=inputs_embeds.device) + (total - new)
            allowed = (keys[None, :] <= queries[:, None])[None, None] & attention_mask[:, None, None, :].bool()
            mask = torch.zeros(allowed.shape, dtype=inputs_embeds.dtype).masked_fill(
                ~allowed, torch.finfo(inputs_embeds.dtype).min
            )
            out = self.text(
                inputs_embeds=inputs_embeds,
                attention_mask=mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
            presents = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
            return (self.lm_head(out.last_hidden_state), *presents)

    return {"vision_encoder": VisionEncoder().eval(), "embed_tokens": EmbedTokens().eval(), "decoder": Decoder().eval()}


def full_image_position_ids(embeddings: Any) -> Any:
    """The position ids the vision embeddings use for a full image of the encoder's size,
    recorded from the module itself. They are not simply 0..N-1: transformers buckets
    `h / n * (1 - 1e-6)`, which puts the second row and column in bucket 0 (ids 0, 0, 1, 2 for
    n = 4), and the export must reproduce that exactly."""
    import torch

    seen: list[torch.Tensor] = []
    hook = embeddings.position_embedding.register_forward_hook(lambda _m, args, _o: seen.append(args[0].detach()))
    side = embeddings.image_size
    n = side // embeddings.patch_size
    try:
        with torch.no_grad():
            embeddings(
                torch.zeros(1, embeddings.patch_embedding.in_channels, side, side),
                torch.ones(1, n, n, dtype=torch.bool),
            )
    finally:
        hook.remove()
    if not seen:
        raise ExportError("the vision embeddings did not call their position embedding; this VLM is not supported")
    return seen[0].clone()


def _past_names(layout: VLMLayout, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kind}" for i in range(layout.num_layers) for kind in ("key", "value")]


def _export_parts(
    modules: dict[str, Any], layout: VLMLayout, out: Path, batch: int, dynamic_batch: bool, opset: int
) -> None:
    """torch.onnx (TorchScript exporter, as optimum uses) with dynamic sequence axes; traced
    with batch 2 and sequence 2 so no axis is specialised to 1."""
    import torch

    from edgefmp.export.torch_source import torch_export

    b: dict[int, str] = {0: "batch_size"} if dynamic_batch else {}
    s, h = layout.image_size, layout.hidden_size
    kv = (batch, layout.num_kv_heads, 3, layout.head_dim)
    past_in, past_out = _past_names(layout, "past_key_values"), _past_names(layout, "present")
    with torch.no_grad():
        torch_export(
            modules["vision_encoder"],
            (torch.randn(batch, 3, s, s),),
            out / PART_FILES["vision_encoder"],
            ["pixel_values"],
            ["image_features"],
            {"pixel_values": b, "image_features": b},
            opset,
        )
        torch_export(
            modules["embed_tokens"],
            (torch.zeros(batch, 2, dtype=torch.long),),
            out / PART_FILES["embed_tokens"],
            ["input_ids"],
            ["inputs_embeds"],
            {"input_ids": {**b, 1: "sequence_length"}, "inputs_embeds": {**b, 1: "sequence_length"}},
            opset,
        )
        args = (
            torch.randn(batch, 2, h),
            torch.ones(batch, 5, dtype=torch.long),
            torch.arange(3, 5).expand(batch, 2).contiguous(),
            *[torch.randn(*kv) for _ in past_in],
        )
        axes: dict[str, dict[int, str]] = {
            "inputs_embeds": {**b, 1: "sequence_length"},
            "attention_mask": {**b, 1: "past_sequence_length + sequence_length"},
            "position_ids": {**b, 1: "sequence_length"},
            "logits": {**b, 1: "sequence_length"},
        }
        axes.update({n: {**b, 2: "past_sequence_length"} for n in past_in})
        axes.update({n: {**b, 2: "past_sequence_length + sequence_length"} for n in past_out})
        torch_export(
            modules["decoder"],
            args,
            out / PART_FILES["decoder"],
            ["inputs_embeds", "attention_mask", "position_ids", *past_in],
            ["logits", *past_out],
            axes,
            opset,
        )


def _sample_feeds(layout: VLMLayout, batch: int, samples: int, rng: np.random.Generator) -> dict[str, list[Feed]]:
    """Random feeds per part; the decoder alternates a prefill (empty past) and a decode step."""
    s, h = layout.image_size, layout.hidden_size
    feeds: dict[str, list[Feed]] = {"vision_encoder": [], "embed_tokens": [], "decoder": []}
    for index in range(samples):
        feeds["vision_encoder"].append({"pixel_values": rng.standard_normal((batch, 3, s, s)).astype(np.float32)})
        feeds["embed_tokens"].append({"input_ids": rng.integers(0, layout.vocab_size, (batch, 8)).astype(np.int64)})
        past, new = (0, 6) if index % 2 == 0 else (5, 1)
        decoder: Feed = {
            "inputs_embeds": rng.standard_normal((batch, new, h)).astype(np.float32),
            "attention_mask": np.ones((batch, past + new), np.int64),
            "position_ids": np.broadcast_to(np.arange(past, past + new), (batch, new)).astype(np.int64).copy(),
        }
        shape = (batch, layout.num_kv_heads, past, layout.head_dim)
        for name in _past_names(layout, "past_key_values"):
            decoder[name] = rng.standard_normal(shape).astype(np.float32)
        feeds["decoder"].append(decoder)
    return feeds


def torch_outputs(module: Any, part: str, feeds: Sequence[Feed]) -> list[Outputs]:
    """The torch module's outputs on `feeds`, named as the ONNX part names them."""
    import torch

    results: list[Outputs] = []
    with torch.no_grad():
        for feed in feeds:
            tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in feed.items()}
            if part == "vision_encoder":
                results.append({"image_features": module(tensors["pixel_values"]).numpy()})
            elif part == "embed_tokens":
                results.append({"inputs_embeds": module(tensors["input_ids"]).numpy()})
            else:
                past = [tensors[k] for k in feed if k.startswith("past_key_values.")]
                values = module(tensors["inputs_embeds"], tensors["attention_mask"], tensors["position_ids"], *past)
                names = ["logits", *[k.replace("past_key_values", "present") for k in feed if k.startswith("past_")]]
                results.append({n: v.numpy() for n, v in zip(names, values, strict=True)})
    return results


# ---------------------------------------------------------------------------- end to end


def sample_prompt(folder: Path, layout: VLMLayout, rng: np.random.Generator) -> np.ndarray:
    """Prompt ids for the check: the folder's tokenizer on a question when it has one, else
    random text ids around the image tokens."""
    try:
        return np.array([Tokenizer(folder).encode(layout.prompt("What is in the image?"))], np.int64)
    except ConfigError as exc:
        log.info("no tokenizer in %s (%s); checking with random text ids", folder, exc)
    text = [int(t) for t in rng.integers(0, layout.vocab_size, 6) if int(t) != layout.image_token_id]
    return np.array([text[:3] + [layout.image_token_id] * layout.image_seq_len + text[3:]], np.int64)


def end_to_end(
    model: Any,
    layout: VLMLayout,
    preprocess: Preprocess,
    folder: Path,
    precision: str,
    seed: int = 0,
) -> VerifyReport:
    """The variant in `folder` run by the backend's ONNX Runtime loop against transformers:
    first-step logits within the precision's tolerance and greedy tokens (equal for fp32)."""
    import torch

    tol = default_tolerance(precision)
    report = VerifyReport(checker="ok", tolerance=tol, samples=1)
    rng = np.random.default_rng(seed)
    try:
        runner = VLMRunner.cpu(folder, layout)
    except ConfigError as exc:
        report.failures.append(str(exc))
        return report
    ids = sample_prompt(folder, layout, rng)
    size = preprocess.size
    pixels = rng.standard_normal((1, 3, *size)).astype(np.float32)
    inputs = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.ones_like(torch.from_numpy(ids)),
        "pixel_values": torch.from_numpy(pixels)[:, None],
    }
    with torch.no_grad():
        ref_logits = model(**inputs).logits[0, -1].float().numpy()
        generated = model.generate(
            **inputs,
            max_new_tokens=CHECK_TOKENS,
            do_sample=False,
            eos_token_id=layout.eos_token_ids,
            pad_token_id=layout.eos_token_ids[0],
        )
    ref_tokens = [int(t) for t in generated[0, ids.shape[1] :]]
    got = runner.generate(ids, pixels, CHECK_TOKENS, layout.eos_token_ids)
    stats = compare(got.first_logits, ref_logits)
    report.outputs["logits"] = {
        "shape": list(got.first_logits.shape),
        "max_abs_diff": stats["max_abs_diff"],
        "min_cosine": stats["cosine"],
    }
    same = sum(a == b for a, b in zip(got.tokens, ref_tokens, strict=False))
    match = same / max(len(ref_tokens), len(got.tokens), 1)
    report.metric = {
        "name": "greedy_token_match",
        "value": match,
        "threshold": 1.0 if precision == "fp32" else 0.0,
        "samples": 1,
    }
    if got.first_logits.shape != ref_logits.shape:
        report.failures.append(f"logits shape {list(got.first_logits.shape)}, torch gives {list(ref_logits.shape)}")
    elif tol.atol is not None and not np.allclose(got.first_logits, ref_logits, atol=tol.atol, rtol=tol.rtol):
        report.failures.append(f"logits: max abs diff {stats['max_abs_diff']:.3g} exceeds atol {tol.atol:g}")
    elif tol.min_cosine is not None and stats["cosine"] < tol.min_cosine:
        report.failures.append(f"logits: cosine {stats['cosine']:.4f} below {tol.min_cosine:g}")
    if precision == "fp32" and got.tokens != ref_tokens:
        report.failures.append(f"greedy tokens differ: torch {ref_tokens} vs onnx {got.tokens}")
    return report
