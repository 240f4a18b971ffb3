"""Hugging Face VLMs behind one adapter: layer names, inputs, the image-token mask, an ICL predictor.

    vlm = load_vlm("HuggingFaceTB/SmolVLM-256M-Instruct")      # or a local folder; family guessed
    inputs = vlm.build_inputs([[img]], ["<image> a red circle"])  # one list of images per text
    out, cache = vlm.run_with_cache(inputs, layers=[0, -1])      # studio.capture.activations.ActivationCache
    out, cache = run_with_cache(vlm.model, inputs, [0, -1])      # the same from a raw HF model
    predict = hf_icl_predictor(vlm)                               # episodes -> answer strings

Families: "llava" (LlavaForConditionalGeneration), "qwen2_vl" (Qwen2VLForConditionalGeneration),
"idefics3" (Idefics3ForConditionalGeneration, also SmolVLM checkpoints), "paligemma"
(PaliGemmaForConditionalGeneration; not interleaved: its image tokens all go before the text). Texts
always use the placeholder "<image>" once per image; the adapter expands it into the family's tokens.

Modules: `families` (model classes, layer paths, family_of), `adapter` (VLMAdapter, adapter_for,
load_vlm, run_with_cache), `icl` (episode prompts, candidate scores, hf_icl_predictor), `tiny`
(tiny random models built from configs for tests and docs: no download). Every name is re-exported
here, so `studio.hf.<name>` keeps working.
"""

from __future__ import annotations

# Private names are re-exported too: they were reachable as studio.hf._name before the split.
from studio.capture.hf.adapter import (  # noqa: F401
    VLMAdapter,
    _keep_blank_images,
    _load_text_side,
    _looks_local,
    _offline,
    _to_chw,
    _to_pil,
    adapter_for,
    load_vlm,
    run_with_cache,
)
from studio.capture.hf.families import (  # noqa: F401
    _IDEFICS_AROUND,
    _IDEFICS_GLOBAL,
    _LAYERS,
    _MODEL_TYPES,
    _QWEN_END,
    _QWEN_PAD,
    _QWEN_START,
    FAMILIES,
    IMAGE,
    INTERLEAVED,
    _check_family,
    _model_class,
    family_of,
)
from studio.capture.hf.icl import (  # noqa: F401
    _episode_images,
    _shot_text,
    episode_prompt,
    generate_answer,
    hf_icl_predictor,
    score_candidates,
)
from studio.capture.hf.tiny import _SPECIALS, _WORDS, tiny_config, tiny_processor, tiny_tokenizer, tiny_vlm  # noqa: F401

__all__ = [
    "FAMILIES",
    "IMAGE",
    "INTERLEAVED",
    "VLMAdapter",
    "adapter_for",
    "episode_prompt",
    "family_of",
    "generate_answer",
    "hf_icl_predictor",
    "load_vlm",
    "run_with_cache",
    "score_candidates",
    "tiny_config",
    "tiny_processor",
    "tiny_tokenizer",
    "tiny_vlm",
]
