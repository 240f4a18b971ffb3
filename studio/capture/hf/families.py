"""The VLM families studio knows: their model classes, where their decoder layers live, their image tokens.

A family is picked from a config's `model_type` (`family_of`); SmolVLM checkpoints are Idefics3.
Texts always use the placeholder IMAGE ("<image>") once per image; `studio.capture.hf.adapter`
expands it into each family's own tokens (the Qwen and Idefics markers below).
"""

from __future__ import annotations

IMAGE = "<image>"  # the placeholder texts use, whatever the family
FAMILIES = ("llava", "qwen2_vl", "idefics3", "paligemma")
INTERLEAVED = ("llava", "qwen2_vl", "idefics3")  # families that take images between text (ICL)
_MODEL_TYPES = {
    "llava": "llava",
    "qwen2_vl": "qwen2_vl",
    "idefics3": "idefics3",
    "smolvlm": "idefics3",
    "paligemma": "paligemma",
}
# where each family keeps its text decoder's layers (transformers 5)
_LAYERS = {
    "llava": "model.language_model.layers",
    "qwen2_vl": "model.language_model.layers",
    "idefics3": "model.text_model.layers",
    "paligemma": "model.language_model.layers",
}
_QWEN_START, _QWEN_PAD, _QWEN_END = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"
_IDEFICS_AROUND, _IDEFICS_GLOBAL = "<fake_token_around_image>", "<global-img>"


def _model_class(family: str):
    import transformers

    return {
        "llava": transformers.LlavaForConditionalGeneration,
        "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
        "idefics3": transformers.Idefics3ForConditionalGeneration,
        "paligemma": transformers.PaliGemmaForConditionalGeneration,
    }[_check_family(family)]


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown VLM family {family!r}; known: {FAMILIES}")
    return family


def family_of(model_or_config) -> str:
    """The adapter family of a model or config, from its model_type."""
    cfg = getattr(model_or_config, "config", model_or_config)
    mt = getattr(cfg, "model_type", None)
    if mt not in _MODEL_TYPES:
        raise ValueError(f"no VLM adapter for model_type {mt!r}; known: {sorted(_MODEL_TYPES)}")
    return _MODEL_TYPES[mt]
