"""How far a figure's numbers may move on a rerun and still count as noise: the tolerance a study declares.

`save_figure(..., tolerance=...)` records it in the MANIFEST; `studio figures --check` reads it back and
calls a rerun whose numbers all move less than it "within spread" instead of "changed". One entry per
column of the figure's data, in one of three forms:

    {"val_loss": 0.02}                                            # every row: 0.02
    {"value": {"by": "metric", "spread": {"gap": 0.3, "vt_probe": 0.05}}}   # per group: the row's metric
    {"accuracy": {"interval": ["ci_low", "ci_high"]}}             # per row: half its own interval's width

The first suits a wide table whose columns are metrics (the seed spread of each); the second a long
table whose `value` column mixes metrics of different scales (rows of a group missing from `spread`
get none); the third a number published with its own interval (a bootstrap or t interval the study
computed: half of it is how far a rerun's estimate may move). A text column given a tolerance holds
space-separated numbers (per-seed values), compared number by number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Tolerance = dict  # {column: float | {"by": column, "spread": {group: float}} | {"interval": [low, high]}}


def normalise(name: str, data: pd.DataFrame, tolerance: dict | None) -> dict | None:
    """`tolerance` checked against `data` and made plain (floats, lists) for the MANIFEST; None if empty."""
    if not tolerance:
        return None
    out, bad = {}, {}
    for col, spec in tolerance.items():
        if col not in data.columns:
            bad[col] = "not a column of the data"
        elif isinstance(spec, dict) and set(spec) == {"by", "spread"}:
            values = {str(k): float(v) for k, v in spec["spread"].items()}
            if spec["by"] not in data.columns or not all(v >= 0 for v in values.values()):
                bad[col] = spec
            else:
                out[col] = {"by": str(spec["by"]), "spread": values}
        elif isinstance(spec, dict) and set(spec) == {"interval"}:
            low, high = spec["interval"]
            if low not in data.columns or high not in data.columns:
                bad[col] = spec
            else:
                out[col] = {"interval": [str(low), str(high)]}
        else:
            try:
                value = float(spec)
            except (TypeError, ValueError):
                value = float("nan")
            if value >= 0:
                out[col] = value
            else:
                bad[col] = spec
    if bad:
        raise ValueError(
            f"figure {name!r}: tolerance needs, per column of its data, a number >= 0, "
            f"{{'by': column, 'spread': {{group: number >= 0}}}} or {{'interval': [low column, high column]}}; got {bad}"
        )
    return out


def allowed(spec, published: pd.DataFrame) -> np.ndarray:
    """Per row of the published data, how far a column with tolerance `spec` (None: none) may move."""
    n = len(published)
    if spec is None:
        return np.zeros(n)
    if isinstance(spec, dict) and "by" in spec:
        groups = published[spec["by"]].astype(str)
        return groups.map(spec["spread"]).fillna(0.0).to_numpy(float)
    if isinstance(spec, dict) and "interval" in spec:
        low, high = (published[c].to_numpy(float) for c in spec["interval"])
        half = np.abs(high - low) / 2
        return np.where(np.isfinite(half), half, 0.0)
    return np.full(n, float(spec))


def describe(spec) -> str:
    """A few words for a report: what the tolerance was."""
    if isinstance(spec, dict) and "by" in spec:
        return f"tolerance per {spec['by']}"
    if isinstance(spec, dict) and "interval" in spec:
        return f"tolerance half of [{', '.join(spec['interval'])}]"
    return f"tolerance {float(spec):.3g}"


def intervals(data: pd.DataFrame, pairs: dict[str, tuple[str, str]] | None = None) -> dict:
    """Interval tolerances for every number published with its own interval: each column X with columns
    X_ci_low and X_ci_high, plus the explicit `pairs` {column: (low column, high column)}. The bounds
    themselves get the same tolerance as their estimate."""
    found = {c: (f"{c}_ci_low", f"{c}_ci_high") for c in data.columns if {f"{c}_ci_low", f"{c}_ci_high"} <= set(data)}
    found.update(pairs or {})
    out = {}
    for col, (low, high) in found.items():
        for c in (col, low, high):
            out[c] = {"interval": [low, high]}
    return out


def seed_range(data: pd.DataFrame, keys: list[str], columns: list[str] | None = None, seed: str = "seed") -> dict:
    """Per numeric column, the largest range over seeds within any group of `keys`: the seed spread."""
    columns = columns or [c for c in data.columns if c not in (*keys, seed) and pd.api.types.is_numeric_dtype(data[c])]
    groups = data.groupby(keys)[columns]
    widest = (groups.max() - groups.min()).max()
    return {c: float(v) for c, v in widest.items() if np.isfinite(v)}


def percentile_half_width(data: pd.DataFrame, level: float = 0.95) -> dict:
    """Per numeric column of a table of bootstrap replicates, half the width of its central `level`
    range: how far one replicate may move when the data behind it move within their own spread."""
    out = {}
    for c in data.columns:
        if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c]):
            lo, hi = np.nanpercentile(data[c].to_numpy(float), [50 * (1 - level), 50 * (1 + level)])
            if np.isfinite(hi - lo):
                out[c] = float(hi - lo) / 2
    return out
