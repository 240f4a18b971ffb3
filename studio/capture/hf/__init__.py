"""Hugging Face VLMs behind one adapter: layer names, inputs, the visual-token mask, ICL and video QA.

    vlm = load_vlm("HuggingFaceTB/SmolVLM-256M-Instruct")      # or a local folder; family guessed
    inputs = vlm.build_inputs([[img]], ["<image> a red circle"])  # one list of images per text
    out, cache = vlm.run_with_cache(inputs, layers=[0, -1])      # studio.capture.activations.ActivationCache
    out, cache = run_with_cache(vlm.model, inputs, [0, -1])      # the same from a raw HF model
    predict = hf_icl_predictor(vlm)                               # episodes -> answer strings
    families()                                                    # the supported VLM families
    frames_by_tokens(vlm, needle_items(64), frames=[1, 4, 16], tokens=[16, 64])  # video families: T x M

Families: one `Family` subclass each in `vlms/` (llava, llava_onevision, llava_next_video, qwen2_vl,
qwen2_5_vl, qwen3_vl, idefics3, smolvlm, paligemma, gemma3, internvl, mistral3), found by `registry`.
Texts always use the placeholder "<image>" once per image (and "<video>" once per video, video families);
the family expands it into its own tokens.

Modules: `family` (the Family base class), `registry` (families, family_of, model_class), `images`,
`adapter` (VLMAdapter, adapter_for, load_vlm, run_with_cache), `icl` (episode prompts, candidate
scores, hf_icl_predictor), `video_qa` (answer loss and accuracy on video questions across frames and
tokens per frame), `tiny` (tiny random models built from configs for tests and docs: no download),
`gap_profile`. Every public name is re-exported here, so `studio.hf.<name>` keeps working.
"""

from __future__ import annotations

# Private names are re-exported too: they were reachable as studio.hf._name before the split.
from studio.capture.hf.adapter import (  # noqa: F401
    VLMAdapter,
    _load_text_side,
    _looks_local,
    _offline,
    adapter_for,
    load_vlm,
    run_with_cache,
)
from studio.capture.hf.family import IMAGE, VIDEO, Family
from studio.capture.hf.icl import (  # noqa: F401
    _episode_images,
    _shot_text,
    episode_prompt,
    generate_answer,
    hf_icl_predictor,
    score_candidates,
)
from studio.capture.hf.images import _keep_blank_images, _to_chw, _to_pil  # noqa: F401
from studio.capture.hf.registry import (  # noqa: F401
    NEW_FAMILY_FILE,
    check_family,
    families,
    family_class,
    family_of,
    model_class,
    register,
    video_families,
)
from studio.capture.hf.tiny import (  # noqa: F401
    _WORDS,
    processor_families,
    tiny_config,
    tiny_processor,
    tiny_tokenizer,
    tiny_vlm,
)
from studio.capture.hf.video_qa import VideoQA, frames_by_tokens, load_items, needle_items, score_item

_check_family, _model_class = check_family, model_class  # the names before the registry
FAMILIES = families()  # every registered family (a tuple, sorted)
INTERLEAVED = tuple(f for f in FAMILIES if family_class(f).interleaved)  # images between text (ICL)

__all__ = [
    "FAMILIES",
    "IMAGE",
    "INTERLEAVED",
    "VIDEO",
    "Family",
    "VLMAdapter",
    "VideoQA",
    "adapter_for",
    "episode_prompt",
    "families",
    "family_class",
    "family_of",
    "frames_by_tokens",
    "generate_answer",
    "hf_icl_predictor",
    "load_items",
    "load_vlm",
    "model_class",
    "needle_items",
    "processor_families",
    "register",
    "run_with_cache",
    "score_candidates",
    "score_item",
    "tiny_config",
    "tiny_processor",
    "tiny_tokenizer",
    "tiny_vlm",
    "video_families",
]
