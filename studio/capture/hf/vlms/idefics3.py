"""Idefics3 (Idefics3ForConditionalGeneration): a SigLIP-like tower, pixel shuffle, a Llama decoder.

One image (no splitting) is `<fake_token_around_image><global-img>` + `<image>` x (patches / scale_factor^2)
+ `<fake_token_around_image>`; pixels (batch, max images, 3, H, W) with a pixel attention mask, where an
all-zero image counts as padding (so real blank images are nudged, see images._keep_blank_images).
"""

from __future__ import annotations

import torch

from studio.capture.hf.family import IMAGE, Family
from studio.capture.hf.images import _keep_blank_images
from studio.capture.hf.registry import register

AROUND, GLOBAL = "<fake_token_around_image>", "<global-img>"


@register
class Idefics3(Family):
    name = "idefics3"
    model_class = "Idefics3ForConditionalGeneration"
    model_types = ("idefics3",)
    layers = "model.text_model.layers"
    nested_images = True
    specials = (AROUND, GLOBAL)
    resolution = "longest_edge of the image processor (size / max_image_size), image splitting on or off"

    def tokens_per_image(self, image_size):
        h, w = self.grid(image_size)
        return h * w // self.config.scale_factor**2

    def expand_image(self, image_size):
        return AROUND + GLOBAL + IMAGE * self.tokens_per_image(image_size) + AROUND

    def pack_pixels(self, pics, image_size):
        most = max(len(ps) for ps in pics)
        pv = torch.zeros(len(pics), most, 3, *image_size)
        pm = torch.zeros(len(pics), most, *image_size, dtype=torch.bool)
        for i, ps in enumerate(pics):
            for j, p in enumerate(ps):
                pv[i, j], pm[i, j] = p, True
        return {"pixel_values": pv, "pixel_attention_mask": pm}

    def finish(self, out, counts):
        if "pixel_values" in out:
            _keep_blank_images(out["pixel_values"], counts)
        return out

    config_classes = ("Idefics3Config", "Idefics3VisionConfig")  # SmolVLM: its own pair, the same layout

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        config, vision_config = (getattr(tf, name) for name in cls.config_classes)
        return config(
            text_config=tf.LlamaConfig(**text),
            vision_config=vision_config(**vision),
            scale_factor=2,
            image_token_id=ids[IMAGE],
            pad_token_id=text["pad_token_id"],
        )

    @classmethod
    def tiny_processor(cls, tokenizer, *, image_size, patch):
        import transformers as tf

        ip = tf.Idefics3ImageProcessor(
            do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
        )
        return tf.Idefics3Processor(
            image_processor=ip, tokenizer=tokenizer, image_seq_len=(image_size // patch) ** 2 // 4
        )
