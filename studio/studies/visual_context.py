"""The visual-context study: its sweep, its tables and its verdicts (pandas only; no Lightning here).

    runs = run_cells("default")                    # the sweep experiments/sweeps/visual_context.yaml
    table = results_table(runs)                    # the published columns, one row per run
    gen = generator(runs)                          # raw_frames, needle_frames of the videos
    grid = surface(table, "val_loss")              # (T, M) pivot, mean over seeds, default strategies
    lines = budget_lines(table)                    # cells on each T*M line, best split per line
    pairs = frames_vs_tokens(table, gen=gen)       # same-budget pairs per seed, and what each pair tests
    save_verdicts(verdicts(table, gen=gen), "visual_context")

What the generator sets (module `studio.data.video`): a needle stays on screen for `needle_frames` of
`raw_frames` frames, so a uniform sample of T frames sees it in every video only from T = raw / needle on
(`needle_coverage`: T = 1 sees 8 of 32 a third of the time), and one token per frame (M = 1, a mean over
the whole frame) cannot say which digit is on the left. A same-budget pair with such a cell wins or loses
by construction: those pairs are sanity rows; the claim "more frames beat more tokens" is judged on the
pairs where both cells see every needle with at least M_SIDES tokens (`PAIR_TESTS`).

Verdicts go through studio.verdicts.judge: per-seed paired loss differences in the claimed direction (a
mean over the claim's pairs or cells per seed), gates on the arms' accuracy above chance per task and on
held-out loss below that of a uniform guess, failed seeds named and set aside.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from studio import paths
from studio.tolerance import seed_range
from studio.verdicts import (
    Verdict,
    above_chance,
    converged_gate,
    failed_at_chance,
    failed_by_loss,
    gate,
    judge,
    paired_effect,
    sanity,
    untestable,
)

PAPER = "Opt-Visor"
GENERATOR = "the video generator (studio.data.video)"  # the 'paper' of a sanity row about the generator
SWEEP = "visual_context"  # experiments/sweeps/visual_context.yaml

KEYS = ["frames", "tokens_per_frame", "token_strategy", "frame_strategy", "seed"]
DEFAULT = {"token_strategy": "mean", "frame_strategy": "uniform"}

# Competence gates (issue 26), computed from the results table.
CHANCE = 0.1  # every answer is one of ten digits
CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over ten digits: where an untrained model starts
ABOVE_CHANCE_MARGIN = 0.2  # an arm "can do" a task at chance + 0.2 or more (issue 29's gate for the video studies)
GATE_TASKS = ("retrieval", "spatial")  # the capabilities the claims need: frames find the needle, tokens place it
# The smallest loss gap that matters: 0.05 nats moves the right answer's probability by 5 % (exp(0.05) = 1.05);
# Opt-Visor gives no effect size, and a smaller gap would not change which split a practitioner picks.
LOSS_MIN_EFFECT = 0.05
M_SIDES = 4  # the smallest pooled grid (2 x 2) with a left and a right half: at M = 1 "which is left" is a guess

FAIR, COVERAGE, ONE_TOKEN, BOTH = "fair", "needle coverage", "one token per frame", "both limited"
PAIR_TESTS = {
    FAIR: "both cells see every needle and have at least M_SIDES tokens per frame: the claim's test",
    COVERAGE: "the more-tokens cell misses some needles, the more-frames cell is complete: frames win by construction",
    ONE_TOKEN: "the more-frames cell has one token per frame, the other is complete: tokens win by construction",
    BOTH: "both cells are limited by the generator, in different ways: not judged",
}


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


# ---------------------------------------------------------------------------------- what the generator sets
def generator(runs: pd.DataFrame | None = None, profile: str = "default") -> dict:
    """{raw_frames, needle_frames} of the videos: from the runs' config columns when they hold one value
    each, else from the sweep config's profile (the published results table does not carry them)."""
    keys = ("raw_frames", "needle_frames")
    if runs is not None and all(k in runs and runs[k].nunique() == 1 for k in keys):
        return {k: int(runs[k].iloc[0]) for k in keys}
    from studio.sweep.config import load_config

    base = load_config(paths.SWEEP_CONFIGS / f"{SWEEP}.yaml", profile).base
    return {k: int(base[k]) for k in keys}


def uniform_frames(T: int, raw_frames: int) -> np.ndarray:
    """The raw frames a uniform sample of T reads: the centres of T equal segments (studio.models.selection)."""
    return ((np.arange(int(T)) + 0.5) * raw_frames / int(T)).astype(int)


def needle_coverage(T: int, raw_frames: int, needle_frames: int) -> float:
    """The share of videos whose needle a uniform sample of T frames sees: the needle's start is uniform
    over the raw_frames - needle_frames + 1 positions (studio.data.video)."""
    starts = np.arange(raw_frames - needle_frames + 1)
    read = uniform_frames(min(int(T), raw_frames), raw_frames)
    seen = ((read[None, :] >= starts[:, None]) & (read[None, :] < starts[:, None] + needle_frames)).any(axis=1)
    return float(seen.mean())


def full_coverage_frames(gen: dict) -> int:
    """The fewest uniformly sampled frames that see the needle in every video (raw_frames / needle_frames
    for the default layout)."""
    return next(T for T in range(1, gen["raw_frames"] + 1) if needle_coverage(T, **gen) == 1.0)


def complete(T: int, M: int, gen: dict) -> bool:
    """A cell the generator does not limit: it sees every needle and has a left and a right half."""
    return needle_coverage(T, **gen) == 1.0 and int(M) >= M_SIDES


def pair_test(more_frames: tuple, more_tokens: tuple, gen: dict) -> str:
    """What a same-budget pair tests (PAIR_TESTS): cells as (T, M), more_frames has the larger T."""
    a, b = complete(*more_frames, gen), complete(*more_tokens, gen)
    if a and b:
        return FAIR
    if a and needle_coverage(more_tokens[0], **gen) < 1:
        return COVERAGE
    if b and int(more_frames[1]) < M_SIDES and needle_coverage(more_frames[0], **gen) == 1:
        return ONE_TOKEN
    return BOTH


def generator_sentence(table: pd.DataFrame, gen: dict) -> str:
    """What the generator implies before any model is trained: coverage and accuracy ceilings per T."""
    frames = sorted(default_cells(table)["frames"].unique()) or [1]
    cov = {int(T): needle_coverage(T, **gen) for T in frames}
    parts = ", ".join(
        f"T = {T}: {c:.2f} (retrieval at most {c + (1 - c) * CHANCE:.2f})" for T, c in cov.items() if c < 1
    )
    return (
        f"The generator: a needle stays on screen for {gen['needle_frames']} of {gen['raw_frames']} raw frames, so a "
        f"uniform sample of T frames sees it in every video from T = {full_coverage_frames(gen)} on; below that, "
        f"the share of videos whose needle it sees is {parts or 'none'} (chance {CHANCE}). One token per frame "
        "(M = 1, the mean of the whole frame) cannot say which digit is on the left (spatial at most 0.5: a guess "
        f"between the two digits). A same-budget pair with such a cell wins or loses by construction; the claim "
        f"is judged on pairs of complete cells (every needle seen, M >= {M_SIDES})."
    )


# ---------------------------------------------------------------------------------------- cell tables
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


def _per_seed(cells: pd.DataFrame, value: str) -> pd.DataFrame:
    """`value` with rows (frames, tokens_per_frame) and one column per seed (default-strategy rows)."""
    return cells.pivot_table(index=["frames", "tokens_per_frame"], columns="seed", values=value, aggfunc="mean")


def budget_lines(table: pd.DataFrame, value: str = "val_loss", min_cells: int = 3) -> pd.DataFrame:
    """Default-strategy cells on every T*M budget line holding >= min_cells cells, with the line's best.

    Columns: budget, frames, tokens_per_frame, mean, std, n_seeds, best (this cell is the line's
    minimum), interior (the line's minimum is neither its fewest- nor its most-frames cell), margin (the
    runner-up's mean minus the best's), margin_ci_low, margin_ci_high (t interval of that margin over
    seed-matched pairs: NaN with fewer than two seeds). Descriptive: the verdicts are judged elsewhere.
    """
    from studio.stats import t_interval

    cells = by_cell(default_cells(table), value)
    seeds = _per_seed(default_cells(table), value)
    rows = []
    for budget, line in cells.groupby("visual_tokens"):
        if len(line) < min_cells:
            continue
        line = line.sort_values("frames")
        ranked = line.sort_values("mean")
        best, runner_up = ranked.iloc[0], ranked.iloc[1]
        interior = best.name not in (line.index[0], line.index[-1])
        diff = (
            seeds.loc[(runner_up.frames, runner_up.tokens_per_frame)] - seeds.loc[(best.frames, best.tokens_per_frame)]
        )
        _, lo, hi = t_interval(diff.dropna().to_numpy())
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
                    "margin_ci_low": lo,
                    "margin_ci_high": hi,
                }
            )
    columns = ["budget", "frames", "tokens_per_frame", "mean", "std", "n_seeds", "best", "interior", "margin"]
    return pd.DataFrame(rows, columns=[*columns, "margin_ci_low", "margin_ci_high"])


def frames_vs_tokens(table: pd.DataFrame, value: str = "val_loss", gen: dict | None = None) -> pd.DataFrame:
    """Every pair of default-strategy cells on the same budget line (T*M equal), per seed.

    Columns: budget, more_frames (T, M), more_tokens (T, M), test (what the pair tests: PAIR_TESTS),
    seed, loss_more_frames, loss_more_tokens, difference (loss_more_tokens - loss_more_frames: > 0 when
    more frames won, the direction Opt-Visor claims). `gen`: generator(); None reads the sweep config.
    """
    gen = gen or generator()
    cells = default_cells(table)
    seeds = _per_seed(cells, value)
    line_of = by_cell(cells, value)
    rows = []
    for budget, line in line_of.groupby("visual_tokens"):
        line = line.sort_values("frames").to_dict("records")
        for i, a in enumerate(line):
            for b in line[i + 1 :]:  # b has more frames, fewer tokens per frame
                fr, tk = (int(b["frames"]), int(b["tokens_per_frame"])), (int(a["frames"]), int(a["tokens_per_frame"]))
                test = pair_test(fr, tk, gen)
                for seed in seeds.columns:
                    lf, lt = seeds.loc[fr, seed], seeds.loc[tk, seed]
                    if np.isfinite(lf) and np.isfinite(lt):
                        rows.append(
                            {
                                "budget": int(budget),
                                "more_frames": fr,
                                "more_tokens": tk,
                                "test": test,
                                "seed": seed,
                                "loss_more_frames": float(lf),
                                "loss_more_tokens": float(lt),
                                "difference": float(lt - lf),
                            }
                        )
    columns = ["budget", "more_frames", "more_tokens", "test", "seed", "loss_more_frames", "loss_more_tokens"]
    return pd.DataFrame(rows, columns=[*columns, "difference"])


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


def split_sentence(lines: pd.DataFrame) -> str:
    """The best split on each budget line, its margin over the runner-up with the margin's interval."""
    if lines.empty:
        return ""
    inner = lines.drop_duplicates("budget")
    best = lines[lines["best"]]
    desc = "; ".join(
        f"T*M={r.budget}: best (T, M)=({r.frames}, {r.tokens_per_frame}), ahead of the next cell by {r.margin:.3f}"
        + (
            f" [{r.margin_ci_low:+.3f}, {r.margin_ci_high:+.3f}] over {r.n_seeds} seeds"
            if np.isfinite(r.margin_ci_low)
            else " (one seed: no interval)"
        )
        for r in best.itertuples()
    )
    n_int = int(inner["interior"].sum())
    return f"Best split per budget line: {desc}. {n_int} of {len(inner)} lines have an interior optimum."


# -------------------------------------------------------------------------------------------- gates
def _cells_rows(table: pd.DataFrame, cells) -> pd.DataFrame:
    """Default-strategy rows of the (T, M) cells in `cells`."""
    t = default_cells(table)
    keys = set(cells)
    return t[[(int(T), int(M)) in keys for T, M in zip(t["frames"], t["tokens_per_frame"])]]


def failed_seeds(rows: pd.DataFrame, tasks=GATE_TASKS, value: str = "val_loss") -> list:
    """Seeds that did not train on these rows (a NaN or a held-out loss not below FAILED_LOSS_SHARE of
    ln 10, a uniform guess, in any of their cells) or stayed at chance on a task while others did not."""
    worst = rows.groupby("seed")[value].agg(lambda v: v.max(skipna=False))  # a NaN run fails its seed
    out = set(failed_by_loss({s: CHANCE_LOSS for s in worst.index}, worst.to_dict()))
    for task in tasks:
        col = f"val_acc_{task}"
        if col in rows:
            low = rows.groupby("seed")[col].min().to_dict()
            out |= set(failed_at_chance(low, CHANCE, ABOVE_CHANCE_MARGIN))
    return sorted(out)


def competence_gates(rows: pd.DataFrame, what: str, tasks=GATE_TASKS, value: str = "val_loss") -> list:
    """The gates of a claim on these rows (failed seeds already set aside): each task's accuracy above chance
    in every cell (the lowest cell mean), and every run's held-out loss below FAILED_LOSS_SHARE x ln 10."""
    gates = []
    for task in tasks:
        col = f"val_acc_{task}"
        acc = rows.groupby(["frames", "tokens_per_frame"])[col].mean().min() if col in rows and len(rows) else math.nan
        gates.append(above_chance(f"{task} accuracy of {what}, lowest cell", acc, CHANCE, ABOVE_CHANCE_MARGIN))
    losses = rows[value].to_numpy(float) if len(rows) else np.array([math.nan])
    gates.append(
        converged_gate(
            f"held-out loss of {what} against ln 10 (a uniform guess)", np.full(len(losses), CHANCE_LOSS), losses
        )
    )
    return gates


def _fmt_cell(c) -> str:
    return f"({c[0]}, {c[1]})"


# ----------------------------------------------------------------------------------------- verdicts
FRAMES_CLAIM = "At a fixed visual-token budget T*M, more frames beat more tokens per frame"


def verdict_frames(table: pd.DataFrame, gen: dict | None = None, value: str = "val_loss") -> list[Verdict]:
    """Opt-Visor's 'at a fixed T*M, more frames beat more tokens per frame', judged on the fair pairs.

    The claim: per seed, the mean over fair pairs (PAIR_TESTS) of loss(more tokens) - loss(more frames),
    through judge with LOSS_MIN_EFFECT, gated on every fair cell's retrieval and spatial accuracy above
    chance and held-out loss below ln 10's share. Two sanity rows: the needle-coverage pairs (frames win
    by construction) and the one-token pairs (tokens win by construction), each in its own direction.
    """
    gen = gen or generator()
    pairs = frames_vs_tokens(table, value, gen)
    out = [_pairs_verdict(table, pairs[pairs["test"] == FAIR], FRAMES_CLAIM, PAPER, +1, "fair pairs", gen, value)]
    out.append(
        _pairs_verdict(
            table,
            pairs[pairs["test"] == COVERAGE],
            "More frames beat more tokens when the more-tokens cell misses some needles (T < "
            f"{full_coverage_frames(gen)}: a needle lasts {gen['needle_frames']} of {gen['raw_frames']} frames)",
            GENERATOR,
            +1,
            "needle-coverage pairs",
            gen,
            value,
            kind="sanity",
        )
    )
    out.append(
        _pairs_verdict(
            table,
            pairs[pairs["test"] == ONE_TOKEN],
            "More tokens beat more frames when the more-frames cell has one token per frame (no left or right)",
            GENERATOR,
            -1,
            "one-token pairs",
            gen,
            value,
            kind="sanity",
        )
    )
    return out


def _pairs_verdict(table, pairs, claim, paper, sign, what, gen, value, kind="claim") -> Verdict:
    """One verdict on a set of same-budget pairs: the per-seed mean of sign x difference."""
    make = sanity if kind == "sanity" else judge
    if pairs.empty:
        return untestable(
            claim,
            paper,
            [gate(f"same-budget {what} in the grid", 0, 0)],
            f"No budget line of this grid holds {what} ({PAIR_TESTS[_test_of(what)]}).",
            kind=kind,
        )
    cells = sorted({c for p in pairs[["more_frames", "more_tokens"]].itertuples(index=False) for c in p})
    # the cells that must be able to do the tasks: every cell for the claim, the complete ones for a sanity row
    gated = cells if kind == "claim" else sorted({c for c in cells if complete(*c, gen)})
    rows = _cells_rows(table, gated)
    failed = failed_seeds(rows, value=value)
    kept = rows[~rows["seed"].isin(failed)]
    gates = competence_gates(kept, f"the {'cells' if kind == 'claim' else 'complete cells'} of the {what}", value=value)
    per_seed = (sign * pairs.groupby("seed")["difference"].mean()).to_dict()
    effect = paired_effect(per_seed, exclude=failed)
    shown = pairs.groupby(["budget", "more_frames", "more_tokens"], sort=True)[["loss_more_frames", "loss_more_tokens"]]
    desc = "; ".join(
        f"T*M={b}: {_fmt_cell(f)} {g['loss_more_frames'].mean():.3f} vs {_fmt_cell(t)} {g['loss_more_tokens'].mean():.3f}"
        for (b, f, t), g in shown
    )
    evidence = (
        f"Held-out loss, more frames vs more tokens, mean of seeds: {desc}. Effect: per seed, the mean over "
        f"these {shown.ngroups} pair(s) of loss({'more tokens' if sign > 0 else 'more frames'}) - "
        f"loss({'more frames' if sign > 0 else 'more tokens'})."
    )
    n_total = int(rows["seed"].nunique())
    return make(
        claim,
        paper,
        effect,
        min_effect=LOSS_MIN_EFFECT,
        evidence=evidence,
        gates=gates,
        failed_seeds=failed,
        n_total_seeds=n_total,
    )


def _test_of(what: str) -> str:
    return {"fair pairs": FAIR, "needle-coverage pairs": COVERAGE, "one-token pairs": ONE_TOKEN}.get(what, BOTH)


POOLING_CLAIM = "Mean pooling of patches beats uniform sampling of patches at equal token count"


def verdict_pooling(table: pd.DataFrame, a: str = "mean", b: str = "sample", value: str = "val_loss") -> Verdict:
    """Opt-Visor's choice of mean pooling (`a`) over uniform sampling (`b`) of patches, seed-matched.

    Effect: per seed, the mean over the cells measured with both of loss(b) - loss(a) (> 0 favours
    pooling), through judge with LOSS_MIN_EFFECT. Gates: the pooled arm above chance on each task (the
    capability exists at that cell) and both arms' held-out loss below ln 10's share (both trained).
    """
    contrast = strategy_contrast(table, "token_strategy", a, b, value)
    if contrast.empty:
        return untestable(
            POOLING_CLAIM,
            PAPER,
            [gate(f"cells measured with both {a} and {b}", 0, 0)],
            f"No cell was measured with both {a} and {b}: the comparison cannot be made from this sweep.",
        )
    cells = set(zip(contrast["frames"], contrast["tokens_per_frame"]))
    other = table[table["frame_strategy"] == DEFAULT["frame_strategy"]]
    in_cells = [(int(T), int(M)) in cells for T, M in zip(other["frames"], other["tokens_per_frame"])]
    arms = other[in_cells]
    pooled, sampled = arms[arms["token_strategy"] == a], arms[arms["token_strategy"] == b]
    failed = sorted(set(failed_seeds(pooled, value=value)) | set(failed_seeds(sampled, tasks=(), value=value)))
    keep = ~arms["seed"].isin(failed)
    gates = competence_gates(pooled[keep[pooled.index]], f"the {a}-pooling arm", value=value)
    gates += competence_gates(sampled[keep[sampled.index]], f"the {b} arm", tasks=(), value=value)
    gaps = contrast[f"{value}_{b}"] - contrast[f"{value}_{a}"]
    effect = paired_effect(gaps.groupby(contrast["seed"]).mean().to_dict(), exclude=failed)
    cells_text = ", ".join(f"(T, M) = ({T}, {M})" for T, M in sorted(cells))
    evidence = (
        f"At {cells_text}: held-out loss with {a} pooling {contrast[f'{value}_{a}'].mean():.3f}, with {b} "
        f"{contrast[f'{value}_{b}'].mean():.3f} (mean of {contrast['seed'].nunique()} seeds). Effect: per seed, "
        f"loss({b}) - loss({a}), averaged over cells."
    )
    return judge(
        POOLING_CLAIM,
        PAPER,
        effect,
        min_effect=LOSS_MIN_EFFECT,
        evidence=evidence,
        gates=gates,
        failed_seeds=failed,
        n_total_seeds=int(arms["seed"].nunique()),
    )


def verdicts(table: pd.DataFrame, gen: dict | None = None, value: str = "val_loss") -> list[Verdict]:
    """The study's verdicts from its results table (what the notebook publishes): the two claims first,
    then the sanity rows. `gen`: generator(runs); None reads the sweep config."""
    frames = verdict_frames(table, gen, value)
    return [frames[0], verdict_pooling(table, value=value), *frames[1:]]


# ---------------------------------------------------------------------------------------- the fitted law
def measured_budgets(table: pd.DataFrame) -> tuple[float, float]:
    """The smallest and largest T*M among the default-strategy cells: the fitted law's measured range."""
    cells = default_cells(table)
    tokens = cells["frames"] * cells["tokens_per_frame"] if len(cells) else pd.Series([math.nan])
    return float(tokens.min()), float(tokens.max())


def law_curves(fitted, table: pd.DataFrame, n: int = 60) -> pd.DataFrame:
    """The fitted law's loss against T for each measured M, over the measured T range of the grid.

    Columns: tokens_per_frame, frames, pred, measured (T inside the range measured at that M: the
    figure draws the rest dashed, as extrapolation)."""
    cells = default_cells(table)
    Ts = np.geomspace(cells["frames"].min(), cells["frames"].max(), n)
    parts = []
    for M, g in cells.groupby("tokens_per_frame"):
        inside = (Ts >= g["frames"].min() * (1 - 1e-9)) & (Ts <= g["frames"].max() * (1 + 1e-9))
        pred = fitted.predict({"frames": Ts, "tokens_per_frame": np.full_like(Ts, M)})
        parts.append(pd.DataFrame({"tokens_per_frame": M, "frames": Ts, "pred": pred, "measured": inside}))
    return pd.concat(parts, ignore_index=True)


def frontier_extrapolated(frontier: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """Budgets of a frontier outside the measured T*M (measured_budgets): drawn dashed."""
    lo, hi = measured_budgets(table)
    return (frontier["budget"] < lo * (1 - 1e-9)) | (frontier["budget"] > hi * (1 + 1e-9))


def fit_sentence(frontier: pd.DataFrame, law: str, table: pd.DataFrame | None = None) -> str:
    """Where the fitted law puts the optimal T at each budget, against a square split T = M; budgets
    beyond the measured T*M are named as extrapolation when `table` is given."""
    share = frontier["frames_opt"] / np.sqrt(frontier["budget"])
    above = int((share > 1).sum())
    text = (
        f"The fitted {law} law puts the optimum at T* = "
        + ", ".join(f"{t:.1f} (T*M = {b:.0f})" for t, b in zip(frontier["frames_opt"], frontier["budget"]))
        + f"; it spends more of the budget on frames than a square split (T = M) at {above} of {len(share)} budgets"
        + (", at the edge of the allowed range for some budgets." if frontier["at_boundary"].any() else ".")
    )
    if table is not None:
        lo, hi = measured_budgets(table)
        beyond = [int(b) for b in frontier["budget"] if not lo <= b <= hi]
        if beyond:
            text += f" Budgets {beyond} lie outside the measured T*M ({lo:g}-{hi:g}): extrapolation."
    return text


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
DERIVED = (
    "mean",
    "std",
    "min",
    "max",
    "default",
    "other",
    "margin",
    "margin_ci_low",
    "margin_ci_high",
    "runner_up",
    "loss_more_frames",
    "loss_more_tokens",
    "difference",
)


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
