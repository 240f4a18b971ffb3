"""How long does a global Chinchilla fit take: studio.scaling against Epoch AI's own procedure.

Epoch's procedure (Besiroglu et al. 2024), re-implemented faithfully: for every one of the 4,500
points of their grid (alpha, beta in {0,...,2}, e in {-1,...,1}, a, b in {0,...,25}), scipy's
L-BFGS-B with default options and a finite-difference gradient on the summed Huber (delta 1e-3) of
log residuals, keeping the best; their bootstrap refits each resample from the full-data optimum.
The full grid takes about ten minutes on 2 cores, so `--epoch-starts K` times K evenly spaced starts
and extrapolates (K = 4500 runs it all), and `--epoch-bootstrap K` does the same for resamples.

    .venv/bin/python benchmarks/bench_scaling.py --epoch-starts 300 --bootstrap 4000 --epoch-bootstrap 200
"""

from __future__ import annotations

import argparse
import os
import time
from itertools import product

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from studio import scaling as sc

DELTA = 1e-3


def epoch_objective(params, N, D, losses):
    a, b, e, alpha, beta = params
    pred = logsumexp([a - alpha * np.log(N), b - beta * np.log(D), e * np.ones(N.shape)], axis=0)
    r = np.log(losses) - pred
    return np.sum(np.where(np.abs(r) <= DELTA, 0.5 * r * r, DELTA * (np.abs(r) - 0.5 * DELTA)))


def epoch_grid() -> list[list[float]]:
    alphas = betas = np.arange(0, 2.5, 0.5)
    es = np.arange(-1, 1.5, 0.5)
    As = Bs = np.arange(0, 30, 5)
    return [[a, b, e, alpha, beta] for alpha, beta, e, a, b in product(alphas, betas, es, As, Bs)]


def epoch_fit(N, D, L, starts):
    best = (np.inf, None)
    for x0 in starts:
        res = minimize(epoch_objective, x0, args=(N, D, L), method="L-BFGS-B")
        if res.fun < best[0]:
            best = (res.fun, res.x)
    return best


def to_named(x):
    a, b, e, alpha, beta = x
    return {"E": np.exp(e), "A": np.exp(a), "alpha": alpha, "B": np.exp(b), "beta": beta}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epoch-starts", type=int, default=300, help="grid starts to time for Epoch's loop (4500 = all)")
    ap.add_argument("--bootstrap", type=int, default=4000, help="resamples for our bootstrap")
    ap.add_argument("--epoch-bootstrap", type=int, default=200, help="resamples to time for Epoch's bootstrap")
    ap.add_argument("--repeats", type=int, default=3, help="our fit is timed this many times (best reported)")
    args = ap.parse_args(argv)

    df = sc.load_chinchilla()
    N, D, L = (df[c].to_numpy() for c in ("N", "D", "loss"))
    print(f"data: {len(df)} points, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ours = sc.fit(df, "additive", x=("N", "D"), y="loss")
        times.append(time.perf_counter() - t)
    t_ours = min(times)
    print(
        f"ours : fit ({ours.n_starts} starts) {t_ours:.2f} s (runs: {', '.join(f'{x:.2f}' for x in times)}); "
        f"objective {ours.objective:.6e}; " + ", ".join(f"{k}={v:.4f}" for k, v in ours.params.items())
    )
    t = time.perf_counter()
    boot = ours.bootstrap(args.bootstrap, seed=0)
    t_boot = time.perf_counter() - t
    ci = ours.ci(0.95).set_index("param")
    print(
        f"ours : bootstrap {args.bootstrap} resamples {t_boot:.2f} s ({boot['converged'].mean():.1%} converged); 95% CI "
        + ", ".join(f"{p} {ci.loc[p, 'ci_low']:.4f}-{ci.loc[p, 'ci_high']:.4f}" for p in ("E", "alpha", "beta"))
    )

    grid = epoch_grid()
    k = min(args.epoch_starts, len(grid))
    subset = [grid[i] for i in np.linspace(0, len(grid) - 1, k).round().astype(int)]
    t = time.perf_counter()
    f_ep, x_ep = epoch_fit(N, D, L, subset)
    t_ep = time.perf_counter() - t
    t_ep_full = t_ep * len(grid) / k
    print(
        f"epoch: {k} of {len(grid)} starts {t_ep:.1f} s -> full grid {t_ep_full:.0f} s"
        f"{' (extrapolated)' if k < len(grid) else ''}; best objective {f_ep:.6e}; "
        + ", ".join(f"{kk}={v:.4f}" for kk, v in to_named(x_ep).items())
    )

    # Epoch's bootstrap: each resample refitted by L-BFGS-B (numerical gradient) from the optimum.
    rng = np.random.default_rng(0)
    x0 = sc.get_law("additive").raw(ours.params)[[1, 3, 0, 2, 4]]  # (a, b, e, alpha, beta)
    kb = args.epoch_bootstrap
    t = time.perf_counter()
    for _ in range(kb):
        idx = rng.integers(0, len(L), len(L))
        minimize(epoch_objective, x0, args=(N[idx], D[idx], L[idx]), method="L-BFGS-B")
    t_eb = (time.perf_counter() - t) * args.bootstrap / kb
    print(f"epoch: bootstrap {kb} resamples timed -> {args.bootstrap} resamples {t_eb:.0f} s (extrapolated)")

    ref = sc.PUBLISHED["epoch_grid"]
    same = abs(ours.objective - f_ep) <= 1e-6 * f_ep or ours.objective < f_ep
    rel = {p: abs(ours.params[p] / v - 1) for p, v in to_named(x_ep).items()}
    print(f"speed-up: fit {t_ep_full / t_ours:.0f}x, bootstrap {t_eb / t_boot:.0f}x")
    print(
        f"same optimum as Epoch's loop: {same} (objective ours {ours.objective:.6e} vs theirs {f_ep:.6e}; "
        f"max relative parameter difference {max(rel.values()):.1e}); published {ref['objective']:.4e}"
    )


if __name__ == "__main__":
    main()
