"""Step checkpoints a training run resumes from, checksummed so that a damaged one is never trusted.

    callback = step_checkpointer(run_dir / "last.ckpt", every=500, steps=cfg.steps, start_step=start, state=state)
    state = load_checkpoint(run_dir / "last.ckpt")     # None (named, moved aside) when damaged

Each save writes {step, module, optimizer, scheduler} atomically (PATH.tmp.PID, then renamed) and records
its size and sha256 in PATH.sha256 before the rename, keeping the previous record, so a kill between the
two writes still leaves a file that matches. Loading uses torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from studio import paths
from studio.repro import atomic_write_text, sha256_file


def step_checkpointer(path: Path, every: int, steps: int, start_step: int = 0, state: dict | None = None):
    """A callback that saves {step, module, optimizer, scheduler} to `path` every `every` steps (atomically:
    written to PATH.tmp.PID, then renamed) and, given the `state` of such a file, restores the optimizer
    and the learning-rate schedule when training starts. The module's weights are loaded by the caller.

    Lightning's own resume (fit(ckpt_path=...)) is not used: with batches numbered by step, a run restored
    from an end-of-epoch checkpoint was fed the epoch's first batch again and stopped early. Restarting
    Lightning for the remaining steps, with optimizer and schedule restored, gives the uninterrupted
    run's numbers (tested).
    """
    import lightning as L

    class Checkpoint(L.Callback):
        def on_train_start(self, trainer, module):
            if state is not None:
                trainer.optimizers[0].load_state_dict(state["optimizer"])
                trainer.lr_scheduler_configs[0].scheduler.load_state_dict(state["scheduler"])

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            step = start_step + trainer.global_step
            if step % every or step >= steps:  # the last step needs none: metrics.json is the record
                return
            if trainer.is_global_zero:
                payload = {
                    "step": step,
                    "module": module.state_dict(),
                    "optimizer": trainer.optimizers[0].state_dict(),
                    "scheduler": trainer.lr_scheduler_configs[0].scheduler.state_dict(),
                }
                tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
                torch.save(payload, tmp)
                _record_checksum(path, tmp, step)
                os.replace(tmp, path)

    return Checkpoint()


def remove(ckpt: Path) -> None:
    """Delete a finished run's checkpoint and its checksum record."""
    ckpt.unlink(missing_ok=True)
    _sums_path(ckpt).unlink(missing_ok=True)


def _sums_path(ckpt: Path) -> Path:  # last.ckpt.sha256
    return ckpt.with_name(ckpt.name + ".sha256")


def _recorded(ckpt: Path) -> list[dict]:
    try:
        records = json.loads(_sums_path(ckpt).read_text())
    except (OSError, ValueError):
        records = []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _record_checksum(ckpt: Path, written: Path, step: int) -> None:
    """Before `written` replaces `ckpt`: its size and sha256, then ckpt's (a kill before the rename leaves a match)."""
    new = {"step": step, "bytes": written.stat().st_size, "sha256": sha256_file(written)}
    atomic_write_text(_sums_path(ckpt), json.dumps([new, *_recorded(ckpt)[:1]]) + "\n")


def load_checkpoint(ckpt: Path) -> dict | None:
    """`ckpt`'s state when it matches its recorded checksum and loads; else None, after naming it and moving it aside."""
    size, records = ckpt.stat().st_size, _recorded(ckpt)
    matches = [r for r in records if r.get("bytes") == size]
    if not records:
        problem = f"no checksum recorded ({_sums_path(ckpt).name} missing or unreadable)"
    elif not matches:
        problem = f"{size} bytes, but {' or '.join(str(r.get('bytes')) for r in records)} were written"
    elif sha256_file(ckpt) not in {r.get("sha256") for r in matches}:
        problem = "does not match its recorded sha256"
    else:
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and {"step", "module", "optimizer", "scheduler"} <= set(state):
                return state
            problem = "not a step checkpoint"
        except Exception as e:  # torch raises its own types for a damaged zip
            problem = f"unreadable ({type(e).__name__}: {e})"
    aside = ckpt.with_name(f"{ckpt.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(ckpt, aside)
    _sums_path(ckpt).unlink(missing_ok=True)
    print(
        f"checkpoint {paths.relative(ckpt)}: {problem}; moved aside to {aside.name}; the cell restarts from step 0",
        file=sys.stderr,
    )
    return None
