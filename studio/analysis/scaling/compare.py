"""Comparing law families on the same measurements: AIC, BIC and leave-one-out error, and a choice.

table = compare(df, ["additive", "multiplicative", "kaplan"], x=("frames", "tokens_per_frame"), y="loss")
name, best = choose(table)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from studio.analysis.scaling.fit import Fit, ScalingWarning, fit
from studio.analysis.scaling.laws import parse_law_spec
from studio.analysis.scaling.solver import _refit_weighted
from studio.analysis.scaling.tie import expand, reduce


def compare(
    data,
    laws=("additive", "multiplicative", "kaplan"),
    x=("x1", "x2"),
    y: str = "loss",
    *,
    loss: str = "huber",
    delta: float = 1e-3,
    loo: bool = True,
    **fit_kw,
) -> pd.DataFrame:
    """Fit each law on the same data; one row per law with objective, R^2/RMSE (log), AIC, BIC,
    leave-one-out RMSE of log predictions (each point predicted by a refit without it), the
    parameters, and whether the fit is degenerate. Sorted by AIC; `fits` attribute holds the Fits."""
    rows, fits = [], {}
    for spec in laws:
        law, xs, label = parse_law_spec(spec, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScalingWarning)
            f = fit(data, law, x=xs, y=y, loss=loss, delta=delta, **fit_kw)
        fits[label] = f
        row = {
            "law": label,
            "formula": f.law.formula,
            "k": f.k,
            "n": f.n,
            "objective": f.objective,
            "r2_log": f.r2_log,
            "rmse_log": f.rmse_log,
            "aic": f.aic,
            "bic": f.bic,
        }
        row["loo_rmse_log"] = loo_rmse(f) if loo else float("nan")
        row["degenerate"] = f.degenerate
        row["params"] = ", ".join(f"{k}={v:.4g}" for k, v in f.params.items())
        rows.append(row)
    table = pd.DataFrame(rows)
    table["delta_aic"] = table["aic"] - table["aic"].min()
    table = table.sort_values("aic", kind="stable").reset_index(drop=True)
    table.attrs["fits"] = fits
    return table


def loo_rmse(f: Fit, max_iter: int = 300) -> float:
    """Leave-one-out RMSE of log predictions: refit without each point (batched, warm-started)."""
    W = 1.0 - np.eye(f.n)
    theta, _, _ = _refit_weighted(f._problem(), reduce(f.law, f.tie, f.theta), W, max_iter=max_iter)
    ly, _ = f.law.log_model(expand(f.law, f.tie, theta), np.log(f.X))
    held = ly[np.arange(f.n), np.arange(f.n)]
    return float(np.sqrt(f._mean((np.log(f.y_obs) - held) ** 2)))


def choose(table: pd.DataFrame, n_inputs: int = 2) -> tuple[str, Fit]:
    """The law a notebook draws: lowest AIC among non-degenerate fits taking `n_inputs` inputs
    (falling back to degenerate ones if none is clean)."""
    fits = table.attrs["fits"]
    rows = [r for _, r in table.iterrows() if fits[r["law"]].law.n_inputs == n_inputs]
    if not rows:
        raise ValueError(f"no law with {n_inputs} inputs among {list(table['law'])}")
    clean = [r for r in rows if not r["degenerate"]]
    label = (clean or rows)[0]["law"]
    return label, fits[label]
