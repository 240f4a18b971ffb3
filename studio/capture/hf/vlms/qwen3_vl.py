"""Qwen3-VL (Qwen3VLForConditionalGeneration): Qwen2-VL's token layout and controls, interleaved M-RoPE,
and DeepStack: features of early vision layers (`deepstack_visual_indexes`) are added to the first
decoder layers' outputs at the visual positions (a hook on a decoder layer sees them before the add,
like `output_hidden_states`). Patch 16 in the released checkpoints; videos carry timestamps in text."""

from __future__ import annotations

from studio.capture.hf.registry import register
from studio.capture.hf.vlms.qwen2_vl import END, START, VIDEO_PAD, Qwen2VL


@register
class Qwen3VL(Qwen2VL):
    name = "qwen3_vl"
    model_class = "Qwen3VLForConditionalGeneration"
    model_types = ("qwen3_vl",)

    def expand_video(self, frames, image_size):
        """One vision_start ... vision_end block per temporal token (the processor also writes each
        block's timestamp, "<0.5 seconds>", before it)."""
        groups = -(-frames // self.config.vision_config.temporal_patch_size)
        return (START + VIDEO_PAD * self.tokens_per_image(image_size) + END) * groups

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        text, vis, tokens = cls._tiny_parts(ids, text, patch=patch)
        text["head_dim"] = text["hidden_size"] // text["num_attention_heads"]
        text["rope_parameters"]["mrope_interleaved"] = True
        vis.update(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=text["hidden_size"],
            num_position_embeddings=(image_size // patch) ** 2,
            deepstack_visual_indexes=[0],
        )
        return tf.Qwen3VLConfig(text_config=text, vision_config=vis, **tokens)
