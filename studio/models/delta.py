"""Difference captioning and grounding at equal visual tokens: concatenation vs a siamese delta module.

    net = DiffNet(DeltaConfig(arm="delta", task="multi"), feature_dim=64)
    out = net.losses((feats, instruction_ids, description_ids, changed))   # feats (B, 2, 9, C)

Both arms feed the tiny Llama (`video_lm.build_llama`) the same 18 visual tokens, 9 per image:

    [<bos>] [where] [kind] [before: 9 tokens] [after: 9 tokens] [answer] [kind colour object detail]

- "concat" (baseline): each image's frozen cell features through one projector (shared: a siamese
  encoder), plus a cell position and an image embedding; the LM has to compare them itself.
- "delta" (OneDiff's Visual Delta Module and DiffTracker's enhancement, guessed as the seed notes
  suggest, f * sigma(g(|f_a - f_b|))): per cell, a gate from the feature difference |f_after - f_before|
  scales both images' tokens by 2 sigma(g) -- near 0 for what the images share (common suppression), up
  to 2 where they differ (difference enhancement) -- and a projection of the signed difference
  f_after - f_before is added to both. Same 18 tokens.

Two heads on the same LM: the difference caption (next-word cross-entropy on the four description words,
teacher-forced) and grounding (a linear head on the last hidden state of each "after" token: is this cell
part of the asked change? binary cross-entropy). task "caption" or "ground" trains one head; "multi" both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from studio.config import from_dict
from studio.data import pairs as P
from studio.models.video_lm import build_llama

ARMS = ("concat", "delta")
TASKS = ("caption", "ground", "multi")
PREFIX = 3  # <bos> where kind
VISUAL = 2 * P.CELLS  # tokens of the two images: equal in both arms


@dataclass
class DeltaConfig:
    arm: str = "delta"  # "concat" or "delta"
    task: str = "multi"  # "caption", "ground" or "multi"
    width: int = 64  # D
    layers: int = 2
    heads: int = 4
    ground_weight: float = 1.0  # weight of the grounding loss in multi-task training

    def __post_init__(self):
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; valid: {list(ARMS)}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid: {list(TASKS)}")


class DiffNet(nn.Module):
    """forward(feats (B, 2, 9, C), instruction_ids (B, 2), description_ids (B, 4)) ->
    (caption logits (B, 4, V) predicting the description words, grounding logits (B, 9))."""

    def __init__(self, cfg: DeltaConfig | dict, feature_dim: int):
        super().__init__()
        self.cfg = cfg if isinstance(cfg, DeltaConfig) else from_dict(DeltaConfig, cfg)
        D = self.cfg.width
        self.feature_dim = feature_dim
        self.vocab = P.vocabulary()
        self.lm = build_llama(len(self.vocab), D, self.cfg.layers, self.cfg.heads, max_len=64)
        self.projector = nn.Sequential(nn.Linear(feature_dim, D), nn.GELU(), nn.Linear(D, D))  # siamese
        self.cell_position = nn.Parameter(torch.randn(P.CELLS, D) * 0.02)
        self.image_embed = nn.Parameter(torch.randn(2, 1, D) * 0.02)
        if self.cfg.arm == "delta":
            self.gate = nn.Sequential(nn.Linear(feature_dim, D), nn.GELU(), nn.Linear(D, 1))
            self.difference = nn.Linear(feature_dim, D)
        self.ground_head = nn.Linear(D, 1)
        ids = P.word_ids()
        self.bos, self.where, self.answer = ids["<bos>"], ids["where"], ids["answer"]

    def visual_tokens(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, 2, 9, C) -> (B, 18, D): before's 9 tokens, then after's."""
        tok = self.projector(feats) + self.cell_position + self.image_embed  # (B, 2, 9, D)
        if self.cfg.arm == "delta":
            diff = feats[:, 1] - feats[:, 0]  # (B, 9, C)
            scale = 2 * torch.sigmoid(self.gate(diff.abs()))  # (B, 9, 1): ~0 shared, up to 2 changed
            tok = tok * scale[:, None] + self.difference(diff)[:, None]
        return tok.reshape(tok.shape[0], VISUAL, -1)

    def forward(self, feats, instruction_ids, description_ids):
        emb = self.lm.get_input_embeddings()
        B = feats.shape[0]
        bos = emb.weight[self.bos].expand(B, 1, -1)
        cue = emb.weight[self.answer].expand(B, 1, -1)
        seq = torch.cat(
            [bos, emb(instruction_ids), self.visual_tokens(feats.float()), cue, emb(description_ids[:, :-1])], 1
        )
        h = self.lm.model(inputs_embeds=seq).last_hidden_state
        start = PREFIX + VISUAL  # the answer cue predicts the first word
        caption = self.lm.lm_head(h[:, start : start + P.DESCRIPTION_LENGTH])
        ground = self.ground_head(h[:, PREFIX + P.CELLS : PREFIX + VISUAL]).squeeze(-1)
        return caption, ground

    def losses(self, batch) -> dict[str, torch.Tensor]:
        feats, instr, desc, changed = batch
        caption, ground = self(feats, instr, desc)
        out = {}
        if self.cfg.task in ("caption", "multi"):
            out["caption_loss"] = F.cross_entropy(caption.reshape(-1, caption.shape[-1]), desc.reshape(-1))
        if self.cfg.task in ("ground", "multi"):
            out["ground_loss"] = F.binary_cross_entropy_with_logits(ground, changed.float())
        w = self.cfg.ground_weight if self.cfg.task == "multi" else 1.0
        out["loss"] = out.get("caption_loss", 0.0) + w * out.get("ground_loss", 0.0)
        return out

    @torch.no_grad()
    def predict(self, feats, instruction_ids, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy descriptions (n, 4) word ids and grounding masks (n, 9) 0/1 (logit > 0)."""
        self.eval()
        words, masks = [], []
        for i in range(0, len(feats), batch):
            f, q = feats[i : i + batch], instruction_ids[i : i + batch]
            desc = torch.zeros(len(f), P.DESCRIPTION_LENGTH, dtype=torch.long)
            for t in range(P.DESCRIPTION_LENGTH):  # the word at t sees only the words before it
                caption, ground = self(f, q, desc)
                desc[:, t] = caption[:, t].argmax(-1)
            words.append(desc)
            masks.append((ground > 0).long())
        return torch.cat(words), torch.cat(masks)


def build_diffnet(spec: dict) -> DiffNet:
    """A DiffNet from {"config": DeltaConfig fields, "feature_dim": C} (what the cache stores)."""
    return DiffNet(from_dict(DeltaConfig, spec["config"]), int(spec["feature_dim"]))


def diffnet_spec(cfg: DeltaConfig | dict, feature_dim: int) -> dict:
    cfg = cfg if isinstance(cfg, DeltaConfig) else from_dict(DeltaConfig, cfg)
    return {"config": asdict(cfg), "feature_dim": int(feature_dim)}
