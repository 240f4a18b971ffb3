"""The backbones study: the tiny video-LM with a transformer, a state-space or a mixture-of-experts LM.

    runs = run_cells("default")                 # experiments/sweeps/backbones.yaml (studio.engine cells)
    table = results_table(runs)                 # one row per trained cell: backbone, scan, T, M, seed, metrics
    lines = lines_table(table)                  # the budget line per backbone: seed mean and range
    scans = scan_table(table)                   # the scan orders at their cell, spatial-task loss and accuracy
    costs = measure_costs(lengths=[64, 128, 256, 512])   # studio.studies.backbones.cost: timed steps
    save_verdicts([verdict_ssm_loss(table), verdict_crossover(costs), verdict_scan(table),
                   verdict_moe_cost(costs, table)], "backbones")

Backbones (studio.models.backbones): `llama` (attention), `mamba` (mambapy's Mamba, matched total
parameters), `moe` (transformers' Mixtral, matched *active* parameters), and the scan order of VL-Mamba's
VSS connector (`none` = the MLP projector, `row`, `bidirectional`, `cross`). The benchmark
benchmarks/bench_backbones.py measures the same costs up to 4,096 visual tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from studio import paths
from studio.studies.backbones.cost import (  # noqa: F401  (the notebook's and the benchmark's names)
    cost_exponents,
    cost_ratios,
    crossover,
    measure_costs,
)
from studio.studies.backbones.verdicts import (  # noqa: F401
    KIMI_VL,
    MIN_SEEDS,
    VL_MAMBA,
    verdict_crossover,
    verdict_moe_cost,
    verdict_scan,
    verdict_ssm_loss,
)
from studio.tolerance import seed_range

SWEEP = "backbones"  # experiments/sweeps/backbones.yaml
KEYS = ["backbone", "scan", "frames", "tokens_per_frame", "seed"]
ORDER = {"llama": 0, "mamba": 1, "moe": 2}  # plotting order; colours C0, C1, C2
SCAN_ORDER = {"none": 0, "row": 1, "bidirectional": 2, "cross": 3}


def run_cells(profile="default", launcher="local", workers: int | None = None, progress=True) -> pd.DataFrame:
    """The sweep's results (studio.sweep.run_sweep): trains only the cells not already cached."""
    from studio.sweep import load_config, run_sweep

    config = load_config(paths.SWEEP_CONFIGS / f"{SWEEP}.yaml", profile)
    return run_sweep(config, launcher=launcher, progress=progress, workers=workers)


def task_names(df: pd.DataFrame) -> list[str]:
    return [c[len("val_acc_") :] for c in df.columns if c.startswith("val_acc_")]


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: backbone, scan, T, M, seed, budget (T*M), val_loss, val_acc, per-task accuracy and
    loss, seconds (training), seconds_per_step, n_params."""
    tasks = task_names(runs)
    cols = [*KEYS, "val_loss", "val_acc"] + [f"val_acc_{t}" for t in tasks] + [f"val_loss_{t}" for t in tasks]
    out = runs[[c for c in cols if c in runs]].copy()
    out["budget"] = out["frames"] * out["tokens_per_frame"]
    out["seconds"] = runs["seconds"]
    out["seconds_per_step"] = runs["seconds"] / runs["steps"]
    out["n_params"] = runs["n_params"]
    key = out["backbone"].map(ORDER), out["scan"].map(SCAN_ORDER)
    out = out.assign(_b=key[0], _s=key[1]).sort_values(["_b", "_s", "frames", "tokens_per_frame", "seed"])
    return out.drop(columns=["_b", "_s"]).reset_index(drop=True)


def seed_spread(table: pd.DataFrame) -> dict[str, float]:
    """The largest range over seeds of each metric in any cell: the noise a rerun shows (--check's tolerance)."""
    cols = [c for c in table.columns if c.startswith(("val_loss", "val_acc"))]
    return seed_range(table, KEYS[:-1], cols)


def tolerance(data: pd.DataFrame, spread: dict[str, float]) -> dict[str, float]:
    """`spread` for the metric columns of `data`; a summary's mean/min/max get, per row, the spread of the
    metric named in its `value` column (studio.tolerance's per-group form)."""
    out = {c: spread[c] for c in data.columns if c in spread}
    if "value" in data.columns and "mean" in data.columns:
        per = {str(v): spread[v] for v in data["value"].unique() if v in spread}
        out.update({c: {"by": "value", "spread": per} for c in ("mean", "min", "max") if c in data.columns})
    return out


def _summary(table: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    rows = []
    for value in values:
        g = table.groupby(by)[value]
        s = pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max(), "n_seeds": g.count()}).reset_index()
        rows.append(s.assign(value=value))
    return pd.concat(rows, ignore_index=True)


def lines_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per backbone, value (val_loss, val_acc and per-task accuracy) and cell of the MLP-connector runs:
    mean, min, max over seeds, n_seeds; budget and `best` (the lowest mean loss of its backbone's line)."""
    part = table[table["scan"] == "none"]
    values = ["val_loss", "val_acc"] + [f"val_acc_{t}" for t in task_names(part)]
    s = _summary(part, ["backbone", "budget", "frames", "tokens_per_frame"], values)
    loss = s[s["value"] == "val_loss"]
    best = loss.loc[loss.groupby(["backbone", "budget"])["mean"].idxmin(), ["backbone", "budget", "frames"]]
    s["best"] = s.set_index(["backbone", "budget", "frames"]).index.isin(best.set_index(list(best)).index)
    return s


def scan_table(table: pd.DataFrame) -> pd.DataFrame:
    """The scan orders at the cell where they were trained, with the same backbone's MLP connector (none)
    there: spatial-task loss and accuracy (and overall loss) per (backbone, scan), mean/min/max over seeds."""
    scans = table[table["scan"] != "none"]
    if scans.empty:
        return pd.DataFrame(columns=["backbone", "scan", "frames", "tokens_per_frame", "mean", "min", "max", "value"])
    cells = scans[["backbone", "frames", "tokens_per_frame"]].drop_duplicates()
    part = table.merge(cells, on=["backbone", "frames", "tokens_per_frame"])
    values = [c for c in ("val_loss_spatial", "val_acc_spatial", "val_loss") if c in part]
    s = _summary(part, ["backbone", "scan", "frames", "tokens_per_frame"], values)
    return s.sort_values(["backbone", "value"], key=lambda c: c.map(ORDER) if c.name == "backbone" else c)


def sizes_table(width: int = 64, layers: int = 2, heads: int = 4, mlp_ratio: int = 2) -> pd.DataFrame:
    """Parameters of each backbone (LM only, embedding included) at one size: total and active per token."""
    import torch

    from studio.data.vocab import build_tokenizer
    from studio.models.backbones import BACKBONES, build_backbone, mamba_inner_width, parameter_counts

    vocab = len(build_tokenizer().get_vocab())
    rows = []
    for name in BACKBONES:
        torch.manual_seed(0)
        counts = parameter_counts(build_backbone(name, vocab, width, layers, heads, mlp_ratio=mlp_ratio))
        rows.append({"backbone": name, "n_params": counts["total"], "n_active": counts["active"]})
    out = pd.DataFrame(rows)
    out["vs_llama_total"] = out["n_params"] / out.loc[out["backbone"] == "llama", "n_params"].iloc[0]
    out["vs_llama_active"] = out["n_active"] / out.loc[out["backbone"] == "llama", "n_active"].iloc[0]
    out.attrs["mamba_inner"] = mamba_inner_width(width, mlp_ratio)
    return out


def router_balance(runs: pd.DataFrame) -> pd.DataFrame:
    """Per MoE run: the router balance (1 = tokens spread evenly over the experts) averaged over the first
    and the last tenth of training, read from the run's training curve (studio.training.curves)."""
    from studio.training import curves

    out = Path(runs.attrs.get("out", ""))
    rows = []
    for r in runs[runs["backbone"] == "moe"].itertuples():
        c = curves(out / r.run_key)
        if "train/router_balance" not in c:
            continue
        b = c["train/router_balance"].dropna().to_numpy()
        k = max(1, len(b) // 10)
        rows.append(
            dict(frames=r.frames, tokens_per_frame=r.tokens_per_frame, seed=r.seed,
                 balance_first=float(b[:k].mean()), balance_last=float(b[-k:].mean()))
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["frames", "tokens_per_frame", "seed", "balance_first", "balance_last"])


def describe_runs(runs: pd.DataFrame, table: pd.DataFrame) -> str:
    """How many runs were trained now or loaded, each cell's budget, and seconds per step per backbone."""
    r = runs.iloc[0]
    per = table.groupby("backbone")["seconds_per_step"].median()
    return (
        f"{len(table)} runs ({runs.attrs.get('ran', '?')} trained now, {runs.attrs.get('skipped', '?')} loaded); "
        f"each {r.steps} steps of {r.batch_size} videos (bank of {r.train_videos:,}); total training time "
        f"{table['seconds'].sum():.0f} s; median seconds per step: "
        + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
        + f"; tasks {json.loads(r.tasks) if isinstance(r.tasks, str) and r.tasks.startswith('[') else r.tasks}"
    )
