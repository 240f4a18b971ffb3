"""A toy sweep target: cheap, deterministic, resumable; for trying the sweep engine out.

    studio sweep experiments/sweeps/toy.yaml --profile smoke     # target: studio.sweep.toy:toy_target

It imports nothing of `studio` but studio.repro and studio.errors, so its code fingerprint (and so
its runs' keys) changes only when this file or those change. Like every target it declares the
metrics of a finished run (`toy_target.required_metrics`) and checks a config before a sweep starts
(`toy_target.check_config`: unknown keys and impossible values are refused, naming the key).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from studio.errors import ParameterError
from studio.repro import atomic_write_text, stable_hash

KEYS = ("frames", "tokens_per_frame", "seed", "steps", "sleep_s", "fail", "trainer")
REQUIRED_METRICS = ("val_loss", "val_acc", "steps_run", "resumed_from_step")


def check_config(config: dict) -> None:
    """Refuse what the toy cannot run: unknown keys, steps < 1, frames or tokens <= 0, sleep_s < 0."""
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise ParameterError(f"toy_target: unknown config key {unknown[0]!r}; valid keys: {', '.join(KEYS)}")
    checks = {
        "frames": (float, lambda v: v > 0, "> 0"),
        "tokens_per_frame": (float, lambda v: v > 0, "> 0"),
        "steps": (int, lambda v: v >= 1, "an int >= 1"),
        "sleep_s": (float, lambda v: v >= 0, ">= 0"),
    }
    for key, (kind, ok, want) in checks.items():
        if key not in config:
            continue
        value = config[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (kind is int and value != int(value))
            or not ok(value)
        ):
            raise ParameterError(f"toy_target: {key} must be {want}, got {value!r}")


def toy_target(config: dict, run_dir: Path) -> dict:
    """A stand-in for a training run: loss falls with frames and tokens_per_frame, plus seeded noise.

    Keys read (all optional): frames, tokens_per_frame, seed, steps (default 3), sleep_s (per step),
    fail (raise when true). The loss approaches L(T, M) = 0.3 + 2 T^-0.5 + 1 M^-0.3 (+ noise) over
    `steps` steps; a checkpoint.json written after every step lets a killed run resume where it
    stopped, with the same final numbers as an uninterrupted one.
    """
    check_config(config)
    if config.get("fail"):
        raise RuntimeError("toy_target asked to fail (fail: true)")
    frames = float(config.get("frames", 1))
    tokens = float(config.get("tokens_per_frame", 1))
    steps = int(config.get("steps", 3))
    # Noise from the config itself (not global RNG state), so the result depends on nothing else.
    # (steps and sleep_s are how long, not what, so they leave the target loss alone).
    noise_seed = int(
        stable_hash({k: v for k, v in config.items() if k not in ("trainer", "steps", "sleep_s")}, length=8), 16
    )
    import numpy as np

    noise = float(np.random.default_rng(noise_seed).normal(0, 0.01))
    floor = 0.3 + 2.0 * frames**-0.5 + 1.0 * tokens**-0.3 + noise
    ckpt = Path(run_dir) / "checkpoint.json"
    start, loss = 0, math.log(10)
    if ckpt.exists():
        state = json.loads(ckpt.read_text())
        start, loss = state["step"], state["loss"]
    for step in range(start, steps):
        loss = floor + (loss - floor) * 0.5  # each step halves the distance to the floor
        time.sleep(float(config.get("sleep_s", 0)))
        atomic_write_text(ckpt, json.dumps({"step": step + 1, "loss": loss}))
    return {
        "val_loss": round(loss, 10),
        "val_acc": round(math.exp(-loss), 10),
        "steps_run": steps - start,
        "resumed_from_step": start,
    }


toy_target.required_metrics = REQUIRED_METRICS
toy_target.check_config = check_config
