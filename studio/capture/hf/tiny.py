"""Tiny random VLMs for tests and docs: a locally built tokenizer, small configs, saved with save_pretrained.

vlm = tiny_vlm("llava", folder)   # about 0.1 M parameters, no download; load back with load_vlm(folder)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from studio.capture.hf.adapter import VLMAdapter
from studio.capture.hf.families import (
    _IDEFICS_AROUND,
    _IDEFICS_GLOBAL,
    _QWEN_END,
    _QWEN_PAD,
    _QWEN_START,
    IMAGE,
    _check_family,
    _model_class,
)

_SPECIALS = [
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    IMAGE,
    _IDEFICS_AROUND,
    _IDEFICS_GLOBAL,
    _QWEN_START,
    _QWEN_END,
    _QWEN_PAD,
    "<|video_pad|>",
    "<end_of_utterance>",
]
_WORDS = (
    "a an the is are of on in to and with this that what which who how many there question answer "
    "caption image picture digit number shape colour color left right above below next "
    "red green blue yellow black white orange purple circle square triangle star cat dog "
    "zero one two three four five six seven eight nine yes no user assistant"
).split()


def tiny_tokenizer():
    """A WordPiece tokenizer built locally: specials, a few hundred words, and single characters as
    fallback so any lower-case text encodes. Returns a PreTrainedTokenizerFast (bos <s>, eos </s>)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,:;?!'-_()")
    vocab = {t: i for i, t in enumerate(_SPECIALS)}
    for t in _WORDS + chars + ["##" + c for c in chars]:
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=64))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tok.add_special_tokens(_SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens=_SPECIALS[4:],
    )


def tiny_config(
    family: str, tokenizer=None, *, hidden: int = 64, layers: int = 2, image_size: int = 32, patch: int = 8
):
    """A tiny random config of `family`: text hidden 64, 2 layers, vision 32x32 with patch 8."""
    import transformers as tf

    tokenizer = tokenizer or tiny_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIALS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        tie_word_embeddings=False,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
    )
    family = _check_family(family)
    if family == "llava":
        return tf.LlavaConfig(
            text_config=tf.LlamaConfig(**text),
            vision_config=tf.CLIPVisionConfig(**vision),
            image_token_index=ids[IMAGE],
            vision_feature_layer=-1,
            image_seq_length=(image_size // patch) ** 2,
            pad_token_id=ids["<pad>"],
        )
    if family == "paligemma":
        return tf.PaliGemmaConfig(
            text_config=tf.GemmaConfig(**text, head_dim=hidden // 4),
            vision_config=tf.SiglipVisionConfig(**vision, projection_dim=hidden),
            image_token_index=ids[IMAGE],
            projection_dim=hidden,
            pad_token_id=ids["<pad>"],
        )
    if family == "idefics3":
        return tf.Idefics3Config(
            text_config=tf.LlamaConfig(**text),
            vision_config=tf.Idefics3VisionConfig(**vision),
            scale_factor=2,
            image_token_id=ids[IMAGE],
            pad_token_id=ids["<pad>"],
        )
    head_dim = hidden // text["num_attention_heads"]
    half = head_dim // 2  # the mrope sections must sum to head_dim / 2
    sections = [half - 2 * (half // 3), half // 3, half // 3]
    return tf.Qwen2VLConfig(
        text_config=dict(**text, rope_parameters=dict(rope_type="default", mrope_section=sections, rope_theta=10000.0)),
        # the vision tower's output width must equal the text hidden size
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=hidden,
            num_heads=2,
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
            mlp_ratio=2,
        ),
        image_token_id=ids[_QWEN_PAD],
        vision_start_token_id=ids[_QWEN_START],
        vision_end_token_id=ids[_QWEN_END],
        video_token_id=ids["<|video_pad|>"],
        pad_token_id=ids["<pad>"],
    )


def tiny_processor(family: str, tokenizer, *, image_size: int = 32, patch: int = 8):
    """The family's real HF processor around the tiny tokenizer, sized for the tiny vision tower.

    Only "llava" and "idefics3": Qwen2-VL's processor needs torchvision (a video processor), which
    this environment lacks, and PaliGemma's adds its own prompt format.
    """
    import transformers as tf

    if family == "llava":
        ip = tf.CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
        return tf.LlavaProcessor(
            image_processor=ip,
            tokenizer=tokenizer,
            patch_size=patch,
            image_token=IMAGE,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
        )
    if family == "idefics3":
        ip = tf.Idefics3ImageProcessor(
            do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
        )
        return tf.Idefics3Processor(
            image_processor=ip, tokenizer=tokenizer, image_seq_len=(image_size // patch) ** 2 // 4
        )
    raise ValueError(f"no tiny processor for {family!r}; only llava and idefics3")


def tiny_vlm(
    family: str, path: str | os.PathLike | None = None, *, seed: int = 0, processor: bool = False, **config_kw
) -> VLMAdapter:
    """A tiny random VLM of `family` (about 0.1-0.15 M parameters) with a locally built tokenizer.

    With `path`, model and tokenizer (and with processor=True the family's real processor, llava
    and idefics3 only) are saved there with save_pretrained; load back with `load_vlm(path)`.
    Returns the adapter of the in-memory model. Builds in well under a second.
    """
    tokenizer = tiny_tokenizer()
    config = tiny_config(family, tokenizer, **config_kw)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _model_class(family)(config).eval()
    proc = None
    if processor:
        import warnings

        with warnings.catch_warnings():  # "requires torchvision ... falling back to the PIL processor"
            warnings.simplefilter("ignore")
            proc = tiny_processor(
                family, tokenizer, image_size=config_kw.get("image_size", 32), patch=config_kw.get("patch", 8)
            )
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        if proc is not None:
            proc.save_pretrained(path)
    extra = {"image_size": config_kw.get("image_size", 32)}
    return VLMAdapter(model, family, tokenizer, proc, extra=extra)
