"""Mistral 3 (Mistral3ForConditionalGeneration: Mistral Small 3.1 and relatives): a Pixtral tower at the
image's own resolution, a 2x2 patch merger, a Mistral decoder.

One image is rows of `[IMG]` x columns, each row closed by `[IMG_BREAK]` and the last by `[IMG_END]`
(only the `[IMG]` positions hold visual features, so only they are in the modality mask); pixels
(N, 3, H, W) with image_sizes (N, 2). Resolution is the processor's longest_edge (up to image_size).
"""

from __future__ import annotations

import torch

from studio.capture.hf.family import IMAGE, Family
from studio.capture.hf.registry import register

BREAK, END = "[IMG_BREAK]", "[IMG_END]"


@register
class Mistral3(Family):
    name = "mistral3"
    model_class = "Mistral3ForConditionalGeneration"
    model_types = ("mistral3",)
    specials = (BREAK, END)
    resolution = "longest_edge of the image processor: tokens = (H / (patch * merge)) * (W / (patch * merge))"

    def grid(self, image_size):
        side = self.config.vision_config.patch_size * self.config.spatial_merge_size
        return image_size[0] // side, image_size[1] // side

    def expand_image(self, image_size):
        rows, cols = self.grid(image_size)
        return "".join(IMAGE * cols + BREAK for _ in range(rows))[: -len(BREAK)] + END

    def pack_pixels(self, pics, image_size):
        out = super().pack_pixels(pics, image_size)
        out["image_sizes"] = torch.tensor([list(image_size)] * len(out["pixel_values"]))
        return out

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        head_dim = text["hidden_size"] // text["num_attention_heads"]
        return tf.Mistral3Config(
            text_config=tf.MistralConfig(**text, head_dim=head_dim),
            vision_config=tf.PixtralVisionConfig(
                **{k: vision[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")},
                num_attention_heads=vision["num_attention_heads"],
                head_dim=vision["hidden_size"] // vision["num_attention_heads"],
                image_size=image_size,
                patch_size=patch,
            ),
            image_token_index=ids[IMAGE],
            spatial_merge_size=2,
            vision_feature_layer=-1,
            pad_token_id=text["pad_token_id"],
        )
