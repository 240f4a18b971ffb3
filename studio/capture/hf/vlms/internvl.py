"""InternVL 3 (InternVLForConditionalGeneration, the transformers-native checkpoints "-hf"): an InternViT
tower, pixel shuffle by downsample_ratio (0.5: a 2x2 block per token), a Qwen2 decoder.

One image (one tile) is `<img>` + `<IMG_CONTEXT>` x (patches * downsample_ratio^2) + `</img>`; pixels
(tiles, 3, H, W) at the fixed 448 tile size. Resolution is the number of tiles (the processor's
crop_to_patches / max_patches); a video is frames, each laid out as one tile.
"""

from __future__ import annotations

from studio.capture.hf.family import IMAGE, Family
from studio.capture.hf.registry import register

START, END = "<img>", "</img>"


@register
class InternVL(Family):
    name = "internvl"
    model_class = "InternVLForConditionalGeneration"
    model_types = ("internvl",)
    specials = (START, END)
    resolution = "tiles of image_size (crop_to_patches, max_patches of the image processor)"
    frames = "num_frames of the video processor; each frame is one tile"

    def tokens_per_image(self, image_size):
        h, w = self.grid(image_size)
        return int(round(h * w * self.config.downsample_ratio**2))

    def expand_image(self, image_size):
        return START + IMAGE * self.tokens_per_image(image_size) + END

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        return tf.InternVLConfig(
            text_config=tf.Qwen2Config(**text),
            vision_config=tf.InternVLVisionConfig(
                hidden_size=vision["hidden_size"],
                intermediate_size=vision["intermediate_size"],
                num_hidden_layers=vision["num_hidden_layers"],
                num_attention_heads=vision["num_attention_heads"],
                image_size=[image_size, image_size],
                patch_size=[patch, patch],
            ),
            image_token_id=ids[IMAGE],
            image_seq_length=(image_size // patch // 2) ** 2,
            downsample_ratio=0.5,
            pad_token_id=text["pad_token_id"],
        )
