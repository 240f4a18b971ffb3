"""SmolVLM / SmolVLM2 (SmolVLMForConditionalGeneration, model_type "smolvlm"): Idefics3's layout, its own
classes. (The first SmolVLM checkpoints say model_type "idefics3" and load as that family.) SmolVLM2 also
takes videos, as frames the processor samples and lays out like images."""

from __future__ import annotations

from studio.capture.hf.registry import register
from studio.capture.hf.vlms.idefics3 import Idefics3


@register
class SmolVLM(Idefics3):
    name = "smolvlm"
    model_class = "SmolVLMForConditionalGeneration"
    model_types = ("smolvlm",)
    frames = "the video processor's num_frames / fps; each frame is laid out as one image"

    config_classes = ("SmolVLMConfig", "SmolVLMVisionConfig")

    @classmethod
    def tiny_processor(cls, tokenizer, *, image_size, patch):
        return None  # SmolVLMProcessor needs a video processor, which needs torchvision
