"""Fitting a law: the Fit result (bootstrap, intervals, prediction bands), `fit`, and choosing between laws.

    fit(data, "additive", x=("frames", "tokens_per_frame"), y="loss")  ->  Fit
    compare(data, ["additive", "multiplicative", "kaplan"], x=...)      ->  table with AIC/BIC/LOO
    choose(table)                                                        ->  (label, Fit) a notebook draws

A fit is global: every start of the law's grid runs a few batched Levenberg-Marquardt steps, the
best `keep` run to convergence, and the best few distinct end points are polished (solver.py).
Bootstrap and leave-one-out refits reuse the batch: a resample is a row of point weights,
warm-started at the full-data optimum. Intervals are percentile intervals (studio.stats).

Options: `weights` (per-point weights, e.g. 1/std^2: they multiply each point's loss, travel with
their points in the bootstrap, and weight the diagnostics) and `tie` (one parameter takes another's
value, tie.py; AIC/BIC count free parameters).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import pandas as pd

from studio.analysis.scaling.inputs import _inputs, point_weights, prepare
from studio.analysis.scaling.laws import Law, get_law
from studio.analysis.scaling.solver import _check_loss, _lm_chunked, _polish, _Problem, _refit_weighted
from studio.analysis.scaling.tie import check_tie, expand, free_bounds, label, reduce, tied_law
from studio.stats import percentile_interval


class ScalingWarning(UserWarning):
    """A fit that should not be trusted as printed (degenerate, not converged)."""


@dataclass
class Fit:
    """A fitted law. `params` (natural units), `objective` (the minimised sum), goodness of fit in
    log space, `degenerate` (+ reasons) when a parameter sits at a bound, a term is flat or an input
    does not vary. With `weights` (N,), rmse_log, r2_log, aic, bic and loo_rmse are weighted means
    over points (a zero weight = the point dropped); `residuals` stay one per point, unweighted.
    `tie` {tied: target}: theta and params hold every parameter, k counts the free ones."""

    law: Law
    x: tuple[str, ...]
    y: str
    loss: str
    delta: float
    theta: np.ndarray
    objective: float
    X: np.ndarray
    y_obs: np.ndarray
    n_starts: int
    seconds: float
    degenerate: bool = False
    degenerate_reasons: list = field(default_factory=list)
    weights: np.ndarray | None = None
    tie: dict = field(default_factory=dict)
    _bootstrap: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.law.params, map(float, self.law.natural(self.theta))))

    @property
    def n(self) -> int:
        return len(self.y_obs)

    @property
    def k(self) -> int:
        """Free parameters (a tied one does not count)."""
        return len(self.law.params) - len(self.tie)

    @property
    def _n_used(self) -> int:
        """Points in the fit: those with a positive weight."""
        return self.n if self.weights is None else int((self.weights > 0).sum())

    def _mean(self, v: np.ndarray) -> float:
        """Mean over points (N,), weighted by the user's weights when given."""
        return np.mean(v) if self.weights is None else np.sum(self.weights * v) / np.sum(self.weights)

    def _problem(self) -> _Problem:
        """The solver's problem: the law over its free parameters, with the user's weights."""
        lo, hi = free_bounds(self.law, self.tie, *self.law.bound_arrays())
        return _Problem(
            tied_law(self.law, self.tie), np.log(self.X), self.y_obs, self.loss, self.delta, lo, hi, self.weights
        )

    def predict(self, data=None, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Predicted loss at the rows of `data` (columns self.x); the training points when None."""
        X = self.X if data is None else _inputs(data, self.x)
        theta = self.theta if params is None else self.law.raw(params)
        ly, _ = self.law.log_model(np.atleast_2d(theta), np.log(X))
        return np.exp(ly[0])

    @property
    def residuals(self) -> np.ndarray:
        """log y - log y_hat at the training points."""
        return np.log(self.y_obs) - np.log(self.predict())

    @property
    def rmse_log(self) -> float:
        return float(np.sqrt(self._mean(self.residuals**2)))

    @property
    def r2_log(self) -> float:
        ly = np.log(self.y_obs)
        if self.weights is None:
            ss_tot = float(((ly - ly.mean()) ** 2).sum())
            return float(1.0 - (self.residuals**2).sum() / ss_tot) if ss_tot > 0 else float("nan")
        ss_tot = self._mean((ly - self._mean(ly)) ** 2)
        return float(1.0 - self._mean(self.residuals**2) / ss_tot) if ss_tot > 0 else float("nan")

    @property
    def aic(self) -> float:
        """Gaussian AIC on log residuals, n log(RSS/n) + 2k (for ranking laws on the same data);
        weighted: RSS/n is the weighted mean square and n counts the points with positive weight."""
        return float(self._n_used * np.log(self._mean(self.residuals**2) + 1e-300) + 2 * self.k)

    @property
    def bic(self) -> float:
        return float(self._n_used * np.log(self._mean(self.residuals**2) + 1e-300) + self.k * np.log(self._n_used))

    def bootstrap(self, n: int = 1000, seed: int = 0, *, max_iter: int = 300) -> pd.DataFrame:
        """Refit on n resamples (rows drawn with replacement), warm-started at this optimum.

        Returns one row per resample: the parameters (natural units), `objective` and `converged`.
        A drawn point keeps its weight (count x weight); a tied parameter repeats its target.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        counts = np.stack([np.bincount(rng.integers(0, self.n, self.n), minlength=self.n) for _ in range(n)])
        theta, f, conv = _refit_weighted(
            self._problem(), reduce(self.law, self.tie, self.theta), counts.astype(float), max_iter=max_iter
        )
        df = pd.DataFrame(self.law.natural(expand(self.law, self.tie, theta)), columns=list(self.law.params))
        df["objective"], df["converged"] = f, conv
        if self._bootstrap is None or len(df) >= len(self._bootstrap):
            self._bootstrap = df
        return df

    def ci(self, level: float = 0.95, n: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Percentile bootstrap intervals: columns param, estimate, ci_low, ci_high (reuses the last
        bootstrap if it has >= n resamples)."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        boot = self._bootstrap if self._bootstrap is not None and len(self._bootstrap) >= n else self.bootstrap(n, seed)
        rows = []
        for p, v in self.params.items():
            lo, hi = percentile_interval(boot[p], level)
            rows.append({"param": p, "estimate": v, "ci_low": float(lo), "ci_high": float(hi)})
        return pd.DataFrame(rows)

    def predict_band(self, data, level: float = 0.95, n: int = 200, seed: int = 0) -> pd.DataFrame:
        """Prediction and its bootstrap percentile band at the rows of `data`: pred, ci_low, ci_high."""
        boot = self._bootstrap if self._bootstrap is not None and len(self._bootstrap) >= n else self.bootstrap(n, seed)
        X = _inputs(data, self.x)
        thetas = np.array(
            [self.law.raw(dict(zip(self.law.params, row))) for row in boot[list(self.law.params)].to_numpy()]
        )
        ly, _ = self.law.log_model(thetas, np.log(X))
        lo, hi = percentile_interval(np.exp(ly), level, axis=0)  # over resamples: (R, N) -> (N,)
        return pd.DataFrame({"pred": self.predict(data), "ci_low": lo, "ci_high": hi})

    def summary(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        flag = f"  DEGENERATE: {'; '.join(self.degenerate_reasons)}" if self.degenerate else ""
        opts = (f", tied {label(self.tie)}" if self.tie else "") + (", weighted" if self.weights is not None else "")
        return (
            f"{self.law.name} [{self.law.formula}] x={self.x}: {ps}; objective={self.objective:.6g} "
            f"({self.loss}{opts}), R2_log={self.r2_log:.4f}, RMSE_log={self.rmse_log:.4g}, n={self.n}{flag}"
        )

    def __repr__(self) -> str:
        return f"Fit({self.summary()})"


def _degenerate(law: Law, theta: np.ndarray, X: np.ndarray, lo, hi, scatter: float = 0.0, names=()) -> list[str]:
    """Why this optimum should not be read as an estimate (empty list: nothing found).

    An input with no spread (its exponent, or whatever acts through it, is not identified); a
    parameter on a bound of the search box; an exponent so small that its term is flat over the
    data (indistinguishable from the constant); or a term that is nowhere larger than the residual
    scatter `scatter` (RMSE of log residuals) or 0.1 % of the prediction.
    """
    reasons = []
    if not np.isfinite(theta).all():
        return ["non-finite parameters"]
    span = hi - lo
    nat = law.natural(theta)
    for j in range(X.shape[1]):
        if X[:, j].min() == X[:, j].max():
            name = names[j] if j < len(names) else f"x{j + 1}"
            acting = [p for p, jj in law.exponents.items() if jj == j]
            reasons.append(
                f"input {name!r} has no spread (every value is {X[0, j]:g}): "
                f"{'exponent ' + ', '.join(acting) if acting else 'its effect'} is not identified"
            )
    for i, p in enumerate(law.params):
        if theta[i] - lo[i] <= 1e-4 * span[i]:
            reasons.append(f"{p} = {nat[i]:.3g} sits at its lower bound")
        elif hi[i] - theta[i] <= 1e-4 * span[i]:
            reasons.append(f"{p} = {nat[i]:.3g} sits at its upper bound (exploding)")
    lx = np.log(X)
    for p, j in law.exponents.items():
        i = law.params.index(p)
        rng = float(lx[:, j].max() - lx[:, j].min())
        if rng > 0 and abs(nat[i]) * rng < 1e-2 and not any(r.startswith(f"{p} ") for r in reasons):
            reasons.append(
                f"exponent {p} = {nat[i]:.3g} makes its term flat over the data (x{j + 1} spans "
                f"{rng:.2g} in log): the term is not identified apart from the constant"
            )
    if law.design is not None and law.terms:
        U = law.design(lx)
        u = np.einsum("nkp,p->nk", U, theta)
        share = np.exp(u - u.max(axis=1, keepdims=True))
        share /= share.sum(axis=1, keepdims=True)
        floor = max(1e-3, scatter)
        for k, name in enumerate(law.terms):
            if share[:, k].max() < floor:
                reasons.append(
                    f"term {name} is at most {share[:, k].max():.2%} of the prediction, below the "
                    f"residual scatter ({floor:.2%}): not identified"
                )
    return reasons


def fit(
    data,
    law="additive",
    x=("x1", "x2"),
    y: str = "loss",
    *,
    loss: str = "huber",
    delta: float = 1e-3,
    starts=None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    keep: int = 64,
    prune_at: int = 8,
    n_polish: int = 4,
    max_iter: int = 400,
    warn: bool = True,
    weights=None,
    tie: Mapping[str, str] | None = None,
) -> Fit:
    """Fit `law` to data[x] -> data[y] by a vectorised multi-start search; returns a Fit.

    x: input columns in the law's order (x1, x2); 'a*b' multiplies two columns. y: the loss column.
    loss: 'huber' (sum of Huber_delta of log residuals, Hoffmann/Epoch), 'mse' (sum of squared log
    residuals) or 'mse_linear' (sum of squared residuals). starts: None (the law's grid), an int
    (that many starts drawn from the grid), an array (R, P) of natural values, or a dict grid in
    natural units. bounds: {param: (low, high)} in natural units to override the law's.
    weights: a column name or an array (N,), finite, >= 0, not all zero; each point's loss is
    multiplied by its weight (1/std^2 gives weighted least squares with loss='mse').
    tie: {tied: target}, e.g. {'beta': 'alpha'}: the tied parameter takes the target's value
    everywhere (starts then name the free parameters only).
    """
    t0 = time.perf_counter()
    law = get_law(law)
    _check_loss(loss, delta)
    xs = (x,) if isinstance(x, str) else tuple(x)
    if len(xs) != law.n_inputs:
        raise ValueError(f"law {law.name!r} takes {law.n_inputs} input(s) ({law.formula}); got x={list(xs)}")
    tie = check_tie(law, tie)
    X, yv = prepare(data, xs, y, n_params=len(law.params) - len(tie), loss=loss)
    w = point_weights(data, weights, len(yv), len(law.params) - len(tie))
    lo, hi = law.bound_arrays()
    for p, (b_lo, b_hi) in (bounds or {}).items():
        if p not in law.params:
            raise ValueError(f"bounds: unknown parameter {p!r}; valid: {list(law.params)}")
        i = law.params.index(p)
        lo[i], hi[i] = (math.log(b_lo), math.log(b_hi)) if p in law.positive else (b_lo, b_hi)
    solver = tied_law(law, tie)  # the law itself when nothing is tied
    flo, fhi = free_bounds(law, tie, lo, hi)
    prob = _Problem(solver, np.log(X), yv, loss, delta, flo, fhi, w)
    theta0 = _starts(solver, starts)
    # Every start a few steps, then only the `keep` best carry on to convergence.
    theta, f, conv = _lm_chunked(prob, theta0, max_iter=prune_at if len(theta0) > keep else max_iter)
    if len(theta0) > keep:
        top = np.argsort(f)[:keep]
        theta, f, conv = _lm_chunked(prob, theta[top], max_iter=max_iter)
    # Polish the best few distinct end points with L-BFGS-B (exact objective, analytic gradient).
    order = [i for i in np.argsort(f) if np.isfinite(f[i])]
    if not order:
        raise RuntimeError(f"law {solver.name!r}: no start gave a finite objective; check the data and starts")
    chosen = []
    for i in order:
        if all(np.max(np.abs(theta[i] - theta[j])) > 1e-6 for j in chosen):
            chosen.append(i)
        if len(chosen) >= n_polish:
            break
    best_t, best_f = theta[order[0]], float(f[order[0]])
    for i in chosen:
        t, fv = _polish(prob, theta[i])
        if fv < best_f:
            best_t, best_f = t, fv
    best_t = expand(law, tie, best_t)
    ly_hat, _ = law.log_model(best_t[None, :], np.log(X))
    r2 = (np.log(yv) - ly_hat[0]) ** 2
    used = slice(None) if w is None else w > 0  # zero-weight points take no part in the checks
    scatter = float(np.sqrt(np.mean(r2) if w is None else np.sum(w * r2) / np.sum(w)))
    reasons = _degenerate(law, best_t, X[used], expand(law, tie, flo), expand(law, tie, fhi), scatter=scatter, names=xs)
    out = Fit(
        law=law,
        x=xs,
        y=y,
        loss=loss,
        delta=delta,
        theta=best_t,
        objective=best_f,
        X=X,
        y_obs=yv,
        n_starts=len(theta0),
        seconds=time.perf_counter() - t0,
        degenerate=bool(reasons),
        degenerate_reasons=reasons,
        weights=w,
        tie=tie,
    )
    if reasons and warn:
        warnings.warn(
            f"degenerate {law.name} fit: {'; '.join(reasons)}. Do not read the parameters as estimates.",
            ScalingWarning,
            stacklevel=2,
        )
    return out


def _starts(law: Law, starts) -> np.ndarray:
    if starts is None:
        return law.starts()
    if isinstance(starts, (int, np.integer)) and not isinstance(starts, bool):
        grid = law.starts()
        if starts >= len(grid):
            return grid
        idx = np.random.default_rng(0).choice(len(grid), int(starts), replace=False)
        return grid[np.sort(idx)]
    if isinstance(starts, Mapping):
        unknown = set(starts) ^ set(law.params)
        if unknown:
            raise ValueError(f"starts grid keys must be exactly {list(law.params)}; mismatch {sorted(unknown)}")
        return np.array([law.raw(dict(zip(law.params, v))) for v in product(*[starts[p] for p in law.params])])
    arr = np.atleast_2d(np.asarray(starts, dtype=float))
    if arr.shape[1] != len(law.params):
        raise ValueError(f"starts must have {len(law.params)} columns ({list(law.params)}), got {arr.shape}")
    return np.array([law.raw(dict(zip(law.params, row))) for row in arr])
