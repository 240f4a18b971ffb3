"""The hallucination study's verdicts, computed from its tables (never asserted).

1. Event hallucinations are the hardest to catch (Hal-Eval): per (model, seed), the discriminative
   accuracy on event statements against the lowest of the other three types; reproduced when every model's
   seed-mean event accuracy is its lowest, a tie when the t interval of the paired gaps covers 0.
2. Rewriting beats filtering at equal training steps (AITQE): per (rate, seed), the downstream captioner's
   hallucination rate (the mean over the four types of the hallucinated share of its mentions), filter minus
   rewrite; reproduced when rewrite is lower at every rate (seed means), a tie when the t interval of the
   paired differences covers 0.
3. Negative-sample learning makes the scorer better (AITQE): per seed, the mean AUC over corruption types,
   hard negatives minus random negatives; a tie when the t interval covers 0.
With one unit the interval is undefined and the verdict is a tie: nothing to compare with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio import verdicts as V
from studio.data.scenes import HALLUCINATION_TYPES as TYPES
from studio.stats import t_interval

EVENT_PAPER = "Hal-Eval (event hallucination benchmark, arXiv 2402.15721)"
AITQE_PAPER = "AITQE (arXiv 2410.16166)"


def _paired(d) -> tuple[float, float, bool]:
    """(mean, t half-width, inside): inside when the interval covers 0 or cannot be computed."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    mean, lo, hi = t_interval(d)
    half = (hi - lo) / 2 if np.isfinite(hi) else float("nan")
    return mean, half, not (np.isfinite(half) and abs(mean) > half)


def verdict_event_hardest(pope: pd.DataFrame) -> V.Verdict:
    """pope: rows model, seed, type, metric, value (metric "accuracy" is read)."""
    acc = pope[pope.metric == "accuracy"].pivot_table(index=["model", "seed"], columns="type", values="value")
    acc = acc.reindex(columns=list(TYPES))
    others = [t for t in TYPES if t != "event"]
    gaps = acc[others].min(axis=1) - acc["event"]  # > 0: event the hardest in that unit
    mean, half, inside = _paired(gaps)
    by_model = acc.groupby(level="model").mean()
    lowest = {m: str(r.idxmin()) for m, r in by_model.iterrows()}
    holds = len(lowest) > 0 and all(v == "event" for v in lowest.values())
    means = acc.mean()
    return V.verdict(
        "Event hallucinations are the hardest to catch (lowest discriminative accuracy)",
        EVENT_PAPER,
        holds=holds and mean > 0,
        tie=inside,
        value=mean,
        spread=half,
        evidence="accuracy by type (mean over models and seeds): "
        + ", ".join(f"{t} {means[t]:.3f}" for t in TYPES)
        + f"; hardest type per model: {', '.join(f'{m} {t}' for m, t in lowest.items())}; "
        f"next-hardest minus event {mean:+.3f}, t half-width {half:.3f} over {len(gaps)} model-seeds",
    )


def verdict_rewrite(policies: pd.DataFrame, metric: str = "mean_instance") -> V.Verdict:
    """policies: rows rate, seed, policy, <metric> (a hallucination rate: lower is better)."""
    wide = policies.pivot_table(index=["rate", "seed"], columns="policy", values=metric)
    if not {"filter", "rewrite"} <= set(wide.columns):
        return V.verdict(
            "Rewriting beats filtering at equal steps", AITQE_PAPER, False, "no filter or rewrite runs", tie=True
        )
    d = wide["filter"] - wide["rewrite"]
    mean, half, inside = _paired(d)
    per_rate = d.groupby(level="rate").mean()
    means = policies.groupby(["rate", "policy"])[metric].mean()
    return V.verdict(
        "Rewriting flagged captions beats filtering them at equal training steps (lower hallucination rate)",
        AITQE_PAPER,
        holds=bool((per_rate > 0).all()),
        tie=inside,
        value=mean,
        spread=half,
        evidence=f"{metric} of the downstream captioner (seed means): "
        + "; ".join(
            f"rate {r:g}: "
            + ", ".join(f"{p} {means[(r, p)]:.3f}" for p in ("keep", "filter", "rewrite") if (r, p) in means)
            for r in per_rate.index
        )
        + f"; filter minus rewrite {mean:+.3f}, t half-width {half:.3f} over {len(d)} rate-seeds",
    )


def verdict_negatives(auc: pd.DataFrame) -> V.Verdict:
    """auc: rows seed, scorer ("random" / "hard"), corruption, auc."""
    per_seed = auc.groupby(["seed", "scorer"])["auc"].mean().unstack("scorer")
    d = per_seed["hard"] - per_seed["random"]
    mean, half, inside = _paired(d)
    by = auc.groupby(["scorer", "corruption"])["auc"].mean()
    return V.verdict(
        "Negative-sample learning (hard negatives) raises the quality scorer's AUC",
        AITQE_PAPER,
        holds=mean > 0,
        tie=inside,
        value=mean,
        spread=half,
        evidence=f"mean AUC over corruptions: hard {per_seed['hard'].mean():.3f}, random {per_seed['random'].mean():.3f}; "
        + "by corruption (random -> hard): "
        + ", ".join(f"{c} {by[('random', c)]:.2f}->{by[('hard', c)]:.2f}" for c in auc["corruption"].unique())
        + f"; hard minus random {mean:+.3f}, t half-width {half:.3f} over {len(d)} seeds",
    )


def verdicts(bench: dict, aitqe: dict) -> list[V.Verdict]:
    """The three verdicts from `run_benchmark`'s and `run_aitqe`'s outputs."""
    return [verdict_event_hardest(bench["pope"]), verdict_rewrite(aitqe["policies"]), verdict_negatives(aitqe["auc"])]
