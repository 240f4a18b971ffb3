"""AITQE in miniature: an image-text quality scorer and a slot rewriter on the frozen cell encoder.

    scorer, info = cached_scorer(ScorerConfig(hard_negatives=True), train, seed=0)   # trained once
    p_good = score(scorer, feats, ids)                  # (n,) probability the caption fits the clip
    rewriter, info = cached_rewriter(RewriterConfig(), feats, slot_ids, seed=0)
    fixed = rewrite(rewriter, feats, captions)          # minimal edits: only the slots it disagrees with

The scorer (AITQE's quality model) reads the frozen visual features of a clip (n, 18, C) and a caption
as its six slot words (`caption_slots`: the word at each slot's template position, -1 where the caption
has none, as in a truncation) and gives one logit: "this caption is a good description of this clip". An
MLP on the flattened features gives, per slot, log-probabilities over the slot's words; a linear layer
combines the caption's words' log-probabilities and the missing-slot flags into the logit. A structured
reader, not a free-text one: it is what keeps the scorer cheap enough to train six times on two cores.
It is trained on balanced good/bad pairs; what makes the bad ones is the ablation (`_pairs` in the
study): random negatives only, or also deliberately made hard negatives (a good caption with one slot
made false, as AITQE has GPT-4o write a bad caption for a good sample).

The rewriter (AITQE's recaption) predicts the six slot words from the visual features alone (an MLP on
the flattened features, one head per slot); `rewrite` changes a flagged caption's slot only where the
rewriter confidently prefers another word, and completes a truncated caption from the template.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from studio.cache import cached, code_fingerprint, load_checked
from studio.config import from_dict
from studio.data import scenes as S
from studio.repro import cpu_threads, seed_everything

SLOT_WORDS = {  # the words each slot can take, in a fixed order: the rewriter's classes
    "colour1": S.COLOURS,
    "object1": S.OBJECTS,
    "relation": S.RELATIONS,
    "colour2": S.COLOURS,
    "object2": S.OBJECTS,
    "event": S.EVENTS,
}


@dataclass
class ScorerConfig:
    hard_negatives: bool = True  # train with deliberately made one-slot hallucinations as negatives
    width: int = 256
    steps: int = 600
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01


@dataclass
class RewriterConfig:
    width: int = 256
    steps: int = 400
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    confidence: float = 0.5  # a slot is changed only when the rewriter's top word has at least this probability


class QualityScorer(nn.Module):
    """forward(feats (B, 18, C), slots (B, 6) word index per slot of SLOT_WORDS or -1) -> logits (B,)."""

    def __init__(self, cfg: ScorerConfig, feature_dim: int, n_visual: int):
        super().__init__()
        self.reader = SlotRewriter(RewriterConfig(width=cfg.width), feature_dim, n_visual)
        self.combine = nn.Linear(2 * len(SLOT_WORDS), 1)

    def forward(self, feats: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        present = slots >= 0
        logp = [
            torch.log_softmax(v, -1).gather(-1, slots[:, k : k + 1].clamp(min=0))[:, 0]
            for k, v in enumerate(self.reader(feats).values())
        ]
        lp = torch.stack(logp, 1) * present
        return self.combine(torch.cat([lp, (~present).float()], 1))[:, 0]


class SlotRewriter(nn.Module):
    """forward(feats (B, 18, C)) -> {slot: logits (B, K_slot)} over SLOT_WORDS[slot]."""

    def __init__(self, cfg: RewriterConfig, feature_dim: int, n_visual: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(feature_dim * n_visual, cfg.width),
            nn.GELU(),
            nn.Linear(cfg.width, cfg.width),
            nn.GELU(),
        )
        self.heads = nn.ModuleDict({s: nn.Linear(cfg.width, len(w)) for s, w in SLOT_WORDS.items()})

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(feats)
        return {s: head(h) for s, head in self.heads.items()}


def _train(model: nn.Module, loss_of, n: int, cfg, seed: int) -> list[float]:
    """AdamW with a one-cycle schedule over cfg.steps minibatches drawn with replacement; returns losses."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    losses = []
    model.train()
    for _ in range(cfg.steps):
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=gen)
        loss = loss_of(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def fit_scorer(cfg: ScorerConfig, feats: torch.Tensor, ids: torch.Tensor, good: torch.Tensor, *, seed: int = 0):
    """Train a scorer on pairs (feats (n, 18, C), slots (n, 6) from `caption_slots`, good (n,) 0/1).
    Returns (model, info)."""
    seed_everything(seed)
    model = QualityScorer(cfg, feats.shape[-1], feats.shape[1])
    target = good.float()
    losses = _train(
        model, lambda i: F.binary_cross_entropy_with_logits(model(feats[i], ids[i]), target[i]), len(ids), cfg, seed
    )
    return model, {"final_loss": float(np.mean(losses[-20:])), "pairs": len(ids), "good_share": float(target.mean())}


def fit_rewriter(cfg: RewriterConfig, feats: torch.Tensor, slot_ids: torch.Tensor, *, seed: int = 0):
    """Train the slot rewriter on (feats (n, 18, C), slot_ids (n, 6): class index per slot of SLOT_WORDS)."""
    seed_everything(seed)
    model = SlotRewriter(cfg, feats.shape[-1], feats.shape[1])

    def loss_of(i):
        out = model(feats[i])
        return sum(F.cross_entropy(out[s], slot_ids[i, k]) for k, s in enumerate(SLOT_WORDS))

    losses = _train(model, loss_of, len(feats), cfg, seed)
    return model, {"final_loss": float(np.mean(losses[-20:])), "examples": len(feats)}


def caption_slots(captions) -> torch.Tensor:
    """(n, 6) int64: per slot of SLOT_WORDS the index of the caption's word at that slot's template
    position, -1 where the caption is too short or the word is not one of the slot's words."""
    out = np.full((len(captions), len(SLOT_WORDS)), -1, dtype=np.int64)
    for r, caption in enumerate(captions):
        words = caption.split()
        for k, (slot, choices) in enumerate(SLOT_WORDS.items()):
            pos = S.SLOT_POSITION[slot]
            if pos < len(words) and words[pos] in choices:
                out[r, k] = choices.index(words[pos])
    return torch.from_numpy(out)


@torch.no_grad()
def score(model: QualityScorer, feats: torch.Tensor, ids: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(n,) probability that each caption (ids: `caption_slots`) is a good one for its clip."""
    model.eval()
    out = [torch.sigmoid(model(feats[i : i + batch], ids[i : i + batch])) for i in range(0, len(ids), batch)]
    return torch.cat(out).numpy().astype(float)


@torch.no_grad()
def rewrite(model: SlotRewriter, feats: torch.Tensor, captions, confidence: float) -> list[str]:
    """Minimal rewrites of `captions` toward their clips (feats (n, 18, C)).

    A template caption keeps every slot word unless the rewriter's top word for that slot differs and has
    probability >= confidence. A caption that is not a whole template (a truncation) keeps its words where
    they sit in the template and gets the rest: template words, and slots from the rewriter.
    """
    model.eval()
    probs = {s: torch.softmax(v, -1).numpy() for s, v in model(feats).items()}
    out = []
    for i, caption in enumerate(captions):
        words = caption.split()
        new = []
        for k, t in enumerate(S.TEMPLATE):
            if not t.startswith("{"):
                new.append(t)
                continue
            slot = t[1:-1]
            p = probs[slot][i]
            top = SLOT_WORDS[slot][int(p.argmax())]
            have = words[k] if k < len(words) else None
            if have is None or (top != have and p.max() >= confidence):
                new.append(top)
            else:
                new.append(have)
        out.append(" ".join(new))
    return out


def slot_targets(slots: list[dict]) -> np.ndarray:
    """(n, 6) class index of each slot word in SLOT_WORDS."""
    return np.array([[SLOT_WORDS[s].index(sl[s]) for s in SLOT_WORDS] for sl in slots], dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# Cached by (config, seed, data, code)


def _key(kind: str, cfg, seed: int, tensors) -> dict:
    from studio.models.captioner import tensors_hash

    return {kind: asdict(cfg), "seed": int(seed), "data": tensors_hash(*tensors)}


def _save(model: nn.Module, info: dict, spec: dict, folder: Path) -> None:
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    (folder / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def _load(folder: Path, make) -> tuple[nn.Module, dict]:
    spec = json.loads((folder / "model.json").read_text())
    with torch.random.fork_rng(devices=[]):
        model = make(spec)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.eval(), json.loads((folder / "info.json").read_text())


def _make_scorer(spec: dict) -> QualityScorer:
    return QualityScorer(from_dict(ScorerConfig, spec["config"]), *spec["shape"])  # feature_dim, n_visual


def _make_rewriter(spec: dict) -> SlotRewriter:
    return SlotRewriter(from_dict(RewriterConfig, spec["config"]), *spec["shape"])


def cached_scorer(cfg: ScorerConfig | dict, feats, ids, good, *, seed: int = 0, threads: int | None = 1, log=print):
    """`fit_scorer`, trained once per (config, seed, data, code) and loaded after: (model, info)."""
    cfg = cfg if isinstance(cfg, ScorerConfig) else from_dict(ScorerConfig, cfg)
    shape = [int(feats.shape[-1]), int(feats.shape[1])]

    def build(folder: Path) -> None:
        with cpu_threads(threads):
            model, info = fit_scorer(cfg, feats, ids, good, seed=seed)
        _save(model, info, {"config": asdict(cfg), "shape": shape}, folder)
        log(f"quality scorer (hard negatives {cfg.hard_negatives}) seed {seed}: final loss {info['final_loss']:.3f}")

    folder = cached(
        "quality_scorer", _key("scorer", cfg, seed, (feats, ids, good)), build, code=code_fingerprint(__name__), log=log
    )
    return load_checked(folder, lambda f: _load(f, _make_scorer))


def cached_rewriter(cfg: RewriterConfig | dict, feats, slot_ids, *, seed: int = 0, threads: int | None = 1, log=print):
    """`fit_rewriter`, trained once per (config, seed, data, code) and loaded after: (model, info)."""
    cfg = cfg if isinstance(cfg, RewriterConfig) else from_dict(RewriterConfig, cfg)
    shape = [int(feats.shape[-1]), int(feats.shape[1])]

    def build(folder: Path) -> None:
        with cpu_threads(threads):
            model, info = fit_rewriter(cfg, feats, slot_ids, seed=seed)
        _save(model, info, {"config": asdict(cfg), "shape": shape}, folder)
        log(f"slot rewriter seed {seed}: final loss {info['final_loss']:.3f}")

    folder = cached(
        "slot_rewriter", _key("rewriter", cfg, seed, (feats, slot_ids)), build, code=code_fingerprint(__name__), log=log
    )
    return load_checked(folder, lambda f: _load(f, _make_rewriter))
