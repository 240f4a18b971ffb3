"""The visual-context design space: each seed paper's representation as a strategy, at equal token budget.

    runs = run_cells("default")               # experiments/sweeps/visual_design_space.yaml
    table = results_table(runs)               # one row per trained cell: arm, budget, seed, metrics, cost
    long = task_summary(table)                # per (mix, arm, budget, metric): mean, min, max over seeds
    cost = cost_table(table)                  # visual tokens, step time, parameters added over uniform
    easy = easy_table(table)                  # accuracy and tokens spent on the easy videos (Kimi-VL)
    save_verdicts(verdicts(table), "visual_design_space")

Arms (studio.models.strategies): uniform (mean-pooled uniform frames, Opt-Visor's baseline), attention
(learned pooling), slow_fast (EMA), coarse_fine (MaVEn), fine_only (coarse_fine without the discrete
tokens: the continuous-only dynamic reduction, MaVEn's ablation) and native_resolution (Kimi-VL).
Two task mixes: `all` (retrieval, spatial, ordering, counting, motion, equal shares) and `motion`
(MotionBench's four motion types alone: linear, curved (parabola), rotational (circle), contact (bounce
off a wall), the engine's motion task), where the uniform baseline's accuracy as M shrinks shows what a
cheaper motion representation has to beat.

Easy videos (Kimi-VL's claim is about easy frames) are defined by studio.design_space.content_metrics
from the generator's own cell labels: a video whose frames hold at most `easy_cells` occupied grid cells
on average (EASY_CELLS = 1.0: one digit for at most a quarter of the video); each cell reports its
accuracy on them and where it spent its tokens there.

Every comparison is at one budget (equal visual tokens: every strategy spends exactly frames *
tokens_per_frame, `visual_tokens` in the table) or, for Kimi-VL, at b against 4b; the verdicts
(studio.studies.visual_design_space.verdicts) judge per-seed paired differences through
studio.verdicts.judge, with competence gates: a claim about an arm that cannot do the task is untestable.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from studio import paths
from studio.stats import summarise
from studio.studies.visual_design_space.verdicts import (  # noqa: F401  (the notebook's verdicts)
    CHANCE,
    COMPETENCE_MARGIN,
    CONTENT_RATIO,
    EASY,
    EMA,
    KIMI,
    MAVEN,
    MIN_ACC_EFFECT,
    MULTI_OBJECT,
    NONINFERIORITY_MARGIN,
    TASKS,
    TOKEN_RATIO,
    compare,
    content_ratio,
    paired,
    verdict_ema,
    verdict_kimi,
    verdict_maven,
    verdicts,
)
from studio.tolerance import seed_range

SWEEP = "visual_design_space"  # experiments/sweeps/visual_design_space.yaml
ARMS = ("uniform", "attention", "slow_fast", "coarse_fine", "fine_only", "native_resolution")
KEYS = ["mix", "arm", "budget", "frames", "tokens_per_frame", "seed"]
EASY_COLUMNS = (  # studio.design_space.content_metrics, and the threshold it used
    "easy_cells",
    "easy_items",
    EASY,
    "val_acc_hard",
    "easy_tokens",
    "easy_tokens_digit_frame",
    "easy_tokens_empty_frame",
)


# ---------------------------------------------------------------- the sweep and its table
def run_cells(profile="default", launcher="local", workers: int | None = None, progress=True) -> pd.DataFrame:
    """The sweep's results; with the local launcher each distinct feature bank and codebook is built
    first (once, in this process), so that parallel cells never wait on one another's lock."""
    from studio.sweep import load_config, run_sweep

    config = load_config(paths.SWEEP_CONFIGS / f"{SWEEP}.yaml", profile)
    if launcher == "local":
        prepare_banks(config)
    return run_sweep(config, launcher=launcher, progress=progress, workers=workers)


def prepare_banks(config) -> int:
    """Build (or find) every distinct bank (and codebook) the sweep's cells read. Returns how many."""
    from studio.design_space import DesignCellConfig, bank_and_codebook
    from studio.repro import cpu_threads
    from studio.sweep import expand

    keys = ("tasks", "train_videos", "val_videos", "data_seed", "digit_size", "needle_frames", "encoder_steps", "codes")
    banks = {}
    for r in expand(config):
        k = json.dumps({key: r.get(key) for key in keys}, sort_keys=True)
        if k not in banks or r["strategy"] in ("coarse_fine", "native_resolution"):
            banks[k] = r
    with cpu_threads(2):
        for r in banks.values():
            bank_and_codebook(DesignCellConfig.from_dict(r), log=lambda *_: None)
    return len(banks)


def arm_of(strategy: str, coarse_tokens) -> str:
    """The table's name of a cell's strategy: coarse_fine without coarse tokens is `fine_only`."""
    return "fine_only" if strategy == "coarse_fine" and int(coarse_tokens) == 0 else strategy


def _tasks(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(json.loads(value)) if value.startswith("[") else tuple(value.split("+"))
    return tuple(value)


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: mix (`all` or the single task), arm, budget (frames * tokens_per_frame), T, M,
    seed, visual_tokens (what the strategy actually fed the LM), val_loss, val_acc, val_acc_<task>,
    seconds, step_ms, n_params, strategy_params, raw_frames_read, the strategy's options and, where the
    runs have them, the content split (easy_cells, easy_items, val_acc_easy, val_acc_hard, easy_tokens,
    easy_tokens_digit_frame, easy_tokens_empty_frame: studio.design_space.content_metrics)."""
    out = pd.DataFrame(
        {
            "mix": ["all" if len(_tasks(t)) > 1 else _tasks(t)[0] for t in runs["tasks"]],
            "arm": [arm_of(s, c) for s, c in zip(runs["strategy"], runs["coarse_tokens"])],
            "budget": runs["frames"] * runs["tokens_per_frame"],
        }
    )
    cols = ["frames", "tokens_per_frame", "seed", "visual_tokens", "val_loss", "val_acc"]
    cols += [f"val_acc_{t}" for t in TASKS if f"val_acc_{t}" in runs]
    cols += ["seconds", "step_ms", "n_params", "strategy_params", "raw_frames_read"]
    cols += ["slow_frames", "slow_tokens", "motion_tokens", "coarse_tokens"]
    cols += [c for c in EASY_COLUMNS if c in runs]
    for c in cols:
        out[c] = runs[c].to_numpy()
    if (out["visual_tokens"] != out["budget"]).any():  # every strategy must spend exactly its budget
        bad = out[out["visual_tokens"] != out["budget"]][["arm", "budget", "visual_tokens"]]
        raise ValueError(f"a strategy did not spend its budget exactly:\n{bad}")
    return out.sort_values(KEYS).reset_index(drop=True)


def seed_spread(table: pd.DataFrame) -> dict[str, float]:
    """The largest range over seeds of each metric in any cell: what `studio figures --check` tolerates."""
    cols = [c for c in table.columns if c.startswith(("val_loss", "val_acc"))]
    return seed_range(table, KEYS[:-1], cols)


def metrics(table: pd.DataFrame) -> list[str]:
    return [
        "val_acc",
        *[f"val_acc_{t}" for t in TASKS if f"val_acc_{t}" in table and table[f"val_acc_{t}"].notna().any()],
    ]


def task_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Long table: per (mix, arm, budget, frames, tokens_per_frame) and metric (val_acc, val_acc_<task>),
    the mean, min and max over seeds, the t interval (studio.stats.summarise: ci_low, ci_high; NaN with
    one seed) and n_seeds; column `task` is the metric's task (`all` for val_acc)."""
    rows = []
    group = ["mix", "arm", "budget", "frames", "tokens_per_frame"]
    for m in metrics(table):
        t = table.dropna(subset=[m])
        g = t.groupby(group)[m]
        part = summarise(t, group, m).merge(pd.DataFrame({"min": g.min(), "max": g.max()}).reset_index(), on=group)
        rows.append(part.assign(metric=m, task=m[len("val_acc_") :] if m != "val_acc" else "all"))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    cols = ["mix", "arm", "budget", "frames", "tokens_per_frame", "task", "metric", "mean", "min", "max"]
    return out[[*cols, "ci_low", "ci_high", "n_seeds"]]


def cost_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (mix, arm, budget): visual tokens, raw frames read, step time (ms, mean over seeds), training
    seconds, trainable parameters and the parameters the strategy adds over the uniform baseline's."""
    group = ["mix", "arm", "budget"]
    g = table.groupby(group)
    out = g.agg(
        visual_tokens=("visual_tokens", "first"),
        raw_frames_read=("raw_frames_read", "first"),
        step_ms=("step_ms", "mean"),
        seconds=("seconds", "mean"),
        n_params=("n_params", "first"),
        strategy_params=("strategy_params", "first"),
        val_acc=("val_acc", "mean"),
    ).reset_index()
    base = out[out["arm"] == "uniform"].set_index(["mix", "budget"])["n_params"]
    out["params_added"] = [
        r.n_params - base.get((r.mix, r.budget), np.nan) for r in out.itertuples()
    ]  # NaN where the mix has no uniform cell at that budget
    return out


def easy_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, budget) of the five-task mix: the easy videos' accuracy (mean, min, max over seeds) next to
    the hard videos' and the overall one (seed means), and the tokens spent on an easy video: in all, per
    frame read that holds a digit, per empty frame read (seed means). Empty when the runs predate the split."""
    means = [
        "easy_items",
        "val_acc_hard",
        "val_acc",
        "easy_tokens",
        "easy_tokens_digit_frame",
        "easy_tokens_empty_frame",
    ]
    group = ["arm", "budget", "frames", "tokens_per_frame"]
    cols = [*group, "mean", "min", "max", "n_seeds", *means]
    part = table[table["mix"] == "all"].dropna(subset=[EASY]) if EASY in table else table.iloc[:0]
    if part.empty:
        return pd.DataFrame(columns=cols)
    g = part.groupby(group)
    out = pd.DataFrame({"mean": g[EASY].mean(), "min": g[EASY].min(), "max": g[EASY].max(), "n_seeds": g[EASY].count()})
    out = out.join(g[means].mean()).reset_index()
    out["order"] = [ARMS.index(a) for a in out["arm"]]
    return out.sort_values(["budget", "order"])[cols].reset_index(drop=True)


def motion_curve(table: pd.DataFrame) -> pd.DataFrame:
    """The motion-only mix: per (arm, T, M) the motion accuracy (mean, min, max over seeds), sorted by
    arm, T and M: how the uniform baseline falls as M shrinks, and where the other arms sit."""
    part = table[table["mix"] == "motion"]
    if part.empty:
        return pd.DataFrame(columns=["arm", "frames", "tokens_per_frame", "budget", "mean", "min", "max", "n_seeds"])
    g = part.groupby(["arm", "frames", "tokens_per_frame", "budget"])["val_acc_motion"]
    out = pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max(), "n_seeds": g.count()}).reset_index()
    return out.sort_values(["arm", "frames", "tokens_per_frame"]).reset_index(drop=True)


def describe_runs(runs: pd.DataFrame, table: pd.DataFrame) -> str:
    """How many runs were trained now or loaded, each cell's recipe, and the training time, in sentences."""
    text = [
        f"{len(table)} runs ({runs.attrs.get('ran', '?')} trained now, {runs.attrs.get('skipped', '?')} loaded); "
        f"arms: {', '.join(a for a in ARMS if a in set(table['arm']))}; budgets T*M: "
        f"{', '.join(map(str, sorted(table['budget'].unique())))}; total training time {table['seconds'].sum():.0f} s"
    ]
    for r in runs[["steps", "batch_size", "train_videos", "width"]].drop_duplicates().itertuples():
        text.append(
            f"each cell: {r.steps} steps of {r.batch_size} videos, width {r.width}, a bank of {r.train_videos:,} "
            f"training videos ({r.steps * r.batch_size / r.train_videos:.1f} passes)"
        )
    return "\n".join(text)
