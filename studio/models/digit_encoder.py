"""The frozen digit encoder of the tiny ICL model: an MLP pretrained on digit classification, cached.

The prototype in ../shared/reference/icl-notes.md only learned in-context with such an encoder, and
stayed on the chance plateau for minutes with one trained end to end.

    enc = digit_encoder(DigitEncoderConfig(n_classes=80))   # Frozen; pretrained once per config
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from studio.config import from_dict as config
from studio.models.icl_vocab import IMAGE_PIXELS, class_pools
from studio.models.pretrained import Frozen, cached_pretrained
from studio.repro import cpu_threads


@dataclass(frozen=True)
class DigitEncoderConfig:
    n_classes: int = 10  # classification pretraining classes (80 = digits x rotations/flips)
    hidden: int = 256
    dim: int = 64
    steps: int = 1500
    batch_size: int = 256
    lr: float = 3e-3
    seed: int = 0


class DigitEncoder(nn.Module):
    """MLP 64 -> hidden -> dim; `head` (dim -> classes) is used only while pretraining.

    forward(x (..., 64)) -> (..., dim)
    """

    def __init__(self, cfg: DigitEncoderConfig):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(IMAGE_PIXELS, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim))
        self.head = nn.Sequential(nn.GELU(), nn.Linear(cfg.dim, cfg.n_classes))
        self.dim = cfg.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _build_encoder(cfg: dict) -> DigitEncoder:
    return DigitEncoder(DigitEncoderConfig(**cfg))


def _pretrain_encoder(model: DigitEncoder, cfg: dict) -> dict:
    c = DigitEncoderConfig(**cfg)
    g = torch.Generator().manual_seed(c.seed)

    def stack(split):
        pools = class_pools(split, c.n_classes)
        x = torch.from_numpy(np.concatenate(pools))
        y = torch.cat([torch.full((len(p),), i) for i, p in enumerate(pools)])
        return x, y

    (x, y), (xt, yt) = stack("train"), stack("test")
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    with cpu_threads(1):  # a small MLP: one thread is faster, and far faster on a shared machine
        return _pretrain_loop(model, c, opt, g, x, y, xt, yt)


def _pretrain_loop(model, c, opt, g, x, y, xt, yt) -> dict:
    with torch.random.fork_rng():
        torch.manual_seed(c.seed)
        for p in model.parameters():  # deterministic init regardless of the caller's RNG state
            nn.init.normal_(p, std=0.02) if p.dim() == 1 else nn.init.kaiming_uniform_(p, a=5**0.5)
    for _ in range(c.steps):
        idx = torch.randint(len(x), (c.batch_size,), generator=g)
        loss = F.cross_entropy(model.head(model(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        test_acc = (model.head(model(xt)).argmax(-1) == yt).float().mean().item()
        upright = yt < 10
        upright_acc = (model.head(model(xt[upright])).argmax(-1) == yt[upright]).float().mean().item()
    return {
        "test_acc": round(test_acc, 4),
        "test_acc_upright": round(upright_acc, 4),
        "final_loss": round(loss.item(), 4),
    }


def digit_encoder(cfg: DigitEncoderConfig | dict | None = None, log: Callable[[str], None] = print) -> Frozen:
    """The frozen digit encoder, pretrained once per config and cached (studio.models.pretrained)."""
    cfg = config(DigitEncoderConfig, cfg)
    return cached_pretrained("icl-digit-encoder", asdict(cfg), build=_build_encoder, train=_pretrain_encoder, log=log)
