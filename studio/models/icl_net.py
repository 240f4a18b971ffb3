"""The tiny multimodal in-context learner: a frozen digit encoder + a small causal transformer.

Sequence (one episode with S demonstrations):

    [img_1, ans_1, img_2, ans_2, ..., img_S, ans_S, img_query]  ->  answer logits at the last position

A removed image (`None` in a studio.data.episodes Episode) becomes a learned "no image" embedding.
Also here: metrics on tensor batches (accuracy, reliance) and the weights' safetensors round trip.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio.config import from_dict as config
from studio.models.digit_encoder import DigitEncoderConfig, digit_encoder
from studio.models.icl_vocab import VOCAB
from studio.models.pretrained import Frozen

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ICLNetConfig:
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_shots: int = 8
    ff_mult: int = 4
    tied: bool = False  # tie answer embeddings to the output layer (untied learned ICL faster here)
    answer_init: float = 0.5  # std of the answer embeddings at init


class ICLNet(nn.Module):
    """Frozen encoder + a small pre-norm causal transformer over interleaved image/answer tokens.

    forward(images (B, S+1, 64) float, present (B, S+1) bool, answers (B, S) long) -> logits (B, V)
    The last image is the query; `present` False means "no image" (a learned embedding).
    The output layer is a separate linear map unless cfg.tied.
    """

    def __init__(self, encoder: nn.Module, n_answers: int = VOCAB.size, cfg: ICLNetConfig | dict | None = None):
        super().__init__()
        cfg = config(ICLNetConfig, cfg)
        self.cfg = cfg
        self.encoder = encoder if isinstance(encoder, Frozen) else Frozen(encoder)
        enc_dim = getattr(self.encoder.module, "dim", cfg.width)
        self.image_proj = nn.Linear(enc_dim, cfg.width)
        self.no_image = nn.Parameter(torch.randn(cfg.width) * 0.02)
        self.answer_emb = nn.Embedding(n_answers, cfg.width)
        nn.init.normal_(self.answer_emb.weight, std=cfg.answer_init)
        self.out = None if cfg.tied else nn.Linear(cfg.width, n_answers)
        self.pos = nn.Parameter(torch.randn(2 * cfg.max_shots + 1, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.width,
            cfg.heads,
            cfg.ff_mult * cfg.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, images: torch.Tensor, present: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        b, s1, _ = images.shape
        s = s1 - 1
        if s > self.cfg.max_shots:
            raise ValueError(f"{s} shots > max_shots={self.cfg.max_shots}")
        img = self.image_proj(self.encoder(images))
        img = torch.where(present[..., None], img, self.no_image.expand_as(img))
        ans = self.answer_emb(answers)
        seq = torch.empty(b, 2 * s + 1, img.shape[-1], dtype=img.dtype, device=img.device)
        seq[:, 0 : 2 * s : 2], seq[:, 1 : 2 * s : 2], seq[:, -1] = img[:, :s], ans, img[:, s]
        seq = seq + self.pos[: 2 * s + 1]
        mask = nn.Transformer.generate_square_subsequent_mask(2 * s + 1, device=img.device)
        h = self.blocks(seq, mask=mask, is_causal=True)
        z = self.norm(h[:, -1])
        return z @ self.answer_emb.weight.T if self.out is None else self.out(z)


def build_net(
    seed: int = 0,
    net: ICLNetConfig | dict | None = None,
    encoder: DigitEncoderConfig | dict | None = None,
    log: Callable[[str], None] = print,
) -> ICLNet:
    """A fresh ICLNet with the cached frozen encoder; the transformer's init depends only on `seed`."""
    enc = digit_encoder(encoder, log=log)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ICLNet(copy.deepcopy(enc), VOCAB.size, net)


@torch.no_grad()
def accuracy(net: nn.Module, batch: dict[str, torch.Tensor], restrict: bool = True, chunk: int = 2048) -> float:
    """Share of episodes answered right; over the episode's candidate answers when `restrict`."""
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    b = {k: v.to(dev) for k, v in batch.items()}
    hits = []
    for i in range(0, len(b["target"]), chunk):
        sl = slice(i, i + chunk)
        logits = net(b["images"][sl], b["present"][sl], b["answers"][sl])
        if restrict:
            logits = logits.masked_fill(~b["candidates"][sl], float("-inf"))
        hits.append(logits.argmax(-1) == b["target"][sl])
    net.train(was)
    return torch.cat(hits).float().mean().item()


def blank_demos(batch: dict[str, torch.Tensor], how: str = "zeros") -> dict[str, torch.Tensor]:
    """The batch with demonstration images blanked ("zeros") or removed ("none"); query image kept."""
    out = dict(batch)
    if how == "zeros":
        images = batch["images"].clone()
        images[:, :-1] = 0.0
        out["images"] = images
    elif how == "none":
        present = batch["present"].clone()
        present[:, :-1] = False
        out["present"] = present
    else:
        raise ValueError(f"how must be 'zeros' or 'none', got {how!r}")
    return out


def tensor_reliance(net: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """acc(original) - acc(demonstration images blanked), and acc(removed) / acc(original)."""
    acc = accuracy(net, batch)
    blanked = accuracy(net, blank_demos(batch, "zeros"))
    removed = accuracy(net, blank_demos(batch, "none"))
    return {
        "accuracy": acc,
        "acc_blanked": blanked,
        "acc_removed": removed,
        "reliance": acc - blanked,
        "text_only_ratio": removed / acc if acc > 0 else float("nan"),
    }


def save_weights(net: nn.Module, folder: Path) -> None:
    """net's state dict (frozen encoder included) as folder/model.safetensors: tensors only, no pickle."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, Path(folder) / WEIGHTS)


def load_weights(net: nn.Module, folder: Path) -> nn.Module:
    """net with the weights of folder/model.safetensors (every key must match), in place."""
    net.load_state_dict(load_file(Path(folder) / WEIGHTS))
    return net
