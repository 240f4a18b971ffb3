"""The visual-context study: its sweep, its tables and its verdicts (pandas only; no Lightning here).

    runs = run_cells("default")                    # the sweep experiments/sweeps/visual_context.yaml
    table = results_table(runs)                    # the published columns, one row per run
    grid = surface(table, "val_loss")              # (T, M) pivot, mean over seeds, default strategies
    lines = budget_lines(table)                    # cells on each T*M line, best split per line
    pairs = frames_vs_tokens(table)                # does the cell with more frames win on a budget line?
    pooling = strategy_contrast(table, "token_strategy", "mean", "sample")
    save_verdicts([verdict_frames(pairs, lines), verdict_pooling(pooling)], "visual_context")

A verdict is "reproduced" when most comparisons go Opt-Visor's way (more than MAJORITY of them), and
a tie when the difference it rests on is inside the seed spread (or there are fewer than MIN_SEEDS
seeds to measure a spread with).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from studio import paths
from studio.tolerance import seed_range
from studio.verdicts import Verdict, verdict

PAPER = "Opt-Visor"
SWEEP = "visual_context"  # experiments/sweeps/visual_context.yaml
MAJORITY = 0.5  # share of comparisons that must favour the claim for it to hold
MIN_SEEDS = 2  # fewer seeds than this: no spread to compare with, so never resolved

KEYS = ["frames", "tokens_per_frame", "token_strategy", "frame_strategy", "seed"]
DEFAULT = {"token_strategy": "mean", "frame_strategy": "uniform"}


def task_names(df: pd.DataFrame) -> list[str]:
    return [c[len("val_acc_") :] for c in df.columns if c.startswith("val_acc_")]


def run_cells(
    profile: str = "default", launcher: str = "local", workers: int | None = None, progress: bool = True
) -> pd.DataFrame:
    """The sweep's results (studio.sweep.run_sweep): trains only the cells not already cached."""
    from studio.sweep import run_sweep

    return run_sweep(
        paths.SWEEP_CONFIGS / f"{SWEEP}.yaml", profile=profile, launcher=launcher, progress=progress, workers=workers
    )


def describe_runs(runs: pd.DataFrame, table: pd.DataFrame) -> str:
    """How many runs were trained now or loaded, and each cell's training budget, in sentences."""
    tasks = task_names(table)
    text = [
        f"{len(table)} runs ({runs.attrs.get('ran', '?')} trained now, {runs.attrs.get('skipped', '?')} "
        f"loaded); tasks: {', '.join(tasks)}; total training time {table['seconds'].sum():.0f} s"
    ]
    for r in runs[["steps", "batch_size", "train_videos"]].drop_duplicates().itertuples():
        text.append(
            f"each cell: {r.steps} steps of {r.batch_size} videos = {r.steps * r.batch_size:,} training "
            f"videos seen ({r.steps * r.batch_size / r.train_videos:.1f} passes over a bank of "
            f"{r.train_videos:,})"
        )
    return "\n".join(text)


def results_table(df: pd.DataFrame) -> pd.DataFrame:
    """The published table: keys, val_loss, val_acc, per-task acc and loss, seconds, visual_tokens."""
    tasks = task_names(df)
    cols = (
        KEYS
        + ["val_loss", "val_acc"]
        + [f"val_acc_{t}" for t in tasks]
        + [f"val_loss_{t}" for t in tasks if f"val_loss_{t}" in df]
        + ["seconds"]
    )
    out = df[cols].copy()
    out["visual_tokens"] = out["frames"] * out["tokens_per_frame"]
    if "tasks" in df:
        out["tasks"] = ["+".join(json.loads(t)) if isinstance(t, str) and t.startswith("[") else t for t in df["tasks"]]
    return out.sort_values(KEYS).reset_index(drop=True)


def default_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with the default strategies (mean pooling of patches, uniform frames): the (T, M) surface."""
    mask = np.ones(len(table), bool)
    for k, v in DEFAULT.items():
        mask &= (table[k] == v).to_numpy()
    return table[mask]


def surface(table: pd.DataFrame, value: str = "val_loss") -> pd.DataFrame:
    """Pivot (rows T, columns M) of `value` averaged over seeds, default strategies only."""
    return default_cells(table).pivot_table(index="frames", columns="tokens_per_frame", values=value, aggfunc="mean")


def by_cell(table: pd.DataFrame, value: str = "val_loss") -> pd.DataFrame:
    """Mean, std, min, max and number of seeds of `value` per (T, M, strategies) cell."""
    g = table.groupby(KEYS[:-1], as_index=False)[value]
    out = g.agg(mean="mean", std="std", min="min", max="max", n_seeds="count")
    out["visual_tokens"] = out["frames"] * out["tokens_per_frame"]
    return out


def budget_lines(table: pd.DataFrame, value: str = "val_loss", min_cells: int = 3) -> pd.DataFrame:
    """Default-strategy cells on every T*M budget line holding >= min_cells cells, with the line's best.

    Columns: budget, frames, tokens_per_frame, mean, std, n_seeds, best (this cell is the line's
    minimum), interior (the line's minimum is neither its fewest- nor its most-frames cell), margin (the
    runner-up's mean minus the best's), resolved (every seed of the best cell beat every seed of the
    runner-up, and by more than either cell's own spread over seeds: with two or three seeds, disjoint
    ranges alone happen by chance too often to call a split better rather than a tie).
    """
    cells = by_cell(default_cells(table), value)
    rows = []
    for budget, line in cells.groupby("visual_tokens"):
        if len(line) < min_cells:
            continue
        line = line.sort_values("frames")
        ranked = line.sort_values("mean")
        best, runner_up = ranked.iloc[0], ranked.iloc[1]
        interior = best.name not in (line.index[0], line.index[-1])
        spread = max(best["max"] - best["min"], runner_up["max"] - runner_up["min"])
        # one seed has no spread to compare with: never call that resolved
        resolved = bool(
            min(best["n_seeds"], runner_up["n_seeds"]) >= 2
            and best["max"] < runner_up["min"]
            and runner_up["mean"] - best["mean"] > spread
        )
        for i, r in line.iterrows():
            rows.append(
                {
                    "budget": int(budget),
                    "frames": int(r.frames),
                    "tokens_per_frame": int(r.tokens_per_frame),
                    "mean": r["mean"],
                    "std": r["std"],
                    "n_seeds": int(r.n_seeds),
                    "best": i == best.name,
                    "interior": bool(interior),
                    "margin": float(runner_up["mean"] - best["mean"]),
                    "resolved": resolved,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "budget",
            "frames",
            "tokens_per_frame",
            "mean",
            "std",
            "n_seeds",
            "best",
            "interior",
            "margin",
            "resolved",
        ],
    )


def frames_vs_tokens(table: pd.DataFrame, value: str = "val_loss") -> pd.DataFrame:
    """Every pair of default-strategy cells on the same budget line (T*M equal): did more frames win?

    Columns: budget, more_frames (T, M), more_tokens (T, M), loss of each, frames_won (bool).
    Opt-Visor's finding predicts frames_won for most pairs.
    """
    cells = by_cell(default_cells(table), value)
    rows = []
    for budget, line in cells.groupby("visual_tokens"):
        line = line.sort_values("frames").to_dict("records")
        for i, a in enumerate(line):
            for b in line[i + 1 :]:  # b has more frames, fewer tokens per frame
                rows.append(
                    {
                        "budget": int(budget),
                        "more_frames": (b["frames"], b["tokens_per_frame"]),
                        "more_tokens": (a["frames"], a["tokens_per_frame"]),
                        "loss_more_frames": b["mean"],
                        "loss_more_tokens": a["mean"],
                        "frames_won": bool(b["mean"] < a["mean"]),
                    }
                )
    return pd.DataFrame(
        rows, columns=["budget", "more_frames", "more_tokens", "loss_more_frames", "loss_more_tokens", "frames_won"]
    )


def strategy_contrast(table: pd.DataFrame, key: str, a: str, b: str, value: str = "val_loss") -> pd.DataFrame:
    """Cells measured with both strategies `a` and `b` of `key` (other strategy at its default), seed-matched.

    Columns: frames, tokens_per_frame, seed, <value>_<a>, <value>_<b>, a_better (lower loss with a).
    """
    other = [k for k in DEFAULT if k != key][0]
    t = table[table[other] == DEFAULT[other]]
    left = t[t[key] == a][["frames", "tokens_per_frame", "seed", value]]
    right = t[t[key] == b][["frames", "tokens_per_frame", "seed", value]]
    m = left.merge(right, on=["frames", "tokens_per_frame", "seed"], suffixes=(f"_{a}", f"_{b}"))
    m["a_better"] = m[f"{value}_{a}"] < m[f"{value}_{b}"]
    return m


def _split_sentence(lines: pd.DataFrame) -> str:
    """The best split on each budget line and how many lines have a (resolved) interior optimum."""
    if lines.empty:
        return ""
    inner = lines.drop_duplicates("budget")
    best = lines[lines["best"]]
    desc = "; ".join(
        f"T*M={r.budget}: best (T, M)=({r.frames}, {r.tokens_per_frame}), ahead of the next cell by {r.margin:.3f}"
        + (
            ""
            if r.resolved
            else (
                ", inside the seed spread (a tie)"
                if r.n_seeds >= MIN_SEEDS
                else " (one seed: a tie cannot be ruled out)"
            )
        )
        for r in best.itertuples()
    )
    n_int = int(inner["interior"].sum())
    n_clear = int((inner["interior"] & inner["resolved"]).sum())
    return (
        f" Best split per budget line: {desc}. {n_int} of {len(inner)} lines have an interior optimum"
        f"{' (neither all frames nor all tokens)' if n_int else ''}"
        f"{f', {n_clear} of them clear of the seed spread' if n_int else ''}."
    )


def verdict_frames(
    pairs: pd.DataFrame, lines: pd.DataFrame, table: pd.DataFrame | None = None, value: str = "val_loss"
) -> Verdict:
    """Opt-Visor's 'at a fixed T*M, more frames beat more tokens per frame', from same-budget pairs.

    Holds when the cell with more frames has the lower mean loss on more than MAJORITY of the pairs.
    A tie when no budget line's best split is resolved beyond its seed spread (budget_lines' `resolved`):
    then which split wins is not measured, whatever the majority says.
    value: the share of pairs won by more frames; spread: the largest seed range (max - min) of the
    cells in the pairs, when `table` is given.
    """
    claim = "At a fixed visual-token budget T*M, more frames beat more tokens per frame"
    if pairs.empty:
        return verdict(
            claim,
            PAPER,
            False,
            "No budget line holds two cells: the question cannot be answered from this sweep.",
            tie=True,
        )
    won, n = int(pairs["frames_won"].sum()), len(pairs)
    agree = won > MAJORITY * n
    resolved = bool(not lines.empty and lines["resolved"].any())
    spread = None
    if table is not None:
        cells = by_cell(default_cells(table), value)
        spread = float((cells["max"] - cells["min"]).max())
    evidence = (
        f"On {won} of {n} same-budget pairs the cell with more frames (and fewer tokens per frame) had "
        f"the lower held-out loss: this {'agrees' if agree else 'does not agree'} with {PAPER}'s finding "
        f"that frames are worth more than tokens per frame."
        + _split_sentence(lines)
        + ("" if resolved else " No line's best split is clear of the seed spread: a tie.")
    )
    return verdict(claim, PAPER, agree, evidence, tie=not resolved or won == MAJORITY * n, value=won / n, spread=spread)


def verdict_pooling(contrast: pd.DataFrame, a: str = "mean", b: str = "sample") -> Verdict:
    """Opt-Visor's choice of mean pooling over uniform sampling of patches, from seed-matched cells.

    Holds when `a` has the lower loss in more than MAJORITY of the cells. A tie when the mean loss gap
    is inside its spread over seed-matched cells (max - min of the gaps), or with fewer than MIN_SEEDS
    cells. value: the mean gap (loss with b - loss with a; > 0 favours a); spread: the gaps' range.
    """
    claim = "Mean pooling of patches beats uniform sampling of patches at equal token count"
    if contrast.empty:
        return verdict(
            claim,
            PAPER,
            False,
            f"No cell was measured with both {a} and {b}: the comparison cannot be made from this sweep.",
            tie=True,
        )
    won, n = int(contrast["a_better"].sum()), len(contrast)
    gaps = contrast.iloc[:, 4] - contrast.iloc[:, 3]
    gap, spread = float(gaps.mean()), float(gaps.max() - gaps.min())
    tie = n < MIN_SEEDS or abs(gap) <= spread or won == MAJORITY * n
    evidence = (
        f"Mean pooling beat uniform sampling of patches in {won} of {n} seed-matched cells (mean loss gap "
        f"{gap:+.3f} in favour of {'pooling' if gap > 0 else 'sampling'}, spread {spread:.3f}): this "
        f"{'agrees' if won > MAJORITY * n else 'does not agree'} with {PAPER}'s choice of mean pooling."
    )
    return verdict(claim, PAPER, won > MAJORITY * n, evidence, tie=tie, value=gap, spread=spread)


def verdicts(table: pd.DataFrame, min_line_cells: int = 3) -> list[Verdict]:
    """The study's verdicts from its results table (what the notebook publishes)."""
    lines = budget_lines(table, min_cells=min_line_cells)
    return [
        verdict_frames(frames_vs_tokens(table), lines, table),
        verdict_pooling(strategy_contrast(table, "token_strategy", "mean", "sample")),
    ]


def fit_sentence(frontier: pd.DataFrame, law: str) -> str:
    """Where the fitted law puts the optimal T at each budget, against a square split T = M."""
    share = frontier["frames_opt"] / np.sqrt(frontier["budget"])
    return (
        f"The fitted {law} law puts the optimum at T* = "
        + ", ".join(f"{t:.1f} (T*M = {b:.0f})" for t, b in zip(frontier["frames_opt"], frontier["budget"]))
        + f"; it spends {'more' if (share > 1).mean() > MAJORITY else 'less'} of the budget on frames than a "
        f"square split (T = M) at {int((share > 1).sum())} of {len(share)} budgets"
        + (", at the edge of the allowed range for some budgets." if frontier["at_boundary"].any() else ".")
    )


ALTERNATIVES = {
    "token_strategy": ("mean", ("sample", "attention")),
    "frame_strategy": ("uniform", ("mean", "keyframes")),
}


def all_contrasts(table: pd.DataFrame, value: str = "val_loss") -> pd.DataFrame:
    """Every alternative strategy against the default at the same (T, M, seed), one row per pair.

    Columns: comparison ("token_strategy: sample", ...), frames, tokens_per_frame, seed, default, other,
    default_better.
    """
    rows = []
    for key, (a, others) in ALTERNATIVES.items():
        for b in others:
            c = strategy_contrast(table, key, a, b, value)
            for r in c.itertuples(index=False):
                rows.append(
                    {
                        "comparison": f"{key}: {b}",
                        "frames": r[0],
                        "tokens_per_frame": r[1],
                        "seed": r[2],
                        "default": r[3],
                        "other": r[4],
                        "default_better": bool(r[3] < r[4]),
                    }
                )
    return pd.DataFrame(
        rows, columns=["comparison", "frames", "tokens_per_frame", "seed", "default", "other", "default_better"]
    )


# Columns of derived tables that carry a `value` (val_loss by default): mean/std/range over seeds, and the
# two sides of a strategy contrast.
DERIVED = ("mean", "std", "min", "max", "default", "other", "margin", "runner_up")


def seed_spread(table: pd.DataFrame) -> dict[str, float]:
    """The largest range over seeds of each metric in any cell: how much a rerun can move a number
    without anything having changed (the tolerance `studio figures --check` allows)."""
    cols = [c for c in table.columns if c.startswith(("val_loss", "val_acc"))]
    return seed_range(table, KEYS[:-1], cols)


def tolerance(data: pd.DataFrame, spread: dict[str, float], value: str = "val_loss") -> dict[str, float]:
    """`spread` for the metric columns of `data`, and the spread of `value` for its derived columns."""
    out = {c: spread[c] for c in data.columns if c in spread}
    if value in spread:
        out.update({c: spread[value] for c in data.columns if c in DERIVED and pd.api.types.is_numeric_dtype(data[c])})
    return out
