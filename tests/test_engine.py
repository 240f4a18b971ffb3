"""train_cell: refuses unknown keys, same seed -> same metrics, frozen encoder stays frozen in Lightning."""

from __future__ import annotations

import math
import os

import pytest
import torch

from studio.data.video import make_batch
from studio.data.vocab import answer_ids
from studio.engine import CellConfig, build_module, default_cell_config, train_cell
from studio.models.frame_encoder import FrameEncoderConfig, pretrained_frame_encoder

# A tiny but real cell: its own tiny encoder (cached after the first run) and a small bank.
TINY = dict(
    encoder_steps=15,
    train_videos=128,
    val_videos=64,
    steps=12,
    batch_size=32,
    width=32,
    heads=2,
    frames=4,
    tokens_per_frame=4,
    tasks=["retrieval", "spatial", "motion"],
)


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "seconds"}


def test_defaults_and_unknown_keys():
    d = default_cell_config()
    assert d["frames"] >= 1 and d["token_strategy"] == "mean" and isinstance(d["tasks"], list)
    with pytest.raises(ValueError, match="framez"):
        CellConfig.from_dict({**d, "framez": 3})
    with pytest.raises(ValueError, match="unknown trainer keys"):
        CellConfig.from_dict({"trainer": {"gpus": 2}})
    assert CellConfig.from_dict({"tasks": "retrieval+counting"}).tasks == ("retrieval", "counting")


def test_cell_defaults_are_the_default_sweep_profile():
    """train_cell called with no overrides trains what the default sweep trains (one set of defaults)."""
    from studio import paths
    from studio.sweep import load_config

    base = load_config(paths.SWEEP_CONFIGS / "visual_context.yaml", "default").base
    defaults = default_cell_config()
    differ = {k: (v, defaults[k]) for k, v in base.items() if defaults[k] != v}
    assert differ == {}, f"sweep base vs CellConfig defaults: {differ}"


@pytest.mark.slow
def test_train_cell_is_deterministic(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = train_cell(TINY, tmp_path / "a")  # threads=1 inside the cell ...
        assert torch.get_num_threads() == 2  # ... and the caller's count again after it
    finally:
        torch.set_num_threads(before)
    b = train_cell(TINY, tmp_path / "b")
    assert _untimed(a) == _untimed(b)
    assert a["steps"] == TINY["steps"] and a["n_params"] > 0 and a["visual_tokens"] == 16
    for task in TINY["tasks"]:
        assert 0.0 <= a[f"val_acc_{task}"] <= 1.0
    assert math.isfinite(a["val_loss"]) and a["seconds"] > 0
    from studio.training import curves  # make_trainer(log_dir=run_dir): the cell's training curve

    curve = curves(tmp_path / "a")
    assert "train/loss" in curve and curve["train/loss"].notna().any()
    c = train_cell({**TINY, "seed": 1}, tmp_path / "c")
    assert c["val_loss"] != a["val_loss"]


class _SimulatedKill(RuntimeError):
    pass


@pytest.mark.slow
def test_a_killed_cell_resumes_from_its_checkpoint_with_the_uninterrupted_metrics(tmp_path, monkeypatch):
    from studio import engine

    cfg = {**TINY, "steps": 12, "checkpoint_every": 4}
    whole = train_cell(cfg, tmp_path / "whole")
    assert whole["resumed_from_step"] == 0 and not (tmp_path / "whole" / "last.ckpt").exists()

    real = engine.step_checkpointer
    saved_at = []

    def dying_checkpointer(*args):  # the process "dies" right after the step-8 checkpoint
        inner = real(*args)

        class Dying(type(inner)):
            def on_train_batch_end(self, trainer, module, *rest):
                super().on_train_batch_end(trainer, module, *rest)
                if trainer.global_step % 4 == 0:
                    saved_at.append(trainer.global_step)
                if trainer.global_step == 9:  # mid-interval: steps 9.. are lost and redone
                    raise _SimulatedKill("killed after step 9")

        return Dying()

    monkeypatch.setattr(engine, "step_checkpointer", dying_checkpointer)
    with pytest.raises(_SimulatedKill):
        train_cell(cfg, tmp_path / "cut")
    monkeypatch.setattr(engine, "step_checkpointer", real)
    assert saved_at == [4, 8] and (tmp_path / "cut" / "last.ckpt").is_file()
    assert not list((tmp_path / "cut").glob("*.tmp.*"))  # the rename left no temporary file
    resumed = train_cell(cfg, tmp_path / "cut")
    assert resumed["resumed_from_step"] == 8 and resumed["steps"] == 12
    assert not (tmp_path / "cut" / "last.ckpt").exists()
    same = ("val_loss", "val_acc", "train_loss", *(f"val_acc_{t}" for t in TINY["tasks"]))
    assert {k: resumed[k] for k in same} == {k: whole[k] for k in same}
    # and checkpointing itself changes nothing: same metrics as one 12-step epoch
    plain = train_cell({**TINY, "steps": 12}, tmp_path / "plain")
    assert {k: plain[k] for k in same} == {k: whole[k] for k in same}


@pytest.mark.slow
def test_a_damaged_checkpoint_is_named_moved_aside_and_the_cell_restarts_from_step_0(tmp_path, monkeypatch, capfd):
    """Truncated, or zeroed inside at the same size: either is caught by the recorded sha256."""
    import shutil

    from studio import engine

    cfg = {**TINY, "steps": 12, "checkpoint_every": 4}
    real = engine.step_checkpointer

    def dying_checkpointer(*args):  # the process "dies" after step 9, with the step-8 checkpoint on disk
        inner = real(*args)

        class Dying(type(inner)):
            def on_train_batch_end(self, trainer, module, *rest):
                super().on_train_batch_end(trainer, module, *rest)
                if trainer.global_step == 9:
                    raise _SimulatedKill("killed after step 9")

        return Dying()

    monkeypatch.setattr(engine, "step_checkpointer", dying_checkpointer)
    with pytest.raises(_SimulatedKill):
        train_cell(cfg, tmp_path / "zeroed")
    monkeypatch.setattr(engine, "step_checkpointer", real)
    shutil.copytree(tmp_path / "zeroed", tmp_path / "truncated")
    ckpt = tmp_path / "zeroed" / "last.ckpt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
    ckpt.write_bytes(bytes(data))
    cut = tmp_path / "truncated" / "last.ckpt"
    cut.write_bytes(cut.read_bytes()[: len(data) // 2])

    plain = train_cell({**TINY, "steps": 12}, tmp_path / "plain")
    same = ("val_loss", "val_acc", "train_loss", *(f"val_acc_{t}" for t in TINY["tasks"]))
    for name in ("zeroed", "truncated"):
        capfd.readouterr()
        again = train_cell(cfg, tmp_path / name)
        err = capfd.readouterr().err
        assert f"{name}/last.ckpt" in err and "moved aside" in err and "step 0" in err
        assert again["resumed_from_step"] == 0 and again["steps"] == 12
        assert {k: again[k] for k in same} == {k: plain[k] for k in same}
        assert len(list((tmp_path / name).glob("last.ckpt.bad-*"))) == 1
        assert not (tmp_path / name / "last.ckpt").exists()


def test_the_cell_checks_a_sweep_config_before_any_cell_starts(tmp_path, monkeypatch):
    from studio import paths
    from studio.errors import ParameterError
    from studio.sweep import run_sweep

    with pytest.raises(ParameterError, match="stepz"):
        train_cell.check_config({**TINY, "stepz": 3})
    with pytest.raises(ParameterError, match="steps must be >= 1"):
        train_cell.check_config({**TINY, "steps": -5})
    with pytest.raises(ParameterError, match="token_strategy"):
        train_cell.check_config({**TINY, "token_strategy": "maen"})
    train_cell.check_config(default_cell_config())
    assert {"val_loss", "val_acc"} <= set(train_cell.required_metrics)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    sweep = {
        "name": "bad",
        "target": "studio.engine:train_cell",
        "base": {**TINY, "stepz": 3},
        "grid": {"frames": [1, 2]},
    }
    with pytest.raises(ParameterError, match="train_cell.*stepz"):
        run_sweep(sweep, out="out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_gives_the_single_process_metrics(tmp_path):
    """The sweep under torchrun with trainer {devices: 2, strategy: ddp} on the CPU (gloo): Lightning runs
    DDP without new code, batches and the val set are sharded by rank, rank 0 alone writes, and the
    gathered held-out metrics are those of one process (the gradient is the same mean over the batch)."""
    import subprocess
    import sys

    import pandas as pd
    import yaml

    root = tmp_path / "proj"
    root.mkdir()
    env = {**os.environ, "STUDIO_ROOT": str(root), "PYTHONWARNINGS": "ignore"}
    out = {}
    for name, trainer, launch in [
        (
            "ddp",
            {"accelerator": "cpu", "devices": 2, "strategy": "ddp"},
            ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "studio.workbench.cli"],
        ),
        ("one", {"accelerator": "cpu", "devices": 1}, ["-m", "studio.workbench.cli"]),
    ]:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {"name": name, "target": "studio.engine:train_cell", "base": {**TINY, "steps": 8}, "trainer": trainer}
            )
        )
        done = subprocess.run(
            [sys.executable, *launch, "sweep", str(cfg), "--out", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        out[name] = pd.read_csv(root / name / "results.csv")
        assert len(out[name]) == 1 and len(list((root / name).glob("*/metrics.json"))) == 1
    ddp, one = out["ddp"].iloc[0], out["one"].iloc[0]
    assert ddp["trainer.devices"] == 2 and ddp["metric_steps"] == one["metric_steps"] == 8
    assert ddp["val_loss"] == pytest.approx(one["val_loss"], abs=1e-5)
    for task in TINY["tasks"]:
        assert ddp[f"val_acc_{task}"] == one[f"val_acc_{task}"]


@pytest.mark.slow
def test_frozen_encoder_stays_frozen_under_lightning(tmp_path):
    import lightning as L

    enc = pretrained_frame_encoder(FrameEncoderConfig(steps=15))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    cfg = CellConfig.from_dict({**TINY, "steps": 3})
    module = build_module(cfg, FrameEncoderConfig().feature_dim, FrameEncoderConfig().grid)
    module.encoder = enc
    vcfg = cfg.video()
    batches = []
    for i in range(3):
        b = make_batch(vcfg, range(8 * i, 8 * i + 8), frames=None)
        batches.append(
            {
                "video": torch.from_numpy(b["video"]),
                "task": torch.from_numpy(b["task"]),
                "answer_id": torch.from_numpy(answer_ids(b["task"], b["answer"])),
            }
        )
    trainer = L.Trainer(
        accelerator="auto",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None))
    assert trainer.global_step == 3
    after = enc.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"encoder {k} changed under Lightning"
    assert not any(m.training for m in enc.module.modules())  # every BatchNorm stayed in eval mode
    assert all(p.grad is None and not p.requires_grad for p in enc.parameters())
    assert any(p.grad is not None for p in module.lm.parameters())  # the LM did train
