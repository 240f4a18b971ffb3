"""Hugging Face VLMs behind one adapter: layer names, inputs, the image-token mask, an ICL predictor.

    vlm = load_vlm("HuggingFaceTB/SmolVLM-256M-Instruct")      # or a local folder; family guessed
    inputs = vlm.build_inputs([[img]], ["<image> a red circle"])  # one list of images per text
    out, cache = vlm.run_with_cache(inputs, layers=[0, -1])      # studio.capture.activations.ActivationCache
    predict = hf_icl_predictor(vlm)                               # episodes -> answer strings

Families: "llava" (LlavaForConditionalGeneration), "qwen2_vl" (Qwen2VLForConditionalGeneration),
"idefics3" (Idefics3ForConditionalGeneration, also SmolVLM checkpoints), "paligemma"
(PaliGemmaForConditionalGeneration; not interleaved: its image tokens all go before the text). Texts
always use the placeholder "<image>" once per image; the adapter expands it into the family's tokens.

Inputs are built by the checkpoint's processor when it has one (real checkpoints), else by hand from
the tokenizer (the tiny random models of `tiny_vlm`, which tests and docs build from configs and
save with save_pretrained: no download). Images are numpy arrays HxW or HxWxC with values in [0, 1].
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

IMAGE = "<image>"  # the placeholder texts use, whatever the family
FAMILIES = ("llava", "qwen2_vl", "idefics3", "paligemma")
INTERLEAVED = ("llava", "qwen2_vl", "idefics3")  # families that take images between text (ICL)
_MODEL_TYPES = {"llava": "llava", "qwen2_vl": "qwen2_vl", "idefics3": "idefics3", "smolvlm": "idefics3",
                "paligemma": "paligemma"}
# where each family keeps its text decoder's layers (transformers 5)
_LAYERS = {"llava": "model.language_model.layers", "qwen2_vl": "model.language_model.layers",
           "idefics3": "model.text_model.layers", "paligemma": "model.language_model.layers"}
_QWEN_START, _QWEN_PAD, _QWEN_END = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"
_IDEFICS_AROUND, _IDEFICS_GLOBAL = "<fake_token_around_image>", "<global-img>"


def _model_class(family: str):
    import transformers
    return {"llava": transformers.LlavaForConditionalGeneration,
            "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
            "idefics3": transformers.Idefics3ForConditionalGeneration,
            "paligemma": transformers.PaliGemmaForConditionalGeneration}[_check_family(family)]


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown VLM family {family!r}; known: {FAMILIES}")
    return family


def family_of(model_or_config) -> str:
    """The adapter family of a model or config, from its model_type."""
    cfg = getattr(model_or_config, "config", model_or_config)
    mt = getattr(cfg, "model_type", None)
    if mt not in _MODEL_TYPES:
        raise ValueError(f"no VLM adapter for model_type {mt!r}; known: {sorted(_MODEL_TYPES)}")
    return _MODEL_TYPES[mt]


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
            if name.endswith(("language_model.layers", "text_model.layers")) and isinstance(module, torch.nn.ModuleList):
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
            return grid // self.model.config.scale_factor ** 2
        return grid // v.spatial_merge_size ** 2

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def build_inputs(self, images: Sequence[Sequence[np.ndarray]], texts: Sequence[str], *,
                     padding_side: str = "right") -> dict:
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
        return {k: (v.to(self.device, dtype) if torch.is_tensor(v) and v.is_floating_point() else
                    v.to(self.device) if torch.is_tensor(v) else v) for k, v in out.items()}

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
            texts = [IMAGE * (n * t.count(IMAGE)) + bos + " ".join(t.replace(IMAGE, " ").split()) + "\n"
                     for t in texts]
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
        from studio.capture.activations import run_with_cache
        return run_with_cache(self, inputs, layers, **kw)


def adapter_for(model, tokenizer=None, processor=None, family: str | None = None, *,
                load_text: bool = True) -> VLMAdapter:
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


def _load_text_side(path, local_files_only: bool):
    """(tokenizer, processor or None). Tiny models saved by `tiny_vlm` have no processor files."""
    from transformers import AutoProcessor, AutoTokenizer
    processor = None
    has_processor = not Path(str(path)).is_dir() or any(
        (Path(path) / f).exists() for f in ("processor_config.json", "preprocessor_config.json"))
    if has_processor:
        try:
            processor = AutoProcessor.from_pretrained(path, local_files_only=local_files_only)
        except (OSError, ValueError, KeyError, TypeError):
            processor = None
    tokenizer = getattr(processor, "tokenizer", None) or AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    return tokenizer, processor


def load_vlm(model_or_path, family: str | None = None, *, local_files_only: bool | None = None,
             dtype: torch.dtype | str | None = None, device: str | None = None, **kw) -> VLMAdapter:
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


# --- tiny random models for tests and docs ------------------------------------------------------------

_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", IMAGE, _IDEFICS_AROUND, _IDEFICS_GLOBAL,
             _QWEN_START, _QWEN_END, _QWEN_PAD, "<|video_pad|>", "<end_of_utterance>"]
_WORDS = ("a an the is are of on in to and with this that what which who how many there question answer "
          "caption image picture digit number shape colour color left right above below next "
          "red green blue yellow black white orange purple circle square triangle star cat dog "
          "zero one two three four five six seven eight nine yes no user assistant").split()


def tiny_tokenizer():
    """A WordPiece tokenizer built locally: specials, a few hundred words, and single characters as
    fallback so any lower-case text encodes. Returns a PreTrainedTokenizerFast (bos <s>, eos </s>)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,:;?!'-_()")
    vocab = {t: i for i, t in enumerate(_SPECIALS)}
    for t in _WORDS + chars + ["##" + c for c in chars]:
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", max_input_chars_per_word=64))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", vocab["<s>"])])
    tok.add_special_tokens(_SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens=_SPECIALS[4:])


def tiny_config(family: str, tokenizer=None, *, hidden: int = 64, layers: int = 2, image_size: int = 32,
                patch: int = 8):
    """A tiny random config of `family`: text hidden 64, 2 layers, vision 32x32 with patch 8."""
    import transformers as tf
    tokenizer = tokenizer or tiny_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIALS}
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=1024, pad_token_id=ids["<pad>"], bos_token_id=ids["<s>"],
                eos_token_id=ids["</s>"], tie_word_embeddings=False)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=image_size, patch_size=patch)
    family = _check_family(family)
    if family == "llava":
        return tf.LlavaConfig(text_config=tf.LlamaConfig(**text), vision_config=tf.CLIPVisionConfig(**vision),
                              image_token_index=ids[IMAGE], vision_feature_layer=-1,
                              image_seq_length=(image_size // patch) ** 2, pad_token_id=ids["<pad>"])
    if family == "paligemma":
        return tf.PaliGemmaConfig(text_config=tf.GemmaConfig(**text, head_dim=hidden // 4),
                                  vision_config=tf.SiglipVisionConfig(**vision, projection_dim=hidden),
                                  image_token_index=ids[IMAGE], projection_dim=hidden, pad_token_id=ids["<pad>"])
    if family == "idefics3":
        return tf.Idefics3Config(text_config=tf.LlamaConfig(**text), vision_config=tf.Idefics3VisionConfig(**vision),
                                 scale_factor=2, image_token_id=ids[IMAGE], pad_token_id=ids["<pad>"])
    head_dim = hidden // text["num_attention_heads"]
    half = head_dim // 2  # the mrope sections must sum to head_dim / 2
    sections = [half - 2 * (half // 3), half // 3, half // 3]
    return tf.Qwen2VLConfig(
        text_config=dict(**text, rope_parameters=dict(rope_type="default", mrope_section=sections, rope_theta=10000.0)),
        # the vision tower's output width must equal the text hidden size
        vision_config=dict(depth=1, embed_dim=32, hidden_size=hidden, num_heads=2, patch_size=patch,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3, mlp_ratio=2),
        image_token_id=ids[_QWEN_PAD], vision_start_token_id=ids[_QWEN_START],
        vision_end_token_id=ids[_QWEN_END], video_token_id=ids["<|video_pad|>"], pad_token_id=ids["<pad>"])


def tiny_processor(family: str, tokenizer, *, image_size: int = 32, patch: int = 8):
    """The family's real HF processor around the tiny tokenizer, sized for the tiny vision tower.

    Only "llava" and "idefics3": Qwen2-VL's processor needs torchvision (a video processor), which
    this environment lacks, and PaliGemma's adds its own prompt format.
    """
    import transformers as tf
    if family == "llava":
        ip = tf.CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
        return tf.LlavaProcessor(image_processor=ip, tokenizer=tokenizer, patch_size=patch, image_token=IMAGE,
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1)
    if family == "idefics3":
        ip = tf.Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": image_size},
                                       max_image_size={"longest_edge": image_size})
        return tf.Idefics3Processor(image_processor=ip, tokenizer=tokenizer, image_seq_len=(image_size // patch) ** 2 // 4)
    raise ValueError(f"no tiny processor for {family!r}; only llava and idefics3")


def tiny_vlm(family: str, path: str | os.PathLike | None = None, *, seed: int = 0, processor: bool = False,
             **config_kw) -> VLMAdapter:
    """A tiny random VLM of `family` (about 0.1-0.15 M parameters) with a locally built tokenizer.

    With `path`, model and tokenizer (and with processor=True the family's real processor, llava
    and idefics3 only) are saved there with save_pretrained; load back with `load_vlm(path)`.
    Returns the adapter of the in-memory model. Builds in well under a second.
    """
    tokenizer = tiny_tokenizer()
    config = tiny_config(family, tokenizer, **config_kw)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _model_class(family)(config).eval()
    proc = None
    if processor:
        import warnings
        with warnings.catch_warnings():  # "requires torchvision ... falling back to the PIL processor"
            warnings.simplefilter("ignore")
            proc = tiny_processor(family, tokenizer, image_size=config_kw.get("image_size", 32),
                                  patch=config_kw.get("patch", 8))
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        if proc is not None:
            proc.save_pretrained(path)
    extra = {"image_size": config_kw.get("image_size", 32)}
    return VLMAdapter(model, family, tokenizer, proc, extra=extra)


# --- in-context learning with interleaved images ------------------------------------------------------

def _shot_text(shot, template: str) -> str:
    # a shot whose image is None (an "images removed" condition) gets no image placeholder
    return " ".join(template.format(image=IMAGE if getattr(shot, "image", None) is not None else "",
                                    question=shot.question).split())


def episode_prompt(episode, *, template: str = "{image} question: {question} answer:", sep: str = "\n") -> str:
    """Text of an episode: every demonstration as "template + ' ' + answer", then the query's prompt.

    Reads demo.image/.question/.answer and query.image/.question only (never query.answer); a shot
    with image None is written without an image.
    """
    demos = [_shot_text(d, template) + " " + d.answer for d in episode.demos]
    return sep.join(demos + [_shot_text(episode.query, template)])


def _episode_images(episode) -> list:
    shots = list(episode.demos) + [episode.query]
    return [s.image for s in shots if getattr(s, "image", None) is not None]


@torch.inference_mode()
def score_candidates(vlm: VLMAdapter, episode, candidates: Sequence[str], **prompt_kw) -> np.ndarray:
    """Summed log-likelihood of " " + candidate after the episode's prompt, one per candidate: (k,)."""
    prompt = episode_prompt(episode, **prompt_kw)
    images = _episode_images(episode)
    texts = [f"{prompt} {c}" for c in candidates]
    inputs = vlm.build_inputs([images] * len(texts), texts, padding_side="right")
    logits = vlm.model(**inputs).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1)
    target = inputs["input_ids"][:, 1:]
    token_logp = logp.gather(-1, target[..., None])[..., 0]
    ends = inputs["attention_mask"].sum(1)  # right padding: real tokens are 0 .. end-1
    scores = []
    for i, c in enumerate(candidates):
        k = len(vlm.tokenizer(" " + c, add_special_tokens=False)["input_ids"])
        end = int(ends[i]) - 1  # token_logp[j] scores token j+1
        scores.append(float(token_logp[i, end - k:end].sum()))
    return np.asarray(scores)


@torch.inference_mode()
def generate_answer(vlm: VLMAdapter, episode, max_new_tokens: int = 5, **prompt_kw) -> str:
    """Greedy continuation of the episode's prompt, cut at the first newline, stripped."""
    inputs = vlm.build_inputs([_episode_images(episode)], [episode_prompt(episode, **prompt_kw)], padding_side="left")
    tok = vlm.tokenizer
    out = vlm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    text = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return text.strip().split("\n")[0].strip()


def hf_icl_predictor(model_or_path, family: str | None = None, *, max_new_tokens: int = 5,
                     template: str = "{image} question: {question} answer:", sep: str = "\n",
                     progress: bool = False, **load_kw) -> Callable[[Sequence[Any]], list[str]]:
    """A predictor for studio.icl: a callable taking a list of episodes, returning one answer each.

    model_or_path: a hub id, a local folder, a loaded HF model or a VLMAdapter; family (one of
    INTERLEAVED) is read from the config when None, and checked against it when given. Episodes are
    duck-typed: `.demos` (shots with `.image`, `.question`, `.answer`), `.query` (its answer is never
    read) and optionally `.candidates`. With candidates, the answer is the candidate of highest
    summed log-likelihood; without, greedy generation of up to `max_new_tokens` tokens.
    """
    vlm = load_vlm(model_or_path, family=family if not isinstance(model_or_path, VLMAdapter) else None, **load_kw)
    if vlm.family not in INTERLEAVED:
        raise ValueError(f"{vlm.family} puts every image before the text: no interleaved ICL; use one of {INTERLEAVED}")
    prompt_kw = {"template": template, "sep": sep}

    def predict(episodes) -> list[str]:
        answers = []
        it = episodes
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(episodes, desc="hf icl")
        for ep in it:
            cands = list(getattr(ep, "candidates", None) or [])
            if cands:
                answers.append(cands[int(np.argmax(score_candidates(vlm, ep, cands, **prompt_kw)))])
            else:
                answers.append(generate_answer(vlm, ep, max_new_tokens, **prompt_kw))
        return answers

    predict.vlm = vlm
    return predict
