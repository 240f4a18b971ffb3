"""Conversational image retrieval (ChatSearch): a contrastive dual encoder and a generative retriever.

Both score a gallery image by the cosine of a query embedding (one per round, so recall can be read after
every round) with the image's embedding from one image tower (the frozen cell features of its 9 cells,
flattened, through an MLP), trained with InfoNCE against the other images of the batch, averaged over rounds.

- "dual" (a CLIP-style dual encoder): the text rounds alone; each round's four words (word + slot
  embeddings) through an MLP, summed over the rounds so far, then a linear map. It cannot see images.
- "generative" (ChatSearcher, as the seed notes assume it: an [IMG] token's hidden state is matched to
  gallery embeddings): the tiny Llama (`video_lm.build_llama`) reads the interleaved dialogue, reference
  images included (`studio.data.dialogues.interleave`), with a <query> token after every round whose last
  hidden state is the query; it is also trained to predict the dialogue's next word (the generative part).

Batches: (ids (B, S), slot (B, S), query (B, R), reference feats (B, 9, C), target feats (B, 9, C),
round_ids (B, R, 4)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from studio.config import from_dict
from studio.data import dialogues as Dg
from studio.data import pairs as P
from studio.models.video_lm import build_llama

RETRIEVERS = ("dual", "generative")


@dataclass
class RetrieverConfig:
    kind: str = "generative"  # "dual" or "generative"
    width: int = 64  # D
    layers: int = 2  # generative: Llama blocks
    heads: int = 4
    embed_dim: int = 32  # the shared retrieval space
    lm_weight: float = 0.5  # generative: weight of the next-word loss on the dialogue
    temperature: float = 0.07  # initial; learned (clamped to [0.01, 1])

    def __post_init__(self):
        if self.kind not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.kind!r}; valid: {list(RETRIEVERS)}")


class Retriever(nn.Module):
    def __init__(self, cfg: RetrieverConfig | dict, feature_dim: int):
        super().__init__()
        self.cfg = cfg if isinstance(cfg, RetrieverConfig) else from_dict(RetrieverConfig, cfg)
        D, E = self.cfg.width, self.cfg.embed_dim
        self.feature_dim = feature_dim
        self.image_tower = nn.Sequential(nn.Linear(P.CELLS * feature_dim, 2 * D), nn.GELU(), nn.Linear(2 * D, E))
        self.log_scale = nn.Parameter(torch.tensor(float(-torch.log(torch.tensor(self.cfg.temperature)))))
        V = len(Dg.vocabulary())
        if self.cfg.kind == "dual":
            self.words = nn.Embedding(V, D)
            self.slots = nn.Parameter(torch.randn(Dg.ROUND_WORDS, D) * 0.02)
            self.round_mlp = nn.Sequential(nn.Linear(Dg.ROUND_WORDS * D, 2 * D), nn.GELU(), nn.Linear(2 * D, D))
            self.text_head = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, E))
        else:
            self.lm = build_llama(V, D, self.cfg.layers, self.cfg.heads, max_len=128)
            self.projector = nn.Sequential(nn.Linear(feature_dim, D), nn.GELU(), nn.Linear(D, D))
            self.cell_position = nn.Parameter(torch.randn(P.CELLS, D) * 0.02)
            self.text_head = nn.Linear(D, E)

    def image_embeddings(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, 9, C) -> (N, E) normalised."""
        return F.normalize(self.image_tower(feats.float().flatten(1)), dim=-1)

    def _generative_states(self, ids, slot, reference):
        emb = self.lm.get_input_embeddings()(ids)  # (B, S, D)
        vis = self.projector(reference.float()) + self.cell_position  # (B, 9, D)
        at = slot >= 0
        picked = torch.gather(vis, 1, slot.clamp(min=0)[..., None].expand(-1, -1, vis.shape[-1]))
        seq = torch.where(at[..., None], picked, emb)
        return self.lm.model(inputs_embeds=seq).last_hidden_state

    def queries(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(query embeddings (B, R, E) normalised, hidden states (B, S, D) or None for the dual encoder)."""
        ids, slot, query, reference, _, round_ids = batch[:6]
        if self.cfg.kind == "dual":
            w = self.words(round_ids) + self.slots  # (B, R, 4, D)
            per_round = self.round_mlp(w.flatten(2))  # (B, R, D)
            return F.normalize(self.text_head(per_round.cumsum(1)), dim=-1), None
        h = self._generative_states(ids, slot, reference)
        q = torch.gather(h, 1, query[..., None].expand(-1, -1, h.shape[-1]))
        return F.normalize(self.text_head(q), dim=-1), h

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(0.0, 4.6).exp()  # temperature in [0.01, 1]

    def losses(self, batch) -> dict[str, torch.Tensor]:
        q, h = self.queries(batch)
        img = self.image_embeddings(batch[4])
        logits = torch.einsum("bre,ne->rbn", q, img) * self.scale()
        target = torch.arange(len(img), device=img.device).expand(q.shape[1], -1)
        out = {"contrastive_loss": F.cross_entropy(logits.reshape(-1, len(img)), target.reshape(-1))}
        if h is not None:
            ids, slot = batch[0], batch[1]
            pred = self.lm.lm_head(h[:, :-1])
            nxt = ids[:, 1:]
            words = (slot[:, 1:] < 0) & (nxt != Dg.word_ids()["<pad>"]) & (nxt != Dg.word_ids()[Dg.QUERY])
            out["lm_loss"] = F.cross_entropy(pred[words], nxt[words])
        out["loss"] = out["contrastive_loss"] + self.cfg.lm_weight * out.get("lm_loss", 0.0)
        return out

    @torch.no_grad()
    def scores(self, batch, gallery_feats: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """(n, R, N) cosine scores of every round's query against every gallery image (N, 9, C)."""
        self.eval()
        img = self.image_embeddings(gallery_feats)
        out = []
        for i in range(0, len(batch[0]), chunk):
            q, _ = self.queries([t[i : i + chunk] for t in batch])
            out.append(torch.einsum("bre,ne->brn", q, img))
        return torch.cat(out)


def build_retriever(spec: dict) -> Retriever:
    """A Retriever from {"config": RetrieverConfig fields, "feature_dim": C} (what the cache stores)."""
    return Retriever(from_dict(RetrieverConfig, spec["config"]), int(spec["feature_dim"]))


def retriever_spec(cfg: RetrieverConfig | dict, feature_dim: int) -> dict:
    cfg = cfg if isinstance(cfg, RetrieverConfig) else from_dict(RetrieverConfig, cfg)
    return {"config": asdict(cfg), "feature_dim": int(feature_dim)}
