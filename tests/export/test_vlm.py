"""SmolVLM / Idefics3 through edgefmp's own VLM path, offline on a tiny random model.

One export through the `export` command (`hf:<folder> --task image-text-to-text`, fp32 and
int8 with calibration frames) is shared by the tests: every part within atol 1e-4 of torch,
the ONNX Runtime generate loop token for token with transformers' greedy generate, the prompt
the backend builds equal to the Idefics3 processor's, and a VQARequest answered end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgefmp.errors import ConfigError
from tests.export.tiny_hf import tiny_idefics3

pytest.importorskip("torch")
pytest.importorskip("transformers")

QUESTION = "what colour is the car ?"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_idefics3(tmp_path_factory.mktemp("vlm") / "tiny-smolvlm")


@pytest.fixture(scope="module")
def exported(tiny: Path, tmp_path_factory: pytest.TempPathFactory, frames_dir: Path) -> Path:
    """`edgefmp export hf:<tiny> --task image-text-to-text --precision fp32,int8 --calib frames`."""
    import typer
    from typer.testing import CliRunner

    from edgefmp.export.commands import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # a group, as in edgefmp.cli
        """edgefmp"""

    out = tmp_path_factory.mktemp("vlm-out")
    args = ["export", f"hf:{tiny}", "--task", "image-text-to-text", "--precision", "fp32,int8"]
    args += ["--calib", str(frames_dir), "--calib-samples", "4", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    return out


def _manifest(folder: Path, part: str = "vision_encoder") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / f"{part}.onnx.manifest.json").read_text())
    return data


def _torch_model(folder: Path) -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(folder).eval()


def test_export_writes_three_verified_parts(exported: Path) -> None:
    from edgefmp.backends.vlm import PART_FILES

    fp32 = exported / "fp32"
    assert {p.name for p in fp32.glob("*.onnx")} == set(PART_FILES.values())
    assert (fp32 / "tokenizer.json").is_file() and (fp32 / "preprocessor_config.json").is_file()
    manifest = _manifest(fp32)
    assert manifest["function"] == "vqa" and manifest["task"] == "image-text-to-text"
    assert manifest["extra"]["parts"] == PART_FILES
    vlm = manifest["extra"]["vlm"]
    assert vlm["image_seq_len"] == 4 and vlm["image_token"] == "<image>" and vlm["image_splitting"] is False
    assert vlm["prompt_template"] == "<|im_start|>User:{image}{question}<end_of_utterance>\nAssistant:"
    assert manifest["preprocess"]["size"] == [32, 32] and manifest["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    parts = manifest["verification"]["parts"]
    for part in ("vision_encoder", "embed_tokens", "decoder"):
        assert parts[part]["status"] == "passed"
        for name, stats in parts[part]["outputs"].items():
            assert stats["max_abs_diff"] < 1e-4, (part, name, stats)
    assert parts["end_to_end"]["metric"] == {"name": "greedy_token_match", "value": 1.0, "threshold": 1.0, "samples": 1}
    int8 = _manifest(exported / "int8-static")
    assert int8["verification"]["status"] == "passed" and int8["calibration"]["samples"] == 4
    assert _manifest(exported / "int8-static", "decoder_model_merged")["extra"]["part"] == "decoder"


def test_onnx_generate_loop_matches_torch_greedy(tiny: Path, exported: Path) -> None:
    """Six greedy steps with the cache carried in ONNX Runtime, against transformers' generate
    (eos left out on both sides so every step is compared)."""
    import torch

    from edgefmp.backends.manifest import Manifest
    from edgefmp.backends.vlm import VLMRunner, read_layout

    folder = exported / "fp32"
    layout = read_layout(Manifest.model_validate(_manifest(folder)), str(folder))
    runner = VLMRunner.cpu(folder, layout)
    rng = np.random.default_rng(3)
    ids = np.array([[2, 7, 9, 4, 5, 6, 6, 6, 6, 4, 10, 11, 12, 13, 14, 15, 3, 8, 9]], np.int64)
    pixels = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = runner.generate(ids, pixels, max_new_tokens=6, eos_token_ids=[])
    model = _torch_model(tiny)
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.ones(ids.shape, dtype=torch.long),
            pixel_values=torch.from_numpy(pixels)[:, None],
            max_new_tokens=6,
            do_sample=False,
            eos_token_id=None,
            output_scores=True,
            return_dict_in_generate=True,
        )
    expected = out.sequences[0, ids.shape[1] :].tolist()
    assert len(got.tokens) == 6 and got.tokens == expected
    np.testing.assert_allclose(got.first_logits, out.scores[0][0].numpy(), atol=1e-4, rtol=1e-3)


def test_backend_answers_vqa_like_torch(tiny: Path, exported: Path) -> None:
    import torch
    from transformers import AutoProcessor

    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.registry import backend_class
    from edgefmp.results import Answer, VQARequest

    cls = backend_class("vlm")
    spec = BackendSpec(name="smolvlm", kind="vlm", function="vqa", model=str(exported / "fp32"))
    backend = cls(spec, cls.Options.model_validate({"providers": ["CPU"], "max_new_tokens": 5}))
    image = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    answer = backend.infer(VQARequest(image, QUESTION))
    assert isinstance(answer, Answer) and answer.confidence is not None and 0 < answer.confidence <= 1

    # the prompt is the processor's (image splitting off); pixels go through the manifest's preprocess
    processor = AutoProcessor.from_pretrained(tiny)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    ids = backend.prompt_ids(QUESTION)  # type: ignore[attr-defined]
    assert ids.tolist() == processor(text=text, images=[image])["input_ids"]
    with torch.no_grad():
        generated = _torch_model(tiny).generate(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.ones(ids.shape, dtype=torch.long),
            pixel_values=torch.from_numpy(backend.pixels(image))[:, None],  # type: ignore[attr-defined]
            max_new_tokens=5,
            do_sample=False,
        )
    expected = processor.tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True).strip()
    assert answer.text == expected
    backend.warmup()
    assert backend.describe()["providers"] == ["CPUExecutionProvider"]
    backend.close()


def test_backend_errors_name_the_problem(exported: Path, tmp_path: Path) -> None:
    import shutil

    from edgefmp.backends.catalog import BackendSpec
    from edgefmp.backends.vlm import VLMBackend, VLMOptions

    def build(model: str, function: str = "vqa") -> Any:
        spec = BackendSpec(name="v", kind="vlm", function=function, model=model)
        return VLMBackend(spec, VLMOptions(providers=["CPU"]))

    with pytest.raises(ConfigError, match="not an exported VLM folder"):
        build(str(tmp_path))
    with pytest.raises(ConfigError, match="serves 'vqa'"):
        build(str(exported / "fp32"), function="detect")
    bare = tmp_path / "bare"
    shutil.copytree(exported / "fp32", bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).unlink()
    with pytest.raises(ConfigError, match="no tokenizer"):
        build(str(bare / "vision_encoder.onnx"))


def test_wrong_task_is_refused(tiny: Path, tmp_path: Path) -> None:
    from edgefmp.export.sources import SourceOptions, open_source

    source = open_source(f"hf:{tiny}", SourceOptions(task="image-to-text"))
    with pytest.raises(ConfigError, match="--task image-text-to-text"):
        source.export_fp32(tmp_path, None)


def test_smolvlm_recipe() -> None:
    from edgefmp.export.recipes import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "export" / "smolvlm.yaml")
    assert recipe.family == "idefics3" and recipe.function == "vqa" and recipe.task == "image-text-to-text"
    assert [s.tag for s in recipe.sizes] == ["256m", "500m", "2.2b"]
    assert all(s.model.startswith("hf:HuggingFaceTB/SmolVLM") for s in recipe.sizes)
