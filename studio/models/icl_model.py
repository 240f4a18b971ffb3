"""A tiny multimodal in-context learner on digit images, its bursty training data, and its predictor.

Sequence (one episode with S demonstrations):

    [img_1, ans_1, img_2, ans_2, ..., img_S, ans_S, img_query]  ->  answer logits at the last position

Image tokens come from a frozen encoder pretrained on digit classification (`digit_encoder`): the
prototype in ../shared/reference/icl-notes.md only learned in-context with such an encoder, and stayed on
the chance plateau for minutes with one trained end to end. A removed image (`None` in a studio.icl
Episode) becomes a learned "no image" embedding. Answers share one vocabulary:

    words:   one fixed word per class ("three", and "three/r90", ... for the rotated/flipped classes)
    symbols: meaningless tokens "#00".."#49", re-drawn per episode (only solvable in context)

Classes are the 10 digits under the 8 rotations/flips of the square (up to 80 classes), so that the
number of classes can vary as in Chan et al. (2022); the main probes use the 10 upright digits.

    module, _ = train_icl(EpisodeConfig(symbol_share=1.0), steps=600, seed=0)  # held-out ICL ~0.9
    predictor = as_predictor(module.net)          # list[studio.icl.Episode] -> list[str]
    curve = emergence_curve(steps=600, every=50)  # held-out accuracy vs steps
    grid = tradeoff_grid(n_classes=(10, 80), burstiness=(0.5, 1.0))  # Chan et al.'s trade-off
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from studio.config import from_dict as config
from studio.repro import cpu_threads
from studio.data.digits import DIGIT_WORDS, split_digits
from studio.models.pretrained import Frozen, cached_pretrained

WORDS = DIGIT_WORDS
TRANSFORMS = ("", "/r90", "/r180", "/r270", "/f", "/fr90", "/fr180", "/fr270")  # dihedral group of the square
MAX_CLASSES = len(WORDS) * len(TRANSFORMS)
N_SYMBOLS = 50
IMAGE_PIXELS = 64




# --------------------------------------------------------------------------------------------------
# Vocabulary and images
# --------------------------------------------------------------------------------------------------
class Vocab:
    """Token ids: words 0..79 (class c = transform * 10 + digit), then symbols 80..129."""

    def __init__(self, n_symbols: int = N_SYMBOLS):
        self.words = [w + t for t in TRANSFORMS for w in WORDS]
        self.symbols = [f"#{i:02d}" for i in range(n_symbols)]
        self.tokens = self.words + self.symbols
        self.index = {s: i for i, s in enumerate(self.tokens)}
        self.n_words, self.n_symbols, self.size = len(self.words), n_symbols, len(self.tokens)
        # How other modules may spell the upright digit classes.
        for d, w in enumerate(WORDS):
            for alias in (str(d), w.capitalize(), w.upper()):
                self.index.setdefault(alias, d)

    def word(self, cls: int) -> int:
        return int(cls)

    def symbol(self, k: int) -> int:
        return self.n_words + int(k)


VOCAB = Vocab()


def transform_images(images: np.ndarray, t: int) -> np.ndarray:
    """(n, 8, 8) -> (n, 8, 8) under dihedral element t (0..7): rotate t % 4 quarter turns, flip if t >= 4."""
    out = images[:, :, ::-1] if t >= 4 else images
    return np.ascontiguousarray(np.rot90(out, k=t % 4, axes=(1, 2)))


def class_pools(split: str, n_classes: int = MAX_CLASSES, split_seed: int = 0) -> list[np.ndarray]:
    """Images of each class of one split: list (n_classes) of (n_c, 64) float32 arrays.

    The train/test images are disjoint (studio.data.digits.split_digits); class c is digit c % 10 under
    transform c // 10, so the first 10 classes are the upright digits.
    """
    if not 1 <= n_classes <= MAX_CLASSES:
        raise ValueError(f"n_classes must be in 1..{MAX_CLASSES}, got {n_classes}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = split_digits(0.3, seed=split_seed)[split]
    pools = []
    for c in range(n_classes):
        x = transform_images(images[labels == c % 10], c // 10)
        pools.append(x.reshape(len(x), IMAGE_PIXELS).astype(np.float32))
    return pools


# --------------------------------------------------------------------------------------------------
# The frozen, pretrained image encoder
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderConfig:
    n_classes: int = 10           # classification pretraining classes (80 = digits x rotations/flips)
    hidden: int = 256
    dim: int = 64
    steps: int = 1500
    batch_size: int = 256
    lr: float = 3e-3
    seed: int = 0
    version: int = 1              # bump when the pretraining code changes


class DigitEncoder(nn.Module):
    """MLP 64 -> hidden -> dim; `head` (dim -> classes) is used only while pretraining.

    forward(x (..., 64)) -> (..., dim)
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(IMAGE_PIXELS, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim))
        self.head = nn.Sequential(nn.GELU(), nn.Linear(cfg.dim, cfg.n_classes))
        self.dim = cfg.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _build_encoder(cfg: dict) -> DigitEncoder:
    return DigitEncoder(EncoderConfig(**cfg))


def _pretrain_encoder(model: DigitEncoder, cfg: dict) -> dict:
    c = EncoderConfig(**cfg)
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
            nn.init.normal_(p, std=0.02) if p.dim() == 1 else nn.init.kaiming_uniform_(p, a=5 ** 0.5)
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
    return {"test_acc": round(test_acc, 4), "test_acc_upright": round(upright_acc, 4), "final_loss": round(loss.item(), 4)}


def digit_encoder(cfg: EncoderConfig | dict | None = None, log: Callable[[str], None] = print) -> Frozen:
    """The frozen digit encoder, pretrained once per config and cached (studio.models.pretrained)."""
    cfg = config(EncoderConfig, cfg)
    return cached_pretrained("icl-digit-encoder", asdict(cfg), build=_build_encoder, train=_pretrain_encoder, log=log)


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetConfig:
    width: int = 64
    layers: int = 2
    heads: int = 4
    max_shots: int = 8
    ff_mult: int = 4
    tied: bool = False            # tie answer embeddings to the output layer (untied learned ICL faster here)
    answer_init: float = 0.5      # std of the answer embeddings at init


class ICLNet(nn.Module):
    """Frozen encoder + a small pre-norm causal transformer over interleaved image/answer tokens.

    forward(images (B, S+1, 64) float, present (B, S+1) bool, answers (B, S) long) -> logits (B, V)
    The last image is the query; `present` False means "no image" (a learned embedding).
    The output layer is a separate linear map unless cfg.tied.
    """

    def __init__(self, encoder: nn.Module, n_answers: int = VOCAB.size, cfg: NetConfig | dict | None = None):
        super().__init__()
        cfg = config(NetConfig, cfg)
        self.cfg = cfg
        self.encoder = encoder if isinstance(encoder, Frozen) else Frozen(encoder)
        enc_dim = getattr(self.encoder.module, "dim", cfg.width)
        self.image_proj = nn.Linear(enc_dim, cfg.width)
        self.no_image = nn.Parameter(torch.randn(cfg.width) * 0.02)
        self.answer_emb = nn.Embedding(n_answers, cfg.width)
        nn.init.normal_(self.answer_emb.weight, std=cfg.answer_init)
        self.out = None if cfg.tied else nn.Linear(cfg.width, n_answers)
        self.pos = nn.Parameter(torch.randn(2 * cfg.max_shots + 1, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, cfg.ff_mult * cfg.width, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, images: torch.Tensor, present: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
        b, s1, _ = images.shape
        s = s1 - 1
        if s > self.cfg.max_shots:
            raise ValueError(f"{s} shots > max_shots={self.cfg.max_shots}")
        img = self.image_proj(self.encoder(images))
        img = torch.where(present[..., None], img, self.no_image.expand_as(img))
        ans = self.answer_emb(answers)
        seq = torch.empty(b, 2 * s + 1, img.shape[-1], dtype=img.dtype, device=img.device)
        seq[:, 0:2 * s:2], seq[:, 1:2 * s:2], seq[:, -1] = img[:, :s], ans, img[:, s]
        seq = seq + self.pos[: 2 * s + 1]
        mask = nn.Transformer.generate_square_subsequent_mask(2 * s + 1, device=img.device)
        h = self.blocks(seq, mask=mask, is_causal=True)
        z = self.norm(h[:, -1])
        return z @ self.answer_emb.weight.T if self.out is None else self.out(z)


# --------------------------------------------------------------------------------------------------
# Bursty episodes as tensors (Chan et al. 2022)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeConfig:
    shots: int = 4
    ways: int = 2
    n_classes: int = 10           # classes in the pool (first 10 = upright digits; up to 80)
    burstiness: float = 1.0       # share of episodes whose demos come from `ways` classes incl. the query's
    symbol_share: float = 1.0     # share of (bursty) episodes with per-episode re-drawn labels
    redraw_from: str = "symbols"  # re-drawn labels come from the symbols or from the (wrong) words
    majority_share: float | None = None  # None: balanced demos; else (shots-1):1 demos, query is majority w.p.
    zipf: float = 0.0             # class frequency exponent (0 = uniform)
    exclude_query_class: bool = False  # non-bursty episodes hold no demo of the query's class (in-weights probe)
    reject_word_share: float = 0.3     # DPO data: share of symbol episodes whose rejected answer is the real word
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
                others = list(rng.choice(others, size=c.ways - 1, replace=False, p=self.p[others] / self.p[others].sum()))
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
                toks = rng.choice([w for w in range(c.n_classes) if w not in distinct] or range(c.n_classes),
                                  size=len(distinct), replace=False)
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
            rejected = int(rng.integers(v.n_words)) if not symbolic else int(v.n_words + (target - v.n_words + 1) % v.n_symbols)
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
        return {"images": images, "present": torch.ones(images.shape[:2], dtype=torch.bool), "answers": answers,
                "target": target, "rejected": torch.tensor([e[3] for e in eps], dtype=torch.long),
                "candidates": candidates, "symbolic": torch.tensor([e[4] for e in eps])}


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
    cfg = config(EpisodeConfig, cfg, **({} if isinstance(cfg, EpisodeConfig) and cfg.split == "test" else {"split": "test"}))
    return EpisodeSampler(cfg, seed=seed).sample(n)


def icl_eval_config(**kw) -> EpisodeConfig:
    """Held-out images, 2-way 2+2, labels re-drawn per episode as symbols: only solvable in context."""
    return EpisodeConfig(**{"split": "test", "symbol_share": 1.0, "burstiness": 1.0, "n_classes": 10, **kw})


# --------------------------------------------------------------------------------------------------
# Metrics on tensor batches
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def accuracy(net: nn.Module, batch: dict[str, torch.Tensor], restrict: bool = True, chunk: int = 2048) -> float:
    """Share of episodes answered right; over the episode's candidate answers when `restrict`."""
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    b = {k: v.to(dev) for k, v in batch.items()}
    hits = []
    for i in range(0, len(b["target"]), chunk):
        sl = slice(i, i + chunk)
        logits = net(b["images"][sl], b["present"][sl], b["answers"][sl])
        if restrict:
            logits = logits.masked_fill(~b["candidates"][sl], float("-inf"))
        hits.append(logits.argmax(-1) == b["target"][sl])
    net.train(was)
    return torch.cat(hits).float().mean().item()


def blank_demos(batch: dict[str, torch.Tensor], how: str = "zeros") -> dict[str, torch.Tensor]:
    """The batch with demonstration images blanked ("zeros") or removed ("none"); query image kept."""
    out = dict(batch)
    if how == "zeros":
        images = batch["images"].clone()
        images[:, :-1] = 0.0
        out["images"] = images
    elif how == "none":
        present = batch["present"].clone()
        present[:, :-1] = False
        out["present"] = present
    else:
        raise ValueError(f"how must be 'zeros' or 'none', got {how!r}")
    return out


def tensor_reliance(net: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """acc(original) - acc(demonstration images blanked), and acc(removed) / acc(original)."""
    acc = accuracy(net, batch)
    blanked = accuracy(net, blank_demos(batch, "zeros"))
    removed = accuracy(net, blank_demos(batch, "none"))
    return {"accuracy": acc, "acc_blanked": blanked, "acc_removed": removed, "reliance": acc - blanked,
            "text_only_ratio": removed / acc if acc > 0 else float("nan")}


# --------------------------------------------------------------------------------------------------
# Lightning
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)


def _lightning():
    import lightning as L  # imported lazily: 5-7 s, and the analyses need none of it
    return L


def make_module_class():
    L = _lightning()

    class ICLModule(L.LightningModule):
        """Cross-entropy on the answer at the last position. Logs train/loss, val/acc (+ val/acc_<name>)."""

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
            self.log("val/acc" if dataloader_idx == 0 else f"val/acc_{dataloader_idx}", acc,
                     batch_size=len(batch["target"]), add_dataloader_idx=False)

        def configure_optimizers(self):
            params = [p for p in self.parameters() if p.requires_grad]
            return torch.optim.Adam(params, lr=self.optim.lr, betas=self.optim.betas, weight_decay=self.optim.weight_decay)

    return ICLModule


def ICLModule(net: nn.Module, optim: OptimConfig | dict | None = None):
    """Construct the LightningModule (its class is built lazily so that importing this file is cheap)."""
    return make_module_class()(net, optim)


class _EvalEvery:
    """A Lightning callback recording held-out accuracies every `every` steps (the emergence curve)."""

    def __new__(cls, *a, **k):
        L = _lightning()

        class EvalEvery(L.Callback):
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

        return EvalEvery(*a, **k)


def fit(module, stream: torch.utils.data.IterableDataset, steps: int, seed: int = 0, callbacks=(),
        progress: bool = False, threads: int | None = 1):
    """Train `module` for `steps` steps on `stream` with a plain Lightning Trainer (no checkpoints/loggers).

    threads: torch CPU threads while training (restored after). The model is so small that one
    thread is faster than two, and on a shared machine two threads each were measured 7x slower.
    """
    L = _lightning()
    from studio import seed_everything
    seed_everything(seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=0)
    import logging
    import warnings
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)  # no GPU/TPU banners, tips or summaries
    trainer = L.Trainer(max_steps=steps, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress, enable_model_summary=False, callbacks=list(callbacks),
                        num_sanity_val_steps=0, limit_val_batches=0, deterministic=False)
    with cpu_threads(threads or None), warnings.catch_warnings():
        # expected here: no val loader (we evaluate in callbacks), a frozen encoder in eval mode
        warnings.filterwarnings("ignore", message=r".*(val_dataloader|LeafSpec|eval mode|num_workers).*")
        trainer.fit(module, train_dataloaders=loader)
    return module


def build_net(seed: int = 0, net: NetConfig | dict | None = None, encoder: EncoderConfig | dict | None = None,
              log: Callable[[str], None] = print) -> ICLNet:
    """A fresh ICLNet with the cached frozen encoder; the transformer's init depends only on `seed`."""
    enc = digit_encoder(encoder, log=log)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ICLNet(copy.deepcopy(enc), VOCAB.size, net)


def train_icl(data: EpisodeConfig | dict | Sequence = (), steps: int = 500, seed: int = 0,
              optim: OptimConfig | dict | None = None, net: ICLNet | None = None, weights=None,
              eval_every: int = 0, eval_sets: dict[str, dict] | None = None, progress: bool = False):
    """Train an ICLNet on bursty episodes. Returns (module, history DataFrame or None).

    `data` is one EpisodeConfig (or dict) or a list of them mixed inside each batch with `weights`.
    With eval_every > 0, held-out accuracies on `eval_sets` ({name: EpisodeConfig}) are recorded.
    """
    import pandas as pd
    cfgs = [data] if isinstance(data, (EpisodeConfig, dict)) else list(data) or [EpisodeConfig()]
    samplers = [EpisodeSampler(c, seed=seed * 1000 + i) for i, c in enumerate(cfgs)]
    net = net if net is not None else build_net(seed)
    module = ICLModule(net, optim)
    callbacks = []
    if eval_every:
        sets = eval_sets or {"icl": icl_eval_config()}
        cb = _EvalEvery({k: eval_batch(c, n=600) for k, c in sets.items()}, eval_every)
        callbacks.append(cb)
    fit(module, EpisodeStream(samplers, weights, seed), steps, seed=seed, callbacks=callbacks, progress=progress)
    return module, (pd.DataFrame(callbacks[0].rows) if callbacks else None)


# --------------------------------------------------------------------------------------------------
# The predictor adapter for studio.icl Episodes
# --------------------------------------------------------------------------------------------------
def _pixels(image) -> np.ndarray | None:
    if image is None:
        return None
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:  # colour or channel axis: average it away
        x = x.mean(axis=-1) if x.shape[-1] in (1, 3, 4) else x.mean(axis=0)
    if x.size != IMAGE_PIXELS:
        raise ValueError(f"the tiny ICL model reads 8x8 digit images; got an image of shape {np.shape(image)}")
    if x.max() > 1.5:  # 0..16 or 0..255 scaled images
        x = x / (16.0 if x.max() <= 16 else 255.0)
    return x.reshape(IMAGE_PIXELS)


def as_predictor(net: nn.Module, seed: int = 0, restrict: bool = True, vocab: Vocab = VOCAB):
    """A studio.icl predictor: list[Episode] -> list[str].

    Words known to the vocabulary map to their tokens; any other answer string (a symbol) maps to a
    symbol token drawn per episode (the same string -> the same token within the episode). The answer
    is the argmax over the episode's candidates (`Episode.candidates`, else its demonstration answers).
    Demonstrations with image None get the learned "no image" embedding.
    """
    net = getattr(net, "net", net)  # accept the LightningModule too

    def predict(episodes) -> list[str]:
        rng = np.random.default_rng(seed)
        out = [None] * len(episodes)
        groups: dict[int, list[int]] = {}
        for i, ep in enumerate(episodes):
            groups.setdefault(len(ep.demos), []).append(i)
        for s, idx in groups.items():
            imgs = np.zeros((len(idx), s + 1, IMAGE_PIXELS), np.float32)
            present = np.ones((len(idx), s + 1), bool)
            answers = np.zeros((len(idx), s), np.int64)
            cand_tokens, cand_strings = [], []
            for row, i in enumerate(idx):
                ep = episodes[i]
                symbols = iter(rng.permutation(vocab.n_symbols) + vocab.n_words)
                table: dict[str, int] = {}
                def tok(a):
                    if a not in table:
                        table[a] = vocab.index[a] if a in vocab.index and vocab.index[a] < vocab.n_words else next(symbols)
                    return table[a]
                for j, shot in enumerate([*ep.demos, ep.query]):
                    px = _pixels(shot.image)
                    if px is None:
                        present[row, j] = False
                    else:
                        imgs[row, j] = px
                for j, shot in enumerate(ep.demos):
                    answers[row, j] = tok(str(shot.answer))
                cands = getattr(ep, "candidates", None) or list(dict.fromkeys(str(d.answer) for d in ep.demos))
                cands = [str(c) for c in cands]
                cand_strings.append(cands)
                cand_tokens.append([tok(c) for c in cands])
            with torch.no_grad():
                was = net.training
                net.eval()
                dev = next(net.parameters()).device
                logits = net(*(torch.from_numpy(a).to(dev) for a in (imgs, present, answers))).cpu()
                net.train(was)
            for row, i in enumerate(idx):
                if restrict and cand_tokens[row]:
                    k = int(torch.argmax(logits[row, cand_tokens[row]]))
                    out[i] = cand_strings[row][k]
                else:
                    t = int(logits[row].argmax())
                    back = {v: k for k, v in zip(cand_strings[row], cand_tokens[row])}
                    out[i] = back.get(t, vocab.tokens[t])
        return out

    predict.__name__ = "tiny_icl_model"
    return predict


# --------------------------------------------------------------------------------------------------
# Emergence and the in-context vs in-weights trade-off
# --------------------------------------------------------------------------------------------------
def iwl_eval_config(**kw) -> EpisodeConfig:
    """Held-out images, fixed class words, no demonstration of the query's class: only the weights help."""
    return EpisodeConfig(**{"split": "test", "symbol_share": 0.0, "burstiness": 0.0, "exclude_query_class": True,
                            "n_classes": 10, **kw})


def emergence_curve(data: EpisodeConfig | dict | None = None, steps: int = 600, every: int = 50, seed: int = 0,
                    optim: OptimConfig | dict | None = None, net: NetConfig | dict | None = None,
                    encoder: EncoderConfig | dict | None = None, progress: bool = False,
                    return_model: bool = False):
    """Held-out accuracy against training steps, long format: step, seconds, probe, accuracy
    (and the trained ICLNet, with return_model).

    probes: "in-context" (held-out images, 2-way, symbols re-drawn per episode: chance 0.5) and
    "in-weights" (held-out images, fixed words, no demonstration of the query's class).
    Default training data: bursty episodes, 80 % with re-drawn symbols, 20 % with fixed words.
    """
    data = config(EpisodeConfig, data if data is not None else {"symbol_share": 0.8})
    sets = {"in-context": icl_eval_config(shots=data.shots, ways=data.ways),
            "in-weights": iwl_eval_config(shots=data.shots)}
    module, hist = train_icl(data, steps=steps, seed=seed, optim=optim, net=build_net(seed, net, encoder, log=lambda s: None),
                             eval_every=every, eval_sets=sets, progress=progress)
    curve = hist.melt(id_vars=["step", "seconds"], var_name="probe", value_name="accuracy")
    return (curve, module.net) if return_model else curve


def tradeoff_grid(n_classes: Sequence[int] = (10, 80), burstiness: Sequence[float] = (0.5, 1.0),
                  symbol_share: float = 0.0, zipf: float = 0.0, steps: int = 300, seed: int = 0,
                  encoder: EncoderConfig | dict | None = None, optim: OptimConfig | dict | None = None,
                  eval_n: int = 600, progress: bool = False) -> pd.DataFrame:
    """Chan et al.'s trade-off: train on fixed class words with bursty contexts, vary the number of classes
    and the burstiness; measure in-context accuracy (held-out images, labels re-drawn from the *wrong*
    words, 2-way: chance 0.5) and in-weights accuracy (fixed words, no demonstration of the query class).

    The encoder is pretrained on all 80 classes (digits x rotations/flips) unless `encoder` is given.
    Returns one row per cell: n_classes, burstiness, icl_acc, iwl_acc, seconds.
    """
    import pandas as pd
    encoder = encoder if encoder is not None else EncoderConfig(n_classes=MAX_CLASSES)
    rows = []
    for k in n_classes:
        icl = eval_batch(icl_eval_config(n_classes=k, redraw_from="words"), n=eval_n)
        iwl = eval_batch(iwl_eval_config(n_classes=k), n=eval_n)
        for b in burstiness:
            t0 = time.perf_counter()
            data = EpisodeConfig(n_classes=k, burstiness=b, symbol_share=symbol_share, redraw_from="words", zipf=zipf)
            module, _ = train_icl(data, steps=steps, seed=seed, optim=optim,
                                  net=build_net(seed, encoder=encoder, log=lambda s: None), progress=progress)
            rows.append({"n_classes": k, "burstiness": b, "icl_acc": accuracy(module.net, icl),
                         "iwl_acc": accuracy(module.net, iwl), "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)
