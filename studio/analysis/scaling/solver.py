"""The batched solver: losses, the fitting problem, and a Levenberg-Marquardt run across many starts.

Why we wrote our own (speed): a global fit runs every start of a grid (Epoch's 4,500 for
`additive`), and a bootstrap or leave-one-out refits hundreds to thousands of times. scipy's
`minimize` handles one start at a time in Python; here every start is a row of one array, each
Levenberg-Marquardt step solves a batch of tiny P x P systems, and a resample is just a row of
point weights, so thousands of fits run as one batch. scipy's L-BFGS-B (`_polish`) only polishes the
best few end points with the analytic gradient. benchmarks/bench_scaling.py times this against
Epoch's own loop.

The Huber loss is majorised by a weighted square, so reweighted Gauss-Newton descends:
rho(r + t) <= rho(r) + psi(r) t + c(r) t^2 / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.analysis.scaling.laws import Law

LOSSES = {"huber": "log", "mse": "log", "mse_log": "log", "mse_linear": "linear"}


# ----------------------------------------------------------------------------------------------
# Losses: value rho(r), derivative psi(r), and a curvature c(r) with
# rho(r + t) <= rho(r) + psi(r) t + c(r) t^2 / 2 (a majoriser, so reweighted Gauss-Newton descends).
# ----------------------------------------------------------------------------------------------
def huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _loss_parts(loss: str, r, delta):
    if loss == "huber":
        a = np.abs(r)
        return huber(r, delta), np.clip(r, -delta, delta), np.minimum(1.0, delta / np.maximum(a, 1e-300))
    return r * r, 2.0 * r, np.full_like(r, 2.0)


def _check_loss(loss: str, delta: float) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    if loss == "huber" and not (delta > 0):
        raise ValueError(f"delta must be > 0, got {delta}")


# ----------------------------------------------------------------------------------------------
# The batched solver
# ----------------------------------------------------------------------------------------------
@dataclass
class _Problem:
    law: Law
    lx: np.ndarray  # (N, k) log inputs
    y: np.ndarray  # (N,)
    loss: str
    delta: float
    lo: np.ndarray
    hi: np.ndarray
    w: np.ndarray | None = None  # (N,) the user's point weights; None = every point weight 1 (no multiply)

    @property
    def ly(self):
        return np.log(self.y)

    def residuals(self, theta):
        """r (R, N) and dr/dtheta (R, P, N), in the loss's space."""
        with np.errstate(over="ignore", invalid="ignore"):
            lyhat, J = self.law.log_model(theta, self.lx)
            if LOSSES[self.loss] == "log":
                return np.log(self.y)[None, :] - lyhat, -J
            yhat = np.exp(lyhat)
            return self.y[None, :] - yhat, -yhat[:, None, :] * J

    def objective(self, theta, w=None):
        r, _ = self.residuals(theta)
        rho, _, _ = _loss_parts(self.loss, r, self.delta)
        if w is not None:
            rho = rho * w
        if self.w is not None:
            rho = rho * self.w
        f = rho.sum(axis=1)
        return np.where(np.isfinite(f), f, np.inf)


def _lm(prob: _Problem, theta0: np.ndarray, w: np.ndarray | None = None, *, max_iter: int = 400, ftol: float = 1e-11):
    """Levenberg-Marquardt on the majorised loss, run for all R rows of theta0 at once.

    w: point weights (N,) shared or (R, N) per row (bootstrap counts, leave-one-out masks); they
    multiply the problem's own point weights prob.w, so a resampled point carries its weight.
    Returns theta (R, P), objective (R,), converged (R,). Callers pass a few hundred rows at a time:
    the work is memory-bound and (256, N) arrays stay in cache (4-5x faster than 4,500 at once).
    """
    theta = np.clip(np.array(theta0, dtype=float), prob.lo, prob.hi)
    R, P = theta.shape
    N = len(prob.y)
    W = np.ones((1, N)) if w is None else np.atleast_2d(np.asarray(w, dtype=float))
    per_row = W.shape[0] > 1
    if prob.w is not None:
        W = W * prob.w[None, :]

    def evaluate(idx, th):
        r, Jr = prob.residuals(th)
        ww = W[idx] if per_row else W
        rho, psi, c = _loss_parts(prob.loss, r, prob.delta)
        f = (ww * rho).sum(axis=1)
        bad = ~np.isfinite(f) | ~np.isfinite(Jr).all(axis=(1, 2))
        f = np.where(bad, np.inf, f)
        return f, Jr, ww * psi, ww * c

    f, Jr, wpsi, wc = evaluate(np.arange(R), theta)
    lam = np.full(R, 1e-3)
    converged = np.zeros(R, bool)
    alive = np.isfinite(f)
    eye = np.eye(P)
    for _ in range(max_iter):
        idx = np.flatnonzero(alive & ~converged)
        if len(idx) == 0:
            break
        J, g_w, c_w = Jr[idx], wpsi[idx], wc[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            g = np.matmul(J, g_w[..., None])[..., 0]
            H = np.matmul(J * c_w[:, None, :], J.transpose(0, 2, 1))
            d = np.diagonal(H, axis1=1, axis2=2)
            damp = lam[idx, None] * (d + 1e-9 * d.mean(axis=1, keepdims=True)) + 1e-12
            A = H + damp[:, :, None] * eye
            A = np.where(np.isfinite(A), A, 0.0) + 1e-12 * eye
            g = np.where(np.isfinite(g), g, 0.0)
            step = -np.linalg.solve(A, g[..., None])[..., 0]
        new = np.clip(theta[idx] + step, prob.lo, prob.hi)
        f_new, Jr_new, wpsi_new, wc_new = evaluate(idx, new)
        acc = f_new <= f[idx]
        a_idx = idx[acc]
        small = np.zeros(len(idx), bool)
        small[acc] = (f[idx][acc] - f_new[acc]) <= ftol * np.maximum(np.abs(f_new[acc]), 1e-300)
        theta[a_idx], f[a_idx] = new[acc], f_new[acc]
        Jr[a_idx], wpsi[a_idx], wc[a_idx] = Jr_new[acc], wpsi_new[acc], wc_new[acc]
        lam[a_idx] = np.maximum(lam[a_idx] / 3.0, 1e-12)
        r_idx = idx[~acc]
        lam[r_idx] = lam[r_idx] * 4.0
        converged[idx[small]] = True
        converged[r_idx[lam[r_idx] > 1e10]] = True  # no descent step left at any damping
    return theta, f, converged


def _lm_chunked(prob: _Problem, theta0: np.ndarray, W: np.ndarray | None = None, *, chunk: int = 256, **kw):
    """_lm over row chunks; W (R, N) per-row weights or None."""
    outs = []
    for s in range(0, len(theta0), chunk):
        outs.append(_lm(prob, theta0[s : s + chunk], None if W is None else W[s : s + chunk], **kw))
    return tuple(np.concatenate(z) for z in zip(*outs))


def _polish(prob: _Problem, theta0: np.ndarray, w=None):
    """scipy L-BFGS-B with the analytic gradient from one start: (theta, objective)."""
    from scipy.optimize import minimize

    W = np.ones(len(prob.y)) if w is None else np.asarray(w, dtype=float)
    if prob.w is not None:
        W = W * prob.w

    def fun(t):
        r, Jr = prob.residuals(t[None, :])
        rho, psi, _ = _loss_parts(prob.loss, r[0], prob.delta)
        f = float((W * rho).sum())
        if not np.isfinite(f):
            return 1e300, np.zeros_like(t)
        return f, Jr[0] @ (W * psi)

    res = minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(prob.lo, prob.hi)),
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-14, "maxcor": 20},
    )
    return res.x, float(res.fun)


def _refit_weighted(prob: _Problem, theta: np.ndarray, W: np.ndarray, *, max_iter: int = 300):
    """Refit with per-row point weights W (R, N), all warm-started at theta."""
    return _lm_chunked(prob, np.repeat(theta[None, :], len(W), axis=0), W, max_iter=max_iter)
