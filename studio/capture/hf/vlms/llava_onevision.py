"""LLaVA-OneVision (LlavaOnevisionForConditionalGeneration): a SigLIP tower, AnyRes tiling, a Qwen2 decoder.

An image is its base view (patches x patches tokens) followed by its tiles (a grid from
image_grid_pinpoints), each row of tiles closed by an image_newline token, all `<image>` tokens in the
text; pixels (N, 1 + tiles, 3, H, W) with image_sizes (N, 2). Hand-built inputs use one tile: the pinpoint
equal to the tower's image_size. A video frame is pooled 2x2 (video tokens `<video>`, plus one newline
per video). Resolution: the pinpoints and `vision_aspect_ratio` (anyres_max_9: at most 9 tiles' worth).
"""

from __future__ import annotations

import torch

from studio.capture.hf.family import IMAGE, VIDEO, Family
from studio.capture.hf.registry import register


@register
class LlavaOnevision(Family):
    name = "llava_onevision"
    model_class = "LlavaOnevisionForConditionalGeneration"
    model_types = ("llava_onevision",)
    video = True
    specials = (VIDEO,)
    resolution = "AnyRes tiles: image_grid_pinpoints and vision_aspect_ratio (anyres_max_N)"
    frames = "frames sampled by the caller (num_frames); each frame pooled to (patches/2)^2 tokens"

    def tokens_per_image(self, image_size):
        """Base view + one tile (the pinpoint of hand-built inputs) + one newline per tile row."""
        h, w = self.grid(image_size)
        return 2 * h * w + h

    def tokens_per_video(self, frames, image_size):
        """Each frame pooled (bilinear) to ceil(rows / 2) x ceil(cols / 2), then one newline per video."""
        h, w = self.grid(image_size)
        return frames * -(-h // 2) * -(-w // 2) + 1

    def tokens_per_frame(self, side):
        h, w = self.grid((side, side))
        return -(-h // 2) * -(-w // 2)

    def pack_videos(self, clips, image_size):
        return {"pixel_values_videos": torch.stack([c for cs in clips for c in cs])}  # (videos, T, 3, H, W)

    def pack_pixels(self, pics, image_size):
        flat = torch.stack([p for ps in pics for p in ps])  # (N, 3, H, W); the one tile is the image itself
        return {
            "pixel_values": torch.stack([flat, flat], dim=1),
            "image_sizes": torch.tensor([list(image_size)] * len(flat)),
        }

    @classmethod
    def _tiny_kwargs(cls, ids, image_size):
        return dict(
            image_token_index=ids[IMAGE],
            video_token_index=ids[VIDEO],
            image_grid_pinpoints=[[image_size, image_size]],
            vision_feature_layer=-1,
        )

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        return tf.LlavaOnevisionConfig(
            text_config=tf.Qwen2Config(**text),
            vision_config=tf.SiglipVisionConfig(**vision),
            **cls._tiny_kwargs(ids, image_size),
            pad_token_id=text["pad_token_id"],
        )
