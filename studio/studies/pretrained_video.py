"""The visual-context question asked of a pretrained video VLM (inference only): notebooks/pretrained_video.

    vlm = open_model(None, "qwen2_vl", folder=...)        # no hf_model: a tiny random model, saved and loaded back
    vlm = open_model("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl")   # a real checkpoint on a GPU machine
    items = video_items(n_items, seed=0)                  # the synthetic needle videos, or items_file=...
    table = evaluate(vlm, items, frames=[1, 2, 4, 8], tokens=[4, 16, 64])

`evaluate` writes the results table the visual-context sweep writes (frames, tokens_per_frame, seed,
val_loss, val_acc, val_acc_<task>, visual_tokens), so `studio.scaling` fits it and the scaling-laws
notebook reads it (`-p measurements path/to/pretrained_video_results.csv`). T is set by sampling frames,
M through the family's own resolution control (`Family.frame_side`), as `studio.capture.hf.video_qa` does.

`memory_estimate` says, before anything is loaded, how much accelerator memory a run needs: the weights
exactly (parameters counted on the meta device from the config), the activations of one forward pass as
an estimate. `real_size_config` builds the config of a model of realistic size (Qwen2-VL-7B's published
shape) so the GPU path can be checked with random weights where no checkpoint can be downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from studio import paths
from studio.capture.hf.adapter import VLMAdapter, load_vlm
from studio.capture.hf.registry import check_family, family_class, model_class, video_families
from studio.capture.hf.tiny import tiny_config, tiny_tokenizer, tiny_vlm
from studio.capture.hf.video_qa import TEMPLATE, VideoQA, frames_by_tokens, load_items, needle_items
from studio.errors import ParameterError

GIB = 2**30
DTYPE_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
TEXT_TOKENS = 32  # question, template and answer words around the visual tokens (the synthetic prompts hold ~15)

# Qwen2-VL-7B's published language-model shape (its config.json on the Hub); the vision tower is
# transformers' default Qwen2-VL one (depth 32, width 1280), which the 7B shares. Only the shape: the
# weights are random, to check memory and speed of the GPU path where no checkpoint can be downloaded.
QWEN2_VL_7B_TEXT = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
)
REAL_SIZES = {"tiny": None, "7b": QWEN2_VL_7B_TEXT}


def check_request(hf_family: str, random_size: str, frames: Sequence[int], tokens: Sequence[int | None]) -> str:
    """Refuse, before any model is built, a family that takes no video, an unknown size, or bad T/M lists."""
    family = check_family(hf_family)
    if family not in video_families():
        raise ParameterError(f"hf_family {family!r} takes no video; video families: {', '.join(video_families())}")
    if random_size not in REAL_SIZES:
        raise ParameterError(f"random_size {random_size!r} is not one of {', '.join(REAL_SIZES)}")
    if random_size != "tiny" and family != "qwen2_vl":
        raise ParameterError(f"random_size {random_size!r} exists for hf_family 'qwen2_vl' only, not {family!r}")
    if not frames or any(int(t) < 1 for t in frames):
        raise ParameterError(f"frames must be a non-empty list of positive frame counts, not {list(frames)}")
    if not tokens or any(m is not None and int(m) < 1 for m in tokens):
        raise ParameterError(f"tokens must be a non-empty list of positive counts (or null), not {list(tokens)}")
    return family


def real_size_config(family: str, random_size: str):
    """The config of a random model: the tiny one, or (qwen2_vl) Qwen2-VL-7B's shape with the tiny tokenizer's
    special-token ids (the vocabulary rows past the tokenizer are never used)."""
    tokenizer = tiny_tokenizer()
    if random_size == "tiny":
        return tiny_config(family, tokenizer)
    import transformers as tf

    base = tiny_config(family, tokenizer)  # token ids and rope sections of the tiny config
    text = base.text_config.to_dict() | REAL_SIZES[random_size]
    text.pop("layer_types", None)  # derived from the layer count; the tiny one's has 2
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    half = head_dim // 2  # Qwen2-VL-7B's mrope_section [16, 24, 24] for head_dim 128
    text["rope_parameters"] = dict(rope_type="default", mrope_section=[16, 24, 24], rope_theta=1e6)
    assert sum(text["rope_parameters"]["mrope_section"]) == half
    vision = tf.Qwen2VLConfig().vision_config.to_dict() | {"hidden_size": text["hidden_size"]}
    tokens = {k: getattr(base, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id")}
    return tf.Qwen2VLConfig(
        text_config=text, vision_config=vision, vision_end_token_id=base.vision_end_token_id, **tokens
    )


def count_parameters(family: str, config) -> int:
    """Parameters of `family`'s model built from `config` on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        model = model_class(family)(config)
    return sum(p.numel() for p in model.parameters())


def memory_estimate(
    family: str,
    config,
    frames: Sequence[int],
    tokens: Sequence[int | None],
    *,
    candidates: int = 10,
    dtype: torch.dtype = torch.bfloat16,
) -> dict:
    """Accelerator memory (GiB) for the largest cell: weights (exact) + one forward's activations (estimate).

    The forward scores every candidate answer at once: a batch of `candidates` sequences of
    (visual tokens + TEXT_TOKENS) tokens. Inference keeps one layer's activations alive at a time: about
    (4 hidden + 3 intermediate) values per token (residual, attention projections, gated MLP). Attention
    scores (batch x heads x S x S) count only where they would be materialised (eager attention); SDPA
    and flash kernels do not keep them. Returns the parts and `total_gib` (weights + activations + logits).
    """
    spec = family_class(family)(config)
    text = config.get_text_config()
    side = max(spec.frame_side(m) for m in tokens)
    visual = spec.tokens_per_video(max(frames), (side, side))
    seq = visual + TEXT_TOKENS
    nbytes = DTYPE_BYTES[dtype]
    params = count_parameters(family, config)
    act = candidates * seq * (4 * text.hidden_size + 3 * text.intermediate_size) * nbytes
    scores = candidates * text.num_attention_heads * seq * seq * nbytes
    logits = candidates * 4 * text.vocab_size * 4  # logits_to_keep: the answer's last tokens, in float32
    parts = {
        "parameters": params,
        "sequence_tokens": seq,
        "weights_gib": params * nbytes / GIB,
        "activations_gib": act / GIB,
        "eager_attention_scores_gib": scores / GIB,
        "logits_gib": logits / GIB,
    }
    parts["total_gib"] = parts["weights_gib"] + parts["activations_gib"] + parts["logits_gib"]
    return parts


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"


def describe_memory(estimate: dict, label: str, dtype: torch.dtype) -> str:
    """One sentence on `memory_estimate`'s numbers, in GiB or MiB as they come."""
    return (
        f"{label}: {estimate['parameters']:,} parameters, {_size(estimate['weights_gib'])} of weights in {dtype}, "
        f"about {_size(estimate['total_gib'])} for the largest cell ({estimate['sequence_tokens']} tokens per "
        f"sequence); eager attention would add {_size(estimate['eager_attention_scores_gib'])} of scores."
    )


def open_model(
    hf_model: str | None, hf_family: str, *, random_size: str = "tiny", seed: int = 0, folder: Path | None = None
) -> VLMAdapter:
    """The model to evaluate, on the GPU in bfloat16 when there is one.

    hf_model: a Hub id or local folder (read with from_pretrained). None: a random model of `random_size`
    built from its config, saved with save_pretrained to `folder` and loaded back with from_pretrained
    (the same path a real checkpoint takes). A 7B random model needs a GPU: refused on the CPU.
    """
    cuda = torch.cuda.is_available()
    kw = dict(dtype=torch.bfloat16, device="cuda") if cuda else {}
    if hf_model is not None:
        return load_vlm(hf_model, family=hf_family, **kw)
    if random_size == "tiny":
        folder = Path(folder or paths.CACHE / "pretrained_video" / f"tiny-{hf_family}-{seed}")
        tiny_vlm(hf_family, folder, seed=seed)
        return load_vlm(folder, family=hf_family, **kw)
    if not cuda:
        raise ParameterError(
            f"random_size {random_size!r} needs a GPU (about 16 GiB in bfloat16); this machine has none"
        )
    config = real_size_config(hf_family, random_size)
    with torch.random.fork_rng(devices=[]), torch.device("cuda"):
        torch.manual_seed(seed)
        model = model_class(hf_family)(config).to(torch.bfloat16).eval()
    return VLMAdapter(model, hf_family, tiny_tokenizer())


def video_items(n_items: int, *, seed: int = 0, items_file: str | None = None, tasks=None) -> list[VideoQA]:
    """The questions: a user's JSON-lines file (see `load_items`), else n_items synthetic needle videos."""
    if items_file is not None:
        return load_items(items_file)
    if n_items < 1:
        raise ParameterError(f"n_items must be at least 1, not {n_items}")
    return needle_items(n_items, seed=seed, **({"tasks": tuple(tasks)} if tasks else {}))


def evaluate(
    vlm: VLMAdapter,
    items: Sequence[VideoQA],
    frames: Sequence[int],
    tokens: Sequence[int | None],
    *,
    seed: int = 0,
    template: str = TEMPLATE,
    progress: bool = True,
) -> pd.DataFrame:
    """The results table (one row per (T, M)), with `model` and the visual budget T*M added."""
    longest = min(len(it.video) for it in items)
    if max(frames) > longest:
        raise ParameterError(f"frames asks for {max(frames)} frames; the shortest video has {longest}")
    table = frames_by_tokens(vlm, items, frames, tokens, seed=seed, template=template, progress=progress)
    table.insert(0, "model", vlm.family)
    table["budget"] = table["frames"] * table["tokens_per_frame"]
    return table


def equal_budget_splits(table: pd.DataFrame) -> pd.DataFrame:
    """Per budget T*M held by more than one split: the best split's loss against the others'.

    Columns: budget, frames, tokens_per_frame, visual_tokens (what the model saw: a family may merge
    frames), val_loss, val_acc, best (the split with the lowest loss).
    A single seed of inference: a difference here is the model's, not noise between training runs.
    """
    shared = table.groupby("budget").filter(lambda g: len(g) > 1)
    if shared.empty:
        return shared.assign(best=pd.Series(dtype=bool))
    cols = ["budget", "frames", "tokens_per_frame", "visual_tokens", "val_loss", "val_acc"]
    out = shared[cols].sort_values(["budget", "frames"]).reset_index(drop=True)
    lowest = out.groupby("budget")["val_loss"].transform("min")
    return out.assign(best=np.isclose(out["val_loss"], lowest))


def fit_law(table: pd.DataFrame, law: str = "additive"):
    """`studio.scaling.fit` of val_loss over (frames, tokens_per_frame), or a sentence saying why not."""
    from studio.analysis.scaling import fit, get_law

    n_params = len(get_law(law).params)
    if table["frames"].nunique() < 2 or table["tokens_per_frame"].nunique() < 2:
        return f"no {law} fit: frames and tokens per frame must both take at least two values"
    if len(table) <= n_params:
        return f"no {law} fit: {len(table)} cells for {n_params} parameters"
    return fit(table, law, x=("frames", "tokens_per_frame"), y="val_loss")
