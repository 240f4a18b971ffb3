"""Train one (T, M, strategy, task mix, seed) cell of the visual-context study and return its metrics.

    metrics = train_cell({"frames": 4, "tokens_per_frame": 16, "seed": 1}, run_dir)

`train_cell` is what `studio.sweep` calls for every cell. What it does, in order:
1. the frame encoder (pretrained once, cached by config and code, frozen) encodes a fixed bank of videos
   (train videos from train digit images, val videos from the disjoint test images), also cached;
2. a VideoLM (frame selector -> token selector -> projector -> small Llama, or the `backbone` and `scan`
   connector of studio.models.backbones) is trained by a Trainer from
   studio.training.make_trainer (accelerator/devices/strategy/num_nodes from the config) for `steps`
   batches, logging its training curve to run_dir/metrics.csv (studio.training.curves reads it);
3. the whole val bank is evaluated once at the end: val_loss (answer cross-entropy), val_acc, per task,
   and `seconds`, the training time (fit only: neither the feature bank nor the final validation).
Same config -> same metrics: batches are a pure function of (seed, batch number), the model is seeded.

Checkpoints: with `checkpoint_every: N`, run_dir/last.ckpt (step, module, optimizer and schedule
state) is replaced atomically every N steps (written to last.ckpt.tmp.PID, then renamed); a cell
started again in the same run_dir (the sweep redoes a killed run there) loads it with weights_only=True
and trains the remaining steps on the remaining batches, ending with the metrics an uninterrupted run
gives (tested). The file is deleted when the cell finishes. Default 0: a CPU cell trains in seconds
to a minute, so a killed one is simply redone; the paper profile (thousands of GPU steps) checkpoints.
Each checkpoint's size and sha256 go to last.ckpt.sha256 (with the previous one's); a checkpoint
matching neither (truncated, zeroed) is named on stderr, moved aside (last.ckpt.bad-TIME) and the cell
restarts from step 0. For sweeps: `train_cell.check_config` and `train_cell.required_metrics`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from studio import checkpoint
from studio.checkpoint import load_checkpoint, step_checkpointer
from studio.config import from_dict
from studio.data.video import VideoConfig
from studio.data.vocab import answer_ids, build_tokenizer, question_table
from studio.errors import ParameterError
from studio.models.backbones import ScanProjector, build_backbone, check_backbone, check_scan
from studio.models.frame_encoder import FrameEncoderConfig, feature_bank
from studio.models.selection import FRAME_STRATEGIES, TOKEN_STRATEGIES, FrameSelector, TokenSelector
from studio.models.video_lm import Projector, VideoLM
from studio.repro import cpu_threads, seed_everything
from studio.training import OptimConfig, make_trainer, quiet_lightning


@dataclass(frozen=True)
class CellConfig:
    """One cell. Flat, JSON-able; `tasks` is a list of task names or a 'a+b' string."""

    # what the LM sees
    frames: int = 4  # T frames selected from the raw frames
    tokens_per_frame: int = 4  # M tokens per selected frame
    token_strategy: str = "mean"  # mean | sample | attention
    frame_strategy: str = "uniform"  # uniform | mean | keyframes
    # workload
    tasks: tuple[str, ...] = ("retrieval", "spatial")
    task_weights: tuple[float, ...] | None = None
    raw_frames: int = 32
    frame_size: int = 32
    digit_size: int = 8
    needle_frames: int = 8  # needle duration (1..raw_frames); a workload knob
    distractors: int = 2
    events: int = 0  # event density of the ordering task (0: off); a workload knob, see studio.data.video
    train_videos: int = 6000  # size of the fixed bank of training videos (features cached)
    val_videos: int = 1024
    data_seed: int = 0  # which videos are in the banks
    # frame encoder (pretrained once per value of these, frozen)
    encoder_steps: int = 1200
    encoder_seed: int = 0
    # model and optimisation
    seed: int = 0  # model init and batch order
    steps: int = 600  # these defaults are the sweep's default profile
    batch_size: int = 48
    width: int = 64
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 2  # the LM's gated MLP width / width (2: ~0.65x the step time of 4 at width 64)
    backbone: str = "llama"  # llama | mamba | moe, at matched (active) parameters: studio.models.backbones
    scan: str = "none"  # connector: none (MLP) | row | bidirectional | cross (VL-Mamba's scan orders)
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    # trainer
    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    progress: bool = False
    val_batch_size: int = 256
    checkpoint_every: int = 0  # steps between resumable checkpoints in run_dir (0: none)
    threads: int = 1  # torch CPU threads for this run (0: leave as is); 1 avoids the
    # oversubscription that made steps 7x slower on a busy 2-core box
    trainer: dict | None = None  # a sweep's `trainer:` block; its keys override the five above

    TRAINER_KEYS = ("accelerator", "devices", "strategy", "num_nodes", "precision")

    def __post_init__(self):
        tasks = self.tasks.split("+") if isinstance(self.tasks, str) else list(self.tasks)
        object.__setattr__(self, "tasks", tuple(tasks))
        if self.task_weights is not None:
            object.__setattr__(self, "task_weights", tuple(float(w) for w in self.task_weights))
        if self.trainer:
            bad = sorted(set(self.trainer) - set(self.TRAINER_KEYS))
            if bad:
                raise ValueError(f"unknown trainer keys {bad}; valid: {list(self.TRAINER_KEYS)}")
            for k, v in self.trainer.items():
                object.__setattr__(self, k, v)
        for name in ("frames", "tokens_per_frame", "steps", "batch_size", "width", "layers", "mlp_ratio"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.checkpoint_every) < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")

    @classmethod
    def from_dict(cls, d: dict) -> CellConfig:
        return from_dict(cls, d)

    def video(self) -> VideoConfig:
        return VideoConfig(
            frames=self.raw_frames,
            size=self.frame_size,
            digit_size=self.digit_size,
            needle_frames=self.needle_frames,
            distractors=self.distractors,
            tasks=self.tasks,
            task_weights=self.task_weights,
            events=self.events,
        )

    def encoder(self) -> FrameEncoderConfig:
        return FrameEncoderConfig(
            size=self.frame_size, digit_size=self.digit_size, steps=self.encoder_steps, seed=self.encoder_seed
        )


def check_config(config: dict) -> None:
    """Refuse a cell config before training: unknown keys, and values no cell can train with (each
    message names the key). Builds no model and draws no random number."""
    try:
        cfg = CellConfig.from_dict(dict(config))
        cfg.video()  # the task mix and the workload knobs (needle_frames, digit_size, events) with their ranges
        if cfg.token_strategy not in TOKEN_STRATEGIES:
            raise ValueError(f"token_strategy must be one of {list(TOKEN_STRATEGIES)}, got {cfg.token_strategy!r}")
        if cfg.frame_strategy not in FRAME_STRATEGIES:
            raise ValueError(f"frame_strategy must be one of {list(FRAME_STRATEGIES)}, got {cfg.frame_strategy!r}")
        check_backbone(cfg.backbone)
        check_scan(cfg.scan)
        if cfg.scan != "none" and math.isqrt(int(cfg.tokens_per_frame)) ** 2 != int(cfg.tokens_per_frame):
            raise ValueError(f"scan {cfg.scan!r} needs tokens_per_frame = G*G (a grid), got {cfg.tokens_per_frame}")
        for name, ok, want in (
            ("frames", int(cfg.frames) <= int(cfg.raw_frames), f"<= raw_frames={cfg.raw_frames}"),
            ("lr", float(cfg.lr) > 0, "> 0"),
            ("weight_decay", float(cfg.weight_decay) >= 0, ">= 0"),
            ("warmup", 0 <= float(cfg.warmup) < 1, "in [0, 1)"),
        ):
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(cfg, name)!r}")
    except (TypeError, ValueError) as e:
        raise ParameterError(f"train_cell: {e}") from e


def default_cell_config() -> dict:
    """The defaults as a flat JSON-able dict (lists, not tuples)."""
    d = asdict(CellConfig())
    d["tasks"] = list(d["tasks"])
    return d


class _TrainBatches(torch.utils.data.Dataset):
    """Item i = training batch number i: a pure function of (seed, i), sharded across DDP ranks."""

    def __init__(
        self,
        bank: dict,
        answer: np.ndarray,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        frames: np.ndarray | None = None,
    ):
        self.bank, self.answer, self.B, self.seed, self.frames = bank, answer, batch_size, seed, frames
        self.rank, self.world, self.N = rank, world, len(bank["task"])
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.N)}
        return self._perms[epoch]

    def __len__(self):
        return 1 << 40

    def __getitem__(self, i: int) -> dict:
        per_epoch = self.N // self.B
        idx = self._perm(i // per_epoch)[(i % per_epoch) * self.B : (i % per_epoch + 1) * self.B]
        idx = np.sort(idx[self.rank :: self.world])  # sorted reads are faster on the memmap
        return _to_batch(self.bank, self.answer, idx, self.frames)


class _ValBatches(torch.utils.data.Dataset):
    def __init__(
        self,
        bank: dict,
        answer: np.ndarray,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        frames: np.ndarray | None = None,
    ):
        idx = np.arange(len(bank["task"]))[rank::world]
        self.chunks = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        self.bank, self.answer, self.frames = bank, answer, frames

    def __len__(self):
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict:
        return _to_batch(self.bank, self.answer, self.chunks[i], self.frames)


def _to_batch(bank: dict, answer: np.ndarray, idx: np.ndarray, frames: np.ndarray | None = None) -> dict:
    """features (B, F or T, P, C) float16 (cast in the model); with `frames`, only those raw frames are
    read -- for uniform frame sampling the selector then has nothing left to do (see FrameSelector)."""
    feats = bank["features"][idx] if frames is None else bank["features"][idx[:, None], frames[None, :]]
    return {
        "features": torch.from_numpy(np.ascontiguousarray(feats)),
        "task": torch.from_numpy(bank["task"][idx]),
        "answer_id": torch.from_numpy(answer[idx]),
    }


def build_module(cfg: CellConfig, feature_dim: int, grid: int) -> VideoLM:
    """The VideoLM of a cell (selectors, projector, LM backbone), seeded by the caller."""
    tok = build_tokenizer()
    vocab = tok.get_vocab()
    T, M = int(cfg.frames), int(cfg.tokens_per_frame)
    return VideoLM(
        frame_selector=FrameSelector(cfg.frame_strategy, T, cfg.raw_frames),
        token_selector=TokenSelector(cfg.token_strategy, M, grid, feature_dim),
        # scan "none" and backbone "llama" (the defaults) build exactly the modules they always built
        projector=Projector(feature_dim, cfg.width, T, M)
        if cfg.scan == "none"
        else ScanProjector(feature_dim, cfg.width, T, M, cfg.scan),
        lm=build_backbone(cfg.backbone, len(vocab), cfg.width, cfg.layers, cfg.heads, mlp_ratio=cfg.mlp_ratio),
        questions=torch.from_numpy(question_table()),
        ids={"bos": vocab["<bos>"], "answer": vocab["answer"]},
        # every field given, as before the one OptimConfig (AdamW's default betas, as VideoLM always used)
        optim=OptimConfig(
            lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), warmup=cfg.warmup, steps=cfg.steps
        ),
        tasks=cfg.tasks,
    )


def uniform_frames(cfg: CellConfig) -> np.ndarray | None:
    """The raw frames uniform sampling keeps (read only those from the bank), None for other strategies."""
    if cfg.frame_strategy != "uniform":
        return None
    return FrameSelector("uniform", int(cfg.frames), cfg.raw_frames).centres.numpy()


def _datamodule(cfg: CellConfig, bank: dict, start_step: int = 0):
    import lightning as L

    class BankData(L.LightningDataModule):
        def setup(self, stage=None):
            rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
            if cfg.batch_size % world:
                raise ValueError(f"batch_size {cfg.batch_size} must divide over {world} processes")
            ans = {s: answer_ids(bank[s]["task"], bank[s]["answer"]) for s in ("train", "val")}
            frames = uniform_frames(cfg)
            self.train_set = _TrainBatches(bank["train"], ans["train"], cfg.batch_size, cfg.seed, rank, world, frames)
            self.val_set = _ValBatches(bank["val"], ans["val"], cfg.val_batch_size, rank, world, frames)

        def train_dataloader(self):
            # batch numbers start where a resumed run stopped (start_step 0 otherwise)
            return torch.utils.data.DataLoader(self.train_set, batch_size=None, sampler=range(start_step, cfg.steps))

        def val_dataloader(self):
            return torch.utils.data.DataLoader(self.val_set, batch_size=None, shuffle=False)

    return BankData()


def train_cell(config: dict, run_dir: Path) -> dict:
    """Train one cell and return flat metrics (val_loss, val_acc, val_acc_<task>, seconds, ...)."""
    check_config(config)
    cfg = CellConfig.from_dict(dict(config))
    if not cfg.progress:  # a sweep of many cells: no "GPU available" banners per cell
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # The thread count holds for this cell only (a notebook calling train_cell keeps its own).
    with cpu_threads(int(cfg.threads) or None), quiet_lightning(), warnings.catch_warnings():
        # the CSV logger writes into the run folder, which already holds the sweep's config.json
        warnings.filterwarnings("ignore", message=".*Experiment logs directory.*exists and is not empty")
        return _train(cfg, run_dir)


def _train(cfg: CellConfig, run_dir) -> dict:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    vcfg, ecfg = cfg.video(), cfg.encoder()
    bank = feature_bank(ecfg, vcfg, cfg.train_videos, cfg.val_videos, cfg.data_seed)
    seed_everything(cfg.seed)
    module = build_module(cfg, ecfg.feature_dim, ecfg.grid)
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)

    ckpt, state, start = run_dir / "last.ckpt", None, 0
    if cfg.checkpoint_every and ckpt.is_file():  # a killed run of this cell: go on from its checkpoint
        state = load_checkpoint(ckpt)
        if state is not None:
            module.load_state_dict(state["module"])
            start = int(state["step"])
    callbacks = (
        [step_checkpointer(ckpt, int(cfg.checkpoint_every), int(cfg.steps), start, state)]
        if cfg.checkpoint_every
        else []
    )
    trainer = make_trainer(  # the flags this cell always passed; the rest are make_trainer's fixed ones
        log_dir=run_dir,
        progress=cfg.progress,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,
        max_steps=cfg.steps - start,
        max_epochs=1,
        check_val_every_n_epoch=2,
        callbacks=callbacks,
        deterministic=True,
        use_distributed_sampler=False,
        default_root_dir=str(run_dir),
        log_every_n_steps=max(1, min(50, cfg.steps // 10)),  # 50 as always; ~10 curve points for short cells
    )
    t0 = time.perf_counter()
    data = _datamodule(cfg, bank, start)
    trainer.fit(module, datamodule=data)  # no validation inside fit ...
    train_time = time.perf_counter() - t0
    if trainer.is_global_zero:
        checkpoint.remove(ckpt)
    train_loss = trainer.callback_metrics.get("train/loss")  # the last step's loss (validate resets these)
    trainer.validate(module, datamodule=data, verbose=False)  # ... one pass over the val bank at the end
    m = module.val_metrics
    out = {"val_loss": m["val/loss"], "val_acc": m["val/acc"]}
    for task in cfg.tasks:
        out[f"val_acc_{task}"] = m.get(f"val/acc_{task}", float("nan"))
        out[f"val_loss_{task}"] = m.get(f"val/loss_{task}", float("nan"))
    out.update(
        {
            "train_loss": float(train_loss) if train_loss is not None else float("nan"),
            "seconds": round(train_time, 3),
            "steps": start + int(trainer.global_step),
            "n_params": int(n_params),
            "resumed_from_step": start,
            "visual_tokens": int(cfg.frames) * int(cfg.tokens_per_frame),
            "encoder_acc_digit_cells": float(bank["info"]["encoder"].get("test_acc_digit_cells", float("nan"))),
        }
    )
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}


train_cell.check_config = check_config
train_cell.required_metrics = ("val_loss", "val_acc")
