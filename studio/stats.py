"""The one interval helper: every `mean, ci_low, ci_high, n_seeds` in the workbench comes from here.

- Seed means (a handful of independent training runs): Student's t interval, `t_interval`.
- Statistics of many resampled units (episodes, points, bootstrap refits): percentile interval of the
  resampled values, `percentile_interval`.
`summarise` applies the t interval to a table grouped by its cell columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LEVEL = 0.95  # the default confidence level of every interval in the workbench


def _check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or not 0 < float(level) < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) of independent values (seeds) with Student's t; NaN bounds below 2 values."""
    from scipy import stats

    level = _check_level(level)
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def percentile_interval(samples, level: float = LEVEL, axis: int = 0):
    """(ci_low, ci_high): the central `level` share of resampled values (percentile bootstrap)."""
    level = _check_level(level)
    q = (0.5 - level / 2, 0.5 + level / 2)
    lo, hi = np.quantile(np.asarray(samples, dtype=float), q, axis=axis)
    return lo, hi


def summarise(table: pd.DataFrame, by: str | Sequence[str], value: str, level: float = LEVEL) -> pd.DataFrame:
    """One row per group of `by`: mean, ci_low, ci_high (t interval over rows) and n_seeds."""
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, value] if c not in table.columns]
    if missing:
        raise KeyError(f"summarise: no column(s) {missing}; the table has {list(table.columns)}")
    rows = []
    for group, part in table.groupby(keys, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        mean, lo, hi = t_interval(part[value], level)
        rows.append(
            {
                **dict(zip(keys, group)),
                "mean": mean,
                "ci_low": lo,
                "ci_high": hi,
                "n_seeds": int(part[value].notna().sum()),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "n_seeds"])
