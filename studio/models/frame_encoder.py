"""A small CNN frame encoder, pretrained once on single frames, frozen, and a cached bank of its features.

Both prototypes (shared/reference/engine-notes.md) learned only with BatchNorm in the encoder and only
once the encoder was pretrained and frozen, as real MLLMs freeze SigLIP/CLIP. The pretraining target
names, for every cell of an 8x8 grid, the digit that covers it or "none" (studio.data.video's
`cell_labels`), so that the grid features keep both identity and position -- what mean pooling to
sqrt(M) x sqrt(M) and the LM downstream need.

    enc = pretrained_frame_encoder(FrameEncoderConfig())       # cached by config and code, Frozen
    bank = feature_bank(enc_cfg, video_cfg, n_train, n_val)   # cached (N, F, G*G, C) float16 memmaps

The feature bank is the frozen encoder applied to every frame of a fixed set of videos: computing it
once per (encoder, video) config makes a sweep cell cost only the selector, projector and LM. It is
honest because the encoder is frozen: the features a cell sees are exactly what the encoder would give.
Both are `studio.cache` entries keyed by their config and by the code fingerprint of this module (and
every studio module it imports: the video generator among them), so editing that code rebuilds them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.cache import cached, code_fingerprint, load_checked
from studio.config import from_dict
from studio.data.video import NONE_LABEL, TASKS, VideoConfig, make_batch
from studio.models.pretrained import cached_pretrained


@dataclass(frozen=True)
class FrameEncoderConfig:
    """Architecture and pretraining recipe of the frame encoder (with the code, it keys the cache entry)."""

    channels: int = 32  # conv width
    feature_dim: int = 16  # C: features per grid cell handed to the video model
    size: int = 32  # frame side (must match the videos)
    digit_size: int = 8
    grid: int = 8  # output grid side G (tokens per frame before selection: G*G)
    steps: int = 1200  # pretraining steps
    videos_per_step: int = 32  # frames per step = videos_per_step * frames_per_video
    frames_per_video: int = 4
    lr: float = 3e-3
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> FrameEncoderConfig:
        return from_dict(cls, d)


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FrameEncoder(nn.Module):
    """(N, 1, size, size) frames -> (N, G*G, C) grid features; `classify` gives (N, 11, G, G) logits."""

    def __init__(self, cfg: FrameEncoderConfig):
        super().__init__()
        n_down = int(np.log2(cfg.size // cfg.grid))
        if cfg.grid * 2**n_down != cfg.size:
            raise ValueError("size / grid must be a power of two")
        layers = [_block(1, cfg.channels // 2, 1)]
        cin = cfg.channels // 2
        for _ in range(n_down):
            layers.append(_block(cin, cfg.channels, 2))
            cin = cfg.channels
        layers.append(_block(cin, cfg.channels, 1))  # widens the receptive field to a whole digit
        self.body = nn.Sequential(*layers)
        self.to_features = nn.Sequential(nn.Conv2d(cfg.channels, cfg.feature_dim, 1), nn.BatchNorm2d(cfg.feature_dim))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(cfg.feature_dim, NONE_LABEL + 1, 1))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_features(self.body(x))  # (N, C, G, G)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.feature_map(x)
        return f.flatten(2).transpose(1, 2)  # (N, G*G, C), row-major over the grid

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_map(x))


def _video_cfg(cfg: FrameEncoderConfig) -> VideoConfig:
    # Pretraining sees frames of every task, so every layout a sweep can ask about is in distribution.
    return VideoConfig(size=cfg.size, digit_size=cfg.digit_size, label_grid=cfg.grid, tasks=TASKS)


def _frames_batch(cfg: FrameEncoderConfig, step: int, split: str, rng: np.random.Generator):
    vcfg = _video_cfg(cfg)
    n = cfg.videos_per_step
    idx = np.arange(step * n, (step + 1) * n)
    fr = np.sort(rng.choice(vcfg.frames, size=cfg.frames_per_video, replace=False))
    b = make_batch(vcfg, idx, seed=cfg.seed, split=split, frames=fr, labels=True)
    x = torch.from_numpy(b["video"]).reshape(-1, 1, cfg.size, cfg.size)
    y = torch.from_numpy(b["cell_labels"]).reshape(-1, cfg.grid, cfg.grid)
    return x, y


def build_frame_encoder(config: dict) -> FrameEncoder:
    return FrameEncoder(FrameEncoderConfig.from_dict(config))


def pretrain_frame_encoder(model: FrameEncoder, config: dict, log=print) -> dict:
    """Train `model` in place to name the digit (or none) in each grid cell; return held-out accuracy."""
    cfg = FrameEncoderConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    model.train()
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        x, y = _frames_batch(cfg, step, "train", rng)
        loss = nn.functional.cross_entropy(model.classify(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == cfg.steps - 1:
            log(f"  frame encoder step {step}/{cfg.steps} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)")
    model.eval()
    hits = {"digit": [0, 0], "none": [0, 0]}
    with torch.no_grad():
        for step in range(8):
            x, y = _frames_batch(cfg, step, "test", rng)
            pred = model.classify(x).argmax(1)
            for key, mask in (("digit", y != NONE_LABEL), ("none", y == NONE_LABEL)):
                hits[key][0] += int((pred[mask] == y[mask]).sum())
                hits[key][1] += int(mask.sum())
    return {
        "test_acc_digit_cells": hits["digit"][0] / max(hits["digit"][1], 1),
        "test_acc_empty_cells": hits["none"][0] / max(hits["none"][1], 1),
        "steps": cfg.steps,
    }


def pretrained_frame_encoder(cfg: FrameEncoderConfig | dict | None = None, **kw) -> nn.Module:
    """The frozen encoder for `cfg`, pretrained once and then loaded from experiments/cache/pretrained."""
    cfg = cfg if isinstance(cfg, FrameEncoderConfig) else FrameEncoderConfig.from_dict(dict(cfg or {}))
    return cached_pretrained("frame-cnn", asdict(cfg), build=build_frame_encoder, train=pretrain_frame_encoder, **kw)


def bank_key(enc_cfg: FrameEncoderConfig, video_cfg: VideoConfig, n_train: int, n_val: int, seed: int) -> dict:
    """Everything that changes the bank's contents (with the code fingerprint, its cache key)."""
    return {"encoder": asdict(enc_cfg), "video": video_cfg.to_dict(), "n_train": n_train, "n_val": n_val, "seed": seed}


@torch.no_grad()
def _encode(
    encoder: nn.Module, video_cfg: VideoConfig, n: int, seed: int, split: str, out: np.ndarray, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    tasks, answers = np.zeros(n, np.int64), np.zeros(n, np.int64)
    F, H = video_cfg.frames, video_cfg.size
    for lo in range(0, n, chunk):
        idx = np.arange(lo, min(n, lo + chunk))
        b = make_batch(video_cfg, idx, seed=seed, split=split)
        x = torch.from_numpy(b["video"]).reshape(-1, 1, H, H)
        f = encoder(x)  # (len*F, P, C)
        out[lo : lo + len(idx)] = f.reshape(len(idx), F, *f.shape[1:]).numpy().astype(np.float16)
        tasks[idx], answers[idx] = b["task"], b["answer"]
    return tasks, answers


def feature_bank(
    enc_cfg: FrameEncoderConfig,
    video_cfg: VideoConfig,
    n_train: int,
    n_val: int,
    seed: int = 0,
    *,
    root: Path | None = None,
    log=print,
) -> dict:
    """Frozen features of a fixed set of videos, computed once and memory-mapped afterwards.

    Returns {"train": {...}, "val": {...}, "info": {...}}, each split with
    features (N, F, G*G, C) float16 (read-only memmap), task (N,), answer (N,) int64. Train videos use
    the train digit images, val videos the disjoint test images.
    """
    if video_cfg.size != enc_cfg.size or video_cfg.digit_size != enc_cfg.digit_size:
        raise ValueError("video size/digit_size must match the encoder's")
    folder = cached(
        "features",
        bank_key(enc_cfg, video_cfg, n_train, n_val, seed),
        lambda tmp: _build_bank(tmp, enc_cfg, video_cfg, n_train, n_val, seed, log),
        code=code_fingerprint(__name__),
        root=root,
        log=log,
    )
    return load_checked(folder, _load_bank)


def _load_bank(folder: Path) -> dict:
    out = {"info": json.loads((folder / "info.json").read_text())}
    for name in ("train", "val"):
        out[name] = {
            "features": np.load(folder / f"{name}_features.npy", mmap_mode="r"),
            "task": np.load(folder / f"{name}_task.npy"),
            "answer": np.load(folder / f"{name}_answer.npy"),
        }
    return out


def _build_bank(
    folder: Path, enc_cfg: FrameEncoderConfig, video_cfg: VideoConfig, n_train: int, n_val: int, seed: int, log
) -> None:
    """Encode the bank into `folder` (a temporary folder the cache renames into place when complete)."""
    encoder = pretrained_frame_encoder(enc_cfg, log=log)
    t0 = time.perf_counter()
    P, C = enc_cfg.grid**2, enc_cfg.feature_dim
    for split, name, n in (("train", "train", n_train), ("test", "val", n_val)):
        arr = np.lib.format.open_memmap(
            folder / f"{name}_features.npy", mode="w+", dtype=np.float16, shape=(n, video_cfg.frames, P, C)
        )
        tasks, answers = _encode(encoder, video_cfg, n, seed, split, arr)
        arr.flush()
        del arr
        np.save(folder / f"{name}_task.npy", tasks)
        np.save(folder / f"{name}_answer.npy", answers)
    info = {
        "seconds": round(time.perf_counter() - t0, 1),
        "encoder": getattr(encoder.module, "pretrain_info", {}),
        "video": video_cfg.to_dict(),
        "n_train": n_train,
        "n_val": n_val,
        "seed": seed,
    }
    (folder / "info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    log(f"feature bank: {n_train}+{n_val} videos encoded in {info['seconds']} s")
