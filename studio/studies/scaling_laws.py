"""The scaling-laws study: the glue notebooks/scaling_laws.py calls, and its verdicts.

    chin, chin_fit, chin_ci = chinchilla_validation(level, n_bootstrap, seed)   # Epoch's Chinchilla data
    points, params = chinchilla_tables(chin, chin_fit, chin_ci)                  # the validation figure's table
    shown = comparison_columns(table)                                           # the comparison figure's columns
    gains = doubling_gains(best, data, x, boot)                                 # frames vs tokens at mid-grid
    save_verdicts(verdicts(...), "scaling_laws")

Verdicts (thresholds are the named constants below):
- our Huber fit recovers Epoch AI's Chinchilla optimum (Besiroglu et al. 2024) within OBJECTIVE_RTOL
  in the objective and PARAM_RTOL in every parameter;
- Hoffmann et al.'s published beta lies outside our bootstrap interval on their own data (Epoch's finding);
- frames and tokens per frame enter the loss separately: the best two-input law beats the best law
  of total visual tokens T x M by more than AIC_MARGIN (Opt-Visor fits a joint L(T, M));
- doubling frames lowers the predicted loss more than doubling tokens per frame (Opt-Visor), a tie
  when the bootstrap interval of the difference contains 0.
The last two are about measurements, so they are not published for the synthetic example.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.analysis import scaling
from studio.stats import LEVEL, percentile_interval
from studio.tolerance import intervals
from studio.verdicts import Verdict, verdict

OBJECTIVE_RTOL = 1e-3  # our minimised Huber sum within 0.1 % of Epoch's published 1.0183e-3
PARAM_RTOL = 1e-2  # every Chinchilla parameter within 1 % of Epoch's grid-fit values
AIC_MARGIN = 2.0  # |delta AIC| <= 2: the data do not prefer one family (the usual rule of thumb)
EPOCH, OPT_VISOR = "Besiroglu et al. 2024 (Epoch AI)", "Opt-Visor"
SYNTHETIC = "synthetic example"  # the `source` measurements_or_example reports for the stand-in data
COMPARISON_COLUMNS = [
    "law",
    "k",
    "objective",
    "rmse_log",
    "r2_log",
    "aic",
    "delta_aic",
    "bic",
    "loo_rmse_log",
    "degenerate",
]
CHINCHILLA_PARAMS = ["E", "alpha", "beta"]  # the parameters Epoch published intervals for


# ---------------------------------------------------------------- Chinchilla validation
def chinchilla_validation(level: float = LEVEL, n_bootstrap: int = 1000, seed: int = 0):
    """Epoch's 240 digitised points, our additive Huber fit and its bootstrap intervals (indexed by param)."""
    chin = scaling.load_chinchilla()
    fit = scaling.fit(chin, "additive", x=("N", "D"), y="loss")
    ci = fit.ci(level, n=n_bootstrap, seed=seed).set_index("param")
    return chin, fit, ci


def chinchilla_match(fit: scaling.Fit) -> dict:
    """How far our optimum is from Epoch's: relative objective difference and per-parameter ones."""
    ref = scaling.PUBLISHED["epoch_grid"]
    params = {p: abs(fit.params[p] / v - 1) for p, v in ref["params"].items()}
    return {
        "objective": abs(fit.objective / ref["objective"] - 1),
        "params": params,
        "worst": max(params.values()),
        "reference": ref["objective"],
    }


def chinchilla_verdict(fit: scaling.Fit) -> Verdict:
    m = chinchilla_match(fit)
    holds = m["objective"] < OBJECTIVE_RTOL and m["worst"] < PARAM_RTOL
    return verdict(
        f"Our Huber fit recovers Epoch's Chinchilla optimum (objective within {OBJECTIVE_RTOL:.1%}, "
        f"every parameter within {PARAM_RTOL:.0%})",
        EPOCH,
        holds,
        f"objective {fit.objective:.5e} vs {m['reference']:.4e} (relative difference "
        f"{m['objective']:.1e}); largest relative parameter difference {m['worst']:.1e} "
        f"({max(m['params'], key=m['params'].get)})",
        value=m["worst"],
    )


def _toward(diff: float, estimate: float, lo: float, hi: float) -> float:
    """The interval's reach from `estimate` in the direction of `diff`: |diff| > reach exactly when
    estimate + diff lies outside [lo, hi] (so a verdict's value and spread compare as in other studies)."""
    return estimate - lo if diff < 0 else hi - estimate


def hoffmann_verdict(fit: scaling.Fit, ci: pd.DataFrame, param: str = "beta") -> Verdict:
    """Epoch found Hoffmann et al.'s estimates inconsistent with their own data: `param` outside our interval.

    value: Hoffmann's value minus ours; spread: our interval's reach on that side.
    """
    published, ours = scaling.PUBLISHED["hoffmann"]["params"][param], fit.params[param]
    lo, hi = float(ci.loc[param, "ci_low"]), float(ci.loc[param, "ci_high"])
    outside = not lo <= published <= hi
    return verdict(
        f"Hoffmann et al.'s published {param} lies outside the bootstrap interval of a refit on their "
        "own (digitised) data",
        EPOCH,
        outside,
        f"Hoffmann {param} = {published:g}; ours {ours:.4g}, interval [{lo:.4g}, {hi:.4g}]",
        value=published - ours,
        spread=_toward(published - ours, ours, lo, hi),
    )


def chinchilla_tables(chin: pd.DataFrame, fit: scaling.Fit, ci: pd.DataFrame):
    """The validation figure's data: predictions of each parameter set at every point, and the intervals.

    points: set, N, D, loss, pred (sets hoffmann, epoch, ours, in that order). params: param, ours,
    ours_ci_low, ours_ci_high, epoch, epoch_ci_low, epoch_ci_high, hoffmann.
    """
    pub = scaling.PUBLISHED
    sets = {**{k: pub[k]["params"] for k in ("hoffmann", "epoch")}, "ours": fit.params}
    points = pd.concat(
        [
            pd.DataFrame(
                {
                    "set": name,
                    "N": chin["N"],
                    "D": chin["D"],
                    "loss": chin["loss"],
                    "pred": fit.predict(chin, params=params),
                }
            )
            for name, params in sets.items()
        ],
        ignore_index=True,
    )
    rows = []
    for p in CHINCHILLA_PARAMS:
        lo, hi = pub["epoch"]["ci95"][p]
        rows.append(
            {
                "param": p,
                "ours": fit.params[p],
                "ours_ci_low": ci.loc[p, "ci_low"],
                "ours_ci_high": ci.loc[p, "ci_high"],
                "epoch": pub["epoch"]["params"][p],
                "epoch_ci_low": lo,
                "epoch_ci_high": hi,
                "hoffmann": pub["hoffmann"]["params"][p],
            }
        )
    return points, pd.DataFrame(rows)


def set_label(name: str) -> str:
    return scaling.PUBLISHED[name]["label"] if name in scaling.PUBLISHED else "ours (studio.scaling)"


# ---------------------------------------------------------------- the measurements
def describe(data: pd.DataFrame, x, y: str, source: str) -> str:
    x1, x2 = x
    return (
        f"source: {source}; {len(data)} rows; loss column {y!r}; {x1} in {sorted(data[x1].unique().tolist())}, "
        f"{x2} in {sorted(data[x2].unique().tolist())}"
    )


def comparison_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns the comparison figure draws, in its order."""
    return table[COMPARISON_COLUMNS]


def law_family_verdict(table: pd.DataFrame) -> Verdict | None:
    """Two-input laws against laws of one input (e.g. power(frames*tokens_per_frame)) by AIC.

    None when the table has no law of each kind (nothing to compare). value: AIC of the best
    one-input law minus that of the best two-input law (> 0: the two-input law is better).
    """
    fits = table.attrs["fits"]
    n_in = table["law"].map(lambda label: fits[label].law.n_inputs)
    two, one = table[n_in == 2], table[n_in == 1]
    if two.empty or one.empty:
        return None
    best2, best1 = two.loc[two["aic"].idxmin()], one.loc[one["aic"].idxmin()]
    gap = float(best1["aic"] - best2["aic"])
    return verdict(
        "Frames and tokens per frame enter the loss separately: a joint law L(T, M) beats a law of "
        f"total visual tokens T x M by AIC (margin {AIC_MARGIN:g})",
        OPT_VISOR,
        gap > 0,
        f"best two-input law {best2['law']} (AIC {best2['aic']:.1f}); best one-input law {best1['law']} "
        f"(AIC {best1['aic']:.1f}); delta AIC {gap:+.1f}",
        tie=abs(gap) <= AIC_MARGIN,
        value=gap,
        spread=AIC_MARGIN,
    )


# ---------------------------------------------------------------- frames against tokens
def doubling_gains(
    fit: scaling.Fit, data: pd.DataFrame, x, boot: pd.DataFrame | None = None, level: float = LEVEL
) -> dict:
    """Loss saved by doubling each input at the middle (geometric mean) of the measured grid.

    Returns mid (one-row table), gain_1, gain_2 and, with `boot` (fit.bootstrap's table), the
    percentile interval ci_low, ci_high of gain_1 - gain_2 over the resamples.
    """
    x1, x2 = x
    mid = pd.DataFrame({x1: [np.exp(np.log(data[x1]).mean())], x2: [np.exp(np.log(data[x2]).mean())]})
    base = fit.predict(mid)[0]
    out = {
        "mid": mid,
        "gain_1": base - fit.predict(mid.assign(**{x1: 2 * mid[x1]}))[0],
        "gain_2": base - fit.predict(mid.assign(**{x2: 2 * mid[x2]}))[0],
        "ci_low": float("nan"),
        "ci_high": float("nan"),
    }
    if boot is not None:
        law = fit.law
        thetas = np.array([law.raw(dict(zip(law.params, row))) for row in boot[list(law.params)].to_numpy()])
        m1, m2 = float(mid[x1][0]), float(mid[x2][0])
        lx = np.log([[m1, m2], [2 * m1, m2], [m1, 2 * m2]])
        ly, _ = law.log_model(thetas, lx)  # (resamples, 3): mid, x1 doubled, x2 doubled
        pred = np.exp(ly)
        diff = (pred[:, 0] - pred[:, 1]) - (pred[:, 0] - pred[:, 2])
        out["ci_low"], out["ci_high"] = map(float, percentile_interval(diff[np.isfinite(diff)], level))
    return out


def frames_vs_tokens_verdict(gains: dict, x) -> Verdict:
    """Opt-Visor: more frames help more than more tokens per frame.

    value: gain_1 - gain_2; spread: the bootstrap interval's reach from it towards 0. A tie when
    |value| <= spread (the interval holds 0) or there is no interval (no bootstrap).
    """
    x1, x2 = x
    diff = gains["gain_1"] - gains["gain_2"]
    lo, hi = gains["ci_low"], gains["ci_high"]
    spread = diff - lo if diff >= 0 else hi - diff
    return verdict(
        f"Doubling {x1} lowers the loss more than doubling {x2}",
        OPT_VISOR,
        diff > 0,
        f"at the middle of the grid doubling {x1} saves {gains['gain_1']:.4f}, doubling {x2} "
        f"{gains['gain_2']:.4f}; bootstrap interval of the difference [{lo:.4f}, {hi:.4f}]",
        tie=not abs(diff) > spread,
        value=diff,
        spread=spread,
    )


def doubling_sentence(gains: dict, x, source: str) -> str:
    x1, x2 = x
    mid = gains["mid"]
    return (
        f"At the middle of the measured grid ({x1}={mid[x1][0]:.3g}, {x2}={mid[x2][0]:.3g}) doubling {x1} lowers "
        f"the predicted loss by {gains['gain_1']:.4f}, doubling {x2} by {gains['gain_2']:.4f}. Opt-Visor found "
        f"more frames helped more than more tokens per frame; the {source} data "
        f"{'agree' if gains['gain_1'] > gains['gain_2'] else 'do NOT agree'}."
    )


# ---------------------------------------------------------------- the optimal split
def frontier_tolerance(frontier: pd.DataFrame) -> dict:
    """What `studio figures --check` tolerates in a frontier table (optimal split per budget): each
    optimum and its bounds may move half its own bootstrap interval (rows without one: nothing)."""
    pairs = {}
    for col in frontier.columns:
        if col.endswith("_opt"):
            stem = col.removesuffix("_opt")
            if {f"{stem}_ci_low", f"{stem}_ci_high"} <= set(frontier.columns):
                pairs[col] = (f"{stem}_ci_low", f"{stem}_ci_high")
    return intervals(frontier, pairs)


def frontier_notes(frontier: pd.DataFrame, data: pd.DataFrame, x) -> list[str]:
    """Warnings a reader needs next to the frontier: extrapolation, and budgets with no interior optimum."""
    x1, x2 = x
    o1, o2 = frontier[f"{x1}_opt"], frontier[f"{x2}_opt"]
    outside = frontier[(o1 > data[x1].max()) | (o2 > data[x2].max()) | (o1 < data[x1].min()) | (o2 < data[x2].min())]
    notes = []
    if len(outside):
        notes.append(
            f"NOTE: for budgets {list(outside['budget'])} the optimum lies outside the measured range: extrapolation."
        )
    if frontier["at_boundary"].any():
        notes.append(
            f"NOTE: for budgets {list(frontier.loc[frontier['at_boundary'], 'budget'])} the law has no "
            "interior optimum."
        )
    return notes


def budget_share(frontier: pd.DataFrame, x) -> str:
    """How the optimum grows with the budget: the slope of log x1* against log budget."""
    x1, x2 = x
    share = (
        np.polyfit(np.log(frontier["budget"]), np.log(frontier[f"{x1}_opt"]), 1)[0]
        if len(frontier) > 1
        else float("nan")
    )
    return f"As the budget grows, {x1}* grows as budget^{share:.2f} and {x2}* as budget^{1 - share:.2f}."


# ---------------------------------------------------------------- all verdicts
def verdicts(
    *, chinchilla=None, table: pd.DataFrame | None = None, gains: dict | None = None, x=None, source: str = ""
) -> list[Verdict]:
    """Every verdict this run can support. chinchilla: (fit, ci) or None when the validation was skipped;
    the measurement verdicts are left out for the synthetic example (it is not a measurement)."""
    out = []
    if chinchilla is not None:
        fit, ci = chinchilla
        out += [chinchilla_verdict(fit), hoffmann_verdict(fit, ci)]
    if source != SYNTHETIC:
        family = None if table is None else law_family_verdict(table)
        if family is not None:
            out.append(family)
        if gains is not None:
            out.append(frames_vs_tokens_verdict(gains, x))
    return out
