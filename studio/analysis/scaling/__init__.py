"""Scaling laws: fit, compare and allocate, for users' own measurements and for ours.

    fit(data, "additive", x=("frames", "tokens_per_frame"), y="loss")  ->  Fit
    fit(data, "pure_power", x="C", y="N", loss="mse", weights="w")     ->  weighted log-log regression
    fit(data, "additive", x=("N", "D"), tie={"beta": "alpha"})          ->  one exponent for both terms
    compare(data, ["additive", "multiplicative", "kaplan"], x=...)      ->  table with AIC/BIC/LOO
    optimal_allocation(fit, budget), allocation_frontier(fit, budgets, bootstrap=200)

How a fit works (Hoffmann et al. 2022; Epoch AI's replication, Besiroglu et al. 2024):
- positive scale parameters (E, A, B) are fitted as their logs e, a, b, and the law is written in
  log space as a log-sum-exp, e.g. log L = LSE(e, a - alpha log x1, b - beta log x2), so they stay
  positive and the objective is smooth in the raw parameters;
- the objective is by default the SUM over points of Huber_delta(log y - log y_hat), delta = 1e-3
  (also `mse` = sum of squared log residuals, `mse_linear` = sum of squared residuals);
- the search is global: every start of a grid (Epoch's 4,500 for `additive`) is run at once by a
  Levenberg-Marquardt / iteratively-reweighted Gauss-Newton method vectorised across starts (the
  Huber loss is majorised by a weighted square, so each step solves a batch of tiny P x P systems),
  the worst starts are pruned early, and the best few are polished with scipy's L-BFGS-B using the
  analytic gradient.
- bootstrap and leave-one-out refits reuse the same batched solver: a resample is a row of point
  weights, warm-started at the full-data optimum, so thousands of refits run as one batch.

The package, one noun per module: laws (the families and their registry), solver (losses and the
batched Levenberg-Marquardt), inputs (table and weight checks), tie (tied parameters, e.g. one
exponent for both terms), fit (Fit, fit, compare, choose; `weights=`, `tie=`), allocation
(optimal split under x1 * x2 = budget), data (Chinchilla, users' CSVs, the synthetic example),
published (reference numbers, the only copy in the project). Everything is re-exported here, so
`studio.scaling.fit`, `optimal_allocation`, `register_law` etc. keep working.
"""

from __future__ import annotations

from studio.analysis.scaling.allocation import Allocation, allocation_frontier, optimal_allocation
from studio.analysis.scaling.compare import choose, compare, loo_rmse
from studio.analysis.scaling.data import (
    SYNTHETIC_TRUTH,
    load_chinchilla,
    load_measurements,
    measurements_or_example,
    resolve_y,
    synthetic_measurements,
)
from studio.analysis.scaling.fit import Fit, ScalingWarning, fit
from studio.analysis.scaling.inputs import prepare
from studio.analysis.scaling.laws import LAWS, Law, get_law, parse_law_spec, register_law
from studio.analysis.scaling.published import PUBLISHED
from studio.analysis.scaling.solver import LOSSES, huber

__all__ = [
    "Allocation",
    "Fit",
    "LAWS",
    "LOSSES",
    "Law",
    "PUBLISHED",
    "SYNTHETIC_TRUTH",
    "ScalingWarning",
    "allocation_frontier",
    "choose",
    "compare",
    "fit",
    "get_law",
    "huber",
    "load_chinchilla",
    "load_measurements",
    "loo_rmse",
    "measurements_or_example",
    "optimal_allocation",
    "parse_law_spec",
    "prepare",
    "register_law",
    "resolve_y",
    "synthetic_measurements",
]
