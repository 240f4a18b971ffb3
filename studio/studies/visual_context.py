"""Analysis of the visual-context sweep (pandas only; knows nothing of Lightning or the sweep engine).

    table = results_table(run_sweep(...))          # the published columns, one row per run
    grid = surface(table, "val_loss")              # (T, M) pivot, mean over seeds, default strategies
    lines = budget_lines(table)                    # cells on each T*M line, best split per line
    frames = frames_vs_tokens(table)               # does the cell with more frames win on a budget line?
    pooling = strategy_contrast(table, "token_strategy", "mean", "sample")
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

KEYS = ["frames", "tokens_per_frame", "token_strategy", "frame_strategy", "seed"]
DEFAULT = {"token_strategy": "mean", "frame_strategy": "uniform"}


def task_names(df: pd.DataFrame) -> list[str]:
    return [c[len("val_acc_"):] for c in df.columns if c.startswith("val_acc_")]


def results_table(df: pd.DataFrame) -> pd.DataFrame:
    """The published table: keys, val_loss, val_acc, per-task acc and loss, train_time_s, visual_tokens."""
    tasks = task_names(df)
    cols = KEYS + ["val_loss", "val_acc"] + [f"val_acc_{t}" for t in tasks] + \
        [f"val_loss_{t}" for t in tasks if f"val_loss_{t}" in df] + ["train_time_s"]
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
        resolved = bool(min(best["n_seeds"], runner_up["n_seeds"]) >= 2 and best["max"] < runner_up["min"]
                        and runner_up["mean"] - best["mean"] > spread)
        for i, r in line.iterrows():
            rows.append({"budget": int(budget), "frames": int(r.frames), "tokens_per_frame": int(r.tokens_per_frame),
                         "mean": r["mean"], "std": r["std"], "n_seeds": int(r.n_seeds), "best": i == best.name,
                         "interior": bool(interior), "margin": float(runner_up["mean"] - best["mean"]),
                         "resolved": resolved})
    return pd.DataFrame(rows, columns=["budget", "frames", "tokens_per_frame", "mean", "std", "n_seeds", "best",
                                       "interior", "margin", "resolved"])


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
            for b in line[i + 1:]:  # b has more frames, fewer tokens per frame
                rows.append({"budget": int(budget), "more_frames": (b["frames"], b["tokens_per_frame"]),
                             "more_tokens": (a["frames"], a["tokens_per_frame"]),
                             "loss_more_frames": b["mean"], "loss_more_tokens": a["mean"],
                             "frames_won": bool(b["mean"] < a["mean"])})
    return pd.DataFrame(rows, columns=["budget", "more_frames", "more_tokens", "loss_more_frames",
                                       "loss_more_tokens", "frames_won"])


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


def verdict_frames(pairs: pd.DataFrame, lines: pd.DataFrame) -> str:
    """One sentence, computed from the data, on Opt-Visor's 'more frames beat more tokens per frame'."""
    if pairs.empty:
        return "No budget line holds two cells: the frames-vs-tokens question cannot be answered from this sweep."
    won, n = int(pairs["frames_won"].sum()), len(pairs)
    agree = won > n / 2
    text = (f"On {won} of {n} same-budget pairs the cell with more frames (and fewer tokens per frame) had the "
            f"lower held-out loss: this {'agrees' if agree else 'does not agree'} with Opt-Visor's finding that "
            f"frames are worth more than tokens per frame.")
    if not lines.empty:
        inner = lines.drop_duplicates("budget")
        best = lines[lines["best"]]
        desc = "; ".join(f"T*M={r.budget}: best (T, M)=({r.frames}, {r.tokens_per_frame}), ahead of the next cell by "
                         f"{r.margin:.3f}{'' if r.resolved else (', inside the seed spread (a tie)' if r.n_seeds > 1 else ' (one seed: a tie cannot be ruled out)')}"
                         for r in best.itertuples())
        n_int = int(inner["interior"].sum())
        n_clear = int((inner["interior"] & inner["resolved"]).sum())
        text += (f" Best split per budget line: {desc}. {n_int} of {len(inner)} lines have an interior optimum"
                 f"{' (neither all frames nor all tokens)' if n_int else ''}"
                 f"{f', {n_clear} of them clear of the seed spread' if n_int else ''}.")
    return text


def verdict_pooling(contrast: pd.DataFrame, a: str = "mean", b: str = "sample") -> str:
    if contrast.empty:
        return f"No cell was measured with both {a} and {b}: the comparison cannot be made from this sweep."
    won, n = int(contrast["a_better"].sum()), len(contrast)
    gap = float((contrast.iloc[:, 4] - contrast.iloc[:, 3]).mean())
    return (f"Mean pooling beat uniform sampling of patches in {won} of {n} seed-matched cells (mean loss gap "
            f"{gap:+.3f} in favour of {'pooling' if gap > 0 else 'sampling'}): this "
            f"{'agrees' if won > n / 2 else 'does not agree'} with Opt-Visor's choice of mean pooling.")


ALTERNATIVES = {"token_strategy": ("mean", ("sample", "attention")), "frame_strategy": ("uniform", ("mean", "keyframes"))}


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
                rows.append({"comparison": f"{key}: {b}", "frames": r[0], "tokens_per_frame": r[1], "seed": r[2],
                             "default": r[3], "other": r[4], "default_better": bool(r[3] < r[4])})
    return pd.DataFrame(rows, columns=["comparison", "frames", "tokens_per_frame", "seed", "default", "other",
                                       "default_better"])
