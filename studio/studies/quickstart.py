"""How much does pooling an image to fewer tokens lose? A linear probe on pooled digits answers.

The quickstart study: the smallest real analysis that runs through the whole pipeline, and a first
look at the question the visual-context engine asks at scale (tokens per frame, M).
"""

from __future__ import annotations

import pandas as pd
from threadpoolctl import threadpool_limits

from studio.data.digits import load_digits_images, pool_grid, split_digits
from studio.errors import ParameterError
from studio.stats import LEVEL
from studio.stats import summarise as summarise_seeds
from studio.verdicts import Verdict, above_chance, failed_at_chance, paired_effect, sanity

CHANCE = 0.1  # ten digit classes
WITHIN_BEST = 0.02  # "enough tokens": mean accuracy within this of the best grid's
ABOVE_CHANCE_MARGIN = 0.2  # the probe "reads digits" at chance + 0.2 or more on the finest grid
# The pooling check's smallest effect: a loss under WITHIN_BEST is "enough tokens" by this study's own rule.
POOLING_MIN_EFFECT = WITHIN_BEST
PIPELINE = "the digit probe pipeline (studio.data.digits)"


def probe_pooled(grids=(1, 2, 4, 8), seeds=(0, 1, 2), test_fraction: float = 0.3, C: float = 1.0) -> pd.DataFrame:
    """Held-out accuracy of a logistic-regression probe on digits mean-pooled to g x g tokens.

    Returns one row per (grid, seed): grid, tokens (= grid**2), seed, accuracy, n_test.
    Each seed draws its own train/test split of the images.
    """
    grids, seeds = list(grids), list(seeds)
    side = load_digits_images()[0].shape[1]
    bad = [g for g in grids if isinstance(g, bool) or not isinstance(g, int) or g < 1 or side % g]
    if not grids or bad:
        raise ParameterError(
            f"grids must be a non-empty list of grid sides dividing the {side}-pixel digit "
            f"(from {[g for g in range(1, side + 1) if side % g == 0]}), got {grids}"
        )
    if not seeds:
        raise ParameterError("n_splits must be >= 1 (no random split to probe)")
    # One BLAS thread: the probe's rounding, and so which borderline test image it gets right, depends
    # on the thread count (2 of 20 accuracies moved by 1/540 between 1 and 2 threads), and a result
    # must not depend on how many cores the machine has. The fits are small; one thread is not slower.
    with threadpool_limits(1):
        return _probe(grids, seeds, test_fraction, C)


def _probe(grids, seeds, test_fraction, C) -> pd.DataFrame:
    from sklearn.linear_model import LogisticRegression

    rows = []
    for seed in seeds:
        split = split_digits(test_fraction, seed=int(seed))
        (xtr, ytr), (xte, yte) = split["train"], split["test"]
        for g in grids:
            ftr, fte = pool_grid(xtr, g).reshape(len(xtr), -1), pool_grid(xte, g).reshape(len(xte), -1)
            clf = LogisticRegression(C=C, max_iter=2000).fit(ftr, ytr)
            rows.append(
                {
                    "grid": g,
                    "tokens": g * g,
                    "seed": int(seed),
                    "accuracy": float((clf.predict(fte) == yte).mean()),
                    "n_test": len(yte),
                }
            )
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per grid: mean accuracy over splits with a t interval (studio.stats): grid, tokens, mean, ci_low,
    ci_high, n_seeds (one seed per random split)."""
    return summarise_seeds(results, ["grid", "tokens"], "accuracy", level)


def seed_spread(results: pd.DataFrame) -> dict[str, float]:
    """The largest range of accuracy over splits at any grid: the tolerance `studio figures --check` allows."""
    per_grid = results.groupby("grid")["accuracy"]
    return {"accuracy": float((per_grid.max() - per_grid.min()).max())}


def enough_tokens(summary: pd.DataFrame, within: float = WITHIN_BEST) -> int:
    """The fewest tokens per image whose mean accuracy is within `within` of the best."""
    best = summary["mean"].max()
    return int(summary.loc[summary["mean"] >= best - within, "tokens"].min())


def verdicts(results: pd.DataFrame, summary: pd.DataFrame | None = None) -> list[Verdict]:
    """The pooling result, as what it is: a pipeline check (kind sanity), not a finding.

    One pooled token is the image's mean pixel and the finest grid is the raw 8 x 8 image, so the finest grid
    beating one token holds by construction of the pooling; it checks that the probe, the splits and the
    pooling run. Effect: per split, accuracy at the most tokens minus at the fewest (> 0: pooling loses),
    min_effect POOLING_MIN_EFFECT; gated on the finest grid's mean accuracy above chance; a split at chance
    on the finest grid while others are not is a failed seed, set aside.
    """
    summary = summarise(results) if summary is None else summary
    few, many = int(results["tokens"].min()), int(results["tokens"].max())
    by = results.pivot_table(index="seed", columns="tokens", values="accuracy", aggfunc="mean")
    failed = failed_at_chance(by[many].to_dict(), CHANCE, ABOVE_CHANCE_MARGIN)
    kept = by.drop(index=failed)
    gates = [
        above_chance(
            f"probe accuracy with {many} tokens, mean of splits", kept[many].mean(), CHANCE, ABOVE_CHANCE_MARGIN
        )
    ]
    effect = paired_effect((by[many] - by[few]).to_dict(), exclude=failed)
    return [
        sanity(
            f"Mean-pooling a digit to {few} token(s) loses what a linear probe reads from {many} tokens (the raw image)",
            PIPELINE,
            effect,
            min_effect=POOLING_MIN_EFFECT,
            gates=gates,
            failed_seeds=failed,
            n_total_seeds=len(by),
            evidence=f"{few} token(s): {by[few].mean():.3f} vs {many} tokens: {by[many].mean():.3f} (chance {CHANCE}, "
            f"mean of {len(by)} splits); within {WITHIN_BEST} of the best from {enough_tokens(summary)} tokens on. "
            "One token is the image's mean pixel: true by construction, a check of the pipeline.",
        )
    ]
