"""Allocation under x1 * x2 = budget: the split a fitted law predicts to be best, and its frontier.

    optimal_allocation(fit, budget)                        ->  Allocation
    allocation_frontier(fit, budgets, bootstrap=200)      ->  table with percentile bands (ci_low, ci_high)

Closed form for `additive`; a dense grid in log x1 refined by a parabola (vectorised over bootstrap
rows) for every other law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from studio.analysis.scaling.fit import Fit
from studio.analysis.scaling.laws import Law
from studio.stats import percentile_interval


@dataclass(frozen=True)
class Allocation:
    budget: float
    x: dict  # {input name: optimal value}
    loss: float  # predicted loss at the optimum
    method: str  # "closed form" or "numeric"
    at_boundary: bool  # the optimum is a bound of the allowed range (no interior optimum)


def _additive_closed_form(nat: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """x1* = G budget^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta)); nat (R, 5)."""
    E, A, alpha, B, beta = (nat[:, i : i + 1] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        logG = (np.log(alpha * A) - np.log(beta * B)) / (alpha + beta)
        return np.exp(logG + beta / (alpha + beta) * np.log(budgets)[None, :])


def _allocate(
    law: Law, thetas: np.ndarray, budgets: np.ndarray, x_min=(1.0, 1.0), *, method: str = "auto", grid: int = 1601
):
    """Optimal log x1 (R, B), log loss (R, B) and at_boundary (R, B) for parameter rows and budgets.

    The constraint is x1 * x2 = budget with x1 >= x_min[0], x2 >= x_min[1]. `numeric`: a dense grid
    in log x1 and a parabola through the best grid point and its neighbours (vectorised over rows).
    """
    thetas = np.atleast_2d(thetas)
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    if law.n_inputs != 2:
        raise ValueError(f"allocation needs a two-input law; {law.name!r} takes {law.n_inputs}")
    if not (np.isfinite(budgets).all() and (budgets > 0).all()):
        raise ValueError("budgets must be finite and > 0")
    lo = np.full(budgets.shape, np.log(x_min[0]))
    hi = np.log(budgets) - np.log(x_min[1])
    if np.any(hi < lo):
        raise ValueError(f"budget(s) {budgets[hi < lo]} are below x1_min * x2_min = {x_min[0] * x_min[1]}")
    if method == "auto":
        method = "closed form" if law.name == "additive" else "numeric"
    R, B = len(thetas), len(budgets)
    t, lL = np.empty((R, B)), np.empty((R, B))
    frac = np.linspace(0.0, 1.0, grid)
    for j in range(B):
        lb = np.log(budgets[j])
        if method == "closed form":
            if law.name != "additive":
                raise ValueError(f"no closed form for law {law.name!r}; use method='numeric'")
            tj = np.clip(np.log(_additive_closed_form(law.natural(thetas), budgets[j : j + 1])[:, 0]), lo[j], hi[j])
            # each row at its own point: the diagonal of a (R, R) evaluation, in chunks
            lL[:, j] = np.concatenate(
                [
                    np.diagonal(
                        law.log_model(thetas[s : s + 256], np.column_stack([tj[s : s + 256], lb - tj[s : s + 256]]))[0]
                    )
                    for s in range(0, R, 256)
                ]
            )
            t[:, j] = tj
            continue
        if method != "numeric":
            raise ValueError(f"method must be 'auto', 'closed form' or 'numeric', got {method!r}")
        tt = lo[j] + frac * (hi[j] - lo[j])
        ly, _ = law.log_model(thetas, np.column_stack([tt, lb - tt]))  # (R, G)
        ly = np.where(np.isfinite(ly), ly, np.inf)
        k = np.argmin(ly, axis=1)
        inner = (k > 0) & (k < grid - 1)
        kk = np.clip(k, 1, grid - 2)
        rows = np.arange(R)
        f0, f1, f2 = ly[rows, kk - 1], ly[rows, kk], ly[rows, kk + 1]
        h = tt[1] - tt[0]
        curv = f2 - 2 * f1 + f0
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(curv > 0, -h * (f2 - f0) / (2 * curv), 0.0)
            fmin = np.where(curv > 0, f1 - (f2 - f0) ** 2 / (8 * curv), f1)
        t[:, j] = np.where(inner, tt[kk] + np.clip(shift, -h, h), tt[k])
        lL[:, j] = np.where(inner, fmin, ly[rows, k])
    tol = 1e-6 * (1 + np.abs(hi - lo))
    at_bound = (t - lo[None, :] < tol[None, :]) | (hi[None, :] - t < tol[None, :])
    return t, lL, at_bound


def optimal_allocation(fit: Fit, budget: float, *, x_min=(1.0, 1.0), method: str = "auto") -> Allocation:
    """The split x1 * x2 = budget minimising the fitted law's predicted loss.

    Closed form for `additive` (x1* = G budget^(beta/(alpha+beta)), G = (alpha A/(beta B))^(1/(alpha+beta)));
    numeric otherwise (dense grid then bounded scalar minimisation in log x1). x_min: the smallest
    allowed value of each input (default 1: at least one frame, one token).
    """
    from scipy.optimize import minimize_scalar

    law = fit.law
    method = ("closed form" if law.name == "additive" else "numeric") if method == "auto" else method
    t, lL, at_b = _allocate(law, fit.theta[None, :], np.array([float(budget)]), x_min, method=method)
    t, lL, at_b = float(t[0, 0]), float(lL[0, 0]), bool(at_b[0, 0])
    lb = math.log(budget)
    lo, hi = math.log(x_min[0]), lb - math.log(x_min[1])
    if method == "numeric" and not at_b:
        h = (hi - lo) / 1600

        def f(tt):
            return float(law.log_model(fit.theta[None, :], np.array([[tt, lb - tt]]))[0][0, 0])

        res = minimize_scalar(
            f, bounds=(max(lo, t - 2 * h), min(hi, t + 2 * h)), method="bounded", options={"xatol": 1e-10}
        )
        if res.fun <= lL:
            t, lL = float(res.x), float(res.fun)
    x1 = math.exp(t)
    return Allocation(
        budget=float(budget),
        x={fit.x[0]: x1, fit.x[1]: float(budget) / x1},
        loss=math.exp(lL),
        method=method,
        at_boundary=at_b,
    )


def allocation_frontier(
    fit: Fit,
    budgets,
    *,
    bootstrap: int | pd.DataFrame | None = None,
    level: float = 0.95,
    seed: int = 0,
    x_min=(1.0, 1.0),
    method: str = "auto",
) -> pd.DataFrame:
    """Optimal split for each budget: columns budget, <x1>_opt, <x2>_opt, loss_opt, at_boundary, and
    with `bootstrap` (a number of resamples, or a table from fit.bootstrap) percentile bands
    <x1>_ci_low/_ci_high, <x2>_ci_low/_ci_high, loss_ci_low/_ci_high."""
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    n1, n2 = fit.x
    rows = [optimal_allocation(fit, b, x_min=x_min, method=method) for b in budgets]
    out = pd.DataFrame(
        {
            "budget": budgets,
            f"{n1}_opt": [a.x[n1] for a in rows],
            f"{n2}_opt": [a.x[n2] for a in rows],
            "loss_opt": [a.loss for a in rows],
            "at_boundary": [a.at_boundary for a in rows],
        }
    )
    if bootstrap is None:
        return out
    boot = bootstrap if isinstance(bootstrap, pd.DataFrame) else fit.bootstrap(int(bootstrap), seed)
    thetas = np.array([fit.law.raw(dict(zip(fit.law.params, r))) for r in boot[list(fit.law.params)].to_numpy()])
    t, lL, _ = _allocate(fit.law, thetas, budgets, x_min, method=method)
    x1 = np.exp(t)
    x2 = budgets[None, :] / x1
    for name, vals in ((n1, x1), (n2, x2), ("loss", np.exp(lL))):
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = _band(vals, level)
    return out


def _band(vals: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile band over resamples, (R, B) -> ci_low (B,), ci_high (B,).

    A resample whose allocation is undefined (NaN) is left out of its budget's band, not the whole
    band turned NaN: the same numbers as np.nanquantile.
    """
    lo, hi = np.full(vals.shape[1], np.nan), np.full(vals.shape[1], np.nan)
    for j in range(vals.shape[1]):
        v = vals[:, j][~np.isnan(vals[:, j])]
        if len(v):
            lo[j], hi[j] = percentile_interval(v, level)
    return lo, hi
