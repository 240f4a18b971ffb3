"""Input checks: a table of measurements -> arrays the solver can take, with one clear error per problem.

An input spec is a column name, or 'a*b' for the product of two columns (e.g. total visual tokens).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.analysis.scaling.solver import LOSSES


def _columns(spec) -> list[str]:
    return [c.strip() for c in str(spec).split("*")]


def _numeric_column(df: pd.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        conv = pd.to_numeric(s, errors="coerce")
        bad = s[conv.isna() & s.notna()]
        if len(bad):
            raise ValueError(
                f"column {col!r} is not numeric: value {bad.iloc[0]!r} in row {bad.index[0]}"
                f" ({len(bad)} non-numeric values)"
            )
        s = conv
    return s.to_numpy(dtype=float)


def prepare(data, x, y: str, *, n_params: int = 0, loss: str = "huber"):
    """Check a table and return (X (N, k) in natural units, y (N,)). One clear ValueError per problem.

    x: column names; an entry 'a*b' is the product of two columns (e.g. total visual tokens).
    """
    if isinstance(data, (str, bytes)) or not hasattr(data, "__getitem__"):
        raise ValueError(f"data must be a DataFrame or a mapping of columns, got {type(data).__name__}")
    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
    xs = [x] if isinstance(x, str) else list(x)
    needed = [c for spec in xs for c in _columns(spec)] + [y]
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the data has columns {list(df.columns)}")
    cols = {c: _numeric_column(df, c) for c in dict.fromkeys(needed)}
    for c, v in cols.items():
        bad = ~np.isfinite(v)
        if bad.any():
            rows = list(df.index[bad][:5])
            raise ValueError(
                f"column {c!r} has {int(bad.sum())} NaN/infinite value(s) (rows {rows}); "
                "drop or fill them before fitting"
            )
    for c, v in cols.items():
        if c == y and LOSSES.get(loss) == "linear":
            continue
        bad = v <= 0
        if bad.any():
            rows = list(df.index[bad][:5])
            raise ValueError(
                f"column {c!r} has {int(bad.sum())} non-positive value(s) (rows {rows}); "
                "the fit takes logs, so every input and loss must be > 0"
            )
    X = (
        np.column_stack([np.prod([cols[c] for c in _columns(spec)], axis=0) for spec in xs])
        if xs
        else np.empty((len(df), 0))
    )
    if len(df) < n_params:
        raise ValueError(
            f"{len(df)} data points but the law has {n_params} parameters: need at least as many points as parameters"
        )
    return X, cols[y]


def _inputs(data, x) -> np.ndarray:
    xs = [x] if isinstance(x, str) else list(x)
    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
    missing = [c for spec in xs for c in _columns(spec) if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the data has columns {list(df.columns)}")
    X = np.column_stack([np.prod([_numeric_column(df, c) for c in _columns(s)], axis=0) for s in xs])
    if not np.isfinite(X).all() or (X <= 0).any():
        raise ValueError(f"inputs {xs} must be finite and > 0 to predict")
    return X


def point_weights(data, weights, n_rows: int, n_free: int) -> np.ndarray | None:
    """The `weights` argument of fit -> (N,) floats, or None when not given.

    weights: a column of `data` (e.g. 1/std^2 per configuration, as Porian et al. weight their fits)
    or an array with one entry per row. Finite, >= 0, not all zero; a zero weight drops its point,
    so at least `n_free` points must keep a positive weight.
    """
    if weights is None:
        return None
    if isinstance(weights, str):
        df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
        if weights not in df.columns:
            raise ValueError(f"weights: no column {weights!r}; the data has columns {list(df.columns)}")
        w = _numeric_column(df, weights)
    else:
        try:
            w = np.asarray(weights, dtype=float)
        except (TypeError, ValueError) as e:
            raise ValueError(f"weights must be a column name or numbers, one per row ({e})") from None
    if w.ndim != 1 or len(w) != n_rows:
        raise ValueError(f"weights has length {len(w) if w.ndim == 1 else w.shape} but the data has {n_rows} rows")
    bad = np.flatnonzero(~np.isfinite(w))
    if len(bad):
        raise ValueError(f"weights must be finite: {len(bad)} NaN/infinite value(s) (positions {list(bad[:5])})")
    bad = np.flatnonzero(w < 0)
    if len(bad):
        raise ValueError(f"weights must be >= 0: {len(bad)} negative value(s) (positions {list(bad[:5])})")
    if not (w > 0).any():
        raise ValueError("weights are all zero: nothing left to fit")
    if (w > 0).sum() < n_free:
        raise ValueError(
            f"weights leave {int((w > 0).sum())} point(s) with a positive weight but the law has "
            f"{n_free} free parameters"
        )
    return w
