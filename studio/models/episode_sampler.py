"""Bursty episodes as tensors (Chan et al. 2022): the tiny ICL model's training and evaluation data.

sampler = EpisodeSampler(EpisodeConfig(symbol_share=0.8), seed=0)
batch = sampler.sample()                         # dict of tensors, see EpisodeSampler
held_out = eval_batch(icl_eval_config(), n=600)  # a fixed batch of held-out images
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from studio.config import from_dict as config
from studio.models.icl_vocab import VOCAB, Vocab, class_pools


@dataclass(frozen=True)
class EpisodeConfig:
    shots: int = 4
    ways: int = 2
    n_classes: int = 10  # classes in the pool (first 10 = upright digits; up to 80)
    burstiness: float = 1.0  # share of episodes whose demos come from `ways` classes incl. the query's
    symbol_share: float = 1.0  # share of (bursty) episodes with per-episode re-drawn labels
    redraw_from: str = "symbols"  # re-drawn labels come from the symbols or from the (wrong) words
    majority_share: float | None = None  # None: balanced demos; else (shots-1):1 demos, query is majority w.p.
    zipf: float = 0.0  # class frequency exponent (0 = uniform)
    exclude_query_class: bool = False  # non-bursty episodes hold no demo of the query's class (in-weights probe)
    reject_word_share: float = 0.3  # DPO data: share of symbol episodes whose rejected answer is the real word
    batch_size: int = 128
    split: str = "train"

    def __post_init__(self):
        if self.redraw_from not in ("symbols", "words"):
            raise ValueError(f"redraw_from must be 'symbols' or 'words', got {self.redraw_from!r}")
        if self.majority_share is not None and self.ways != 2:
            raise ValueError("majority_share needs ways == 2")
        if self.shots % self.ways and self.majority_share is None:
            raise ValueError(f"balanced demos need shots ({self.shots}) divisible by ways ({self.ways})")
        if self.ways > self.n_classes:
            raise ValueError(f"ways ({self.ways}) > n_classes ({self.n_classes})")


class EpisodeSampler:
    """Draws batches of episodes as tensors.

    sample() -> dict(images (B, S+1, 64), present (B, S+1) bool, answers (B, S) long,
                     target (B,) long, rejected (B,) long, candidates (B, V) bool, symbolic (B,) bool)
    `candidates` marks the episode's distinct demonstration answers (plus the target); accuracy is
    measured over them, as the probes of studio.icl do.
    """

    def __init__(self, cfg: EpisodeConfig | dict | None = None, seed: int = 0, vocab: Vocab = VOCAB):
        self.cfg = config(EpisodeConfig, cfg)
        self.vocab = vocab
        self.rng = np.random.default_rng(seed)
        self.pools = class_pools(self.cfg.split, self.cfg.n_classes)
        freq = 1.0 / np.arange(1, self.cfg.n_classes + 1) ** self.cfg.zipf
        self.p = freq / freq.sum()

    def _image(self, c: int) -> np.ndarray:
        pool = self.pools[c]
        return pool[self.rng.integers(len(pool))]

    def episode(self):
        c, rng, v = self.cfg, self.rng, self.vocab
        uniform = c.zipf == 0.0  # the fast path: no probability vectors (sampling is half a training step)
        q = int(rng.integers(c.n_classes)) if uniform else int(rng.choice(c.n_classes, p=self.p))
        bursty = rng.random() < c.burstiness
        if bursty:
            if uniform:
                others = [int(k) + (k >= q) for k in rng.choice(c.n_classes - 1, size=c.ways - 1, replace=False)]
            else:
                others = [k for k in range(c.n_classes) if k != q]
                others = list(
                    rng.choice(others, size=c.ways - 1, replace=False, p=self.p[others] / self.p[others].sum())
                )
            if c.majority_share is None:
                classes = [q, *others]
                demo = [classes[i % c.ways] for i in range(c.shots)]
            else:
                major, minor = (q, others[0]) if rng.random() < c.majority_share else (others[0], q)
                demo = [major] * (c.shots - 1) + [minor]
            demo = list(rng.permutation(demo))
        else:
            allowed = np.arange(c.n_classes)
            if c.exclude_query_class:
                allowed = allowed[allowed != q]
            p = self.p[allowed] / self.p[allowed].sum()
            demo = list(rng.choice(allowed, size=c.shots, p=p))
        symbolic = bursty and rng.random() < c.symbol_share
        if symbolic:
            distinct = sorted(set(demo) | {q})
            if c.redraw_from == "symbols":
                toks = rng.choice(v.n_symbols, size=len(distinct), replace=False) + v.n_words
            else:  # wrong words: a label that conflicts with what the weights know
                toks = rng.choice(
                    [w for w in range(c.n_classes) if w not in distinct] or range(c.n_classes),
                    size=len(distinct),
                    replace=False,
                )
            label = dict(zip(distinct, (int(t) for t in toks)))
        else:
            label = {k: v.word(k) for k in set(demo) | {q}}
        answers = [label[k] for k in demo]
        target = label[q]
        wrong = [a for a in dict.fromkeys(answers) if a != target]
        if symbolic and c.redraw_from == "symbols" and rng.random() < c.reject_word_share:
            rejected = v.word(q)  # the real answer: SymDPO's second kind of rejection
        elif wrong:
            # the majority wrong answer when there is one: the shortcut DPO should unlearn
            rejected = max(wrong, key=answers.count)
        else:
            rejected = (
                int(rng.integers(v.n_words))
                if not symbolic
                else int(v.n_words + (target - v.n_words + 1) % v.n_symbols)
            )
        images = [self._image(k) for k in demo] + [self._image(q)]
        return np.stack(images), answers, target, rejected, symbolic

    def sample(self, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        n = batch_size or self.cfg.batch_size
        eps = [self.episode() for _ in range(n)]
        images = torch.from_numpy(np.stack([e[0] for e in eps]))
        answers = torch.tensor([e[1] for e in eps], dtype=torch.long)
        target = torch.tensor([e[2] for e in eps], dtype=torch.long)
        candidates = torch.zeros(n, self.vocab.size, dtype=torch.bool)
        candidates.scatter_(1, answers, True)
        candidates[torch.arange(n), target] = True
        return {
            "images": images,
            "present": torch.ones(images.shape[:2], dtype=torch.bool),
            "answers": answers,
            "target": target,
            "rejected": torch.tensor([e[3] for e in eps], dtype=torch.long),
            "candidates": candidates,
            "symbolic": torch.tensor([e[4] for e in eps]),
        }


class EpisodeStream(torch.utils.data.IterableDataset):
    """Endless batches from one or more samplers mixed with the given weights (one batch per draw)."""

    def __init__(self, samplers: Sequence[EpisodeSampler], weights: Sequence[float] | None = None, seed: int = 0):
        self.samplers = list(samplers)
        w = np.ones(len(self.samplers)) if weights is None else np.asarray(weights, dtype=float)
        self.weights = w / w.sum()
        self.seed = seed

    def __iter__(self):
        if len(self.samplers) == 1:
            while True:
                yield self.samplers[0].sample()
        # Mix inside each batch: split the batch between samplers by the weights.
        n = self.samplers[0].cfg.batch_size
        counts = np.maximum(1, np.round(self.weights * n).astype(int))
        while True:
            parts = [s.sample(int(k)) for s, k in zip(self.samplers, counts)]
            yield {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def eval_batch(cfg: EpisodeConfig | dict | None = None, n: int = 1000, seed: int = 12345) -> dict[str, torch.Tensor]:
    """A fixed evaluation batch (held-out images by default)."""
    cfg = config(
        EpisodeConfig, cfg, **({} if isinstance(cfg, EpisodeConfig) and cfg.split == "test" else {"split": "test"})
    )
    return EpisodeSampler(cfg, seed=seed).sample(n)


def icl_eval_config(**kw) -> EpisodeConfig:
    """Held-out images, 2-way 2+2, labels re-drawn per episode as symbols: only solvable in context."""
    return EpisodeConfig(**{"split": "test", "symbol_share": 1.0, "burstiness": 1.0, "n_classes": 10, **kw})


def iwl_eval_config(**kw) -> EpisodeConfig:
    """Held-out images, fixed class words, no demonstration of the query's class: only the weights help."""
    return EpisodeConfig(
        **{"split": "test", "symbol_share": 0.0, "burstiness": 0.0, "exclude_query_class": True, "n_classes": 10, **kw}
    )
