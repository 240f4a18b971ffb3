"""Sweep target of the visual-context design space: one (strategy, T*M budget, task mix, seed) cell.

    metrics = train_cell({"strategy": "slow_fast", "frames": 4, "tokens_per_frame": 4}, run_dir)

Reuses the engine's pieces by import, not studio.engine itself (so that a cell's code fingerprint does
not move with the engine's LM options): the frozen frame encoder and its cached feature bank
(studio.models.frame_encoder), the VideoLM and its Llama (studio.models.video_lm), make_trainer. The
strategy (studio.models.strategies) replaces the engine's selector + projector: it reads only the raw
frames it declares (`frames_read`) from the bank and hands the LM exactly frames * tokens_per_frame
tokens. coarse_fine and native_resolution also read the codebook cached for the training bank
(studio.models.codebook).

Returned metrics: val_loss, val_acc, val_acc_<task>, val_loss_<task> over the whole val bank,
`visual_tokens` (what the LM saw per video), `raw_frames_read`, `seconds` (fit only), `step_ms`,
`n_params` (trainable) and `strategy_params` (the strategy module's trainable parameters); and, split by
content (`content_metrics`, Kimi-VL's easy frames): `easy_items` (val videos that are easy),
val_acc_easy / val_acc_hard, `easy_tokens` (visual tokens per easy video) and `easy_tokens_digit_frame` /
`easy_tokens_empty_frame` (the strategy's tokens per raw frame read that holds a digit / holds none, on
easy videos; NaN where there is no such frame).

Easy, from the content: a video's content is the mean number of occupied cells per raw frame -- cells of
the frame encoder's 8 x 8 label grid covered by a digit (the generator's own cell labels, so distractor
squares and background blobs, alike in every video, do not count). An 8-pixel digit covers 4 cells. A
video is easy when its content is at most `easy_cells` (EASY_CELLS = 1.0: one digit on screen for at most
a quarter of the video, or less): with the default workload that is every retrieval video and the counting
videos of one or two flashes; spatial (two digits at once), ordering (two digits in turn) and motion (one
digit all along) are not.

A bad strategy name or an option that cannot meet the budget is refused by `check_config` before any
bank or model is built (ParameterError naming the option and what would fit).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.config import from_dict
from studio.data.video import NONE_LABEL, VideoConfig, render, sample_specs
from studio.data.vocab import answer_ids, build_tokenizer, question_table
from studio.errors import ParameterError
from studio.models.codebook import CodebookConfig, codebook
from studio.models.frame_encoder import FrameEncoderConfig, bank_key, feature_bank
from studio.models.strategies import StrategySpec, build_strategy, check_spec
from studio.models.video_lm import VideoLM, build_llama
from studio.repro import cpu_threads, seed_everything
from studio.training import OptimConfig, make_trainer, quiet_lightning

ALL_TASKS = ("retrieval", "spatial", "ordering", "counting", "motion")
EASY_CELLS = 1.0  # a video is easy when its frames hold at most this many occupied grid cells on average


@dataclass(frozen=True)
class DesignCellConfig:
    """One cell. Flat and JSON-able; the budget is frames * tokens_per_frame for every strategy."""

    strategy: str = "uniform"  # uniform | attention | slow_fast | coarse_fine | native_resolution
    frames: int = 4  # T (the budget's frames; slow_fast spends it differently, see StrategySpec)
    tokens_per_frame: int = 4  # M
    slow_frames: int = 0  # slow_fast: K dense frames (0: T // 2)
    slow_tokens: int = 0  # slow_fast: tokens per dense frame (0: M)
    motion_tokens: int = 1  # slow_fast: tokens per motion frame (1 or 2)
    coarse_tokens: int = -1  # coarse_fine: discrete tokens per frame (-1: 1 if M <= 4 else 4; 0: none)
    codes: int = 64  # coarse_fine: codebook size
    easy_cells: float = EASY_CELLS  # content_metrics: easy videos hold <= this many occupied cells per frame
    # workload
    tasks: tuple[str, ...] = ALL_TASKS
    raw_frames: int = 32
    frame_size: int = 32
    digit_size: int = 8
    needle_frames: int = 8
    distractors: int = 2
    train_videos: int = 1024
    val_videos: int = 512
    data_seed: int = 0
    encoder_steps: int = 1200
    encoder_seed: int = 0
    # model and optimisation (the engine's defaults)
    seed: int = 0
    steps: int = 300
    batch_size: int = 32
    width: int = 64
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 2
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    accelerator: str = "auto"
    devices: str | int = "auto"
    precision: str = "32-true"
    progress: bool = False
    val_batch_size: int = 256
    threads: int = 1
    trainer: dict | None = None  # a sweep's `trainer:` block; accelerator / devices / precision

    TRAINER_KEYS = ("accelerator", "devices", "precision")

    def __post_init__(self):
        tasks = self.tasks.split("+") if isinstance(self.tasks, str) else list(self.tasks)
        object.__setattr__(self, "tasks", tuple(tasks))
        if self.trainer:
            bad = sorted(set(self.trainer) - set(self.TRAINER_KEYS))
            if bad:
                raise ValueError(f"unknown trainer keys {bad}; valid: {list(self.TRAINER_KEYS)}")
            for k, v in self.trainer.items():
                object.__setattr__(self, k, v)
        for name in ("frames", "tokens_per_frame", "steps", "batch_size", "width", "layers", "codes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict) -> DesignCellConfig:
        return from_dict(cls, d)

    def video(self) -> VideoConfig:
        return VideoConfig(
            frames=self.raw_frames,
            size=self.frame_size,
            digit_size=self.digit_size,
            needle_frames=self.needle_frames,
            distractors=self.distractors,
            tasks=self.tasks,
        )

    def encoder(self) -> FrameEncoderConfig:
        return FrameEncoderConfig(
            size=self.frame_size, digit_size=self.digit_size, steps=self.encoder_steps, seed=self.encoder_seed
        )

    def spec(self) -> StrategySpec:
        return StrategySpec(
            strategy=self.strategy,
            frames=int(self.frames),
            tokens_per_frame=int(self.tokens_per_frame),
            raw_frames=int(self.raw_frames),
            slow_frames=int(self.slow_frames),
            slow_tokens=int(self.slow_tokens),
            motion_tokens=int(self.motion_tokens),
            coarse_tokens=int(self.coarse_tokens),
        )


def check_config(config: dict) -> None:
    """Refuse a cell before any bank or model is built: unknown keys, bad values, a strategy name or
    option that cannot meet the budget (the message names the option and what would fit)."""
    try:
        cfg = DesignCellConfig.from_dict(dict(config))
        cfg.video()
        check_spec(cfg.spec(), cfg.encoder().grid)
        for name, ok, want in (
            ("lr", float(cfg.lr) > 0, "> 0"),
            ("warmup", 0 <= float(cfg.warmup) < 1, "in [0, 1)"),
            ("easy_cells", float(cfg.easy_cells) >= 0, ">= 0"),
        ):
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(cfg, name)!r}")
    except (TypeError, ValueError) as e:
        raise ParameterError(f"design_space.train_cell: {e}") from e


def default_cell_config() -> dict:
    d = asdict(DesignCellConfig())
    d["tasks"] = list(d["tasks"])
    return d


def bank_and_codebook(cfg: DesignCellConfig, log=print):
    """The cell's feature bank and, for the strategies that read one, its codebook (both cached)."""
    vcfg, ecfg = cfg.video(), cfg.encoder()
    bank = feature_bank(ecfg, vcfg, cfg.train_videos, cfg.val_videos, cfg.data_seed, log=log)
    book = None
    if cfg.strategy in ("coarse_fine", "native_resolution"):
        key = bank_key(ecfg, vcfg, cfg.train_videos, cfg.val_videos, cfg.data_seed)
        book = codebook(bank["train"]["features"], CodebookConfig(codes=int(cfg.codes)), key, log=log)
    return bank, book


@lru_cache(maxsize=4)
def item_content(video: VideoConfig, n: int, seed: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Videos 0..n-1 of `split` (a bank's val videos are split "test") -> (task (N,), cells (N, F)): the
    occupied cells of each raw frame, cells of the generator's label grid that a digit covers (read-only)."""
    quiet = replace(video, noise=0.0)  # the labels come from the sprites alone: skip drawing pixel noise
    specs = sample_specs(quiet, np.arange(n), seed=seed, split=split)
    _, labels = render(quiet, specs, labels=True)  # (N, F, G, G)
    cells = (labels != NONE_LABEL).sum((2, 3))
    for a in (specs["task"], cells):
        a.setflags(write=False)
    return specs["task"], cells


def content_metrics(
    hit: np.ndarray, cells: np.ndarray, frame_tokens: np.ndarray, frames_read: np.ndarray, easy_cells: float
) -> dict:
    """Accuracy and token spending split by content (see the module docstring for "easy").

    hit (N,) 1 where the answer was right; cells (N, F) occupied cells per raw frame; frame_tokens (N, R)
    the strategy's tokens on each of the R raw frames it read (`frames_read`, indices into F).
    -> easy_items, val_acc_easy, val_acc_hard, easy_tokens (per easy video), easy_tokens_digit_frame and
    easy_tokens_empty_frame (per frame read that holds a digit / none, over the easy videos; NaN if none)."""
    easy = cells.mean(1) <= easy_cells
    digit = cells[easy][:, frames_read] > 0  # (n_easy, R)
    tok = frame_tokens[easy]

    def mean(x) -> float:
        return float(np.mean(x)) if np.size(x) else float("nan")

    return {
        "easy_items": int(easy.sum()),
        "val_acc_easy": mean(hit[easy]),
        "val_acc_hard": mean(hit[~easy]),
        "easy_tokens": mean(tok.sum(1)),
        "easy_tokens_digit_frame": mean(tok[digit]),
        "easy_tokens_empty_frame": mean(tok[~digit]),
    }


@torch.no_grad()
def per_item(module: VideoLM, strategy: nn.Module, loader) -> tuple[np.ndarray, np.ndarray]:
    """One pass over `loader` (the val chunks, in order) -> hit (N,) and tokens per frame read (N, R)."""
    module.eval()
    hits, tokens = [], []
    for batch in loader:
        batch = {k: v.to(module.device) for k, v in batch.items()}
        logits = module(batch)
        hits.append((logits.argmax(-1) == batch["answer_id"]).cpu().numpy())
        tokens.append(strategy.frame_tokens(len(logits)).numpy())
    return np.concatenate(hits).astype(np.float64), np.concatenate(tokens)


class _Batches(torch.utils.data.Dataset):
    """Item i: training batch i (a pure function of (seed, i)) or, with seed None, val chunk i; only the
    strategy's raw frames are read from the memmapped bank."""

    def __init__(self, split: dict, frames: np.ndarray, batch_size: int, seed: int | None):
        self.split, self.frames, self.B, self.seed = split, frames, batch_size, seed
        self.answer = answer_ids(split["task"], split["answer"])
        self.N = len(split["task"])

    def __len__(self):
        return -(-self.N // self.B) if self.seed is None else 1 << 40

    def __getitem__(self, i: int) -> dict:
        if self.seed is None:
            idx = np.arange(i * self.B, min(self.N, (i + 1) * self.B))
        else:
            per_epoch = self.N // self.B
            perm = np.random.default_rng([self.seed, i // per_epoch]).permutation(self.N)
            idx = np.sort(perm[(i % per_epoch) * self.B : (i % per_epoch + 1) * self.B])
        feats = self.split["features"][idx[:, None], self.frames[None, :]]
        return {
            "features": torch.from_numpy(np.ascontiguousarray(feats)),
            "task": torch.from_numpy(self.split["task"][idx]),
            "answer_id": torch.from_numpy(self.answer[idx]),
        }


def build_module(cfg: DesignCellConfig, strategy: nn.Module) -> VideoLM:
    """The engine's VideoLM with the strategy as its projector (selectors are identities)."""
    vocab = build_tokenizer().get_vocab()
    return VideoLM(
        frame_selector=nn.Identity(),
        token_selector=nn.Identity(),
        projector=strategy,
        lm=build_llama(len(vocab), cfg.width, cfg.layers, cfg.heads, mlp_ratio=cfg.mlp_ratio),
        questions=torch.from_numpy(question_table()),
        ids={"bos": vocab["<bos>"], "answer": vocab["answer"]},
        optim=OptimConfig(
            lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), warmup=cfg.warmup, steps=cfg.steps
        ),
        tasks=cfg.tasks,
    )


def train_cell(config: dict, run_dir: Path) -> dict:
    """Train one cell and return flat metrics (see the module docstring)."""
    check_config(config)
    cfg = DesignCellConfig.from_dict(dict(config))
    if not cfg.progress:
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    with cpu_threads(int(cfg.threads) or None), quiet_lightning(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Experiment logs directory.*exists and is not empty")
        return _train(cfg, Path(run_dir))


def _train(cfg: DesignCellConfig, run_dir: Path) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    ecfg = cfg.encoder()
    bank, book = bank_and_codebook(cfg)
    seed_everything(cfg.seed)
    strategy = build_strategy(cfg.spec(), ecfg.grid, ecfg.feature_dim, cfg.width, book)
    module = build_module(cfg, strategy)
    frames = np.asarray(strategy.frames_read)
    train = _Batches(bank["train"], frames, cfg.batch_size, cfg.seed)
    val = _Batches(bank["val"], frames, cfg.val_batch_size, None)
    trainer = make_trainer(
        log_dir=run_dir,
        progress=cfg.progress,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        precision=cfg.precision,
        max_steps=cfg.steps,
        max_epochs=1,
        deterministic=True,
        default_root_dir=str(run_dir),
        log_every_n_steps=max(1, min(50, cfg.steps // 10)),
    )
    loader = torch.utils.data.DataLoader(train, batch_size=None, sampler=range(cfg.steps))
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    seconds = time.perf_counter() - t0
    train_loss = trainer.callback_metrics.get("train/loss")
    val_loader = torch.utils.data.DataLoader(val, batch_size=None)
    trainer.validate(module, dataloaders=val_loader, verbose=False)
    m = module.val_metrics
    val_task, cells = item_content(cfg.video(), cfg.val_videos, cfg.data_seed)
    if not np.array_equal(val_task, bank["val"]["task"]):  # the content must describe the bank's own videos
        raise RuntimeError("item_content: the generator's val videos do not match the feature bank's")
    hit, frame_tokens = per_item(module, strategy, val_loader)
    out = {"val_loss": m["val/loss"], "val_acc": m["val/acc"]}
    for task in cfg.tasks:
        out[f"val_acc_{task}"] = m.get(f"val/acc_{task}", float("nan"))
        out[f"val_loss_{task}"] = m.get(f"val/loss_{task}", float("nan"))
    out.update(
        {
            "train_loss": float(train_loss) if train_loss is not None else float("nan"),
            "seconds": round(seconds, 3),
            "step_ms": round(1000 * seconds / max(1, int(trainer.global_step)), 2),
            "steps": int(trainer.global_step),
            "n_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
            "strategy_params": sum(p.numel() for p in strategy.parameters() if p.requires_grad),
            "visual_tokens": int(strategy.n_tokens),
            "raw_frames_read": len(frames),
        }
    )
    out.update(content_metrics(hit, cells, frame_tokens, frames, float(cfg.easy_cells)))
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}


train_cell.check_config = check_config
train_cell.required_metrics = ("val_loss", "val_acc", "visual_tokens")
