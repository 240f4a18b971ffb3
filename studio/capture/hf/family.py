"""What studio needs to know about one VLM family: the base class every family in `vlms/` fills in.

A family is one `...ForConditionalGeneration` class of transformers and the config `model_type`s that load
into it. Its class says how the text lays out an image's tokens (hand-built inputs and the processor's
prompt), which token ids the modality mask marks, where the text decoder's layers live, how pixels are
packed for the model, and which knobs set frames and resolution. Texts always hold the placeholder IMAGE
("<image>") once per image; the family expands it. `studio.capture.hf.registry` finds the classes.

The defaults describe a LLaVA-like model: `<image>` repeated once per visual token, pixels (N, 3, H, W).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from studio.errors import ParameterError

IMAGE = "<image>"  # the placeholder texts use, whatever the family
VIDEO = "<video>"  # the same for a video (families with `video = True`)


class Family:
    """One VLM family, bound to a model's config. Subclasses set the class attributes and override
    only the methods where their layout differs from LLaVA's."""

    name: ClassVar[str]  # registry key, e.g. "qwen2_vl"
    model_class: ClassVar[str]  # the transformers class, e.g. "Qwen2VLForConditionalGeneration"
    model_types: ClassVar[tuple[str, ...]]  # config.model_type values this family loads
    layers: ClassVar[str] = "model.language_model.layers"  # the text decoder's ModuleList (transformers 5)
    interleaved: ClassVar[bool] = True  # images may sit between text (in-context learning)
    video: ClassVar[bool] = False  # the model takes videos as well as images
    image_token: ClassVar[str] = IMAGE  # the token repeated once per visual token in input_ids
    video_token: ClassVar[str] = VIDEO  # the same for a video's visual tokens (video families)
    processor_image: ClassVar[str] = IMAGE  # what the family's processor wants in the text per image
    processor_video: ClassVar[str] = VIDEO  # and per video
    nested_images: ClassVar[bool] = False  # the processor takes one list of images per text
    specials: ClassVar[tuple[str, ...]] = ()  # extra special tokens its layout needs (the tiny tokenizer has them)
    resolution: ClassVar[str] = "fixed: every image is resized to the vision tower's image_size"
    frames: ClassVar[str] = "none: a video is a list of images"

    def __init__(self, config):
        self.config = config

    # --- token ids and the mask -------------------------------------------------------------------------

    def _config_id(self, *keys: str) -> int | None:
        for key in keys:
            value = getattr(self.config, key, None)
            if value is not None:
                return int(value)
        return None

    @property
    def image_token_id(self) -> int | None:
        """Id of the token that stands for one visual token of an image (from the config)."""
        return self._config_id("image_token_id", "image_token_index")

    @property
    def video_token_id(self) -> int | None:
        return self._config_id("video_token_id", "video_token_index") if self.video else None

    def visual_token_ids(self) -> list[int]:
        """The ids the modality mask marks: the image token and, for video families, the video token."""
        return [i for i in (self.image_token_id, self.video_token_id) if i is not None]

    def modality_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, seq) bool, True where the LLM sees a visual token (image or video)."""
        ids = torch.tensor(self.visual_token_ids(), device=input_ids.device)
        return torch.isin(input_ids, ids)

    # --- hand-built inputs (tiny models: no processor) --------------------------------------------------

    def default_image_size(self) -> int | tuple[int, int] | None:
        """Side in pixels hand-built inputs resize every image to (None: the adapter's `extra`)."""
        return getattr(self.config.vision_config, "image_size", None)

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(rows, cols) of vision patches an image of `image_size` becomes."""
        p = self.config.vision_config.patch_size
        p = p[0] if isinstance(p, (list, tuple)) else p
        return image_size[0] // p, image_size[1] // p

    def tokens_per_image(self, image_size: tuple[int, int]) -> int:
        """Visual tokens (image_token positions) one image becomes in hand-built inputs."""
        h, w = self.grid(image_size)
        return h * w

    def expand_image(self, image_size: tuple[int, int]) -> str:
        """The text one IMAGE placeholder becomes in hand-built inputs (images resized to image_size)."""
        return self.image_token * self.tokens_per_image(image_size)

    def manual_texts(self, texts: list[str], image_size: tuple[int, int], bos: str) -> tuple[list[str], bool]:
        """Hand-built texts and whether the tokenizer adds its special tokens (BOS)."""
        return [t.replace(IMAGE, self.expand_image(image_size)) for t in texts], True

    def pack_pixels(self, pics: list[list[torch.Tensor]], image_size: tuple[int, int]) -> dict[str, Any]:
        """Normalised images, pics[i] the (3, H, W) tensors of text i -> the model's pixel inputs."""
        return {"pixel_values": torch.stack([p for ps in pics for p in ps])}

    def tokens_per_video(self, frames: int, image_size: tuple[int, int]) -> int:
        """Visual tokens (video_token positions) a video of `frames` frames becomes in hand-built inputs."""
        raise ParameterError(f"{self.name} takes no video")

    def expand_video(self, frames: int, image_size: tuple[int, int]) -> str:
        """The text one VIDEO placeholder becomes in hand-built inputs."""
        return self.video_token * self.tokens_per_video(frames, image_size)

    def pack_videos(self, clips: list[list[torch.Tensor]], image_size: tuple[int, int]) -> dict[str, Any]:
        """Normalised videos, clips[i] the (T, 3, H, W) tensors of text i -> the model's video inputs."""
        raise ParameterError(f"{self.name} takes no video")

    # --- processor inputs (real checkpoints) ------------------------------------------------------------

    def processor_texts(self, texts: list[str]) -> list[str]:
        return [t.replace(IMAGE, self.processor_image).replace(VIDEO, self.processor_video) for t in texts]

    # --- both ---------------------------------------------------------------------------------------------

    def finish(self, out: dict, counts: list[int]) -> dict:
        """Last touches on the model inputs (extra masks some families require); counts: images per text."""
        return out

    # --- frames and resolution (the visual-context controls) ------------------------------------------

    def frame_side(self, tokens_per_frame: int | None) -> int:
        """Side in pixels a square frame is resized to so that it makes `tokens_per_frame` visual tokens
        (None: the family's own size). Fixed-resolution families accept only their own count."""
        side = self.default_image_size()
        side = side[0] if isinstance(side, (list, tuple)) else side
        own = self.tokens_per_frame(side)
        if tokens_per_frame not in (None, own):
            raise ParameterError(
                f"{self.name} makes {own} tokens per frame at its fixed resolution, not {tokens_per_frame} "
                f"({self.resolution})"
            )
        return side

    def tokens_per_frame(self, side: int) -> int:
        """Visual tokens per frame of a square side x side video (a video family's frames may be pooled)."""
        return self.tokens_per_image((side, side))

    def video_processor_kwargs(self, frame_size: tuple[int, int]) -> dict:
        """Processor keyword arguments that keep given frames (already sampled, already frame_size) as they
        are. Only the Qwen families say anything here (untested offline: their processors need torchvision)."""
        return {}

    def resolution_kwargs(self, tokens_per_image: int) -> dict:
        """Processor keyword arguments that make one image about `tokens_per_image` visual tokens.
        Fixed-resolution families cannot: they raise NotImplementedError saying what sets their resolution."""
        raise NotImplementedError(f"{self.name}: {self.resolution}")

    # --- tiny random models (tests and docs) ------------------------------------------------------------

    @classmethod
    def tiny_config(cls, ids: dict[str, int], text: dict, vision: dict, *, image_size: int, patch: int):
        """A tiny random config of this family. ids: token ids of the tiny tokenizer's specials; text and
        vision: the shared small sizes (text hidden 64, 2 layers; vision width 32, 1 layer)."""
        raise NotImplementedError

    @classmethod
    def tiny_processor(cls, tokenizer, *, image_size: int, patch: int):
        """The family's real processor around the tiny tokenizer, or None where it cannot be built here."""
        return None

    def __repr__(self) -> str:
        return f"<{self.name} family: {self.model_class}>"
