"""VLMBackend: a decoder-style small VLM (SmolVLM / Idefics3) run by an ONNX Runtime generate loop.

`edgefmp export hf:... --task image-text-to-text` writes three ONNX parts into one folder
(docs/EXPORT.md): `vision_encoder.onnx` (pixel_values -> image features, connector included),
`embed_tokens.onnx` (input_ids -> embeddings) and `decoder_model_merged.onnx` (embeddings,
attention mask, positions and past key/values -> logits and present key/values; the first step
runs with an empty past, so one file serves prefill and decoding). Their manifests carry
`extra.vlm` (a `VLMLayout`): the prompt template, the image tokens and the cache shapes. This
backend tokenizes with the folder's tokenizer, builds the prompt with the image tokens, puts the
image features at the image-token positions and decodes greedily until an eos token.

```python
from edgefmp.backends.catalog import BackendSpec
from edgefmp.backends.vlm import VLMBackend, VLMOptions
spec = BackendSpec(name="smolvlm", kind="vlm", function="vqa", model="models/smolvlm/256m-fp32")
backend = VLMBackend(spec, VLMOptions(providers=["CPU"], max_new_tokens=16))
```
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefmp.backends import processing
from edgefmp.backends.base import Backend
from edgefmp.backends.manifest import ONNX_METADATA_KEY, Manifest, parse_manifest, read_sidecar
from edgefmp.backends.providers import TENSORRT, TensorRTSettings, select_providers, session_providers
from edgefmp.errors import BackendError, BackendUnavailable, ConfigError
from edgefmp.results import Answer, Request, Result, VQARequest

if TYPE_CHECKING:
    from edgefmp.backends.catalog import BackendSpec

log = logging.getLogger(__name__)

PART_FILES: dict[str, str] = {
    "vision_encoder": "vision_encoder.onnx",
    "embed_tokens": "embed_tokens.onnx",
    "decoder": "decoder_model_merged.onnx",
}
QUESTION = "{question}"
IMAGE = "{image}"


class VLMLayout(BaseModel):
    """What the generate loop needs to know about the model, written by the exporter into
    every part's manifest (`extra.vlm`) so the folder runs without transformers' configs.

    `prompt_template` is the chat template rendered for one user turn with `{image}` where the
    image goes and `{question}` where the question goes; `image_prompt` is what `{image}`
    expands to, with `{image}` there standing for `image_seq_len` copies of `image_token`.
    """

    model_config = ConfigDict(extra="forbid")

    image_size: int = Field(gt=0)
    image_token: str
    image_token_id: int = Field(ge=0)
    image_seq_len: int = Field(gt=0)
    image_prompt: str
    prompt_template: str
    eos_token_ids: list[int]
    num_layers: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    image_splitting: bool = False

    def prompt(self, question: str) -> str:
        """The full prompt text for `question`, image tokens expanded."""
        image = self.image_prompt.replace(IMAGE, self.image_token * self.image_seq_len)
        return self.prompt_template.replace(IMAGE, image).replace(QUESTION, question.strip())


def read_layout(manifest: Manifest, source: str) -> VLMLayout:
    """The manifest's `extra.vlm`; ConfigError naming the file and the field when it is wrong."""
    data = manifest.extra.get("vlm")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: manifest has no `extra.vlm`; re-export it with `edgefmp export --task image-text-to-text`"
        )
    try:
        return VLMLayout.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConfigError(f"{source}: manifest field extra.vlm.{field}: {first['msg']}") from exc


@dataclass
class Generation:
    """Greedy output: generated ids (the eos token included when reached), the probability
    of each, and the logits of the first step (for parity checks)."""

    tokens: list[int]
    probs: list[float]
    first_logits: np.ndarray

    @property
    def confidence(self) -> float:
        return float(np.mean(self.probs)) if self.probs else 0.0


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return np.asarray(e / e.sum(-1, keepdims=True))


def _float_type(session: Any, name: str) -> type[np.floating[Any]]:
    kind = next(i.type for i in session.get_inputs() if i.name == name)
    return np.float16 if kind == "tensor(float16)" else np.float32


class VLMRunner:
    """The three ONNX Runtime sessions of an exported VLM and the greedy generate loop.

    Kept apart from the tokenizer so the exporter can check a variant folder token for token
    against torch with nothing but ids and pixels.
    """

    def __init__(self, folder: Path, layout: VLMLayout, providers: Sequence[Any], options: ort.SessionOptions) -> None:
        self.folder = folder
        self.layout = layout
        self.sessions: dict[str, ort.InferenceSession] = {}
        for part, file in PART_FILES.items():
            path = folder / file
            if not path.is_file():
                raise ConfigError(f"{folder}: VLM part {part!r} ({file}) is missing; re-export the folder")
            try:
                self.sessions[part] = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
            except Exception as exc:  # onnxruntime raises several pybind types
                raise ConfigError(f"{path}: onnxruntime cannot load this VLM part ({exc}); re-export it") from exc
        decoder = self.sessions["decoder"]
        self._decoder_outputs = [o.name for o in decoder.get_outputs()]
        self._past_names = [i.name for i in decoder.get_inputs() if i.name.startswith("past_key_values.")]
        if len(self._past_names) != 2 * layout.num_layers:
            raise ConfigError(
                f"{folder / PART_FILES['decoder']}: {len(self._past_names)} past key/value inputs, "
                f"the manifest says {layout.num_layers} layers (expected {2 * layout.num_layers})"
            )
        self._past_type = _float_type(decoder, self._past_names[0])
        self._embeds_type = _float_type(decoder, "inputs_embeds")

    @classmethod
    def cpu(cls, folder: Path, layout: VLMLayout) -> VLMRunner:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return cls(folder, layout, ["CPUExecutionProvider"], options)

    @property
    def providers(self) -> list[str]:
        return list(self.sessions["decoder"].get_providers())

    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        session = self.sessions["vision_encoder"]
        name = session.get_inputs()[0].name
        return np.asarray(session.run(None, {name: pixel_values.astype(_float_type(session, name))})[0], np.float32)

    def embed(self, input_ids: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.sessions["embed_tokens"].run(None, {"input_ids": input_ids.astype(np.int64)})[0], np.float32
        )

    def merge(self, input_ids: np.ndarray, embeds: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Image features in place of the image tokens, in order (what transformers'
        `inputs_merger` does with masked_scatter)."""
        where = input_ids == self.layout.image_token_id
        flat = features.reshape(-1, features.shape[-1])
        if int(where.sum()) != flat.shape[0]:
            raise BackendError(
                f"{self.folder}: the prompt has {int(where.sum())} image tokens "
                f"(id {self.layout.image_token_id}) but the vision encoder gave {flat.shape[0]} features"
            )
        merged = embeds.copy()
        merged[where] = flat
        return merged

    def generate(
        self,
        input_ids: np.ndarray,
        pixel_values: np.ndarray,
        max_new_tokens: int,
        eos_token_ids: Sequence[int] | None = None,
    ) -> Generation:
        """Greedy decoding of one prompt (batch 1) with the key/value cache carried between steps."""
        if input_ids.ndim != 2 or input_ids.shape[0] != 1:
            raise BackendError(f"{self.folder}: generate takes input_ids of shape (1, length), got {input_ids.shape}")
        eos = set(self.layout.eos_token_ids if eos_token_ids is None else eos_token_ids)
        embeds = self.merge(input_ids, self.embed(input_ids), self.image_features(pixel_values))
        lay = self.layout
        empty = np.zeros((1, lay.num_kv_heads, 0, lay.head_dim), self._past_type)
        past = [empty] * len(self._past_names)
        length = input_ids.shape[1]
        positions = np.arange(length, dtype=np.int64)[None]
        tokens: list[int] = []
        probs: list[float] = []
        first: np.ndarray | None = None
        for _ in range(max_new_tokens):
            feed: dict[str, np.ndarray] = {
                "inputs_embeds": embeds.astype(self._embeds_type),
                "attention_mask": np.ones((1, past[0].shape[2] + embeds.shape[1]), np.int64),
                "position_ids": positions,
            }
            feed.update(zip(self._past_names, past, strict=True))
            try:
                outputs = self.sessions["decoder"].run(self._decoder_outputs, feed)
            except Exception as exc:
                raise BackendError(f"{self.folder}: onnxruntime failed in the decoder: {exc}") from exc
            logits = np.asarray(outputs[0][0, -1], np.float32)
            first = logits if first is None else first
            token = int(np.argmax(logits))
            tokens.append(token)
            probs.append(float(_softmax(logits)[token]))
            if token in eos:
                break
            past = list(outputs[1:])
            embeds = self.embed(np.array([[token]], np.int64))
            positions = np.array([[positions[0, -1] + 1]], np.int64)
        return Generation(tokens, probs, first if first is not None else np.zeros(0, np.float32))


class Tokenizer:
    """The model folder's tokenizer: `tokenizers` on tokenizer.json when present (light, no
    transformers import), else transformers' AutoTokenizer on the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fast: Any = None
        self._auto: Any = None
        file = folder / "tokenizer.json"
        if file.is_file():
            try:
                from tokenizers import Tokenizer as FastTokenizer
            except ImportError as exc:
                raise ConfigError(
                    f"{folder}: reading tokenizer.json needs `tokenizers`: pip install tokenizers"
                ) from exc
            self._fast = FastTokenizer.from_file(str(file))
            return
        if not (folder / "tokenizer_config.json").is_file():
            raise ConfigError(
                f"{folder}: no tokenizer (tokenizer.json or tokenizer_config.json); the VLM backend needs the "
                "model's tokenizer beside the ONNX parts: re-export, or save it there with save_pretrained()"
            )
        try:
            import transformers

            auto: Any = transformers.AutoTokenizer
            self._auto = auto.from_pretrained(str(folder))
        except Exception as exc:
            raise ConfigError(f"{folder}: transformers cannot load the tokenizer: {exc}") from exc

    def encode(self, text: str) -> list[int]:
        if self._fast is not None:
            return list(self._fast.encode(text).ids)
        return list(self._auto(text)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        if self._fast is not None:
            return str(self._fast.decode(list(ids), skip_special_tokens=True))
        return str(self._auto.decode(list(ids), skip_special_tokens=True))


class VLMOptions(BaseModel):
    """`options:` of a vlm backend in a catalog."""

    model_config = ConfigDict(extra="forbid")

    providers: list[str] | None = Field(
        default=None, description="execution providers in priority order, e.g. [CUDA, CPU]; default CUDA, CPU"
    )
    intra_op_threads: int = Field(default=0, ge=0)
    inter_op_threads: int = Field(default=0, ge=0)
    max_new_tokens: int = Field(default=32, ge=1, description="answer length limit; decoding also stops at eos")
    warmup_runs: int = Field(default=1, ge=0)


def locate(spec: BackendSpec) -> tuple[Path, Path]:
    """(folder, main part file) of `spec.model`, which names the folder or any part in it."""
    if not spec.model:
        raise ConfigError(f"backend {spec.name!r}: kind 'vlm' needs `model:`, the exported VLM folder")
    path = spec.resolve(spec.model)
    folder = path if path.is_dir() else path.parent
    main = folder / PART_FILES["vision_encoder"]
    if not path.exists() or not main.is_file():
        raise ConfigError(
            f"backend {spec.name!r}: {path} is not an exported VLM folder (no {PART_FILES['vision_encoder']}); "
            "create it with `edgefmp export hf:MODEL --task image-text-to-text`"
        )
    return folder, main


def load_manifest(main: Path) -> Manifest:
    """The vision encoder's manifest: the sidecar when present, else the one embedded."""
    sidecar = read_sidecar(main)
    if sidecar is not None:
        return sidecar
    import onnx

    model = onnx.load(str(main), load_external_data=False)
    text = next((p.value for p in model.metadata_props if p.key == ONNX_METADATA_KEY), None)
    if text is None:
        raise ConfigError(f"{main}: no manifest (sidecar or metadata {ONNX_METADATA_KEY!r}); re-export the folder")
    return parse_manifest(text, f"{main} (metadata {ONNX_METADATA_KEY})")


class VLMBackend(Backend):
    """Answers `vqa` with an exported decoder-style VLM; see the module docstring."""

    kind = "vlm"
    Options = VLMOptions

    def __init__(self, spec: BackendSpec, options: BaseModel) -> None:
        opts = options if isinstance(options, VLMOptions) else VLMOptions.model_validate(options.model_dump())
        super().__init__(spec, opts)
        self.folder, main = locate(spec)
        self._manifest = load_manifest(main)
        source = str(main)
        if self._manifest.function != "vqa" or (spec.function and spec.function != "vqa"):
            raise ConfigError(
                f"{source}: a VLM export serves 'vqa' (manifest function {self._manifest.function!r}); "
                f"list it under functions.vqa, not {spec.function!r}"
            )
        if self._manifest.preprocess is None:
            raise ConfigError(f"{source}: manifest has no `preprocess`; edgefmp needs it to feed images to the model")
        self._preprocess = self._manifest.preprocess
        self.layout = read_layout(self._manifest, source)
        self.tokenizer = Tokenizer(self.folder)
        names = select_providers(opts.providers, where=f"backend {spec.name!r}: options.providers")
        if opts.providers is None:  # TensorRT only when asked: the decoder's shapes change every step
            names = [n for n in names if n != TENSORRT]
        providers = session_providers(names, TensorRTSettings(engine_cache=self.folder / "trt-cache"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = opts.intra_op_threads
        so.inter_op_num_threads = opts.inter_op_threads
        so.log_severity_level = 3
        self._runner: VLMRunner | None = VLMRunner(self.folder, self.layout, providers, so)
        log.info("vlm backend %s: %s on %s (asked %s)", spec.name, self.folder, self._runner.providers, names)

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def prompt_ids(self, question: str) -> np.ndarray:
        """Token ids of the chat prompt for `question` with the image tokens in place."""
        return np.array([self.tokenizer.encode(self.layout.prompt(question))], np.int64)

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """The image as the vision encoder takes it (stretched to the square encoder size:
        image splitting is off in this path, see docs/EXPORT.md)."""
        tensor, _ = processing.preprocess(image, self._preprocess)
        return tensor

    def infer(self, request: Request) -> Result:
        if not isinstance(request, VQARequest):
            raise BackendError(f"backend {self.name!r} answers vqa requests, got {request.function!r}")
        if self._runner is None:
            raise BackendUnavailable(f"backend {self.name!r} is closed")
        opts: VLMOptions = self.options  # type: ignore[assignment]
        result = self._runner.generate(
            self.prompt_ids(request.question), self.pixels(request.image), opts.max_new_tokens
        )
        eos = set(self.layout.eos_token_ids)
        text = self.tokenizer.decode([t for t in result.tokens if t not in eos]).strip()
        return Answer(text=text, confidence=min(1.0, max(0.0, result.confidence)))

    def warmup(self) -> None:
        if self._runner is None:
            return
        dummy = np.zeros((*self._preprocess.size, 3), np.uint8)
        for _ in range(self.options.warmup_runs):  # type: ignore[attr-defined]
            self._runner.generate(self.prompt_ids("warm up"), self.pixels(dummy), 1)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": str(self.folder),
            "manifest": self._manifest.name,
            "precision": self._manifest.precision,
            "providers": self._runner.providers if self._runner is not None else [],
        }

    def close(self) -> None:
        self._runner = None
