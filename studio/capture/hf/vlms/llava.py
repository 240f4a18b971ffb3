"""LLaVA (LlavaForConditionalGeneration): a CLIP tower, a projector, a Llama-like decoder.

One image is `<image>` repeated once per patch (plus one for the CLS token when the feature strategy
is "full"); pixels (N, 3, H, W) at the tower's fixed image_size.
"""

from __future__ import annotations

from studio.capture.hf.family import IMAGE, Family
from studio.capture.hf.registry import register


@register
class Llava(Family):
    name = "llava"
    model_class = "LlavaForConditionalGeneration"
    model_types = ("llava",)

    def tokens_per_image(self, image_size):
        h, w = self.grid(image_size)
        return h * w + (self.config.vision_feature_select_strategy == "full")

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        return tf.LlavaConfig(
            text_config=tf.LlamaConfig(**text),
            vision_config=tf.CLIPVisionConfig(**vision),
            image_token_index=ids[IMAGE],
            vision_feature_layer=-1,
            image_seq_length=(image_size // patch) ** 2,
            pad_token_id=text["pad_token_id"],
        )

    @classmethod
    def tiny_processor(cls, tokenizer, *, image_size, patch):
        import transformers as tf

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
