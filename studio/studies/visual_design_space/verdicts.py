"""The design-space verdicts, one per seed claim, with their thresholds and competence gates (computed from
the results table of studio.studies.visual_design_space: columns mix, arm, budget, seed, val_loss, val_acc,
val_acc_<task>, and the easy-video columns). studio.verdicts.judge decides every outcome.

Each claim is a per-seed paired difference: arm a against arm b at the same seed, per (mix, budget) cell,
averaged over the judged cells per seed, signed so that > 0 is the claimed direction. Gates per claim:
- the arms can do what the claim is about (accuracy on that capability above chance by COMPETENCE_MARGIN;
  for EMA the uniform baseline on motion, judged only at cells where it learned motion);
- the cells judged trained: held-out loss below FAILED_LOSS_SHARE of the blind-guess loss (the loss of a
  uniform guess per question, the task known), which stands in for the first loss these tables do not hold;
- Kimi-VL's native resolution follows content (tokens per digit frame / tokens per empty frame).
Failed seeds (CONTRIBUTING.md): in any judged cell, a seed whose loss is NaN, or at the blind-guess loss, or
whose overall accuracy is at chance, while another seed of that cell is not, is named and set aside.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from studio.stats import t_interval
from studio.verdicts import (
    Gate,
    Verdict,
    above_chance,
    converged_gate,
    failed_against_blind,
    gate,
    judge,
    paired_effect,
    untestable,
)

EMA, MAVEN, KIMI = "EMA / MotionBench", "MaVEn", "Kimi-VL"
TASKS = ("retrieval", "spatial", "ordering", "counting", "motion")
CHANCE = {"retrieval": 0.1, "spatial": 0.1, "ordering": 0.1, "counting": 1 / 3, "motion": 0.25}
MULTI_OBJECT = ("spatial", "ordering")  # questions about two digits at once (MaVEn's multi-image reasoning)
TOKEN_RATIO = 4  # Kimi-VL: native resolution at budget b against fixed M at TOKEN_RATIO * b
EASY = "val_acc_easy"  # Kimi-VL is judged on the easy videos (studio.design_space.content_metrics)
# an arm counts as able to do a task when its accuracy there is this far above chance (issue 29's gate for
# uniform frames on motion: chance + 0.2); a seed this close to chance overall while another is not failed
COMPETENCE_MARGIN = 0.2
# three points of accuracy: the smallest difference between two strategies at equal budget that would decide
# which to use (the seed papers report gains of 3-5 points, e.g. MaVEn's SEED-Bench 42.1 vs 37.3)
MIN_ACC_EFFECT = 0.03
# Kimi-VL's "matches": native resolution at b loses at most this much easy-video accuracy to uniform at 4b
# (a difference below MIN_ACC_EFFECT does not matter, so the same size)
NONINFERIORITY_MARGIN = MIN_ACC_EFFECT
# native resolution follows content when a frame holding a digit gets at least this many times the tokens of
# an empty frame (issue 29); below it, "tokens follow content" is not what the arm does
CONTENT_RATIO = 1.5
# the easy videos mix retrieval (chance 0.1) and counting up to 2 (chance 1/3): the higher one is the bar
EASY_CHANCE = CHANCE["counting"]


def mix_tasks(table: pd.DataFrame) -> list[str]:
    """The tasks a set of rows was scored on (their val_acc_<task> columns that hold numbers)."""
    return [t for t in TASKS if f"val_acc_{t}" in table and table[f"val_acc_{t}"].notna().any()]


def blind_loss(tasks) -> float:
    """Cross-entropy of a uniform guess per question (the task known) on an equal mix of `tasks`."""
    return float(np.mean([-math.log(CHANCE[t]) for t in tasks])) if len(tasks) else math.nan


def _score(table: pd.DataFrame, tasks, metric: str = "val_acc") -> pd.Series:
    """Per row, the mean accuracy over `tasks` (`metric` when tasks is None)."""
    if tasks is None:
        return table[metric]
    return table[[f"val_acc_{t}" for t in tasks]].mean(axis=1)


PAIRED_COLUMNS = ["mix", "budget", "budget_b", "seed", "score_a", "score_b", "diff"]


def paired(
    table: pd.DataFrame, a: str, b: str, tasks=None, mix: str | None = None, ratio: int = 1, metric: str = "val_acc"
) -> pd.DataFrame:
    """Arm a at budget x against arm b at budget ratio * x, per mix, budget and seed where both were run:
    columns PAIRED_COLUMNS (score: mean accuracy over `tasks`, or the column `metric`, e.g. val_acc_easy;
    diff = a - b at the same seed). Rows where the score is NaN (a mix without easy videos) drop."""
    if tasks is not None:
        tasks = [x for x in tasks if f"val_acc_{x}" in table]
        if not tasks:  # none of the tasks in this profile (the motion profile has no multi-object question)
            return pd.DataFrame(columns=PAIRED_COLUMNS)
    elif metric not in table:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    t = table if mix is None else table[table["mix"] == mix]
    t = t.assign(score=_score(t, tasks, metric)).dropna(subset=["score"])
    rows = []
    for (mx, budget), ga in t[t["arm"] == a].groupby(["mix", "budget"]):
        gb = t[(t["arm"] == b) & (t["mix"] == mx) & (t["budget"] == budget * ratio)]
        sa, sb = ga.groupby("seed")["score"].mean(), gb.groupby("seed")["score"].mean()
        for seed in sa.index.intersection(sb.index):
            rows.append([mx, budget, budget * ratio, seed, sa[seed], sb[seed], sa[seed] - sb[seed]])
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def compare(
    table: pd.DataFrame, a: str, b: str, tasks=None, mix: str | None = None, ratio: int = 1, metric: str = "val_acc"
) -> pd.DataFrame:
    """`paired` summarised per cell: columns mix, budget, budget_b, mean_a, mean_b, diff (seed means) and
    ci_low, ci_high (t interval over the seeds' paired differences; NaN with one seed), n_seeds."""
    cols = ["mix", "budget", "budget_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "n_seeds"]
    p = paired(table, a, b, tasks, mix, ratio, metric)
    rows = []
    for (mx, budget, budget_b), g in p.groupby(["mix", "budget", "budget_b"]):
        mean, lo, hi = t_interval(g["diff"])
        rows.append([mx, budget, budget_b, g["score_a"].mean(), g["score_b"].mean(), mean, lo, hi, len(g)])
    return pd.DataFrame(rows, columns=cols)


def _pairs_text(c: pd.DataFrame, a: str, b: str) -> str:
    return "; ".join(
        f"{r.mix} mix, {a}@{r.budget:g} {r.mean_a:.3f} vs {b}@{r.budget_b:g} {r.mean_b:.3f} (diff {r.diff:+.3f})"
        for r in c.itertuples()
    )


def _cells(c: pd.DataFrame, a: str, b: str) -> list[tuple[str, str, float]]:
    """The (mix, arm, budget) cells behind the compared pairs `c` (a compare table)."""
    return sorted(
        {(r.mix, a, float(r.budget)) for r in c.itertuples()} | {(r.mix, b, float(r.budget_b)) for r in c.itertuples()}
    )


def _rows(table: pd.DataFrame, cell) -> pd.DataFrame:
    mix, arm, budget = cell
    return table[(table["mix"] == mix) & (table["arm"] == arm) & (table["budget"] == budget)]


def failed_seeds(table: pd.DataFrame, cells) -> tuple[list, list[str]]:
    """Seeds that failed in any of `cells` ((mix, arm, budget)), and one phrase each: a NaN loss; a held-out
    loss not below FAILED_LOSS_SHARE of the blind-guess loss while another seed's is (failed_by_loss, the
    blind-guess loss standing in for the first); an overall accuracy within COMPETENCE_MARGIN of the mix's
    chance while another seed's is above (failed_at_chance). A cell where every seed is at the blind loss is
    an arm that did not learn: the claim's gates say so, no seed is named."""
    failed, why = set(), []
    for cell in cells:
        g = _rows(table, cell)
        if g.empty:
            continue
        tasks = mix_tasks(g)
        blind, chance = blind_loss(tasks), float(np.mean([CHANCE[t] for t in tasks]))
        final = dict(zip(g["seed"], g["val_loss"]))
        accuracy = dict(zip(g["seed"], g["val_acc"]))
        for s in failed_against_blind(final, blind, accuracy, chance, COMPETENCE_MARGIN):
            r = g[g["seed"] == s].iloc[0]
            why.append(
                f"{cell[1]}@{cell[2]:g} ({cell[0]} mix) seed {s}: loss {r.val_loss:.3g} = {r.val_loss / blind:.2f} "
                f"of the blind-guess {blind:.3g}, accuracy {r.val_acc:.3f} (chance {chance:.3f})"
            )
            failed.add(s)
    return sorted(failed), why


def _trained_gate(table: pd.DataFrame, cells, kept) -> Gate:
    """The judged cells' held-out loss against their blind-guess loss, worst kept seed (converged_gate)."""
    first, final = [], []
    for cell in cells:
        g = _rows(table, cell)
        g = g[g["seed"].isin(kept)]
        first += [blind_loss(mix_tasks(g))] * len(g)
        final += g["val_loss"].tolist()
    return converged_gate("cells judged trained (blind-guess loss as the first)", first, final)


def _kept_means(table: pd.DataFrame, cell, kept, score) -> float:
    g = _rows(table, cell)
    g = g[g["seed"].isin(kept)]
    return float(score(g).mean()) if len(g) else math.nan


def _judge_pairs(
    claim: str,
    paper: str,
    table: pd.DataFrame,
    p: pd.DataFrame,
    cells,
    gates_of,
    evidence: str,
    min_effect: float,
    shift: float = 0.0,
    what: str = "",
) -> Verdict:
    """Failed seeds of `cells`, the per-seed mean over cells of p's diff (+ shift) without them, the gates
    `gates_of(kept seeds)` and the trained gate, through judge."""
    failed, why = failed_seeds(table, cells)
    seeds = sorted(set(p["seed"]))
    kept = [s for s in seeds if s not in failed]
    per_seed = (p.groupby("seed")["diff"].mean() + shift).to_dict()
    effect = paired_effect(per_seed, exclude=failed)
    if what:
        effect = replace(effect, method=f"{effect.method} of {what}")
    gates = [*gates_of(kept), _trained_gate(table, cells, kept)]
    text = evidence + (" Failed seeds: " + "; ".join(why) + "." if why else "")
    return judge(
        claim,
        paper,
        effect,
        min_effect=min_effect,
        gates=gates,
        evidence=text.strip(),
        failed_seeds=failed,
        n_total_seeds=len(seeds),
    )


# ---------------------------------------------------------------- EMA / MotionBench
def verdict_ema(table: pd.DataFrame) -> Verdict:
    """EMA: slow-fast (few dense frames + motion tokens) beats uniform frames on motion at equal budget.
    Judged only at the cells where uniform frames learned motion (motion accuracy above chance +
    COMPETENCE_MARGIN: a baseline that never learned motion cannot be beaten on it); untestable when none."""
    claim = "Slow-fast input (few dense frames + sparse motion tokens) beats uniform frames on motion at equal budget"
    c = compare(table, "slow_fast", "uniform", ["motion"])
    name = "uniform frames' motion accuracy at the judged cells"
    chance = CHANCE["motion"]
    if c.empty:
        return untestable(
            claim,
            EMA,
            [gate(name, math.nan, chance + COMPETENCE_MARGIN)],
            "no slow_fast and uniform cells at a common budget",
        )
    ok = c[c["mean_b"] > chance + COMPETENCE_MARGIN]
    left = c[~c.index.isin(ok.index)]
    left_text = (
        f" Left out, uniform frames at chance on motion there: {_pairs_text(left, 'slow_fast', 'uniform')}."
        if len(left)
        else ""
    )
    if ok.empty:
        best = c.loc[c["mean_b"].idxmax()]
        g = above_chance(
            f"{name} (the best: {best.mix} mix @{best.budget_b:g})", best.mean_b, chance, COMPETENCE_MARGIN
        )
        return untestable(claim, EMA, [g], ("No cell where uniform frames learned motion." + left_text).strip())
    p = paired(table, "slow_fast", "uniform", ["motion"])
    p = p.merge(ok[["mix", "budget"]], on=["mix", "budget"])
    cells = _cells(ok, "slow_fast", "uniform")

    def gates_of(kept):
        accs = [
            _kept_means(table, (r.mix, "uniform", float(r.budget_b)), kept, lambda g: g["val_acc_motion"])
            for r in ok.itertuples()
        ]
        return [above_chance(name, min(accs), chance, COMPETENCE_MARGIN)]

    evidence = "Motion accuracy: " + _pairs_text(ok, "slow_fast", "uniform") + "." + left_text
    return _judge_pairs(
        claim, EMA, table, p, cells, gates_of, evidence, MIN_ACC_EFFECT, what="slow_fast - uniform motion accuracy"
    )


# ---------------------------------------------------------------- MaVEn
def verdict_maven(table: pd.DataFrame) -> Verdict:
    """MaVEn: coarse discrete + fine continuous tokens beat continuous-only tokens (the same dynamic
    reduction without the discrete tokens, `fine_only`; uniform mean pooling where that arm was not run)
    on the multi-object questions (MULTI_OBJECT), at equal budget. Gate: both arms above chance on them."""
    claim = "Coarse discrete + fine continuous tokens beat continuous-only tokens on multi-object questions"
    tasks = [t for t in MULTI_OBJECT if f"val_acc_{t}" in table]
    name = f"both arms' accuracy on {' + '.join(MULTI_OBJECT)}, the lower"
    chance = float(np.mean([CHANCE[t] for t in MULTI_OBJECT]))
    if not tasks:
        return untestable(
            claim, MAVEN, [gate(name, math.nan, chance + COMPETENCE_MARGIN)], "no multi-object task in this profile"
        )
    other = "fine_only" if (table["arm"] == "fine_only").any() else "uniform"
    c = compare(table, "coarse_fine", other, tasks)
    if c.empty:
        return untestable(
            claim,
            MAVEN,
            [gate(name, math.nan, chance + COMPETENCE_MARGIN)],
            f"no coarse_fine and {other} cells at a common budget",
        )
    p = paired(table, "coarse_fine", other, tasks)
    cells = _cells(c, "coarse_fine", other)

    def gates_of(kept):
        accs = [_kept_means(table, cell, kept, lambda g: _score(g, tasks)) for cell in cells]
        return [above_chance(name, min(accs), chance, COMPETENCE_MARGIN)]

    evidence = (
        f"Accuracy on {' + '.join(tasks)}, against {other}"
        + (" (the continuous-only ablation)" if other == "fine_only" else " (no fine_only arm in this profile)")
        + ": "
        + _pairs_text(c, "coarse_fine", other)
        + "."
    )
    return _judge_pairs(
        claim, MAVEN, table, p, cells, gates_of, evidence, MIN_ACC_EFFECT, what=f"coarse_fine - {other} accuracy"
    )


# ---------------------------------------------------------------- Kimi-VL
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


def content_ratio(table: pd.DataFrame, arm: str, budget) -> float:
    """Tokens per frame holding a digit / tokens per empty frame on the easy videos (seed means; NaN without)."""
    t = table[(table["arm"] == arm) & (table["budget"] == budget) & (table["mix"] == "all")]
    if t.empty or "easy_tokens_digit_frame" not in t:
        return math.nan
    return float(t["easy_tokens_digit_frame"].mean() / t["easy_tokens_empty_frame"].mean())


def verdict_kimi(table: pd.DataFrame) -> Verdict:
    """Kimi-VL: on easy videos, tokens that follow content (native resolution) at budget b match a fixed M at
    TOKEN_RATIO * b, judged as non-inferiority: per seed, native@b - uniform@4b + NONINFERIORITY_MARGIN on
    val_acc_easy (> 0: native loses less than the margin). Reproduced when its interval is above 0; not
    reproduced when below the margin (native@b below uniform@4b beyond doubt, and not shown within the
    margin). Gates: native resolution follows content (CONTENT_RATIO), both arms above chance on the easy
    videos, the cells trained. Easy videos hold few occupied grid cells per frame
    (studio.design_space.content_metrics, threshold `easy_cells`). Context, not judged: native@b against
    uniform@b (equal tokens), the same over all videos, and where each arm spent its tokens."""
    cells_ = sorted(set(table["easy_cells"].dropna())) if "easy_cells" in table else []
    easy = "easy videos" + (
        f" (<= {'/'.join(f'{c:g}' for c in cells_)} occupied grid cells per frame)" if cells_ else ""
    )
    claim = f"Native resolution (tokens follow content) matches fixed M per frame with {TOKEN_RATIO}x fewer tokens on {easy}"
    more = compare(table, "native_resolution", "uniform", ratio=TOKEN_RATIO, metric=EASY)
    follow = "native resolution follows content: tokens per digit frame / per empty frame"
    if more.empty:
        return untestable(
            claim,
            KIMI,
            [gate(follow, math.nan, CONTENT_RATIO)],
            f"no native_resolution@b and uniform@{TOKEN_RATIO}b cells with easy videos",
        )
    ratios = {float(b): content_ratio(table, "native_resolution", b) for b in more["budget"]}
    worst = min(ratios, key=lambda b: ratios[b] if math.isfinite(ratios[b]) else -math.inf)
    p = paired(table, "native_resolution", "uniform", ratio=TOKEN_RATIO, metric=EASY)
    cells = _cells(more, "native_resolution", "uniform")

    def gates_of(kept):
        accs = [_kept_means(table, cell, kept, lambda g: g[EASY]) for cell in cells]
        return [
            gate(f"{follow} (native_resolution@{worst:g})", ratios[worst], CONTENT_RATIO),
            above_chance("both arms' easy-video accuracy, the lower", min(accs), EASY_CHANCE, COMPETENCE_MARGIN),
        ]

    equal = compare(table, "native_resolution", "uniform", metric=EASY)
    spent = [
        _easy_tokens_text(table, "native_resolution", b) for b in sorted(set(more["budget"]) | set(equal["budget"]))
    ]
    spent += [_easy_tokens_text(table, "uniform", b) for b in sorted(set(more["budget_b"]) | set(equal["budget_b"]))]
    spent = [x for x in spent if x]
    overall = [compare(table, "native_resolution", "uniform", ratio=r) for r in (TOKEN_RATIO, 1)]
    evidence = (
        f"On easy videos, native@b vs uniform@{TOKEN_RATIO}b (non-inferiority margin {NONINFERIORITY_MARGIN:g}): "
        + _pairs_text(more, "native_resolution", "uniform")
        + "."
        + (
            " Context, not judged: on easy videos at equal tokens "
            + _pairs_text(equal, "native_resolution", "uniform")
            + "."
            if len(equal)
            else ""
        )
        + (" Tokens on easy videos: " + "; ".join(spent) + "." if spent else "")
        + (
            " Over all videos (context, not judged): "
            + "; ".join(_pairs_text(c, "native_resolution", "uniform") for c in overall if len(c))
            + "."
            if any(len(c) for c in overall)
            else ""
        )
    )
    return _judge_pairs(
        claim,
        KIMI,
        table,
        p,
        cells,
        gates_of,
        evidence,
        NONINFERIORITY_MARGIN,
        shift=NONINFERIORITY_MARGIN,
        what=f"native@b - uniform@{TOKEN_RATIO}b easy-video accuracy + margin {NONINFERIORITY_MARGIN:g}",
    )


def verdicts(table: pd.DataFrame) -> list[Verdict]:
    return [verdict_ema(table), verdict_maven(table), verdict_kimi(table)]
