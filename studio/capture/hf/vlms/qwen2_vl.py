"""Qwen2-VL (Qwen2VLForConditionalGeneration): dynamic resolution, 2x2 patch merging, M-RoPE.

One image is `<|vision_start|>` + `<|image_pad|>` x (patches / merge^2) + `<|vision_end|>`; pixels are
the flattened patches (patches, 3 * temporal_patch * patch^2) with image_grid_thw (images, 3), and the
model wants mm_token_type_ids (0 text, 1 image, 2 video) for its 3-D positions. Resolution is set by
the processor's min_pixels / max_pixels (tokens = pixels / (patch * merge)^2); frames of a video by
its fps or num_frames, two frames per temporal patch.
"""

from __future__ import annotations

import torch

from studio.capture.hf.family import Family
from studio.capture.hf.registry import register
from studio.errors import ParameterError

START, PAD, END, VIDEO_PAD = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>"


@register
class Qwen2VL(Family):
    name = "qwen2_vl"
    model_class = "Qwen2VLForConditionalGeneration"
    model_types = ("qwen2_vl",)
    video = True
    image_token = PAD
    video_token = VIDEO_PAD
    processor_image = START + PAD + END
    processor_video = START + VIDEO_PAD + END
    specials = (START, END, PAD, VIDEO_PAD)
    resolution = "min_pixels / max_pixels of the processor: tokens per image = pixels / (patch * merge)^2"
    frames = "fps or num_frames of the video processor; temporal_patch_size frames make one temporal token"

    def default_image_size(self):
        v = self.config.vision_config
        return 2 * v.patch_size * v.spatial_merge_size

    def tokens_per_image(self, image_size):
        h, w = self.grid(image_size)
        return h * w // self.config.vision_config.spatial_merge_size**2

    def expand_image(self, image_size):
        return START + PAD * self.tokens_per_image(image_size) + END

    def tokens_per_video(self, frames, image_size):
        """ceil(frames / temporal_patch_size) temporal tokens, each the tokens of one image."""
        return -(-frames // self.config.vision_config.temporal_patch_size) * self.tokens_per_image(image_size)

    def expand_video(self, frames, image_size):
        return START + VIDEO_PAD * self.tokens_per_video(frames, image_size) + END

    def pack_videos(self, clips, image_size):
        flat, grids = zip(*(self._video_patches(c) for cs in clips for c in cs))
        return {"pixel_values_videos": torch.cat(flat), "video_grid_thw": torch.tensor(grids)}

    def _video_patches(self, frames: torch.Tensor):
        """(T, 3, H, W) -> ((t*h*w, 3*tp*p*p) patches, (t, h, w)); T padded to a multiple of the temporal
        patch by repeating the last frame, as the video processor does."""
        v = self.config.vision_config
        p, m, tp = v.patch_size, v.spatial_merge_size, v.temporal_patch_size
        if len(frames) % tp:
            frames = torch.cat([frames, frames[-1:].expand(tp - len(frames) % tp, -1, -1, -1)])
        n, c, hh, ww = frames.shape
        gt, gh, gw = n // tp, hh // p, ww // p
        x = frames.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gt * gh * gw, c * tp * p * p), (gt, gh, gw)

    def pack_pixels(self, pics, image_size):
        flat, grids = zip(*(self._patches(p) for ps in pics for p in ps))
        return {"pixel_values": torch.cat(flat), "image_grid_thw": torch.tensor(grids)}

    def _patches(self, chw: torch.Tensor):
        """(3, H, W) -> ((h*w, 3*t*p*p) flattened patches, (1, h, w)): the image repeated over the
        temporal patch, in the merge-window order of Qwen2-VL's image processor."""
        v = self.config.vision_config
        p, m, t = v.patch_size, v.spatial_merge_size, v.temporal_patch_size
        c, hh, ww = chw.shape
        gh, gw = hh // p, ww // p
        x = chw.reshape(c, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
        x = x[:, :, :, :, :, None].expand(*x.shape[:5], t, p, p)
        return x.reshape(gh * gw, c * t * p * p), (1, gh, gw)

    def finish(self, out, counts):
        if "mm_token_type_ids" not in out:
            ids = out["input_ids"]
            types = (ids == self.image_token_id).long()
            if self.video_token_id is not None:
                types[ids == self.video_token_id] = 2
            out["mm_token_type_ids"] = types
        return out

    def frame_side(self, tokens_per_frame):
        """Any square number of tokens: side = sqrt(tokens) merged patches."""
        if tokens_per_frame is None:
            return self.default_image_size()
        root = int(round(tokens_per_frame**0.5))
        if root < 1 or root * root != tokens_per_frame:
            raise ParameterError(
                f"{self.name}: tokens per frame must be a square number (1, 4, 9, ...), not {tokens_per_frame}"
            )
        v = self.config.vision_config
        return root * v.patch_size * v.spatial_merge_size

    def tokens_per_frame(self, side):
        """Tokens of one temporal patch (temporal_patch_size frames share it): a video of T frames has
        ceil(T / temporal_patch_size) of them."""
        return self.tokens_per_image((side, side))

    def video_processor_kwargs(self, frame_size):
        pixels = frame_size[0] * frame_size[1]
        size = {"shortest_edge": pixels, "longest_edge": pixels}
        return {"videos_kwargs": {"size": size, "do_sample_frames": False}}

    def resolution_kwargs(self, tokens_per_image):
        """min_pixels = max_pixels: exactly tokens_per_image for a square image (the synthetic videos'
        frames); another shape gets whole merged patches per side, off by up to a row or a column."""
        v = self.config.vision_config
        pixels = tokens_per_image * (v.patch_size * v.spatial_merge_size) ** 2
        return {"min_pixels": pixels, "max_pixels": pixels}

    @classmethod
    def _tiny_parts(cls, ids, text, *, patch):
        head_dim = text["hidden_size"] // text["num_attention_heads"]
        half = head_dim // 2  # the mrope sections must sum to head_dim / 2
        sections = [half - 2 * (half // 3), half // 3, half // 3]
        text = dict(**text, rope_parameters=dict(rope_type="default", mrope_section=sections, rope_theta=10000.0))
        tokens = dict(
            image_token_id=ids[PAD],
            vision_start_token_id=ids[START],
            vision_end_token_id=ids[END],
            video_token_id=ids[VIDEO_PAD],
            pad_token_id=text["pad_token_id"],
        )
        vision = dict(patch_size=patch, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
        return text, vision, tokens

    @classmethod
    def tiny_config(cls, ids, text, vision, *, image_size, patch):
        import transformers as tf

        text, vis, tokens = cls._tiny_parts(ids, text, patch=patch)
        # the vision tower's output width must equal the text hidden size
        vis.update(depth=1, embed_dim=32, hidden_size=text["hidden_size"], num_heads=2, mlp_ratio=2)
        return tf.Qwen2VLConfig(text_config=text, vision_config=vis, **tokens)
