"""Train a small network whose `losses(batch)` returns its loss terms, and cache it by config, data and code.

    net, metrics, folder = cached_net("multi_image_delta", spec, build, train_tensors, optim, steps=400,
                                      batch_size=64, seed=0, code=code_fingerprint(...))

The network is wrapped in `LossModule` (a LightningModule handed the network and the one OptimConfig) and
trained with `studio.training.make_trainer` on one CPU thread (these models are tiny: one thread is the
fastest on a shared 2-core machine, and keeps the numbers the same from machine to machine). The cache
folder holds model.safetensors (weights only), spec.json (what `build` rebuilds the network from),
metrics.json (train/* losses, seconds) and Lightning's CSV training curves.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from studio.cache import cached, load_checked
from studio.repro import cpu_threads, seed_everything
from studio.training import OptimConfig, make_trainer, quiet_lightning


class LossModule(L.LightningModule):
    """Trains `net` on the sum `net.losses(batch)["loss"]`; logs every term as train/<term>.

    AdamW (weight decay on matrices only) with linear warm-up over optim.warmup of optim.steps, then
    cosine decay to 5 % of the peak."""

    def __init__(self, net: nn.Module, optim: OptimConfig):
        super().__init__()
        if optim.steps is None:
            raise ValueError("LossModule's schedule needs OptimConfig.steps")
        self.net, self.optim = net, optim

    def training_step(self, batch, batch_idx):
        out = self.net.losses(batch)
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=len(batch[0]))
        return out["loss"]

    def configure_optimizers(self):
        o = self.optim
        decay = [p for p in self.net.parameters() if p.requires_grad and p.dim() >= 2]
        rest = [p for p in self.net.parameters() if p.requires_grad and p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=o.lr,
            betas=o.betas,
        )
        warm = max(1, int(o.warmup * o.steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            done = min(1.0, (step - warm) / max(1, o.steps - warm))
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def tensors_hash(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes: the data part of a cache key."""
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()[:16]


def fit_net(
    net: nn.Module, train: tuple, optim: OptimConfig, *, batch_size: int, seed: int, log_dir=None, progress=False
) -> dict:
    """Train `net` in place on the tensors `train` for optim.steps steps; returns train/* metrics and seconds."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*train),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    module = LossModule(net, optim)
    trainer = make_trainer(log_dir=log_dir, progress=progress, max_steps=optim.steps, max_epochs=-1)
    with quiet_lightning(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        t0 = time.perf_counter()
        trainer.fit(module, loader)
        seconds = time.perf_counter() - t0
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics["seconds"] = seconds
    net.eval()
    return metrics


def cached_net(
    kind: str,
    spec: dict,
    build: Callable[[dict], nn.Module],
    train: tuple,
    optim: OptimConfig,
    *,
    batch_size: int,
    seed: int,
    code: str,
    threads: int | None = 1,
    log=print,
) -> tuple[nn.Module, dict, Path]:
    """`build(spec)` trained with `fit_net` once per (spec, optim, seed, data, code), loaded after.

    spec: JSON-able, everything `build` needs. Returns (network in eval mode on the CPU, metrics, folder);
    the network is always the one loaded from the folder, so a first and a later run measure the same weights."""
    key = {"spec": spec, "optim": asdict(optim), "batch_size": batch_size, "seed": int(seed), "threads": threads}
    key["data"] = tensors_hash(*train)

    def make(folder: Path) -> None:
        with cpu_threads(threads):
            seed_everything(seed)
            net = build(spec)
            metrics = fit_net(net, train, optim, batch_size=batch_size, seed=seed, log_dir=folder)
        # clone: the tied LM head and embeddings share memory, which safetensors refuses
        state = {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        (folder / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
        log(f"{kind} seed {seed}: trained in {metrics['seconds']:.1f} s")

    folder = cached(kind, key, make, code=code, log=log)

    def load(f: Path):
        with torch.random.fork_rng(devices=[]):  # building draws weights: leave the caller's RNG alone
            net = build(json.loads((f / "spec.json").read_text()))
        net.load_state_dict(load_file(f / "model.safetensors"))
        return net.eval(), json.loads((f / "metrics.json").read_text())

    net, metrics = load_checked(folder, load)
    return net, metrics, folder
