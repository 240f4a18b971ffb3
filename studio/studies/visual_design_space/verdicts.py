"""The design-space verdicts, one per seed claim, with their thresholds (computed from the results table of
studio.studies.visual_design_space: columns mix, arm, budget, seed, val_acc, val_acc_<task>).

A comparison is of seed means at one budget; it counts as a win (or a loss) only when the difference
clears the larger seed range (max - min over seeds) of the two arms; otherwise it is a tie. Fewer than
MIN_SEEDS seeds: no range to compare with, so every comparison is a tie.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.verdicts import Verdict, verdict

EMA, MAVEN, KIMI = "EMA / MotionBench", "MaVEn", "Kimi-VL"
MIN_SEEDS = 2
MULTI_OBJECT = ("spatial", "ordering")  # questions about two digits at once (MaVEn's multi-image reasoning)
TOKEN_RATIO = 4  # Kimi-VL: native resolution at budget b against fixed M at TOKEN_RATIO * b


def _score(table: pd.DataFrame, tasks) -> pd.Series:
    """Per row, the mean accuracy over `tasks` (val_acc when tasks is None)."""
    if tasks is None:
        return table["val_acc"]
    return table[[f"val_acc_{t}" for t in tasks]].mean(axis=1)


def compare(table: pd.DataFrame, a: str, b: str, tasks=None, mix: str | None = None, ratio: int = 1) -> pd.DataFrame:
    """Arm a at budget x against arm b at budget ratio * x, per mix and budget where both were run.

    Columns mix, budget, budget_b, mean_a, mean_b, diff (a - b, seed means of the score: mean accuracy
    over `tasks`, or val_acc), spread (the larger seed range), n_seeds (the fewer), outcome (win / loss /
    tie for a)."""
    cols = ["mix", "budget", "budget_b", "mean_a", "mean_b", "diff", "spread", "n_seeds", "outcome"]
    if tasks is not None:
        tasks = [x for x in tasks if f"val_acc_{x}" in table]
        if not tasks:  # none of the tasks in this profile (the motion profile has no multi-object question)
            return pd.DataFrame(columns=cols)
    t = table if mix is None else table[table["mix"] == mix]
    t = t.assign(score=_score(t, tasks)).dropna(subset=["score"])
    rows = []
    for (mx, budget), ga in t[t["arm"] == a].groupby(["mix", "budget"]):
        gb = t[(t["arm"] == b) & (t["mix"] == mx) & (t["budget"] == budget * ratio)]
        if gb.empty:
            continue
        sa, sb = ga.groupby("seed")["score"].mean(), gb.groupby("seed")["score"].mean()
        diff = float(sa.mean() - sb.mean())
        spread = float(max(sa.max() - sa.min(), sb.max() - sb.min()))
        n = int(min(len(sa), len(sb)))
        outcome = "tie" if n < MIN_SEEDS or abs(diff) <= spread else ("win" if diff > 0 else "loss")
        rows.append([mx, budget, budget * ratio, sa.mean(), sb.mean(), diff, spread, n, outcome])
    return pd.DataFrame(rows, columns=cols)


def _pairs_text(c: pd.DataFrame, a: str, b: str) -> str:
    return "; ".join(
        f"{r.mix} mix, {a}@{r.budget:g} {r.mean_a:.3f} vs {b}@{r.budget_b:g} {r.mean_b:.3f} "
        f"(diff {r.diff:+.3f}, seed range {r.spread:.3f}: {r.outcome})"
        for r in c.itertuples()
    )


def _from_pairs(claim: str, paper: str, c: pd.DataFrame, a: str, b: str) -> Verdict:
    """Reproduced when a wins at least one pair and loses none; not reproduced when it loses any;
    a tie when every pair is inside its seed range (or there is no pair)."""
    if c.empty:
        return verdict(claim, paper, False, f"no {a} and {b} cells at a common budget in this profile", tie=True)
    wins, losses = int((c["outcome"] == "win").sum()), int((c["outcome"] == "loss").sum())
    best = c.loc[c["diff"].abs().idxmax()]
    return verdict(
        claim,
        paper,
        holds=wins > 0 and losses == 0,
        tie=wins == 0 and losses == 0,
        evidence=f"{wins} wins, {losses} losses of {len(c)}: " + _pairs_text(c, a, b),
        value=float(best["diff"]),
        spread=float(best["spread"]),
    )


def verdict_ema(table: pd.DataFrame) -> Verdict:
    """EMA: slow-fast (few dense frames + motion tokens) beats uniform frames on motion at equal budget."""
    claim = "Slow-fast input (few dense frames + sparse motion tokens) beats uniform frames on motion at equal budget"
    return _from_pairs(claim, EMA, compare(table, "slow_fast", "uniform", ["motion"]), "slow_fast", "uniform")


def verdict_maven(table: pd.DataFrame) -> Verdict:
    """MaVEn: coarse discrete + fine continuous tokens beat continuous-only tokens (the same dynamic
    reduction without the discrete tokens, `fine_only`; uniform mean pooling where that arm was not run)
    on the multi-object questions (MULTI_OBJECT), at equal budget."""
    claim = "Coarse discrete + fine continuous tokens beat continuous-only tokens on multi-object questions"
    tasks = [t for t in MULTI_OBJECT if f"val_acc_{t}" in table]
    if not tasks:
        return verdict(claim, MAVEN, False, "no multi-object task in this profile", tie=True)
    other = "fine_only" if (table["arm"] == "fine_only").any() else "uniform"
    return _from_pairs(claim, MAVEN, compare(table, "coarse_fine", other, tasks), "coarse_fine", other)


def verdict_kimi(table: pd.DataFrame) -> Verdict:
    """Kimi-VL: tokens that follow content (native resolution) match a fixed M with fewer tokens.

    At each budget b with both: native@b against uniform@b (equal tokens) and uniform@TOKEN_RATIO*b
    (more tokens), on val_acc over all tasks. Not reproduced when native@b loses to uniform@4b beyond the
    seed range; reproduced when it does not, and beats uniform@b beyond the range (content-following
    allocation buys what 4x the fixed tokens buy); otherwise a tie."""
    claim = f"Native resolution (tokens follow content) matches fixed M per frame with {TOKEN_RATIO}x fewer tokens"
    equal = compare(table, "native_resolution", "uniform")
    more = compare(table, "native_resolution", "uniform", ratio=TOKEN_RATIO)
    if equal.empty:
        return verdict(claim, KIMI, False, "no native_resolution and uniform cells at a common budget", tie=True)
    text = _pairs_text(equal, "native_resolution", "uniform")
    if more.empty:
        return _from_pairs(claim, KIMI, equal, "native_resolution", "uniform")
    text += "; " + _pairs_text(more, "native_resolution", "uniform")
    lost = bool((more["outcome"] == "loss").any())
    both = equal.merge(more[["mix", "budget", "outcome"]], on=["mix", "budget"], suffixes=("", "_more"))
    won = bool(((both["outcome"] == "win") & (both["outcome_more"] != "loss")).any())
    row = more.loc[more["diff"].idxmin()]
    return verdict(
        claim,
        KIMI,
        holds=won and not lost,
        tie=not lost and not won,
        evidence=text,
        value=float(row["diff"]),
        spread=float(row["spread"]) if np.isfinite(row["spread"]) else None,
    )


def verdicts(table: pd.DataFrame) -> list[Verdict]:
    return [verdict_ema(table), verdict_maven(table), verdict_kimi(table)]
