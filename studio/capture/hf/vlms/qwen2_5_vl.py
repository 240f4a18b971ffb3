"""Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration): Qwen2-VL's token layout and controls, a vision tower
with windowed attention (full attention in `fullatt_block_indexes`) and an MLP merger to out_hidden_size."""

from __future__ import annotations

from studio.capture.hf.registry import register
from studio.capture.hf.vlms.qwen2_vl import Qwen2VL


@register
class Qwen2_5VL(Qwen2VL):
    name = "qwen2_5_vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"
    model_types = ("qwen2_5_vl",)

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        text, vis, tokens = cls._tiny_parts(ids, text, patch=patch)
        vis.update(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            window_size=2 * patch,  # one merged token per window: a 32x32 image has four windows
            fullatt_block_indexes=[1],
        )
        return tf.Qwen2_5_VLConfig(text_config=text, vision_config=vis, **tokens)
