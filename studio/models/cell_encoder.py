"""The frozen image encoder of the captioner: one 8 x 8 RGB cell -> a feature vector.

    encoder = scene_encoder({"steps": 400})              # pretrained once per config, then cached
    feats = encode_clips(encoder, bank["frames"])        # (n, FRAMES * 9, C)

Pretrained to name the object (or empty) and colour of each cell of `studio.data.scenes` clips, then
frozen: real MLLMs freeze a pretrained SigLIP or CLIP, and both prototypes in shared/reference only
learned with an encoder pretrained first. `scene_encoder` caches it through
`studio.models.pretrained.cached_pretrained`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.config import from_dict
from studio.data import scenes as S
from studio.models.pretrained import cached_pretrained

CELLS_PER_CLIP = S.FRAMES * S.GRID * S.GRID  # one feature per cell per frame


@dataclass
class CellEncoderConfig:
    feature_dim: int = 64  # C: channels of one visual feature
    width: int = 192  # hidden width of the cell MLP
    n_scenes: int = 1500  # pretraining clips (train-split digit scans); 2 frames x 9 cells each
    steps: int = 400  # pretraining steps
    batch_size: int = 256  # cells per step
    lr: float = 3e-3
    seed: int = 0


class CellEncoder(nn.Module):
    """forward(frames (n, 3, 24, 24)) -> features (n, 9, C), cells in row-major order.

    An MLP on each 8 x 8 cell (like a ViT patch embedding, but deeper): the scenes put every object
    exactly in one cell, so a per-cell encoder sees everything a caption names. BatchNorm, as both
    prototypes in shared/reference needed it. Heads name the object (or empty) and colour of a cell.
    """

    def __init__(self, cfg: CellEncoderConfig):
        super().__init__()
        d_in = 3 * S.CELL * S.CELL
        self.body = nn.Sequential(
            nn.Linear(d_in, cfg.width),
            nn.BatchNorm1d(cfg.width),
            nn.ReLU(),
            nn.Linear(cfg.width, cfg.width),
            nn.BatchNorm1d(cfg.width),
            nn.ReLU(),
            nn.Linear(cfg.width, cfg.feature_dim),
            nn.BatchNorm1d(cfg.feature_dim),
            nn.ReLU(),
        )
        self.object_head = nn.Linear(cfg.feature_dim, S.N_OBJECT_CLASSES)
        self.colour_head = nn.Linear(cfg.feature_dim, S.N_COLOUR_CLASSES)

    @staticmethod
    def cells(frames: torch.Tensor) -> torch.Tensor:
        """(n, 3, 24, 24) -> (n, 9, 192) flattened cells."""
        n = frames.shape[0]
        x = frames.reshape(n, 3, S.GRID, S.CELL, S.GRID, S.CELL).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, S.GRID * S.GRID, 3 * S.CELL * S.CELL)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.cells(frames)
        n, c, d = x.shape
        return self.body(x.reshape(n * c, d)).reshape(n, c, -1)


def build_encoder(config: dict) -> CellEncoder:
    return CellEncoder(from_dict(CellEncoderConfig, config))


def pretrain_encoder(model: CellEncoder, config: dict) -> dict:
    """Train the cell encoder to name each cell's object and colour; return held-out accuracies."""
    cfg = from_dict(CellEncoderConfig, config)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    def cells_of(bank):
        frames = torch.from_numpy(bank["frames"].reshape(-1, 3, S.SIZE, S.SIZE))
        x = CellEncoder.cells(frames).reshape(-1, 3 * S.CELL * S.CELL)
        return x, torch.from_numpy(bank["cell_object"].reshape(-1)), torch.from_numpy(bank["cell_colour"].reshape(-1))

    x, y_obj, y_col = cells_of(S.scene_bank(cfg.n_scenes, seed=10_000 + cfg.seed, split="train"))
    xt, yt_obj, yt_col = cells_of(S.scene_bank(300, seed=20_000 + cfg.seed, split="test"))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    model.train()
    for _ in range(cfg.steps):
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen)
        f = model.body(x[idx])
        loss = F.cross_entropy(model.object_head(f), y_obj[idx]) + F.cross_entropy(model.colour_head(f), y_col[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        f = model.body(xt)
        p_obj, p_col = model.object_head(f).argmax(-1), model.colour_head(f).argmax(-1)
    full = yt_obj > 0
    return {
        "object_acc_occupied": float((p_obj[full] == yt_obj[full]).float().mean()),
        "colour_acc_occupied": float((p_col[full] == yt_col[full]).float().mean()),
        "empty_acc": float((p_obj[~full] == 0).float().mean()),
        "final_loss": float(loss.detach()),
    }


def scene_encoder(config: dict | None = None, log=print) -> nn.Module:
    """The frozen, pretrained cell encoder for `config` (cached by its hash)."""
    cfg = asdict(from_dict(CellEncoderConfig, config))
    return cached_pretrained("scene-cells", cfg, build=build_encoder, train=pretrain_encoder, log=log)


@torch.no_grad()
def encode_clips(encoder: nn.Module, frames: np.ndarray, batch: int = 512) -> torch.Tensor:
    """frames (n, FRAMES, 3, 24, 24) -> visual features (n, CELLS_PER_CLIP, C), frame-major, computed once."""
    x = torch.as_tensor(frames)
    n = x.shape[0]
    flat = x.reshape(n * S.FRAMES, 3, S.SIZE, S.SIZE)
    out = torch.cat([encoder(flat[i : i + batch]) for i in range(0, len(flat), batch)])
    return out.reshape(n, CELLS_PER_CLIP, -1)
