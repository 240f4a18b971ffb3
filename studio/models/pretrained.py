"""Pretrain an encoder once per config and code, cache it (studio.cache), hand it out frozen.

Real MLLMs freeze a pretrained SigLIP or CLIP; both prototypes here (shared/reference) only learned
with an image encoder pretrained first and then frozen. Every study gets its encoder through
`cached_pretrained`, so that a sweep of 20 cells pays for pretraining once, and a second run of the
notebook pays nothing.

    enc = cached_pretrained("frame-cnn", cfg, build=build_frame_encoder, train=pretrain_frame_encoder)

The entry is `studio.cache.cached("KIND", config, ..., code=...)` under CACHE/pretrained/: keyed by the
config and by the code fingerprint of `build` and `train` (their modules and every studio module
those import), so editing the pretraining code retrains instead of reusing stale weights. It holds
model.safetensors (weights only: never pickles), info.json (what `train` returned: accuracy, and
`seconds` of pretraining) and the cache's config.json and CHECKSUMS.json; it is built under a lock
(concurrent workers wait and load) and verified on every reuse.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio import paths
from studio.cache import cached, code_fingerprint, load_checked
from studio.repro import stable_hash


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


def pretrained_code(*functions) -> str:
    """The code fingerprint of this module and of `functions`: studio functions by their modules and
    everything those import (studio.cache); others (a test's lambda) by their own bytecode."""
    studio_fns = [f for f in functions if getattr(f, "__module__", "").startswith("studio.")]
    others = [f for f in functions if f not in studio_fns]
    own = [
        {
            "name": getattr(f, "__qualname__", repr(f)),
            "code": getattr(getattr(f, "__code__", None), "co_code", b"").hex(),
        }
        for f in others
    ]
    return stable_hash({"studio": code_fingerprint(__name__, *studio_fns), "other": own}, length=16)


def cached_pretrained(
    kind: str,
    config: dict,
    *,
    build: Callable[[dict], nn.Module],
    train: Callable[[nn.Module, dict], dict],
    root: Path | None = None,
    frozen: bool = True,
    log: Callable[[str], None] = print,
) -> nn.Module:
    """Build `kind` from `config`; load its cached weights, or pretrain with `train` and cache them.

    `train(model, config)` trains in place and returns a JSON-able dict of what it measured.
    Returns the model wrapped in `Frozen` (or plain, with frozen=False), on the CPU.
    root: the cache folder holding KIND/KEY entries (default CACHE/pretrained).

    The model is built under torch's RNG seeded with config["seed"] (default 0), in a forked RNG
    state, so its initial weights -- and so the cached encoder -- depend on the config alone, not on
    what the caller's RNG happened to hold (two sweep workers with different cell seeds once built two
    different encoders for one cache entry). Building happens under the cache's lock: one process
    pretrains, concurrent ones wait and load its weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        model = build(config)
    trained = {}

    def pretrain(folder: Path) -> None:
        t0 = time.perf_counter()
        info = dict(train(model, config) or {})
        info["seconds"] = round(time.perf_counter() - t0, 1)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        (folder / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
        trained["info"] = info

    folder = cached(
        kind,
        config,
        pretrain,
        code=pretrained_code(build, train),
        root=root if root is not None else paths.CACHE / "pretrained",
        log=log,
    )
    if trained:  # pretrained here: the model already holds the weights just saved
        info = trained["info"]
        log(f"pretrained {kind}: trained and cached in {paths.relative(folder)} {_short(info)}")
    else:
        model.load_state_dict(load_checked(folder, lambda f: load_file(f / "model.safetensors")))
        info = json.loads((folder / "info.json").read_text())
        log(f"pretrained {kind}: loaded from {paths.relative(folder)} {_short(info)}")
    model = model.cpu()
    model.pretrain_info = info  # what the encoder reached, for notebooks to report
    return Frozen(model) if frozen else model


def _short(info: dict) -> str:
    keys = [k for k in info if isinstance(info[k], (int, float))][:4]
    return "(" + ", ".join(f"{k}={info[k]:.3g}" for k in keys) + ")" if keys else ""
