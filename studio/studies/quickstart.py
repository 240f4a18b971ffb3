"""How much does pooling an image to fewer tokens lose? A linear probe on pooled digits answers.

The quickstart study: the smallest real analysis that runs through the whole pipeline, and a first
look at the question the visual-context engine asks at scale (tokens per frame, M).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from studio.data.digits import pool_grid, split_digits


def probe_pooled(grids=(1, 2, 4, 8), seeds=(0, 1, 2), test_fraction: float = 0.3, C: float = 1.0) -> pd.DataFrame:
    """Held-out accuracy of a logistic-regression probe on digits mean-pooled to g x g tokens.

    Returns one row per (grid, seed): grid, tokens (= grid**2), seed, accuracy, n_test.
    Each seed draws its own train/test split of the images.
    """
    from sklearn.linear_model import LogisticRegression

    rows = []
    for seed in seeds:
        split = split_digits(test_fraction, seed=int(seed))
        (xtr, ytr), (xte, yte) = split["train"], split["test"]
        for g in grids:
            ftr, fte = pool_grid(xtr, g).reshape(len(xtr), -1), pool_grid(xte, g).reshape(len(xte), -1)
            clf = LogisticRegression(C=C, max_iter=2000).fit(ftr, ytr)
            rows.append({"grid": g, "tokens": g * g, "seed": int(seed),
                         "accuracy": float((clf.predict(fte) == yte).mean()), "n_test": len(yte)})
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean accuracy per grid with a normal-approximation interval over seeds."""
    from scipy import stats

    g = results.groupby(["grid", "tokens"])["accuracy"]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    z = stats.norm.ppf(0.5 + level / 2)
    half = z * out["sd"].fillna(0.0) / np.sqrt(out["n"])
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out
