"""LLaVA-NeXT-Video (LlavaNextVideoForConditionalGeneration): LLaVA-NeXT's AnyRes images (as
llava_onevision: base view + tiles + a newline per tile row) and videos whose frames are pooled by
spatial_pool_stride (2: a quarter of the tokens per frame) and laid out as `<video>` tokens."""

from __future__ import annotations

from studio.capture.hf.registry import register
from studio.capture.hf.vlms.llava_onevision import LlavaOnevision


@register
class LlavaNextVideo(LlavaOnevision):
    name = "llava_next_video"
    model_class = "LlavaNextVideoForConditionalGeneration"
    model_types = ("llava_next_video",)
    resolution = "AnyRes tiles: image_grid_pinpoints (images); spatial_pool_stride (video frames)"
    frames = "frames sampled by the caller; each frame pooled by spatial_pool_stride"

    def tokens_per_frame(self, side):
        h, w = self.grid((side, side))
        return (h // self.config.spatial_pool_stride) * (w // self.config.spatial_pool_stride)

    def tokens_per_video(self, frames, image_size):
        h, w = self.grid(image_size)
        stride = self.config.spatial_pool_stride
        return frames * (h // stride) * (w // stride)

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        grid = image_size // patch
        return tf.LlavaNextVideoConfig(
            text_config=tf.LlamaConfig(**text),
            vision_config=tf.CLIPVisionConfig(**vision),
            **cls._tiny_kwargs(ids, image_size),
            image_seq_length=grid * grid,
            video_seq_length=(grid // 2) ** 2,
            pad_token_id=text["pad_token_id"],
        )
