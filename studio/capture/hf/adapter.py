"""One Hugging Face VLM behind one adapter: decoder layer names, hand-built or processor inputs, the visual-token mask.

    vlm = load_vlm("HuggingFaceTB/SmolVLM-256M-Instruct")      # or a local folder; family guessed
    inputs = vlm.build_inputs([[img]], ["<image> a red circle"])  # one list of images per text
    inputs = vlm.build_inputs([[]], ["<video> what moved?"], videos=[[clip]])  # video families
    out, cache = vlm.run_with_cache(inputs, layers=[0, -1])      # studio.capture.activations.ActivationCache

What differs between families (token layout, mask, layers, pixel packing) is asked of `vlm.spec`, the
family's class in `studio/capture/hf/vlms/`. Inputs are built by the checkpoint's processor when it has
one (real checkpoints), else by hand from the tokenizer (the tiny random models of
`studio.capture.hf.tiny`). Images are numpy arrays HxW or HxWxC, videos TxHxW or TxHxWxC, in [0, 1].
`VLMAdapter` satisfies `studio.capture.activations.LayerAdapter`, which is how the capture code reads
layer indices and the modality mask without importing this package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.capture import activations
from studio.capture.hf.family import IMAGE, VIDEO, Family
from studio.capture.hf.images import _keep_blank_images, _to_chw, _to_pil, _to_thwc  # noqa: F401  (studio.hf names)
from studio.capture.hf.registry import check_family, family_class, family_for, model_class, video_families
from studio.errors import ParameterError, PathError


def _fill(text: str, placeholder: str, parts: list[str]) -> str:
    """text with its k-th `placeholder` replaced by parts[k]."""
    pieces = text.split(placeholder)
    return pieces[0] + "".join(part + rest for part, rest in zip(parts, pieces[1:]))


# --- the adapter ----------------------------------------------------------------------------------------


@dataclass
class VLMAdapter:
    """What studio needs to know about one Hugging Face VLM.

    model: the HF model (eval mode). family: a name of `studio.hf.families()`. tokenizer: its tokenizer.
    processor: its processor, or None (then inputs are built by hand, as for the tiny models).
    spec: the family's `Family` instance bound to the model's config (layout, mask, layers, controls).
    """

    model: Any
    family: str
    tokenizer: Any
    processor: Any = None
    mean: float = 0.5  # pixel normalisation for hand-built inputs
    std: float = 0.5
    extra: dict = field(default_factory=dict)
    spec: Family = field(init=False, repr=False)

    def __post_init__(self):
        self.spec = family_class(self.family)(self.model.config)

    # layers
    @property
    def layers_path(self) -> str:
        """Module name of the text decoder's ModuleList of layers (e.g. model.language_model.layers)."""
        path = self.spec.layers
        names = dict(self.model.named_modules())
        if path in names:
            return path
        # other releases nest it differently: the decoder's ".layers" list, never the vision tower's
        for name, module in names.items():
            if name.endswith(("language_model.layers", "text_model.layers")) and isinstance(
                module, torch.nn.ModuleList
            ):
                return name
        raise ValueError(f"cannot find the text decoder layers of this {self.family} model (looked for {path})")

    @property
    def num_layers(self) -> int:
        return len(self.model.get_submodule(self.layers_path))

    @property
    def layer_names(self) -> list[str]:
        """Module names of the text decoder's layers, in order (hook these for per-layer states)."""
        return [f"{self.layers_path}.{i}" for i in range(self.num_layers)]

    def layer_name(self, i: int) -> str:
        """Module name of decoder layer i (negative counts from the end)."""
        return self.layer_names[i]

    def layer_names_for(self, names_filter=None) -> list[str]:
        """None -> every decoder layer; ints -> those layers; names or a callable -> as given."""
        if names_filter is None:
            return self.layer_names
        if callable(names_filter):
            return [n for n, _ in self.model.named_modules() if n and names_filter(n)]
        items = [names_filter] if isinstance(names_filter, (str, int)) else list(names_filter)
        names = [self.layer_name(i) if isinstance(i, (int, np.integer)) else i for i in items]
        known = dict(self.model.named_modules())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown module name(s) {unknown}; decoder layers: {self.layer_names}")
        return names

    # tokens
    @property
    def image_token(self) -> str:
        return self.spec.image_token

    @property
    def image_token_id(self) -> int:
        found = self.spec.image_token_id
        return int(self.tokenizer.convert_tokens_to_ids(self.image_token)) if found is None else found

    def modality_mask(self, inputs) -> torch.Tensor:
        """(batch, seq) bool, True at the visual-token positions the LLM sees (image, and video tokens
        for video families); not the markers around them (`<|vision_start|>`, `[IMG_BREAK]`, ...)."""
        return self.spec.modality_mask(inputs["input_ids"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) every image is resized to for hand-built inputs."""
        s = self.extra.get("image_size") or self.spec.default_image_size()
        return (s, s) if isinstance(s, int) else tuple(s)

    @property
    def tokens_per_image(self) -> int:
        """Image tokens one image becomes for hand-built inputs."""
        return self.spec.tokens_per_image(self.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def build_inputs(
        self,
        images: Sequence[Sequence[np.ndarray]],
        texts: Sequence[str],
        *,
        videos: Sequence[Sequence[np.ndarray]] | None = None,
        padding_side: str = "right",
        image_size: tuple[int, int] | None = None,
    ) -> dict:
        """Tokenised batch with pixel values: images[i] are the images of texts[i], in the order of
        its "<image>" placeholders; videos[i] (video families) its videos, (T, H, W) or (T, H, W, C)
        arrays in [0, 1], in the order of its "<video>" placeholders. image_size: (H, W) hand-built inputs
        resize images and frames to instead of `self.image_size` (dynamic-resolution families, see
        `Family.frame_side`; processors resize by their own settings). Returns a dict for model(**inputs)
        (input_ids (batch, seq), attention_mask (batch, seq), pixel values in the family's layout), on
        the model's device."""
        videos = [[] for _ in texts] if videos is None else videos
        if len(images) != len(texts) or len(videos) != len(texts):
            raise ValueError(f"{len(images)} image lists and {len(videos)} video lists for {len(texts)} texts")
        for imgs, vids, text in zip(images, videos, texts):
            if text.count(IMAGE) != len(imgs):
                raise ValueError(f"text has {text.count(IMAGE)} {IMAGE} placeholders for {len(imgs)} images: {text!r}")
            if text.count(VIDEO) != len(vids):
                raise ValueError(f"text has {text.count(VIDEO)} {VIDEO} placeholders for {len(vids)} videos: {text!r}")
        if any(videos) and not self.spec.video:
            raise ParameterError(f"{self.family} takes no video; video families: {', '.join(video_families())}")
        if self.processor is not None:
            out = self._processor_inputs(images, texts, padding_side, videos, image_size)
        else:
            out = self._manual_inputs(images, texts, padding_side, videos, tuple(image_size or self.image_size))
        out = self.spec.finish(out, [len(imgs) for imgs in images])
        dtype = next(self.model.parameters()).dtype  # pixel values in the model's dtype (bf16 on a GPU)
        return {
            k: (
                v.to(self.device, dtype)
                if torch.is_tensor(v) and v.is_floating_point()
                else v.to(self.device)
                if torch.is_tensor(v)
                else v
            )
            for k, v in out.items()
        }

    def _processor_inputs(self, images, texts, padding_side, videos, size):
        texts = self.spec.processor_texts(list(texts))
        if any(videos):  # (T, H, W, 3) uint8 frames, the layout video processors take
            clips = [(np.clip(_to_thwc(v), 0, 1) * 255).round().astype(np.uint8) for vs in videos for v in vs]
            kw = {"videos": clips, **(self.spec.video_processor_kwargs(tuple(size)) if size else {})}
        else:
            kw = {}
        flat = [_to_pil(im) for imgs in images for im in imgs]
        tok = getattr(self.processor, "tokenizer", self.tokenizer)
        tok.padding_side = padding_side
        if self.spec.nested_images:  # e.g. Idefics3's processor wants one list of images per text
            pil = [[_to_pil(im) for im in imgs] for imgs in images]
            return dict(
                self.processor(text=texts, images=pil if flat else None, return_tensors="pt", padding=True, **kw)
            )
        return dict(self.processor(text=texts, images=flat or None, return_tensors="pt", padding=True, **kw))

    def _manual_inputs(self, images, texts, padding_side, videos, size):
        self.tokenizer.padding_side = padding_side
        clips = [
            [torch.stack([(_to_chw(f, size) - self.mean) / self.std for f in _to_thwc(v)]) for v in vs] for vs in videos
        ]
        texts = [_fill(t, VIDEO, [self.spec.expand_video(len(c), size) for c in cs]) for t, cs in zip(texts, clips)]
        texts, specials = self.spec.manual_texts(list(texts), size, self.tokenizer.bos_token)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=specials)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        pics = [[(_to_chw(im, size) - self.mean) / self.std for im in imgs] for imgs in images]
        if any(pics):
            out.update(self.spec.pack_pixels(pics, size))
        if any(clips):
            out.update(self.spec.pack_videos(clips, size))
        return out

    def run_with_cache(self, inputs, layers=None, **kw):
        """studio.capture.activations.run_with_cache on this model: layers are indices, names or None (all)."""
        return activations.run_with_cache(self, inputs, layers, **kw)


def run_with_cache(model_or_adapter, inputs, names_filter=None, **kw):
    """`activations.run_with_cache` for a raw Hugging Face VLM as well as an adapter: (output, cache).

    A model of a known family is wrapped by `adapter_for` (config only: the mask needs no tokenizer),
    so names_filter may be layer indices and the modality mask comes from input_ids; any other
    module (an HF model of no known family included) is captured as a plain module.
    """
    model = model_or_adapter
    if not isinstance(model, activations.LayerAdapter):
        try:
            model = adapter_for(model, load_text=False)
        except ValueError:  # no VLM family (ParameterError is a ValueError): plain module names
            pass
    return activations.run_with_cache(model, inputs, names_filter, **kw)


def adapter_for(
    model, tokenizer=None, processor=None, family: str | None = None, *, load_text: bool = True
) -> VLMAdapter:
    """Wrap an already loaded HF VLM. Finds its tokenizer (and processor) from the model's
    `name_or_path` when not given and load_text=True; capture alone needs neither."""
    family = family_for(model, family).name  # a named family is checked against the model's model_type
    if tokenizer is None and processor is None and load_text:
        path = getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None)
        if path:
            tokenizer, processor = _load_text_side(path, local_files_only=_offline(path))
    if tokenizer is None and processor is not None:
        tokenizer = processor.tokenizer
    return VLMAdapter(model.eval(), family, tokenizer, processor)


def _offline(path) -> bool:
    return Path(str(path)).is_dir() or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "")


def _looks_local(model_or_path) -> bool:
    """A Path, or a string no Hub id can be ("/x", "./x", "~/x", "a/b/c", "C:\\x"): it names a local folder."""
    if isinstance(model_or_path, os.PathLike):
        return True
    s = str(model_or_path)
    return s.startswith(("/", ".", "~")) or s.count("/") > 1 or "\\" in s or os.path.isabs(s)


def _load_text_side(path, local_files_only: bool):
    """(tokenizer, processor or None). Tiny models saved by `tiny_vlm` have no processor files."""
    from transformers import AutoProcessor, AutoTokenizer

    processor = None
    has_processor = not Path(str(path)).is_dir() or any(
        (Path(path) / f).exists() for f in ("processor_config.json", "preprocessor_config.json")
    )
    if has_processor:
        try:
            processor = AutoProcessor.from_pretrained(path, local_files_only=local_files_only)
        except (OSError, ValueError, KeyError, TypeError):
            processor = None
    tokenizer = getattr(processor, "tokenizer", None) or AutoTokenizer.from_pretrained(
        path, local_files_only=local_files_only
    )
    return tokenizer, processor


def load_vlm(
    model_or_path,
    family: str | None = None,
    *,
    local_files_only: bool | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | None = None,
    **kw,
) -> VLMAdapter:
    """Load an HF VLM with from_pretrained from a hub id or a local folder and wrap it.

    A VLMAdapter or an HF model passes through (wrapped). local_files_only defaults to True for a
    local folder or when HF_HUB_OFFLINE is set. dtype e.g. torch.bfloat16 on a GPU; device e.g. "cuda".
    """
    if isinstance(model_or_path, VLMAdapter):
        return model_or_path
    if isinstance(model_or_path, torch.nn.Module):
        return adapter_for(model_or_path, family=family)
    from transformers import AutoConfig

    path = str(model_or_path)
    if _looks_local(model_or_path) and not Path(path).expanduser().exists():
        raise PathError(f"load_vlm: no such folder {path!r} (a local path; a Hub id looks like 'owner/name')")
    offline = _offline(path) if local_files_only is None else local_files_only
    config = AutoConfig.from_pretrained(path, local_files_only=offline)
    family = family_for(config, check_family(family) if family else None).name
    if dtype is not None:
        kw["dtype"] = dtype
    model = model_class(family).from_pretrained(path, local_files_only=offline, **kw)
    if device is not None:
        model = model.to(device)
    tokenizer, processor = _load_text_side(path, offline)
    return VLMAdapter(model.eval(), family, tokenizer, processor)
