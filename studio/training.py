"""The one training harness: every Lightning Trainer in the workbench is made by `make_trainer`.

    trainer = make_trainer(max_steps=600, log_dir=run_dir)   # fixed flags + what this run changes
    trainer.fit(module, datamodule=data)
    curves(run_dir)                                          # the logged metrics as a DataFrame

The fixed flags below are what a tiny model on a laptop CPU wants (no checkpoints of Lightning's
own, no model summary, no sanity validation, no Lightning banners) and they scale to GPUs unchanged:
accelerator, devices and strategy come from the caller or stay "auto". With `log_dir` the run writes
Lightning's CSV logs there (metrics.csv), so a notebook can plot training curves with `curves`.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FIXED = {
    "accelerator": "auto",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_model_summary": False,
    "enable_progress_bar": False,
    "num_sanity_val_steps": 0,
}
LOG_FILE = "metrics.csv"  # what Lightning's CSVLogger writes, in log_dir itself (name="", version="")
# Expected with these tiny models and hence noise: no val loader in fit, frozen encoders in eval mode,
# single-process data loading, Lightning's tips.
QUIET_WARNINGS = r".*(val_dataloader|LeafSpec|eval mode|num_workers|litlogger|does not have many workers).*"


@dataclass(frozen=True)
class OptimConfig:
    """The one optimiser config (AdamW) every Lightning module receives.

    warmup and steps shape a schedule (linear warm-up over `warmup` * steps, then cosine decay to 0)
    for modules that use one (VideoLM); with steps=None the rate is constant after no warm-up.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: float = 0.0
    steps: int | None = None


def make_trainer(*, log_dir: str | os.PathLike | None = None, progress: bool = False, **overrides):
    """A `lightning.Trainer` with the workbench's fixed flags; keyword arguments override any of them.

    log_dir: write Lightning's CSV logs (train/val metrics per logged step) to log_dir/metrics.csv.
    progress: Lightning's progress bar.
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    flags = dict(FIXED, enable_progress_bar=progress)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        flags["logger"] = CSVLogger(os.fspath(log_dir), name="", version="")
        flags.setdefault("log_every_n_steps", 10)
    flags.update(overrides)
    with quiet_lightning():
        return L.Trainer(**flags)


@contextmanager
def quiet_lightning():
    """Silence Lightning's banners (GPU available, tips) and the expected warnings inside the block."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=QUIET_WARNINGS)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def curves(folder: str | os.PathLike) -> pd.DataFrame:
    """The CSV logs written under `folder` (by `make_trainer(log_dir=...)`) as one DataFrame.

    One row per logged step (columns `step`, `epoch` and the logged keys such as `train/loss`),
    with a `run` column naming the sub-folder when `folder` holds several runs' logs.
    """
    folder = Path(folder)
    files = sorted(folder.rglob(LOG_FILE))
    if not files:
        raise FileNotFoundError(f"no {LOG_FILE} under {folder}: was the run trained with make_trainer(log_dir=...)?")
    frames = []
    for f in files:
        df = pd.read_csv(f)
        df.insert(0, "run", f.parent.relative_to(folder).as_posix() if f.parent != folder else ".")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
