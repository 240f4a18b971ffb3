"""SmolVLM / SmolVLM2 (SmolVLMForConditionalGeneration, model_type "smolvlm"): Idefics3's layout, its own
classes. (The first SmolVLM checkpoints say model_type "idefics3" and load as that family.) SmolVLM2 also
takes videos, as frames the processor samples and lays out like images."""

from __future__ import annotations

from studio.capture.hf.family import IMAGE
from studio.capture.hf.registry import register
from studio.capture.hf.vlms.idefics3 import Idefics3


@register
class SmolVLM(Idefics3):
    name = "smolvlm"
    model_class = "SmolVLMForConditionalGeneration"
    model_types = ("smolvlm",)
    frames = "the video processor's num_frames / fps; each frame is laid out as one image"

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        return tf.SmolVLMConfig(
            text_config=tf.LlamaConfig(**text),
            vision_config=tf.SmolVLMVisionConfig(**vision),
            scale_factor=2,
            image_token_id=ids[IMAGE],
            pad_token_id=text["pad_token_id"],
        )

    @classmethod
    def tiny_processor(cls, tokenizer, *, image_size, patch):
        return None  # SmolVLMProcessor needs a video processor, which needs torchvision
