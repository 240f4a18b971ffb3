"""Scaling-law families: the Law record, the built-in laws, and the registry users add to.

A law is written in log space with positive scale parameters fitted as their logs, e.g.
log L = LSE(e, a - alpha log x1, b - beta log x2) for `additive` (Hoffmann et al. 2022), so they stay
positive and the objective is smooth. `register_law` adds a user's family (numeric Jacobian);
`parse_law_spec` reads 'power(frames*tokens_per_frame)'-style names that pick the inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product

import numpy as np


@dataclass(frozen=True)
class Law:
    """A scaling-law family.

    params: the user-facing parameter names; `positive` ones are fitted as their logs (raw
    parameter = log value). `log_model(theta, lx)` takes raw parameters theta (R, P) and log inputs
    lx (N, k) and returns log predictions (R, N) and their Jacobian d/dtheta (R, P, N).
    grid: starting values per parameter in raw units (logs for positive ones); starts = product.
    bounds: (low, high) per parameter in raw units; a fit ending on one is reported as degenerate.
    exponents: parameter -> index of the input it is the exponent of (for the flat-term check).
    design: for laws that are a log-sum-exp of terms linear in theta, lx (N, k) -> U (N, K, P);
    lets the degenerate check see each term's share of the prediction.
    """

    name: str
    params: tuple[str, ...]
    n_inputs: int
    log_model: Callable
    grid: Mapping[str, Sequence[float]]
    bounds: Mapping[str, tuple[float, float]]
    positive: tuple[str, ...] = ()
    exponents: Mapping[str, int] = field(default_factory=dict)
    formula: str = ""
    terms: tuple[str, ...] = ()
    design: Callable | None = None

    def raw(self, params: Mapping[str, float]) -> np.ndarray:
        missing = [p for p in self.params if p not in params]
        if missing:
            raise ValueError(f"law {self.name!r}: missing parameters {missing}; needs {list(self.params)}")
        return np.array([math.log(params[p]) if p in self.positive else float(params[p]) for p in self.params])

    def natural(self, theta: np.ndarray) -> np.ndarray:
        """Raw (..., P) -> natural parameter values (..., P)."""
        theta = np.asarray(theta, dtype=float)
        out = theta.copy()
        for i, p in enumerate(self.params):
            if p in self.positive:
                out[..., i] = np.exp(theta[..., i])
        return out

    def starts(self) -> np.ndarray:
        return np.array(list(product(*[self.grid[p] for p in self.params])), dtype=float)

    def bound_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.bounds[p][0] for p in self.params], dtype=float)
        hi = np.array([self.bounds[p][1] for p in self.params], dtype=float)
        return lo, hi

    def __call__(self, *xs, **params) -> np.ndarray:
        """Evaluate the law at inputs xs (natural units) with natural parameters."""
        lx = np.log(np.column_stack([np.asarray(x, dtype=float).ravel() for x in xs]))
        ly, _ = self.log_model(self.raw(params)[None, :], lx)
        return np.exp(ly[0])


def _lse_model(design: Callable) -> Callable:
    """log y_hat = LSE_k(U_k theta): the log-sum-exp form of the additive-type laws.

    Written term by term (K <= 3) with matmuls: reductions over a tiny last axis are slow in numpy.
    """

    def log_model(theta, lx):
        U = design(lx)  # (N, K, P)
        K, P = U.shape[1], U.shape[2]
        us = [theta @ U[:, k, :].T for k in range(K)]  # K x (R, N)
        m = us[0].copy()
        for u in us[1:]:
            np.maximum(m, u, out=m)
        tot = np.zeros_like(m)
        for u in us:
            np.subtract(u, m, out=u)
            np.exp(u, out=u)
            tot += u
        inv = 1.0 / tot
        J = np.zeros((len(theta), P, len(lx)))
        for k in range(K):
            share = us[k] * inv  # softmax weight of term k
            for p in np.flatnonzero(np.any(U[:, k, :] != 0, axis=0)):  # 1-3 parameters per term
                col = U[:, k, p]
                if np.all(col == 1.0):
                    J[:, p, :] += share
                else:
                    J[:, p, :] += share * col[None, :]
        np.log(tot, out=tot)
        return m + tot, J

    return log_model


def _design_power(lx):
    n = len(lx)
    U = np.zeros((n, 2, 3))
    U[:, 0, 0] = 1.0  # e
    U[:, 1, 1], U[:, 1, 2] = 1.0, -lx[:, 0]  # a - alpha log x
    return U


def _design_pure_power(lx):
    U = np.zeros((len(lx), 1, 2))
    U[:, 0, 0], U[:, 0, 1] = 1.0, lx[:, 0]  # a + alpha log x (one term: linear in theta)
    return U


def _design_additive(lx):
    n = len(lx)
    U = np.zeros((n, 3, 5))
    U[:, 0, 0] = 1.0  # e
    U[:, 1, 1], U[:, 1, 2] = 1.0, -lx[:, 0]  # a - alpha log x1
    U[:, 2, 3], U[:, 2, 4] = 1.0, -lx[:, 1]  # b - beta log x2
    return U


def _design_multiplicative(lx):
    n = len(lx)
    U = np.zeros((n, 2, 4))
    U[:, 0, 0] = 1.0  # e
    U[:, 1, 1], U[:, 1, 2], U[:, 1, 3] = 1.0, -lx[:, 0], -lx[:, 1]  # a - alpha log x1 - beta log x2
    return U


def _kaplan_log_model(theta, lx):
    """log L = beta * LSE((alpha/beta)(a - log x1), b - log x2), raw theta = (a, alpha, b, beta)."""
    a, alpha, b, beta = (theta[:, i : i + 1] for i in range(4))
    d1 = a - lx[None, :, 0]
    u1, u2 = (alpha / beta) * d1, b - lx[None, :, 1]
    m = np.maximum(u1, u2)
    e1, e2 = np.exp(u1 - m), np.exp(u2 - m)
    s = m + np.log(e1 + e2)
    p1 = e1 / (e1 + e2)
    p2 = 1.0 - p1
    J = np.stack([alpha * p1, p1 * d1, beta * p2, s - p1 * alpha * d1 / beta], axis=1)
    return beta * s, J


_EXP_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)  # Epoch's grid for exponents
_E_GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)  # ... for e = log E
_SCALE_GRID = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)  # ... for a, b = log A, log B
_EXP_BOUNDS = (0.0, 5.0)
_LOG_BOUNDS = (-30.0, 120.0)

LAWS: dict[str, Law] = {}


def register_law(
    law_or_name,
    fn: Callable | None = None,
    params: Sequence[str] = (),
    grid=None,
    *,
    n_inputs: int = 1,
    positive: Sequence[str] = (),
    bounds=None,
    exponents=None,
    formula: str = "",
    replace: bool = False,
) -> Law:
    """Add a law family. Either pass a ready `Law`, or a name and `fn(*xs, **params) -> L`.

    fn gets the inputs as arrays of shape (1, N) and each parameter as an array of shape (R, 1)
    (R starts at once) and returns L (R, N) in natural units. grid: {param: starting values} in
    natural units (positive params must start > 0). positive: parameters fitted as logs. bounds:
    {param: (low, high)} in natural units (default: (1e-12, 1e40) for positive ones, (-50, 50)
    otherwise). Gradients are central differences, vectorised over starts.
    """
    if isinstance(law_or_name, Law):
        law = law_or_name
    else:
        name, params, positive = str(law_or_name), tuple(params), tuple(positive)
        if fn is None or not params or grid is None:
            raise ValueError("register_law(name, fn, params, grid, ...): fn, params and grid are required")
        unknown = set(grid) ^ set(params)
        if unknown:
            raise ValueError(
                f"law {name!r}: grid keys must be exactly the parameters {list(params)}; mismatch: {sorted(unknown)}"
            )
        if set(positive) - set(params):
            raise ValueError(f"law {name!r}: positive {sorted(set(positive) - set(params))} are not parameters")

        def to_raw(p, v):
            if p in positive:
                if v <= 0:
                    raise ValueError(f"law {name!r}: positive parameter {p!r} needs values > 0, got {v}")
                return math.log(v)
            return float(v)

        raw_grid = {p: tuple(to_raw(p, v) for v in grid[p]) for p in params}
        nat_bounds = dict(bounds or {})
        raw_bounds = {}
        for p in params:
            lo, hi = nat_bounds.get(p, (1e-12, 1e40) if p in positive else (-50.0, 50.0))
            raw_bounds[p] = (to_raw(p, lo), to_raw(p, hi))
        law = Law(
            name=name,
            params=params,
            n_inputs=int(n_inputs),
            grid=raw_grid,
            bounds=raw_bounds,
            positive=positive,
            exponents=dict(exponents or {}),
            formula=formula,
            log_model=_numeric_log_model(fn, params, positive),
        )
    if law.name in LAWS and not replace:
        raise ValueError(f"a law named {law.name!r} exists; pass replace=True to overwrite it")
    LAWS[law.name] = law
    return law


def _numeric_log_model(fn, params, positive):
    pos = np.array([p in positive for p in params])

    def value(theta, lx):
        nat = np.where(pos, np.exp(theta), theta)
        xs = [np.exp(lx[:, i])[None, :] for i in range(lx.shape[1])]
        with np.errstate(all="ignore"):
            out = np.asarray(fn(*xs, **{p: nat[:, i : i + 1] for i, p in enumerate(params)}), dtype=float)
            out = np.broadcast_to(out, (len(theta), len(lx)))
            return np.where(out > 0, np.log(np.where(out > 0, out, 1.0)), np.nan)

    def log_model(theta, lx):
        ly = value(theta, lx)
        J = np.empty((ly.shape[0], len(params), ly.shape[1]))
        for i in range(len(params)):
            h = 1e-6 * (1.0 + np.abs(theta[:, i]))
            tp, tm = theta.copy(), theta.copy()
            tp[:, i] += h
            tm[:, i] -= h
            J[:, i, :] = (value(tp, lx) - value(tm, lx)) / (2 * h)[:, None]
        return ly, J

    return log_model


register_law(
    Law(
        name="power",
        params=("E", "A", "alpha"),
        n_inputs=1,
        positive=("E", "A"),
        log_model=_lse_model(_design_power),
        design=_design_power,
        grid={"E": _E_GRID, "A": _SCALE_GRID, "alpha": _EXP_GRID},
        bounds={"E": _LOG_BOUNDS, "A": _LOG_BOUNDS, "alpha": _EXP_BOUNDS},
        exponents={"alpha": 0},
        formula="L = E + A / x^alpha",
        terms=("E", "A/x^alpha"),
    )
)
register_law(
    Law(
        name="additive",
        params=("E", "A", "alpha", "B", "beta"),
        n_inputs=2,
        positive=("E", "A", "B"),
        log_model=_lse_model(_design_additive),
        design=_design_additive,
        grid={"E": _E_GRID, "A": _SCALE_GRID, "alpha": _EXP_GRID, "B": _SCALE_GRID, "beta": _EXP_GRID},
        bounds={"E": _LOG_BOUNDS, "A": _LOG_BOUNDS, "alpha": _EXP_BOUNDS, "B": _LOG_BOUNDS, "beta": _EXP_BOUNDS},
        exponents={"alpha": 0, "beta": 1},
        formula="L = E + A / x1^alpha + B / x2^beta",
        terms=("E", "A/x1^alpha", "B/x2^beta"),
    )
)
register_law(
    Law(
        name="multiplicative",
        params=("E", "A", "alpha", "beta"),
        n_inputs=2,
        positive=("E", "A"),
        log_model=_lse_model(_design_multiplicative),
        design=_design_multiplicative,
        grid={"E": _E_GRID, "A": _SCALE_GRID, "alpha": _EXP_GRID, "beta": _EXP_GRID},
        bounds={"E": _LOG_BOUNDS, "A": _LOG_BOUNDS, "alpha": _EXP_BOUNDS, "beta": _EXP_BOUNDS},
        exponents={"alpha": 0, "beta": 1},
        formula="L = E + A / (x1^alpha * x2^beta)",
        terms=("E", "A/(x1^alpha x2^beta)"),
    )
)
register_law(
    Law(
        name="kaplan",
        params=("A", "alpha", "B", "beta"),
        n_inputs=2,
        positive=("A", "B"),
        log_model=_kaplan_log_model,
        grid={
            "A": (0.0, 5.0, 10.0, 20.0, 30.0),
            "alpha": (0.05, 0.2, 0.5, 1.0),
            "B": (0.0, 5.0, 10.0, 20.0, 30.0),
            "beta": (0.05, 0.2, 0.5, 1.0),
        },
        bounds={"A": _LOG_BOUNDS, "alpha": _EXP_BOUNDS, "B": _LOG_BOUNDS, "beta": (1e-3, 5.0)},
        exponents={"alpha": 0, "beta": 1},
        formula="L = ((A / x1)^(alpha/beta) + B / x2)^beta",
    )
)
# No floor and a signed exponent: compute-optimal sizes against compute (N* = A C^alpha, Porian et al.
# 2024) as well as losses far from their floor. With loss='mse' it is least squares of log y on log x.
# `exponents` is left empty: alpha near 0 is a finding here (no dependence), not a flat term hiding
# behind a constant.
register_law(
    Law(
        name="pure_power",
        params=("A", "alpha"),
        n_inputs=1,
        positive=("A",),
        log_model=_lse_model(_design_pure_power),
        design=_design_pure_power,
        grid={"A": (-10.0, 0.0, 10.0), "alpha": (-1.0, -0.3, 0.0, 0.3, 1.0)},
        bounds={"A": (-120.0, 120.0), "alpha": (-10.0, 10.0)},
        formula="L = A * x^alpha",
    )
)


def get_law(law) -> Law:
    if isinstance(law, Law):
        return law
    if law not in LAWS:
        raise ValueError(f"unknown law {law!r}; known laws: {', '.join(LAWS)} (add one with register_law)")
    return LAWS[law]


_LAW_SPEC = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*(?:\((.*)\))?\s*$")


def parse_law_spec(spec, x) -> tuple[Law, tuple[str, ...], str]:
    """'additive' -> (law, x); 'power(frames)' or 'power(frames*tokens_per_frame)' picks the inputs."""
    if isinstance(spec, Law):
        return spec, tuple(x), spec.name
    m = _LAW_SPEC.match(str(spec))
    if not m:
        raise ValueError(f"cannot read law {spec!r}: write 'name' or 'name(col1, col2*col3)'")
    law = get_law(m.group(1))
    xs = tuple(c.strip() for c in m.group(2).split(",")) if m.group(2) else tuple(x)
    if len(xs) != law.n_inputs:
        raise ValueError(
            f"law {law.name!r} takes {law.n_inputs} input(s) but {list(xs)} were given; "
            f"write e.g. '{law.name}({'*'.join(xs) if law.n_inputs == 1 else ', '.join(xs)})'"
        )
    return law, xs, str(spec).replace(" ", "")
