"""One Hugging Face VLM behind one adapter: decoder layer names, hand-built or processor inputs, the image-token mask.

    vlm = load_vlm("HuggingFaceTB/SmolVLM-256M-Instruct")      # or a local folder; family guessed
    inputs = vlm.build_inputs([[img]], ["<image> a red circle"])  # one list of images per text
    out, cache = vlm.run_with_cache(inputs, layers=[0, -1])      # studio.capture.activations.ActivationCache

Inputs are built by the checkpoint's processor when it has one (real checkpoints), else by hand from
the tokenizer (the tiny random models of `studio.capture.hf.tiny`). Images are numpy arrays HxW or
HxWxC with values in [0, 1]. `VLMAdapter` satisfies `studio.capture.activations.LayerAdapter`, which
is how the capture code reads layer indices and the modality mask without importing this package.
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
from studio.capture.hf.families import (
    _IDEFICS_AROUND,
    _IDEFICS_GLOBAL,
    _LAYERS,
    _QWEN_END,
    _QWEN_PAD,
    _QWEN_START,
    IMAGE,
    _check_family,
    _model_class,
    family_of,
)
from studio.errors import PathError

# --- images -------------------------------------------------------------------------------------------


def _to_chw(image, size: tuple[int, int] | None) -> torch.Tensor:
    """HxW or HxWxC array in [0, 1] -> (3, h, w) float tensor, resized (bilinear) to `size`."""
    a = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"an image must be HxW or HxWxC, got shape {tuple(a.shape)}")
    a = a.permute(2, 0, 1)
    if a.shape[0] == 1:
        a = a.expand(3, -1, -1)
    elif a.shape[0] == 4:
        a = a[:3]
    if size is not None and tuple(a.shape[1:]) != tuple(size):
        a = torch.nn.functional.interpolate(a[None], size=size, mode="bilinear", align_corners=False)[0]
    return a.contiguous()


def _to_pil(image):
    from PIL import Image

    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return Image.fromarray((np.clip(a[..., :3], 0, 1) * 255).round().astype(np.uint8))


def _keep_blank_images(pixel_values: torch.Tensor, counts: list[int]) -> None:
    """Idefics3 drops every image whose normalised pixels are all 0 as batch padding, so a uniform
    mid-grey image (a "blanked" demonstration) would vanish and break the token count: nudge one
    pixel of such real images by 1e-6. pixel_values: (batch, max images, 3, H, W), in place."""
    for i, k in enumerate(counts):
        for j in range(k):
            if not torch.any(pixel_values[i, j]):
                pixel_values[i, j, 0, 0, 0] = 1e-6


# --- the adapter ----------------------------------------------------------------------------------------


@dataclass
class VLMAdapter:
    """What studio needs to know about one Hugging Face VLM.

    model: the HF model (eval mode). family: one of FAMILIES. tokenizer: its tokenizer.
    processor: its processor, or None (then inputs are built by hand, as for the tiny models).
    """

    model: Any
    family: str
    tokenizer: Any
    processor: Any = None
    mean: float = 0.5  # pixel normalisation for hand-built inputs
    std: float = 0.5
    extra: dict = field(default_factory=dict)

    # layers
    @property
    def layers_path(self) -> str:
        """Module name of the text decoder's ModuleList of layers (e.g. model.language_model.layers)."""
        path = _LAYERS[self.family]
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
        return _QWEN_PAD if self.family == "qwen2_vl" else IMAGE

    @property
    def image_token_id(self) -> int:
        cfg = self.model.config
        for key in ("image_token_id", "image_token_index"):
            if getattr(cfg, key, None) is not None:
                return int(getattr(cfg, key))
        return int(self.tokenizer.convert_tokens_to_ids(self.image_token))

    def modality_mask(self, inputs) -> torch.Tensor:
        """(batch, seq) bool, True at image-token positions (the visual tokens the LLM sees)."""
        return inputs["input_ids"] == self.image_token_id

    @property
    def image_size(self) -> tuple[int, int]:
        v = self.model.config.vision_config
        s = getattr(v, "image_size", None) or self.extra.get("image_size", 2 * v.patch_size * v.spatial_merge_size)
        return (s, s) if isinstance(s, int) else tuple(s)

    @property
    def tokens_per_image(self) -> int:
        """Image tokens one image becomes for hand-built inputs."""
        v = self.model.config.vision_config
        h, w = self.image_size
        grid = (h // v.patch_size) * (w // v.patch_size)
        if self.family == "llava":
            return grid + (self.model.config.vision_feature_select_strategy == "full")
        if self.family == "paligemma":
            return grid
        if self.family == "idefics3":
            return grid // self.model.config.scale_factor**2
        return grid // v.spatial_merge_size**2

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def build_inputs(
        self, images: Sequence[Sequence[np.ndarray]], texts: Sequence[str], *, padding_side: str = "right"
    ) -> dict:
        """Tokenised batch with pixel values: images[i] are the images of texts[i], in the order of
        its "<image>" placeholders. Returns a dict for model(**inputs) (input_ids (batch, seq),
        attention_mask (batch, seq), pixel values in the family's layout), on the model's device."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} image lists for {len(texts)} texts")
        for imgs, text in zip(images, texts):
            if text.count(IMAGE) != len(imgs):
                raise ValueError(f"text has {text.count(IMAGE)} {IMAGE} placeholders for {len(imgs)} images: {text!r}")
        if self.processor is not None:
            out = self._processor_inputs(images, texts, padding_side)
        else:
            out = self._manual_inputs(images, texts, padding_side)
        if self.family == "idefics3" and "pixel_values" in out:
            _keep_blank_images(out["pixel_values"], [len(imgs) for imgs in images])
        if self.family == "qwen2_vl" and "mm_token_type_ids" not in out:
            out["mm_token_type_ids"] = (out["input_ids"] == self.image_token_id).long()
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

    def _processor_inputs(self, images, texts, padding_side):
        texts = list(texts)
        if self.family == "qwen2_vl":
            texts = [t.replace(IMAGE, _QWEN_START + _QWEN_PAD + _QWEN_END) for t in texts]
        flat = [_to_pil(im) for imgs in images for im in imgs]
        tok = getattr(self.processor, "tokenizer", self.tokenizer)
        tok.padding_side = padding_side
        if self.family == "idefics3":  # Idefics3's processor wants one list of images per text
            pil = [[_to_pil(im) for im in imgs] for imgs in images]
            return dict(self.processor(text=texts, images=pil if flat else None, return_tensors="pt", padding=True))
        return dict(self.processor(text=texts, images=flat or None, return_tensors="pt", padding=True))

    def _manual_inputs(self, images, texts, padding_side):
        n = self.tokens_per_image
        if self.family == "llava":
            expand = IMAGE * n
        elif self.family == "idefics3":
            expand = _IDEFICS_AROUND + _IDEFICS_GLOBAL + IMAGE * n + _IDEFICS_AROUND
        else:
            expand = _QWEN_START + _QWEN_PAD * n + _QWEN_END
        self.tokenizer.padding_side = padding_side
        if self.family == "paligemma":  # image tokens first, then BOS, the text and a newline
            bos = self.tokenizer.bos_token
            texts = [IMAGE * (n * t.count(IMAGE)) + bos + " ".join(t.replace(IMAGE, " ").split()) + "\n" for t in texts]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        else:
            enc = self.tokenizer([t.replace(IMAGE, expand) for t in texts], return_tensors="pt", padding=True)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        pics = [[(_to_chw(im, self.image_size) - self.mean) / self.std for im in imgs] for imgs in images]
        if not any(pics):
            return out
        if self.family in ("llava", "paligemma"):
            out["pixel_values"] = torch.stack([p for ps in pics for p in ps])
        elif self.family == "idefics3":
            # (batch, max images, 3, H, W); all-zero padding images are dropped by the model
            most = max(len(ps) for ps in pics)
            pv = torch.zeros(len(pics), most, 3, *self.image_size)
            pm = torch.zeros(len(pics), most, *self.image_size, dtype=torch.bool)
            for i, ps in enumerate(pics):
                for j, p in enumerate(ps):
                    pv[i, j], pm[i, j] = p, True
            out["pixel_values"], out["pixel_attention_mask"] = pv, pm
        else:
            flat, grids = zip(*(self._qwen_patches(p) for ps in pics for p in ps))
            out["pixel_values"], out["image_grid_thw"] = torch.cat(flat), torch.tensor(grids)
        return out

    def _qwen_patches(self, chw: torch.Tensor):
        """(3, H, W) -> ((h*w, 3*T*p*p) flattened patches, (1, h, w)): Qwen2-VL's patch layout."""
        v = self.model.config.vision_config
        p, m, t = v.patch_size, v.spatial_merge_size, v.temporal_patch_size
        c, hh, ww = chw.shape
        gh, gw = hh // p, ww // p
        x = chw.reshape(c, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
        x = x[:, :, :, :, :, None].expand(*x.shape[:5], t, p, p)
        return x.reshape(gh * gw, c * t * p * p), (1, gh, gw)

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
        except ValueError:  # no VLM family: plain module names
            pass
    return activations.run_with_cache(model, inputs, names_filter, **kw)


def adapter_for(
    model, tokenizer=None, processor=None, family: str | None = None, *, load_text: bool = True
) -> VLMAdapter:
    """Wrap an already loaded HF VLM. Finds its tokenizer (and processor) from the model's
    `name_or_path` when not given and load_text=True; capture alone needs neither."""
    family = _check_family(family) if family else family_of(model)
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
    found = family_of(config)
    if family and _check_family(family) != found:
        raise ValueError(f"{path} is a {found!r} model (model_type {config.model_type!r}), not {family!r}")
    family = found
    if dtype is not None:
        kw["dtype"] = dtype
    model = _model_class(family).from_pretrained(path, local_files_only=offline, **kw)
    if device is not None:
        model = model.to(device)
    tokenizer, processor = _load_text_side(path, offline)
    return VLMAdapter(model.eval(), family, tokenizer, processor)
