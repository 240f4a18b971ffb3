"""The hallucination study's verdicts, computed from its tables by studio.verdicts' one rule.

1. Event hallucinations are the hardest to catch (Hal-Eval): per (model, seed), the lowest discriminative
   accuracy of the other three types minus the event accuracy (> 0: event the hardest). Gate: every arm
   answers every type above chance (a type at chance would be "hardest" because the model is blind to it).
2. Rewriting beats filtering at equal training steps (AITQE): per (rate, seed), the downstream captioner's
   hallucination rate (the mean over the four types of the hallucinated share of its mentions), filter minus
   rewrite. Gates: the rate responds to the data (positive control: with `keep`, the highest corruption rate
   of the table against the lowest), the rewriter repairs (fewer kept captions still wrong than `keep`), and
   the downstream captioners read the clip (slot accuracy above a blind guess).
3. Negative-sample learning makes the scorer better (AITQE): per seed, the mean AUC over corruption types,
   hard negatives minus random negatives. Gate: both scorers tell good from bad captions above chance.
Failed seeds (a unit at chance while the others are not: `studio.verdicts.failed_at_chance`) are named and
set aside. Fewer than MIN_SEEDS usable units is inconclusive.
"""

from __future__ import annotations

import math

import pandas as pd

from studio import verdicts as V
from studio.data.scenes import HALLUCINATION_TYPES as TYPES
from studio.studies.representation_gap import CAPTION_MARGIN, SLOT_CHANCE

EVENT_PAPER = "Hal-Eval (event hallucination benchmark, arXiv 2402.15721)"
AITQE_PAPER = "AITQE (arXiv 2410.16166)"

YES_NO_CHANCE = 0.5  # the statements are balanced: one true and one hallucinated per type and scene
# A type counts as answered when the arm's accuracy on it is 0.1 above a coin flip: three times the
# half-width of one arm's bootstrap interval on 200 scenes (about 0.03 in the benchmark table).
ANSWERED_MARGIN = 0.1
# Hal-Eval's per-type accuracies differ by 1-2 points (five models, in-domain: object 53.0, attribute
# 53.2, relation 51.7, event 52.6): event lower than the next type by less than 2 points is no "hardest".
EVENT_MIN_EFFECT = 0.02
# Two points of the hallucinated share of mentions: the downstream rates of every policy and seed lie
# within 0.40-0.44 here; AITQE gives no number in these units.
REWRITE_MIN_EFFECT = 0.02
AUC_CHANCE = 0.5
# A scorer that tells good from bad captions: mean AUC 0.1 above chance (its seeds vary by about 0.05).
SCORER_MARGIN = 0.1
# 0.05 of AUC: the smallest gain of a quality scorer that would change which captions a filter keeps by a
# visible share; AITQE reports the gain of negative-sample learning only downstream.
NEGATIVES_MIN_EFFECT = 0.05


def _unit(model, seed) -> str:
    return f"{model} seed {seed}"


def verdict_event_hardest(pope: pd.DataFrame) -> V.Verdict:
    """pope: rows model, seed, type, metric, value ("accuracy" is read; "yes_ratio" goes into the evidence)."""
    claim = "Event hallucinations are the hardest to catch (lowest discriminative accuracy)"
    acc = pope[pope.metric == "accuracy"].pivot_table(index=["model", "seed"], columns="type", values="value")
    acc = acc.reindex(columns=list(TYPES))
    by_model = acc.groupby(level="model").mean()
    if by_model.empty:
        return V.untestable(
            claim,
            EVENT_PAPER,
            [V.gate("discriminative accuracy in the table", math.nan, 0)],
            min_effect=EVENT_MIN_EFFECT,
        )
    stacked = by_model.stack()
    weakest = stacked.fillna(-math.inf).idxmin()  # a type missing from the table fails the gate
    model, kind = weakest
    yes = pope[(pope.metric == "yes_ratio") & (pope.model == model) & (pope.type == kind)]["value"]
    answered = V.above_chance(
        f"yes/no accuracy on every type, lowest arm and type ({model} on {kind}"
        + (f", yes-ratio {yes.mean():.2f}" if len(yes) else "")
        + ")",
        stacked[weakest],
        YES_NO_CHANCE,
        ANSWERED_MARGIN,
    )
    units = {_unit(m, s): row for (m, s), row in acc.iterrows()}
    failed = V.failed_at_chance({u: float(r.mean()) for u, r in units.items()}, YES_NO_CHANCE, ANSWERED_MARGIN)
    others = [t for t in TYPES if t != "event"]
    gaps = {u: float(r[others].min() - r["event"]) for u, r in units.items()}
    effect = V.paired_effect(gaps, exclude=failed)
    means = acc.mean()
    lowest = {m: str(r.idxmin()) for m, r in by_model.iterrows()}
    return V.judge(
        claim,
        EVENT_PAPER,
        effect,
        min_effect=EVENT_MIN_EFFECT,
        gates=[answered],
        failed_seeds=failed,
        n_total_seeds=len(gaps),
        evidence="accuracy by type (mean over models and seeds): "
        + ", ".join(f"{t} {means[t]:.3f}" for t in TYPES)
        + f"; hardest type per model: {', '.join(f'{m} {t}' for m, t in lowest.items())}; "
        "statistic: lowest other type minus event, per model-seed",
    )


def _paired_by_seed(wide: pd.DataFrame, a: str, b: str) -> dict:
    """{"rate R seed S": wide[a] - wide[b]} over the (rate, seed) rows."""
    d = (wide[a] - wide[b]).dropna()
    return {f"rate {r:g} seed {s}": float(v) for (r, s), v in d.items()}


def _keep_control(policies: pd.DataFrame, metric: str) -> tuple[V.Gate, str]:
    """The positive control: with `keep`, the metric at the table's highest corruption rate minus at its
    lowest, per seed (> 0: more bad captions, more hallucination)."""
    keep = policies[policies.policy == "keep"].pivot_table(index="seed", columns="rate", values=metric)
    name = f"{metric} rises with the share of bad captions (keep"
    if keep.shape[1] < 2:
        return V.gate(name + ": one rate only, no control)", math.nan, 0.0), ""
    lo, hi = keep.columns.min(), keep.columns.max()
    control = V.paired_effect((keep[hi] - keep[lo]).dropna().to_dict())
    text = (
        f"control: keep at rate {hi:g} minus {lo:g} {control.statistic:+.3f} "
        f"[{control.ci_low:+.3f}, {control.ci_high:+.3f}]"
    )
    return V.responds(f"{name}, rate {hi:g} vs {lo:g})", control), text


def verdict_rewrite(policies: pd.DataFrame, metric: str = "mean_instance") -> V.Verdict:
    """policies: rows rate, seed, policy, <metric> (a hallucination rate: lower is better), and where the
    run recorded them dirty (kept captions still wrong) and val_caption_acc (the downstream captioner's)."""
    claim = "Rewriting flagged captions beats filtering them at equal training steps (lower hallucination rate)"
    wide = policies.pivot_table(index=["rate", "seed"], columns="policy", values=metric)
    if not {"filter", "rewrite"} <= set(wide.columns):
        return V.untestable(
            claim,
            AITQE_PAPER,
            [V.gate("filter and rewrite runs in the table", math.nan, 0)],
            "no filter or rewrite runs",
            min_effect=REWRITE_MIN_EFFECT,
        )
    control, control_text = _keep_control(policies, metric)
    gates = [control]
    if "dirty" in policies and {"keep", "rewrite"} <= set(policies.policy):
        dirty = policies.pivot_table(index=["rate", "seed"], columns="policy", values="dirty")
        repair = V.paired_effect(_paired_by_seed(dirty, "keep", "rewrite"))
        gates.append(V.responds("the rewriter repairs: kept captions still wrong, keep minus rewrite", repair))
    failed = []
    if "val_caption_acc" in policies:
        acc = policies.pivot_table(index=["rate", "seed"], columns="policy", values="val_caption_acc")
        gates.append(
            V.above_chance(
                "slot accuracy of the downstream captioners (filter, rewrite; worst mean)",
                float(acc[["filter", "rewrite"]].mean().min()),
                SLOT_CHANCE,
                CAPTION_MARGIN,
            )
        )
        both = acc[["filter", "rewrite"]].min(axis=1)
        failed = V.failed_at_chance(
            {f"rate {r:g} seed {s}": float(v) for (r, s), v in both.items()}, SLOT_CHANCE, CAPTION_MARGIN
        )
    else:
        gates.append(V.gate("slot accuracy of the downstream captioners (not in the table)", math.nan, 0))
    d = _paired_by_seed(wide, "filter", "rewrite")
    effect = V.paired_effect(d, exclude=failed)
    means = policies.groupby(["rate", "policy"])[metric].mean()
    rates = sorted(policies["rate"].unique())
    return V.judge(
        claim,
        AITQE_PAPER,
        effect,
        min_effect=REWRITE_MIN_EFFECT,
        gates=gates,
        failed_seeds=failed,
        n_total_seeds=len(d),
        evidence=f"{metric} of the downstream captioner (seed means): "
        + "; ".join(
            f"rate {r:g}: "
            + ", ".join(f"{p} {means[(r, p)]:.3f}" for p in ("keep", "filter", "rewrite") if (r, p) in means)
            for r in rates
        )
        + "; statistic: filter minus rewrite per rate-seed"
        + (f"; {control_text}" if control_text else ""),
    )


def verdict_negatives(auc: pd.DataFrame) -> V.Verdict:
    """auc: rows seed, scorer ("random" / "hard"), corruption, auc."""
    per_seed = auc.groupby(["seed", "scorer"])["auc"].mean().unstack("scorer")
    gate = V.above_chance(
        "mean AUC over corruptions, worst scorer", float(per_seed.mean().min()), AUC_CHANCE, SCORER_MARGIN
    )
    failed = V.failed_at_chance(per_seed.min(axis=1).to_dict(), AUC_CHANCE, SCORER_MARGIN)
    d = (per_seed["hard"] - per_seed["random"]).dropna()
    effect = V.paired_effect(d.to_dict(), exclude=failed)
    by = auc.pivot_table(index="seed", columns=["scorer", "corruption"], values="auc")
    kinds = list(dict.fromkeys(auc["corruption"]))
    per_kind = {c: (by[("hard", c)] - by[("random", c)]).dropna() for c in kinds}
    return V.judge(
        "Negative-sample learning (hard negatives) raises the quality scorer's AUC",
        AITQE_PAPER,
        effect,
        min_effect=NEGATIVES_MIN_EFFECT,
        gates=[gate],
        failed_seeds=failed,
        n_total_seeds=len(d),
        evidence=f"mean AUC over corruptions: hard {per_seed['hard'].mean():.3f}, random {per_seed['random'].mean():.3f}"
        + "; by corruption, random -> hard (per-seed differences): "
        + ", ".join(
            f"{c} {by[('random', c)].mean():.2f}->{by[('hard', c)].mean():.2f} ("
            + " ".join(f"{x:+.2f}" for x in per_kind[c])
            + ")"
            for c in kinds
        )
        + "; statistic: hard minus random, per seed",
    )


def verdicts(bench: dict, aitqe: dict) -> list[V.Verdict]:
    """The three verdicts from `run_benchmark`'s and `run_aitqe`'s outputs."""
    return [verdict_event_hardest(bench["pope"]), verdict_rewrite(aitqe["policies"]), verdict_negatives(aitqe["auc"])]
