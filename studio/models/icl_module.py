"""Training the tiny ICL model: its Lightning modules (cross-entropy, DPO), the fit loop, `train_icl`.

    module, history = train_icl(EpisodeConfig(symbol_share=1.0), steps=600, seed=0)  # held-out ICL ~0.9
    tuned = fit(DPOModule(net, OptimConfig(lr=3e-4)), stream, steps=250, seed=0)

DPO (SymDPO, CVPR 2025, as in the authors' code):

    loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))) + sft_weight * -log pi(c)

with pi the policy, ref a frozen copy of the starting model, c the chosen and r the rejected answer.
Importing this module imports Lightning (5-7 s); loading a trained net needs none of it.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence

import lightning as L
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from studio.config import from_dict as config
from studio.models.episode_sampler import EpisodeConfig, EpisodeSampler, EpisodeStream, eval_batch, icl_eval_config
from studio.models.icl_net import ICLNet, accuracy, build_net
from studio.models.pretrained import Frozen
from studio.repro import cpu_threads, seed_everything
from studio.training import OptimConfig, make_trainer, quiet_lightning


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Per-example DPO loss from log-probabilities (all (B,)):
    -log sigmoid(beta * ((pc - rc) - (pr - rr))). Equals log 2 when the policy is the reference."""
    return -F.logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))


class ICLModule(L.LightningModule):
    """Cross-entropy on the answer at the last position. Logs train/loss, val/acc (+ val/acc_<name>).

    batch: images (B, S+1, 64), present (B, S+1) bool, answers (B, S) long, target (B,) long,
    candidates (B, V) bool (as EpisodeSampler.sample gives).
    """

    def __init__(self, net: nn.Module, optim: OptimConfig | dict | None = None):
        super().__init__()
        self.net = net
        self.optim = config(OptimConfig, optim)

    def forward(self, batch):
        return self.net(batch["images"], batch["present"], batch["answers"])

    def loss(self, batch):
        return F.cross_entropy(self(batch), batch["target"])

    def training_step(self, batch, _):
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch, _, dataloader_idx=0):
        logits = self(batch).masked_fill(~batch["candidates"], float("-inf"))
        acc = (logits.argmax(-1) == batch["target"]).float().mean()
        self.log(
            "val/acc" if dataloader_idx == 0 else f"val/acc_{dataloader_idx}",
            acc,
            batch_size=len(batch["target"]),
            add_dataloader_idx=False,
        )

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.optim.lr, betas=self.optim.betas, weight_decay=self.optim.weight_decay)


class DPOModule(L.LightningModule):
    """Fine-tunes `net` with DPO (+ SFT on the chosen answer) against a frozen copy of itself.

    mode "dpo": dpo_loss + sft_weight * CE(chosen); mode "sft": CE(chosen) only.
    batch: as ICLModule's, plus rejected (B,) long. Logs train/loss, train/dpo, train/sft,
    train/margin (mean implicit reward margin). The optimiser is Adam at optim.lr (no decay, as before).
    """

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig | dict | None = None,
        beta: float = 0.1,
        sft_weight: float = 1.0,
        mode: str = "dpo",
    ):
        super().__init__()
        if mode not in ("dpo", "sft"):
            raise ValueError(f"mode must be 'dpo' or 'sft', got {mode!r}")
        self.net = net
        # The reference: a frozen copy of the starting policy (eval mode, no grads, forever).
        self.reference = Frozen(copy.deepcopy(net)) if mode == "dpo" else None
        self.optim = config(OptimConfig, optim)
        self.beta, self.sft_weight, self.mode = beta, sft_weight, mode

    def losses(self, batch) -> dict[str, torch.Tensor]:
        args = (batch["images"], batch["present"], batch["answers"])
        logp = F.log_softmax(self.net(*args), -1)
        pc = logp.gather(1, batch["target"][:, None])[:, 0]
        sft = -pc.mean()
        if self.mode == "sft":
            return {"loss": sft, "sft": sft}
        ref = F.log_softmax(self.reference(*args), -1)
        pr = logp.gather(1, batch["rejected"][:, None])[:, 0]
        rc = ref.gather(1, batch["target"][:, None])[:, 0]
        rr = ref.gather(1, batch["rejected"][:, None])[:, 0]
        dpo = dpo_loss(pc, pr, rc, rr, self.beta).mean()
        margin = self.beta * ((pc - rc) - (pr - rr)).mean()
        return {"loss": dpo + self.sft_weight * sft, "dpo": dpo, "sft": sft, "margin": margin.detach()}

    def training_step(self, batch, _):
        out = self.losses(batch)
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=len(batch["target"]))
        return out["loss"]

    def configure_optimizers(self):
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.optim.lr)


class EvalEvery(L.Callback):
    """Records held-out accuracies ({name: batch}) every `every` steps: the emergence curve.

    rows: one dict per record, step, seconds (since training started) and one accuracy per batch.
    """

    def __init__(self, batches: dict[str, dict], every: int):
        self.batches, self.every, self.rows, self.t0 = batches, every, [], time.perf_counter()

    def record(self, module, step):
        row = {"step": step, "seconds": time.perf_counter() - self.t0}
        row.update({name: accuracy(module.net, b) for name, b in self.batches.items()})
        self.rows.append(row)

    def on_train_start(self, trainer, module):
        self.t0 = time.perf_counter()
        self.record(module, 0)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every == 0 or step == trainer.max_steps:
            self.record(module, step)


def fit(
    module,
    stream: torch.utils.data.IterableDataset,
    steps: int,
    seed: int = 0,
    callbacks=(),
    progress: bool = False,
    threads: int | None = 1,
    log_dir: str | os.PathLike | None = None,
):
    """Train `module` for `steps` steps on `stream` (a `studio.training.make_trainer` Trainer).

    threads: torch CPU threads while training (restored after). The model is so small that one
    thread is faster than two, and on a shared machine two threads each were measured 7x slower.
    log_dir: where the training curves go (metrics.csv); None writes none.
    """
    seed_everything(seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=0)
    # no validation loop: held-out accuracies come from callbacks (EvalEvery) or after training
    trainer = make_trainer(
        log_dir=log_dir,
        progress=progress,
        max_steps=steps,
        callbacks=list(callbacks),
        limit_val_batches=0,
        deterministic=False,
    )
    with cpu_threads(threads or None), quiet_lightning():
        trainer.fit(module, train_dataloaders=loader)
    return module


def train_icl(
    data: EpisodeConfig | dict | Sequence = (),
    steps: int = 500,
    seed: int = 0,
    optim: OptimConfig | dict | None = None,
    net: ICLNet | None = None,
    weights=None,
    eval_every: int = 0,
    eval_sets: dict[str, EpisodeConfig] | None = None,
    progress: bool = False,
    log_dir: str | os.PathLike | None = None,
):
    """Train an ICLNet on bursty episodes. Returns (module, history DataFrame or None).

    `data` is one EpisodeConfig (or dict) or a list of them mixed inside each batch with `weights`.
    With eval_every > 0, held-out accuracies on `eval_sets` ({name: EpisodeConfig}) are recorded.
    """
    cfgs = [data] if isinstance(data, (EpisodeConfig, dict)) else list(data) or [EpisodeConfig()]
    samplers = [EpisodeSampler(c, seed=seed * 1000 + i) for i, c in enumerate(cfgs)]
    net = net if net is not None else build_net(seed)
    module = ICLModule(net, optim)
    callbacks = []
    if eval_every:
        sets = eval_sets or {"icl": icl_eval_config()}
        callbacks.append(EvalEvery({k: eval_batch(c, n=600) for k, c in sets.items()}, eval_every))
    fit(
        module,
        EpisodeStream(samplers, weights, seed),
        steps,
        seed=seed,
        callbacks=callbacks,
        progress=progress,
        log_dir=log_dir,
    )
    return module, (pd.DataFrame(callbacks[0].rows) if callbacks else None)
