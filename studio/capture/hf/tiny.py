"""Tiny random VLMs for tests and docs: a locally built tokenizer, small configs, saved with save_pretrained.

vlm = tiny_vlm("llava", folder)   # about 0.1 M parameters, no download; load back with load_vlm(folder)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from studio.capture.hf.adapter import VLMAdapter
from studio.capture.hf.family import IMAGE
from studio.capture.hf.registry import _load, check_family, family_class, model_class

_BASE = ["<pad>", "<s>", "</s>", "<unk>", IMAGE, "<end_of_utterance>"]


def _specials() -> list[str]:
    """Every special token some family's layout needs, in a fixed order (the base ones, then by family)."""
    out = list(_BASE)
    for name in sorted(_load()):
        out += [t for t in family_class(name).specials if t not in out]
    return out


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
    specials = _specials()
    vocab = {t: i for i, t in enumerate(specials)}
    for t in _WORDS + chars + ["##" + c for c in chars]:
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=64))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens=specials[4:],
    )


def tiny_config(
    family: str, tokenizer=None, *, hidden: int = 64, layers: int = 2, image_size: int = 32, patch: int = 8
):
    """A tiny random config of `family`: text hidden 64, 2 layers, vision 32x32 with patch 8."""
    tokenizer = tokenizer or tiny_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _specials()}
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
    return family_class(family).tiny_config(ids, text, vision, image_size=image_size, patch=patch)


def tiny_processor(family: str, tokenizer, *, image_size: int = 32, patch: int = 8):
    """The family's real HF processor around the tiny tokenizer, sized for the tiny vision tower.

    Only families whose processor builds offline from parts (see `processor_families()`): the Qwen
    processors need a video processor, which needs torchvision, which this environment lacks.
    """
    proc = family_class(family).tiny_processor(tokenizer, image_size=image_size, patch=patch)
    if proc is None:
        raise ValueError(f"no tiny processor for {family!r}; only {', '.join(processor_families())}")
    return proc


def processor_families() -> tuple[str, ...]:
    """Families whose real processor `tiny_processor` can build here (others get hand-built inputs)."""
    import warnings

    tok = tiny_tokenizer()
    with warnings.catch_warnings():  # "requires torchvision ... falling back to the PIL processor"
        warnings.simplefilter("ignore")
        return tuple(n for n in sorted(_load()) if family_class(n).tiny_processor(tok, image_size=32, patch=8))


def tiny_vlm(
    family: str, path: str | os.PathLike | None = None, *, seed: int = 0, processor: bool = False, **config_kw
) -> VLMAdapter:
    """A tiny random VLM of `family` (about 0.1-0.15 M parameters) with a locally built tokenizer.

    With `path`, model and tokenizer (and with processor=True the family's real processor, for the
    families of `processor_families()`) are saved there with save_pretrained; load back with `load_vlm(path)`.
    Returns the adapter of the in-memory model. Builds in well under a second.
    """
    family = check_family(family)
    tokenizer = tiny_tokenizer()
    config = tiny_config(family, tokenizer, **config_kw)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_class(family)(config).eval()
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
