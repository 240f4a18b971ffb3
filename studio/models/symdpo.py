"""SymDPO (CVPR 2025) at toy scale: the recipe of the baseline and of each fine-tuning arm.

Arms, each fine-tuned from the same baseline (a model trained where the majority demonstration answer
is usually right, with a little symbol data so it has some in-context ability):
    symdpo       DPO on 70 % symbol episodes + 30 % word episodes
    dpo_words    plain DPO on natural (word) answers only
    sft_symbols  cross-entropy on the same data mix as symdpo (no preference term, no reference)
The chosen answer is the symbol of the demonstration whose image matches the query; the rejected one
another demonstration's symbol (the majority one whenever it is wrong) or the real word of the
query's class. beta 0.1 and an SFT term of weight 1.0 follow the authors' code; 70 % symbolic data
their best mix. Everything keeps the pretrained image encoder frozen, as the prototype's notes
suggested trying. The loss and the Lightning module are in studio.models.icl_module (imported when
training, so that loading cached models needs no Lightning).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

from torch import nn

from studio.models.episode_sampler import EpisodeConfig, EpisodeSampler, EpisodeStream
from studio.models.icl_net import build_net, tensor_reliance
from studio.training import OptimConfig

ARMS = ("symdpo", "dpo_words", "sft_symbols")


@dataclass(frozen=True)
class SymDPOConfig:
    # the baseline: word episodes where the majority answer is usually right, plus a little symbol data
    baseline_steps: int = 400
    baseline_lr: float = 1e-3
    baseline_symbol_share: float = 0.15  # share of symbol episodes in the baseline's batches
    majority_share: float = 0.8  # 3 + 1 demos; the query is of the majority class w.p. this
    # fine-tuning
    steps: int = 250
    lr: float = 3e-4  # lower than the baseline's (the notes' untried step)
    beta: float = 0.1
    sft_weight: float = 1.0
    symbol_fraction: float = 0.7  # symbol share of the DPO batches (SymDPO's best mix)
    reject_word_share: float = 0.3  # symbol episodes whose rejected answer is the real word
    batch_size: int = 128
    eval_n: int = 600
    arms: tuple[str, ...] = ARMS

    def __post_init__(self):
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm(s) {unknown}; valid: {ARMS}")


# the fields the baseline depends on (its cache key): changing an arm's recipe keeps the baseline
BASELINE_FIELDS = ("baseline_steps", "baseline_lr", "baseline_symbol_share", "majority_share", "batch_size", "eval_n")


def baseline_data(c: SymDPOConfig) -> tuple[list[EpisodeConfig], list[float]]:
    words = EpisodeConfig(symbol_share=0.0, majority_share=c.majority_share, batch_size=c.batch_size)
    symbols = EpisodeConfig(symbol_share=1.0, majority_share=c.majority_share, batch_size=c.batch_size)
    return [words, symbols], [1 - c.baseline_symbol_share, c.baseline_symbol_share]


def arm_data(c: SymDPOConfig, arm: str) -> tuple[list[EpisodeConfig], list[float]]:
    # fine-tuning episodes are 3 + 1 with the query equally often majority or minority, so that the
    # majority shortcut is rejected half of the time, and balanced 2 + 2 would teach nothing about it
    sym = EpisodeConfig(
        symbol_share=1.0, majority_share=0.5, reject_word_share=c.reject_word_share, batch_size=c.batch_size
    )
    word = EpisodeConfig(symbol_share=0.0, majority_share=0.5, batch_size=c.batch_size)
    if arm == "dpo_words":
        return [word], [1.0]
    return [sym, word], [c.symbol_fraction, 1 - c.symbol_fraction]


def eval_sets() -> dict[str, EpisodeConfig]:
    """Held-out images. symbols: 2 + 2 re-drawn symbols (only solvable by binding images to labels);
    words: 2 + 2 class words (solvable from the query image alone); symbols_minority: 3 + 1 symbols
    with the query always of the minority class (a majority follower scores 0)."""
    return {
        "symbols": EpisodeConfig(split="test", symbol_share=1.0),
        "words": EpisodeConfig(split="test", symbol_share=0.0),
        "symbols_minority": EpisodeConfig(split="test", symbol_share=1.0, majority_share=0.0),
    }


def measure(net: nn.Module, batches: dict[str, dict]) -> list[dict]:
    """One row per evaluation batch: eval, accuracy, acc_blanked, acc_removed, reliance, text_only_ratio."""
    return [{"eval": name, **tensor_reliance(net, b)} for name, b in batches.items()]


def train_baseline(cfg: SymDPOConfig, seed: int = 0, log_dir: str | os.PathLike | None = None) -> nn.Module:
    """The text-shortcut baseline every arm starts from (an ICLNet)."""
    from studio.models.icl_module import train_icl

    data, weights = baseline_data(cfg)
    module, _ = train_icl(
        data,
        steps=cfg.baseline_steps,
        seed=seed,
        optim=OptimConfig(lr=cfg.baseline_lr),
        net=build_net(seed, log=lambda s: None),
        weights=weights,
        log_dir=log_dir,
    )
    return module.net


def finetune(net: nn.Module, arm: str, cfg: SymDPOConfig, seed: int = 0, log_dir: str | os.PathLike | None = None):
    """A copy of `net` fine-tuned by one arm. Returns the DPOModule (its .net is the policy)."""
    from studio.models.icl_module import DPOModule, fit

    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; valid: {ARMS}")
    data, weights = arm_data(cfg, arm)
    samplers = [EpisodeSampler(d, seed=seed * 1000 + 500 + i) for i, d in enumerate(data)]
    module = DPOModule(
        copy.deepcopy(net),
        OptimConfig(lr=cfg.lr),
        beta=cfg.beta,
        sft_weight=cfg.sft_weight,
        mode="sft" if arm == "sft_symbols" else "dpo",
    )
    return fit(module, EpisodeStream(samplers, weights, seed), cfg.steps, seed=seed, log_dir=log_dir)
