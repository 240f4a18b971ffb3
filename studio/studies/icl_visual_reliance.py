"""SymDPO (CVPR 2025) at toy scale: does preference training on symbol demonstrations make a tiny
in-context learner look at its demonstration images?

    loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))) + sft_weight * -log pi(c)

with pi the policy, ref a frozen copy of the starting model, c the chosen answer (the symbol of the
demonstration whose image matches the query) and r the rejected one (another demonstration's symbol,
the majority one whenever it is wrong, or the real word of the query's class). beta 0.1 and an SFT term
of weight 1.0 follow the authors' code; 70 % symbolic data their best mix.

Arms, each fine-tuned from the same baseline (a model trained where the majority demonstration answer
is usually right, with a little symbol data so it has some in-context ability):
    symdpo       DPO on 70 % symbol episodes + 30 % word episodes
    dpo_words    plain DPO on natural (word) answers only
    sft_symbols  cross-entropy on the same data mix as symdpo (no preference term, no reference)
Everything keeps the pretrained image encoder frozen, as the prototype's notes suggested trying.

    table = run_symdpo_ablation(SymDPOConfig(), seeds=[0, 1, 2])
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from studio.config import from_dict as config
from studio.models.icl_model import (EpisodeConfig, EpisodeSampler, EpisodeStream, OptimConfig, _lightning,
                                     build_net, eval_batch, fit, tensor_reliance, train_icl)
from studio.models.pretrained import Frozen

ARMS = ("symdpo", "dpo_words", "sft_symbols")


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Per-example DPO loss from log-probabilities (all (B,)):
    -log sigmoid(beta * ((pc - rc) - (pr - rr))). Equals log 2 when the policy is the reference."""
    return -F.logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))


def make_dpo_class():
    L = _lightning()

    class DPOModule(L.LightningModule):
        """Fine-tunes `net` with DPO (+ SFT on the chosen answer) against a frozen copy of itself.

        mode "dpo": dpo_loss + sft_weight * CE(chosen); mode "sft": CE(chosen) only.
        Logs train/loss, train/dpo, train/sft, train/margin (mean implicit reward margin).
        """

        def __init__(self, net: nn.Module, optim: OptimConfig | dict | None = None, beta: float = 0.1,
                     sft_weight: float = 1.0, mode: str = "dpo"):
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

    return DPOModule


def DPOModule(net, optim=None, beta: float = 0.1, sft_weight: float = 1.0, mode: str = "dpo"):
    return make_dpo_class()(net, optim, beta, sft_weight, mode)


@dataclass(frozen=True)
class SymDPOConfig:
    # the baseline: word episodes where the majority answer is usually right, plus a little symbol data
    baseline_steps: int = 400
    baseline_lr: float = 1e-3
    baseline_symbol_share: float = 0.15   # share of symbol episodes in the baseline's batches
    majority_share: float = 0.8           # 3 + 1 demos; the query is of the majority class w.p. this
    # fine-tuning
    steps: int = 250
    lr: float = 3e-4                      # lower than the baseline's (the notes' untried step)
    beta: float = 0.1
    sft_weight: float = 1.0
    symbol_fraction: float = 0.7          # symbol share of the DPO batches (SymDPO's best mix)
    reject_word_share: float = 0.3        # symbol episodes whose rejected answer is the real word
    batch_size: int = 128
    eval_n: int = 600
    arms: tuple[str, ...] = ARMS


def _baseline_data(c: SymDPOConfig) -> tuple[list[EpisodeConfig], list[float]]:
    words = EpisodeConfig(symbol_share=0.0, majority_share=c.majority_share, batch_size=c.batch_size)
    symbols = EpisodeConfig(symbol_share=1.0, majority_share=c.majority_share, batch_size=c.batch_size)
    return [words, symbols], [1 - c.baseline_symbol_share, c.baseline_symbol_share]


def _arm_data(c: SymDPOConfig, arm: str) -> tuple[list[EpisodeConfig], list[float]]:
    # fine-tuning episodes are 3 + 1 with the query equally often majority or minority, so that the
    # majority shortcut is rejected half of the time, and balanced 2 + 2 would teach nothing about it
    sym = EpisodeConfig(symbol_share=1.0, majority_share=0.5, reject_word_share=c.reject_word_share,
                        batch_size=c.batch_size)
    word = EpisodeConfig(symbol_share=0.0, majority_share=0.5, batch_size=c.batch_size)
    if arm == "dpo_words":
        return [word], [1.0]
    return [sym, word], [c.symbol_fraction, 1 - c.symbol_fraction]


def eval_sets() -> dict[str, EpisodeConfig]:
    """Held-out images. symbols: 2 + 2 re-drawn symbols (only solvable by binding images to labels);
    words: 2 + 2 class words (solvable from the query image alone); symbols_minority: 3 + 1 symbols
    with the query always of the minority class (a majority follower scores 0)."""
    return {"symbols": EpisodeConfig(split="test", symbol_share=1.0),
            "words": EpisodeConfig(split="test", symbol_share=0.0),
            "symbols_minority": EpisodeConfig(split="test", symbol_share=1.0, majority_share=0.0)}


def measure(net: nn.Module, batches: dict[str, dict]) -> list[dict]:
    return [{"eval": name, **tensor_reliance(net, b)} for name, b in batches.items()]


def finetune(net: nn.Module, arm: str, cfg: SymDPOConfig, seed: int = 0):
    """A copy of `net` fine-tuned by one arm. Returns the DPOModule (its .net is the policy)."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; valid: {ARMS}")
    data, weights = _arm_data(cfg, arm)
    samplers = [EpisodeSampler(d, seed=seed * 1000 + 500 + i) for i, d in enumerate(data)]
    module = DPOModule(copy.deepcopy(net), OptimConfig(lr=cfg.lr), beta=cfg.beta, sft_weight=cfg.sft_weight,
                       mode="sft" if arm == "sft_symbols" else "dpo")
    return fit(module, EpisodeStream(samplers, weights, seed), cfg.steps, seed=seed)


def train_baseline(cfg: SymDPOConfig, seed: int = 0):
    data, weights = _baseline_data(cfg)
    module, _ = train_icl(data, steps=cfg.baseline_steps, seed=seed, optim=OptimConfig(lr=cfg.baseline_lr),
                          net=build_net(seed, log=lambda s: None), weights=weights)
    return module.net


def run_symdpo_ablation(cfg: SymDPOConfig | dict | None = None, seeds: Sequence[int] = (0, 1, 2),
                        log=print, return_models: bool = False):
    """Baseline -> each arm, per seed; reliance before and after on held-out episodes.

    Returns a DataFrame with one row per (seed, arm, stage, eval): seed, arm ("baseline" for the
    starting point), stage ("before"/"after"), eval, accuracy, acc_blanked, acc_removed, reliance
    (= accuracy - acc_blanked), text_only_ratio, seconds. With return_models, also {(seed, arm): net}.
    """
    cfg = config(SymDPOConfig, cfg)
    unknown = [a for a in cfg.arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; valid: {ARMS}")
    batches = {k: eval_batch(c, n=cfg.eval_n, seed=4242) for k, c in eval_sets().items()}
    rows, models = [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        base = train_baseline(cfg, seed)
        sec = time.perf_counter() - t0
        rows += [{"seed": seed, "arm": "baseline", "stage": "before", **r, "seconds": sec} for r in measure(base, batches)]
        models[(seed, "baseline")] = base
        for arm in cfg.arms:
            t0 = time.perf_counter()
            tuned = finetune(base, arm, cfg, seed).net
            sec = time.perf_counter() - t0
            rows += [{"seed": seed, "arm": arm, "stage": "after", **r, "seconds": sec} for r in measure(tuned, batches)]
            models[(seed, arm)] = tuned
        if log:
            done = pd.DataFrame([r for r in rows if r["seed"] == seed and r["eval"] == "symbols"])
            log(f"seed {seed}: symbols accuracy / reliance " + ", ".join(
                f"{a} {x:.2f}/{y:+.2f}" for a, x, y in zip(done["arm"], done["accuracy"], done["reliance"])))
    df = pd.DataFrame(rows)
    return (df, models) if return_models else df


def summarise_ablation(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and range over seeds of accuracy and reliance per (arm, eval), with the change from the
    baseline of the same seed."""
    base = df[df["arm"] == "baseline"].set_index(["seed", "eval"])
    d = df.copy()
    key = list(zip(d["seed"], d["eval"]))
    d["d_accuracy"] = d["accuracy"].to_numpy() - base.loc[key, "accuracy"].to_numpy()
    d["d_reliance"] = d["reliance"].to_numpy() - base.loc[key, "reliance"].to_numpy()
    g = d.groupby(["arm", "eval"], sort=False)
    return g.agg(accuracy=("accuracy", "mean"), accuracy_min=("accuracy", "min"), accuracy_max=("accuracy", "max"),
                 reliance=("reliance", "mean"), reliance_min=("reliance", "min"), reliance_max=("reliance", "max"),
                 d_reliance=("d_reliance", "mean"), d_reliance_min=("d_reliance", "min"),
                 d_reliance_max=("d_reliance", "max"), d_accuracy=("d_accuracy", "mean"),
                 n_seeds=("seed", "nunique")).reset_index()
