"""Tied parameters: one parameter of a law takes another's value everywhere.

Muennighoff et al. (2023) fit E + A/N^a + B/D^a, the additive law with one exponent for both terms:
    fit(data, "additive", x=("N", "D"), tie={"beta": "alpha"})
The solver sees a smaller law over the free parameters (its log model copies each target's value
into the tied slot and adds the tied column of the Jacobian to the target's); the Fit keeps the full
law, so params, predictions and bootstrap tables show both names with one value, and AIC/BIC count
the free parameters only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from studio.analysis.scaling.laws import Law


def check_tie(law: Law, tie) -> dict[str, str]:
    """The `tie` argument of fit -> {tied: target}; refuses unknown names, self-ties, chains and
    ties between a log-fitted scale and a parameter fitted as itself."""
    if tie is None:
        return {}
    if not isinstance(tie, Mapping):
        raise ValueError(f"tie must be a mapping {{tied: target}}, e.g. {{'beta': 'alpha'}}; got {tie!r}")
    tie = {str(k): str(v) for k, v in tie.items()}
    unknown = [p for p in dict.fromkeys([*tie, *tie.values()]) if p not in law.params]
    if unknown:
        raise ValueError(f"tie: unknown parameter(s) {unknown}; law {law.name!r} has {list(law.params)}")
    for p, q in tie.items():
        if p == q:
            raise ValueError(f"tie: {p!r} is tied to itself")
        if q in tie:
            raise ValueError(f"tie: chain {p!r} -> {q!r} -> {tie[q]!r}; tie each parameter to a free one")
        if (p in law.positive) != (q in law.positive):
            log_one = p if p in law.positive else q
            raise ValueError(
                f"tie: {p!r} and {q!r} are of different kinds ({log_one!r} is a positive scale "
                "fitted as its log); tie exponents to exponents and scales to scales"
            )
    return tie


def _sources(law: Law, tie: Mapping[str, str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Free parameter names and, for each of the law's parameters, the index of the free one it reads."""
    free = tuple(p for p in law.params if p not in tie)
    return free, np.array([free.index(tie.get(p, p)) for p in law.params])


def tied_law(law: Law, tie: Mapping[str, str]) -> Law:
    """The law over the free parameters only (the law itself when nothing is tied)."""
    if not tie:
        return law
    free, src = _sources(law, tie)

    def log_model(theta, lx):
        ly, J = law.log_model(theta[:, src], lx)  # (R, N), (R, P, N)
        Jf = np.zeros((J.shape[0], len(free), J.shape[2]))
        for i, s in enumerate(src):  # chain rule: a shared value gets both columns
            Jf[:, s, :] += J[:, i, :]
        return ly, Jf

    lo, hi = free_bounds(law, tie, *law.bound_arrays())
    return Law(
        name=f"{law.name}[{label(tie)}]",
        params=free,
        n_inputs=law.n_inputs,
        log_model=log_model,
        grid={p: law.grid[p] for p in free},
        bounds={p: (lo[i], hi[i]) for i, p in enumerate(free)},
        positive=tuple(p for p in free if p in law.positive),
        formula=f"{law.formula} with {label(tie)}",
    )


def free_bounds(law: Law, tie: Mapping[str, str], lo: np.ndarray, hi: np.ndarray):
    """Full bounds (P,) -> bounds of the free parameters: a shared value must satisfy both ranges."""
    if not tie:
        return lo, hi
    free, src = _sources(law, tie)
    flo, fhi = np.full(len(free), -np.inf), np.full(len(free), np.inf)
    for i, s in enumerate(src):
        flo[s], fhi[s] = max(flo[s], lo[i]), min(fhi[s], hi[i])
    empty = [free[s] for s in range(len(free)) if flo[s] > fhi[s]]
    if empty:
        raise ValueError(f"tie: the bounds of {empty} and the parameters tied to them do not overlap")
    return flo, fhi


def expand(law: Law, tie: Mapping[str, str], theta: np.ndarray) -> np.ndarray:
    """Free raw parameters (..., F) -> the law's raw parameters (..., P)."""
    if not tie:
        return theta
    return np.asarray(theta)[..., _sources(law, tie)[1]]


def reduce(law: Law, tie: Mapping[str, str], theta: np.ndarray) -> np.ndarray:
    """The law's raw parameters (..., P) -> the free ones (..., F)."""
    if not tie:
        return theta
    return np.asarray(theta)[..., [law.params.index(p) for p in law.params if p not in tie]]


def label(tie: Mapping[str, str]) -> str:
    return ", ".join(f"{p}={q}" for p, q in tie.items())
