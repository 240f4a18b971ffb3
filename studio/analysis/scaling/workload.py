"""A workload-conditioned allocation law: how the optimal number of frames moves with one workload knob.

    law = fit_workload_law(optima, knob="needle_fraction")      # optima: one row per (workload, budget)
    law.predict(w=[0.125], budget=[16, 32])                     # T* at a knob value the fit never saw
    check = held_out_check(law, held)                           # predicted against measured T*
    doubling_gain(fit.law, fit.theta, (T, M), boot, which=1)    # loss share saved by doubling M

Per workload, a law L(T, M) fitted with `studio.scaling` gives the optimal frames T*(budget) under
T*M = budget (`allocation_frontier`). Across workloads that differ in one knob w (needle duration, object
size, event density), the optima are summarised by

    T*(w, budget) = G(w) * budget^a(w),   log G(w) = g0 + g1 log w,   a(w) = a0 + a1 log w,

the additive law's closed form (x1* = G budget^(beta/(alpha+beta))) with its constant and exponent
letting w in through log w: a knob that multiplies the need for frames shifts log T* by the same
amount at every budget (g1), one that changes how fast frames pay off tilts it (a1). It is fitted by
least squares on log T* (numpy only), so it needs at least as many (workload, budget) optima as
parameters: 3 with a shared exponent (`vary_exponent=False`, the default: two budgets cannot pin a
slope per workload), 4 when the exponent varies with w. Validation is by prediction: fit without a
workload, predict its T*, then compare with the T* its own cells give (`held_out_check`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from studio.stats import LEVEL, percentile_interval

PARAMS = ("g0", "g1", "a0", "a1")


@dataclass(frozen=True)
class WorkloadLaw:
    """log T* = g0 + g1 log w + (a0 + a1 log w) log budget, fitted on `n` optima (a1 = 0 unless varied)."""

    knob: str
    params: dict  # {"g0", "g1", "a0", "a1"}
    vary_exponent: bool
    n: int
    rmse_log: float  # root mean square residual of log T* over the fitted optima
    values: tuple  # the knob values it was fitted on

    def predict(self, w, budget) -> np.ndarray:
        """T* for knob values `w` and budgets `budget` (broadcast together), (n,) float."""
        lw, lb = np.log(np.asarray(w, float)), np.log(np.asarray(budget, float))
        p = self.params
        return np.exp(p["g0"] + p["g1"] * lw + (p["a0"] + p["a1"] * lw) * lb)

    def formula(self) -> str:
        p = self.params
        expo = f"{p['a0']:.3g} {p['a1']:+.3g} log w" if self.vary_exponent else f"{p['a0']:.3g}"
        return f"T* = {np.exp(p['g0']):.3g} * w^{p['g1']:.3g} * budget^({expo})  (w = {self.knob})"


def _design(w: np.ndarray, budget: np.ndarray, vary_exponent: bool) -> np.ndarray:
    lw, lb = np.log(w), np.log(budget)
    cols = [np.ones_like(lw), lw, lb] + ([lw * lb] if vary_exponent else [])
    return np.column_stack(cols)


def fit_workload_law(
    optima: pd.DataFrame,
    knob: str = "w",
    *,
    budget: str = "budget",
    t_opt: str = "frames_opt",
    vary_exponent: bool = False,
) -> WorkloadLaw:
    """Least-squares fit of log T* on (log w, log budget) over rows of `optima`.

    optima: columns `knob` (> 0), `budget` (> 0), `t_opt` (> 0), one row per (workload, budget).
    Raises ValueError when there are fewer distinct knob values than 2 or fewer rows than parameters.
    """
    for col in (knob, budget, t_opt):
        if col not in optima:
            raise ValueError(f"optima lacks column {col!r}; columns: {list(optima.columns)}")
    d = optima[[knob, budget, t_opt]].astype(float).dropna()
    if (d <= 0).any().any():
        raise ValueError(f"{knob}, {budget} and {t_opt} must be > 0 (the law is fitted in logs)")
    k = 4 if vary_exponent else 3
    values = tuple(sorted(d[knob].unique()))
    if len(values) < 2 or len(d) < k or d[budget].nunique() < 2:
        raise ValueError(
            f"a workload law needs >= 2 knob values, >= 2 budgets and >= {k} optima; got values {list(values)}, "
            f"budgets {sorted(d[budget].unique())}, {len(d)} optima"
        )
    X = _design(d[knob].to_numpy(), d[budget].to_numpy(), vary_exponent)
    y = np.log(d[t_opt].to_numpy())
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    params = dict(zip(PARAMS, [*coef, 0.0] if not vary_exponent else coef))
    return WorkloadLaw(
        knob=knob,
        params={p: float(v) for p, v in params.items()},
        vary_exponent=vary_exponent,
        n=len(d),
        rmse_log=float(np.sqrt(np.mean(resid**2))),
        values=values,
    )


def held_out_check(
    law: WorkloadLaw,
    held: pd.DataFrame,
    *,
    budget: str = "budget",
    t_opt: str = "frames_opt",
    low: str = "frames_ci_low",
    high: str = "frames_ci_high",
    factor: float = 2.0,
) -> pd.DataFrame:
    """Predicted against measured T* on workloads the law was not fitted on.

    held: one row per (held-out workload, budget) with the knob column, `budget`, the measured `t_opt`
    and, when present, its band `low`..`high`. Returns those columns plus predicted, log2_error
    (log2 predicted / measured), within_factor (|error| <= log2 factor) and in_band (the prediction
    lies in the measured band; NaN without a band).
    """
    out = held.copy()
    out["predicted"] = law.predict(out[law.knob].to_numpy(), out[budget].to_numpy())
    out["log2_error"] = np.log2(out["predicted"] / out[t_opt].astype(float))
    out["within_factor"] = out["log2_error"].abs() <= np.log2(factor)
    if low in out and high in out:
        inside = (out["predicted"] >= out[low]) & (out["predicted"] <= out[high])
        out["in_band"] = inside.where(out[low].notna() & out[high].notna())
    else:
        out["in_band"] = np.nan
    return out


def doubling_gain(law, theta: np.ndarray, at, boot: pd.DataFrame | None = None, *, which: int = 1, level=LEVEL):
    """Share of a two-input law's loss saved by doubling input `which` at the point `at` (x1, x2):
    1 - L(at with that input doubled) / L(at), with its percentile interval over the rows of `boot`
    (a Fit.bootstrap table; NaN without one). Returns (gain, ci_low, ci_high)."""
    at = np.asarray(at, float)
    lx = np.log([at, at * np.where(np.arange(2) == which, 2.0, 1.0)])  # (2, 2): the point, then doubled
    ly, _ = law.log_model(np.asarray(theta)[None, :], lx)
    gain = float(1 - np.exp(ly[0, 1] - ly[0, 0]))
    if boot is None or boot.empty:
        return gain, float("nan"), float("nan")
    thetas = np.array([law.raw(dict(zip(law.params, r))) for r in boot[list(law.params)].to_numpy()])
    lyb, _ = law.log_model(thetas, lx)
    g = 1 - np.exp(lyb[:, 1] - lyb[:, 0])
    g = g[np.isfinite(g)]
    lo, hi = percentile_interval(g, level) if len(g) else (np.nan, np.nan)
    return gain, float(lo), float(hi)
