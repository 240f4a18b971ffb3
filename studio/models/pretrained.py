"""Pretrain an encoder once per config, cache it by the config's hash, hand it out frozen.

Real MLLMs freeze a pretrained SigLIP or CLIP; both prototypes here (shared/reference) only learned
with an image encoder pretrained first and then frozen. Every study gets its encoder through
`cached_pretrained`, so that a sweep of 20 cells pays for pretraining once, and a second run of the
notebook pays nothing.

    enc = cached_pretrained("frame-cnn", cfg, build=build_frame_encoder, train=pretrain_frame_encoder)

The cache folder experiments/cache/pretrained/KIND-HASH/ holds model.safetensors (weights only: never
pickles), config.json and info.json (what `train` returned: accuracy, wall time). Bump a `version`
field in the config when the pretraining code changes meaningfully, so old weights are not reused.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio import paths
from studio.repro import file_lock, stable_hash


class Frozen(nn.Module):
    """Wraps a module so that it stays in eval mode with no gradients, whatever .train() says.

    Lightning calls .train() on the whole LightningModule every epoch; without this, a frozen encoder's
    BatchNorm would start updating its running statistics.

    forward(*args) -> the wrapped module's output, computed under torch.no_grad().
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True):  # noqa: D401 - stays in eval by design
        super().train(False)
        self.module.eval()
        return self

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def cache_dir(kind: str, config: dict, root: Path | None = None) -> Path:
    root = Path(root) if root is not None else paths.CACHE / "pretrained"
    return root / f"{kind}-{stable_hash({'kind': kind, 'config': config}, length=16)}"


def cached_pretrained(kind: str, config: dict, *, build: Callable[[dict], nn.Module],
                      train: Callable[[nn.Module, dict], dict], root: Path | None = None,
                      frozen: bool = True, log: Callable[[str], None] = print) -> nn.Module:
    """Build `kind` from `config`; load its cached weights, or pretrain with `train` and cache them.

    `train(model, config)` trains in place and returns a JSON-able dict of what it measured.
    Returns the model wrapped in `Frozen` (or plain, with frozen=False), on the CPU.

    The model is built under torch's RNG seeded with config["seed"] (default 0), in a forked RNG
    state, so its initial weights -- and so the cached encoder -- depend on the config alone, not on
    what the caller's RNG happened to hold (two sweep workers with different cell seeds once built two
    different encoders for one cache entry). Building and caching happen under a file lock: one
    process pretrains, concurrent ones wait and load its weights.
    """
    folder = cache_dir(kind, config, root)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        model = build(config)
    weights = folder / "model.safetensors"
    with file_lock(folder.with_name(folder.name + ".lock")):
        if weights.exists():
            model.load_state_dict(load_file(weights))
            info = json.loads((folder / "info.json").read_text()) if (folder / "info.json").exists() else {}
            log(f"pretrained {kind}: loaded from {paths.relative(folder)} {_short(info)}")
        else:
            t0 = time.perf_counter()
            info = dict(train(model, config) or {})
            info["pretrain_seconds"] = round(time.perf_counter() - t0, 1)
            _save(model, config, info, folder)
            log(f"pretrained {kind}: trained and cached in {paths.relative(folder)} {_short(info)}")
    model = model.cpu()
    model.pretrain_info = info  # what the encoder reached, for notebooks to report
    return Frozen(model) if frozen else model


def _short(info: dict) -> str:
    keys = [k for k in info if isinstance(info[k], (int, float))][:4]
    return "(" + ", ".join(f"{k}={info[k]:.3g}" for k in keys) + ")" if keys else ""


def _save(model: nn.Module, config: dict, info: dict, folder: Path) -> None:
    """Write into a temporary folder and rename it into place: a crash leaves no torn cache entry."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp / "model.safetensors")
    (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    (tmp / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process cached the same config first; theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
