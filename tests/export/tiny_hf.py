"""Tiny randomly initialised transformers models, saved to local folders (no hub access).

One builder per recipe `family`; each returns the folder, which `hf:<folder>` exports.
Hidden sizes 32, 1-2 layers, 32-pixel images: small enough for the whole suite to stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

IMG = 32


def _vit_kwargs(**extra: Any) -> dict[str, Any]:
    base = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=IMG,
        patch_size=8,
        num_channels=3,
    )
    base.update(extra)
    return base


def _save(model: Any, folder: Path, processor: Any = None) -> Path:
    model.eval()
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
    return folder


def _image_processor(size: int = IMG, **kw: Any) -> Any:
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": size, "width": size}, **kw)


def vit(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        **_vit_kwargs(), num_labels=3, id2label={0: "cat", 1: "dog", 2: "car"}, label2id={"cat": 0, "dog": 1, "car": 2}
    )
    return _save(ViTForImageClassification(config), folder, _image_processor())


def yolos(folder: Path) -> Path:
    import torch
    from transformers import YolosConfig, YolosForObjectDetection

    torch.manual_seed(0)
    config = YolosConfig(
        **_vit_kwargs(image_size=[IMG, IMG]),
        num_detection_tokens=5,
        num_labels=2,
        id2label={0: "person", 1: "car"},
        label2id={"person": 0, "car": 1},
    )
    return _save(YolosForObjectDetection(config), folder, _image_processor())


def _text(**extra: Any) -> dict[str, Any]:
    base = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=16,
    )
    base.update(extra)
    return base


def owlvit(folder: Path) -> Path:
    import torch
    from transformers import OwlViTConfig, OwlViTForObjectDetection

    torch.manual_seed(0)
    config = OwlViTConfig(text_config=_text(), vision_config=_vit_kwargs(), projection_dim=32)
    return _save(OwlViTForObjectDetection(config), folder, _image_processor())


def owlv2(folder: Path) -> Path:
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection

    torch.manual_seed(0)
    config = Owlv2Config(text_config=_text(), vision_config=_vit_kwargs(), projection_dim=32)
    return _save(Owlv2ForObjectDetection(config), folder, _image_processor())


def clip(folder: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(text_config=_text(), vision_config=_vit_kwargs(), projection_dim=32)
    return _save(CLIPModel(config), folder, _image_processor())


def siglip(folder: Path) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(0)
    config = SiglipConfig(text_config=_text(), vision_config=_vit_kwargs())
    return _save(SiglipModel(config), folder, _image_processor())


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "vit": vit,
    "yolos": yolos,
    "owlvit": owlvit,
    "owlv2": owlv2,
    "clip": clip,
    "siglip": siglip,
}


def rt_detr(folder: Path) -> Path:
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    torch.manual_seed(0)
    backbone = RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 8, 16, 16],
        depths=[1, 1, 1, 1],
        out_features=["stage2", "stage3", "stage4"],
        out_indices=[2, 3, 4],
    )
    config = RTDetrConfig(
        backbone_config=backbone,
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        encoder_in_channels=[8, 16, 16],
        feat_strides=[8, 16, 32],
        encoder_hidden_dim=32,
        d_model=32,
        # a wide init separates the encoder scores: with near-ties the top-k query selection
        # flips between torch and ONNX Runtime on float noise and parity becomes a coin toss
        decoder_in_channels=[32, 32, 32],
        initializer_range=0.5,
        encoder_layers=1,
        encoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_layers=1,
        decoder_ffn_dim=32,
        decoder_attention_heads=2,
        num_queries=10,
        num_labels=2,
        anchor_image_size=None,
        id2label={0: "person", 1: "car"},
        label2id={"person": 0, "car": 1},
        num_denoising=0,
    )
    return _save(RTDetrForObjectDetection(config), folder, _image_processor(IMG * 2))


def detr(folder: Path) -> Path:
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"])
    config = DetrConfig(
        use_timm_backbone=False,
        backbone_config=backbone,
        use_pretrained_backbone=False,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=5,
        num_labels=2,
        id2label={0: "person", 1: "car"},
        label2id={"person": 0, "car": 1},
    )
    return _save(DetrForObjectDetection(config), folder, _image_processor())


def trocr(folder: Path) -> Path:
    """vision-encoder-decoder: a ViT encoder and a TrOCR decoder (the TrOCR / captioner layout)."""
    import torch
    from transformers import TrOCRConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig

    torch.manual_seed(0)
    decoder = TrOCRConfig(
        vocab_size=99,
        d_model=32,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=37,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        decoder_start_token_id=0,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**_vit_kwargs()), decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 0, 1, 2
    return _save(VisionEncoderDecoderModel(config=config), folder, _image_processor())


def pix2struct(folder: Path) -> Path:
    import torch
    from transformers import Pix2StructConfig, Pix2StructForConditionalGeneration

    torch.manual_seed(0)
    config = Pix2StructConfig(
        text_config=dict(
            vocab_size=99,
            hidden_size=32,
            d_kv=16,
            d_ff=37,
            num_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            patch_embed_hidden_size=192,
            d_ff=37,
            d_kv=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            seq_len=16,
        ),
        is_vqa=True,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Pix2StructImageProcessor, Pix2StructProcessor, T5TokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i + 3 for i in range(96)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = T5TokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )
    images = Pix2StructImageProcessor(max_patches=16, patch_size={"height": 8, "width": 8}, is_vqa=False)
    processor = Pix2StructProcessor(image_processor=images, tokenizer=tokenizer)
    return _save(Pix2StructForConditionalGeneration(config), folder, processor)


def llama(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=99,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    return _save(LlamaForCausalLM(config), folder)


# SmolVLM's chat template (one image then text in a user turn), as its processor ships it.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def tiny_idefics3(folder: Path) -> Path:
    """A random Idefics3 (SmolVLM architecture): 32x32 images, patch 8, scale 2 -> 4 image
    tokens; a 2-layer Llama decoder with GQA; a WordLevel tokenizer with SmolVLM's special
    tokens; the processor with image splitting off (as the export path requires)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        PreTrainedTokenizerFast,
    )

    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>"]
    specials += ["<global-img>", "<image>"]
    words = ["User", "Assistant", ":", "what", "colour", "is", "the", "car", "?", "red", "blue", "a", "it"]
    names = specials + words + [f"w{i}" for i in range(64 - len(specials) - len(words))]
    vocab = {token: index for index, token in enumerate(names)}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<fake_token_around_image>", "<global-img>", "<image>"],
        model_input_names=["input_ids", "attention_mask"],
    )
    torch.manual_seed(0)
    config = Idefics3Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=64,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=128,
            bos_token_id=2,
            eos_token_id=3,
            pad_token_id=1,
        ),
        scale_factor=2,
        image_token_id=vocab["<image>"],
        pad_token_id=1,
    )
    Idefics3ForConditionalGeneration(config).eval().save_pretrained(folder)
    images = Idefics3ImageProcessor(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    processor = Idefics3Processor(
        image_processor=images, tokenizer=tokenizer, image_seq_len=4, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(folder)
    return folder


BUILDERS.update(
    {
        "rt_detr": rt_detr,
        "detr": detr,
        "trocr": trocr,
        "pix2struct": pix2struct,
        "llama": llama,
        "idefics3": tiny_idefics3,
    }
)
