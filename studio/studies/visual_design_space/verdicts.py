"""The design-space verdicts, one per seed claim, with their thresholds (computed from the results table of
studio.studies.visual_design_space: columns mix, arm, budget, seed, val_acc, val_acc_<task>).

A comparison is of seed means at one budget; it counts as a win (or a loss) only when the difference
clears the larger seed range (max - min over seeds) of the two arms; otherwise it is a tie. Fewer than
MIN_SEEDS seeds: no range to compare with, so every comparison is a tie.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.verdicts import REPRODUCED, TIE, Verdict, verdict

EMA, MAVEN, KIMI = "EMA / MotionBench", "MaVEn", "Kimi-VL"
MIN_SEEDS = 2
MULTI_OBJECT = ("spatial", "ordering")  # questions about two digits at once (MaVEn's multi-image reasoning)
TOKEN_RATIO = 4  # Kimi-VL: native resolution at budget b against fixed M at TOKEN_RATIO * b
EASY = "val_acc_easy"  # Kimi-VL is judged on the easy videos (studio.design_space.content_metrics)


def _score(table: pd.DataFrame, tasks, metric: str = "val_acc") -> pd.Series:
    """Per row, the mean accuracy over `tasks` (`metric` when tasks is None)."""
    if tasks is None:
        return table[metric]
    return table[[f"val_acc_{t}" for t in tasks]].mean(axis=1)


def compare(
    table: pd.DataFrame, a: str, b: str, tasks=None, mix: str | None = None, ratio: int = 1, metric: str = "val_acc"
) -> pd.DataFrame:
    """Arm a at budget x against arm b at budget ratio * x, per mix and budget where both were run.

    Columns mix, budget, budget_b, mean_a, mean_b, diff (a - b, seed means of the score: mean accuracy
    over `tasks`, or the column `metric`, e.g. val_acc_easy), spread (the larger seed range), n_seeds (the
    fewer), outcome (win / loss / tie for a). Rows where the score is NaN (a mix without easy videos) drop."""
    cols = ["mix", "budget", "budget_b", "mean_a", "mean_b", "diff", "spread", "n_seeds", "outcome"]
    if tasks is not None:
        tasks = [x for x in tasks if f"val_acc_{x}" in table]
        if not tasks:  # none of the tasks in this profile (the motion profile has no multi-object question)
            return pd.DataFrame(columns=cols)
    elif metric not in table:
        return pd.DataFrame(columns=cols)
    t = table if mix is None else table[table["mix"] == mix]
    t = t.assign(score=_score(t, tasks, metric)).dropna(subset=["score"])
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


def _easy_tokens_text(table: pd.DataFrame, arm: str, budget) -> str:
    """Where `arm` at `budget` spent its tokens on the easy videos (seed means), from the table."""
    t = table[(table["arm"] == arm) & (table["budget"] == budget) & (table["mix"] == "all")]
    if t.empty or "easy_tokens" not in t:
        return ""
    m = t[["easy_items", "easy_tokens", "easy_tokens_digit_frame", "easy_tokens_empty_frame"]].mean()
    return (
        f"{arm}@{budget:g} spends {m.easy_tokens:.0f} tokens per easy video, {m.easy_tokens_digit_frame:.1f} per "
        f"frame read holding a digit and {m.easy_tokens_empty_frame:.1f} per empty one ({m.easy_items:.0f} easy videos)"
    )


def verdict_kimi(table: pd.DataFrame) -> Verdict:
    """Kimi-VL: on easy videos, tokens that follow content (native resolution) match a fixed M with fewer tokens.

    Easy videos hold few occupied grid cells per frame (studio.design_space.content_metrics, threshold
    `easy_cells`); each cell reports its accuracy on them, val_acc_easy. At each budget b with both, on
    val_acc_easy: native@b against uniform@TOKEN_RATIO*b (a fixed M with 4x the tokens) and uniform@b
    (equal tokens). As for the other claims (`_from_pairs`), one loss decides: not reproduced when native
    loses any of these pairs beyond the seed range (below 4x the tokens, or below a fixed M even at equal
    tokens); reproduced when it loses none and at some budget beats uniform@b beyond the range without
    falling below uniform@4b (on easy videos the content-following allocation buys what 4x the fixed tokens
    buy); otherwise a tie (this includes easy videos on which the number of tokens makes no difference). The evidence adds where each arm spent its tokens on the easy videos and, as
    context only, the same comparisons over all videos."""
    cells = sorted(set(table["easy_cells"].dropna())) if "easy_cells" in table else []
    easy = "easy videos" + (f" (<= {'/'.join(f'{c:g}' for c in cells)} occupied grid cells per frame)" if cells else "")
    claim = f"Native resolution (tokens follow content) matches fixed M per frame with {TOKEN_RATIO}x fewer tokens on {easy}"
    equal = compare(table, "native_resolution", "uniform", metric=EASY)
    more = compare(table, "native_resolution", "uniform", ratio=TOKEN_RATIO, metric=EASY)
    if equal.empty:
        return verdict(
            claim, KIMI, False, "no native_resolution and uniform cells with easy videos at a common budget", tie=True
        )
    uniform_budgets = sorted(set(equal["budget_b"]) | set(more["budget_b"]))
    spent = [_easy_tokens_text(table, "native_resolution", b) for b in sorted(equal["budget"])]
    spent = [x for x in spent + [_easy_tokens_text(table, "uniform", b) for b in uniform_budgets] if x]
    overall = [compare(table, "native_resolution", "uniform", ratio=r) for r in (1, TOKEN_RATIO)]
    context = ("; tokens on easy videos: " + "; ".join(spent)) if spent else ""
    if any(len(c) for c in overall):
        overall = "; ".join(_pairs_text(c, "native_resolution", "uniform") for c in overall if len(c))
        context += "; over all videos (context, not judged): " + overall
    text = "on easy videos: " + _pairs_text(equal, "native_resolution", "uniform")
    if more.empty:  # no uniform cell at 4x the tokens: judged at equal tokens alone
        v = _from_pairs(claim, KIMI, equal, "native_resolution", "uniform")
        return verdict(
            claim, KIMI, v.verdict == REPRODUCED, text + context, tie=v.verdict == TIE, value=v.value, spread=v.spread
        )
    text += "; " + _pairs_text(more, "native_resolution", "uniform")
    pairs = pd.concat([equal, more], ignore_index=True)
    lost = bool((pairs["outcome"] == "loss").any())
    both = equal.merge(more[["mix", "budget", "outcome"]], on=["mix", "budget"], suffixes=("", "_more"))
    won = bool(((both["outcome"] == "win") & (both["outcome_more"] != "loss")).any())
    # the pair that decided: the worst loss, else the closest call against 4x the tokens
    row = pairs[pairs["outcome"] == "loss"] if lost else more
    row = row.loc[row["diff"].idxmin()]
    return verdict(
        claim,
        KIMI,
        holds=won and not lost,
        tie=not lost and not won,
        evidence=text + context,
        value=float(row["diff"]),
        spread=float(row["spread"]) if np.isfinite(row["spread"]) else None,
    )


def verdicts(table: pd.DataFrame) -> list[Verdict]:
    return [verdict_ema(table), verdict_maven(table), verdict_kimi(table)]
