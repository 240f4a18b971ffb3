"""The scaling-laws study: the glue notebooks/scaling_laws.py calls, and its verdicts.

    chin, chin_fit, chin_ci = chinchilla_validation(level, n_bootstrap, seed)   # Epoch's Chinchilla data
    points, params = chinchilla_tables(chin, chin_fit, chin_ci)                  # the validation figure's table
    shown = comparison_columns(table)                                           # the comparison table's columns
    gains = doubling_gains(best, data, x, boot, at=complete_corner(data, x))    # frames vs tokens, in the data
    save_verdicts(verdicts(chinchilla=..., data=data, table=table, best=best, ...), "scaling_laws")

Verdicts (studio.verdicts.judge; thresholds are the named constants below):
- pipeline check (sanity): our Huber fit recovers Epoch AI's Chinchilla optimum (Besiroglu et al. 2024)
  within OBJECTIVE_RTOL in the objective and PARAM_RTOL in every parameter (a deterministic fit: a point);
- claim: Hoffmann et al.'s published beta lies below our bootstrap interval on their own data (Epoch's
  finding), gated on our fit reaching Epoch's optimum;
- claim: frames and tokens per frame enter the loss separately (Opt-Visor fits a joint L(T, M)): per-seed
  AIC of the best one-input law minus the best two-input law, on the cells the generator does not limit;
- claim: doubling frames lowers the predicted loss more than doubling tokens per frame (Opt-Visor), at the
  corner of those cells, with the bootstrap interval of the law.
On the visual-context measurements the whole grid holds cells the generator limits (T below full needle
coverage, one token per frame: studio.studies.visual_context): there a joint law and "frames first" hold
by construction, so the whole-grid versions of the last two are sanity rows. The measurement verdicts are
left out for the synthetic example (it is not a measurement).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from studio.analysis import scaling
from studio.stats import LEVEL, percentile_interval
from studio.studies import visual_context as vc
from studio.tolerance import intervals
from studio.verdicts import (
    SANITY,
    Verdict,
    gate,
    interval_effect,
    judge,
    paired_effect,
    sanity,
    untestable,
)

OBJECTIVE_RTOL = 1e-3  # our minimised Huber sum within 0.1 % of Epoch's published 1.0183e-3
PARAM_RTOL = 1e-2  # every Chinchilla parameter within 1 % of Epoch's grid-fit values
# A deterministic check has a point interval: only its sign decides, so any share of the tolerance left passes.
POINT_MIN_EFFECT = 1e-6
AIC_MARGIN = 2.0  # |delta AIC| <= 2: the data do not prefer one family (the usual rule of thumb)
# Hoffmann's beta must sit further from ours than Epoch's own 95 % half-width for beta (0.331-0.415):
# a smaller gap would not tell Hoffmann's value from Epoch's estimate.
HOFFMANN_MIN_EFFECT = (
    scaling.PUBLISHED["epoch"]["ci95"]["beta"][1] - scaling.PUBLISHED["epoch"]["ci95"]["beta"][0]
) / 2
DOUBLING_MIN_EFFECT = vc.LOSS_MIN_EFFECT  # nats, the visual-context claims' smallest loss gap (its reason there)
EPOCH, OPT_VISOR = "Besiroglu et al. 2024 (Epoch AI)", "Opt-Visor"
SYNTHETIC = "synthetic example"  # the `source` measurements_or_example reports for the stand-in data
VC_INPUTS = ("frames", "tokens_per_frame")  # the visual-context sweep's inputs: the generator's limits apply
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


def chinchilla_sentence(fit: scaling.Fit) -> str:
    """Our optimum against Epoch's, in numbers (the verdict is in the verdicts table)."""
    m = chinchilla_match(fit)
    return (
        f"objective {fit.objective:.5e} vs Epoch's {m['reference']:.4e} (relative difference {m['objective']:.1e}, "
        f"tolerance {OBJECTIVE_RTOL:g}); largest relative parameter difference {m['worst']:.1e} "
        f"({max(m['params'], key=m['params'].get)}, tolerance {PARAM_RTOL:g})"
    )


def objective_gate(fit: scaling.Fit):
    """Our multi-start fit reached Epoch's optimum: the objective within OBJECTIVE_RTOL of theirs."""
    return gate(
        "relative difference of our Huber objective from Epoch's",
        chinchilla_match(fit)["objective"],
        OBJECTIVE_RTOL,
        above=False,
    )


def chinchilla_verdict(fit: scaling.Fit) -> Verdict:
    """A pipeline check of the fitter (sanity): the statistic is the share of the tolerance left,
    1 - max(objective difference / OBJECTIVE_RTOL, worst parameter difference / PARAM_RTOL), > 0 when
    both are within tolerance. The fit is deterministic (Epoch's grid of starts), so its interval is a
    point and no seeds enter."""
    m = chinchilla_match(fit)
    left = 1 - max(m["objective"] / OBJECTIVE_RTOL, m["worst"] / PARAM_RTOL)
    effect = interval_effect(left, left, left, 1, "deterministic fit from Epoch's 4,500 starts: a point")
    return sanity(
        f"Our Huber fit recovers Epoch's Chinchilla optimum (objective within {OBJECTIVE_RTOL:.1%}, "
        f"every parameter within {PARAM_RTOL:.0%})",
        EPOCH,
        effect,
        min_effect=POINT_MIN_EFFECT,
        min_seeds=1,
        evidence=chinchilla_sentence(fit) + "; statistic: the share of the tolerance left.",
    )


def hoffmann_verdict(fit: scaling.Fit, ci: pd.DataFrame, param: str = "beta") -> Verdict:
    """Epoch found Hoffmann et al.'s estimates inconsistent with their own data: `param` below our interval.

    Effect: ours - Hoffmann's, with our bootstrap interval shifted by Hoffmann's value (> 0 when his value
    lies below ours, the direction Epoch found), min_effect HOFFMANN_MIN_EFFECT; gated on our fit reaching
    Epoch's optimum (objective_gate). n_seeds: the digitised points the bootstrap resamples (one published
    dataset, no training seeds).
    """
    published, ours = scaling.PUBLISHED["hoffmann"]["params"][param], fit.params[param]
    lo, hi = float(ci.loc[param, "ci_low"]), float(ci.loc[param, "ci_high"])
    n = int(getattr(fit, "n", 0) or 0)
    effect = interval_effect(
        ours - published, lo - published, hi - published, n, f"percentile bootstrap over {n} points"
    )
    return judge(
        f"Hoffmann et al.'s published {param} lies below the bootstrap interval of a refit on their own "
        "(digitised) data",
        EPOCH,
        effect,
        min_effect=HOFFMANN_MIN_EFFECT,
        gates=[objective_gate(fit)],
        evidence=f"Hoffmann {param} = {published:g}; ours {ours:.4g}, interval [{lo:.4g}, {hi:.4g}].",
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
    text = (
        f"source: {source}; {len(data)} rows; loss column {y!r}; {x1} in {sorted(data[x1].unique().tolist())}, "
        f"{x2} in {sorted(data[x2].unique().tolist())}"
    )
    if limited_by_generator(data, x) and all(k in data for k in vc.DEFAULT):
        text += "\n" + vc.generator_sentence(data, vc.generator())  # what the videos imply, before any fit
    return text


def comparison_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of the law comparison, in the order the notebook shows them."""
    return table[COMPARISON_COLUMNS]


def limited_by_generator(data: pd.DataFrame, x) -> bool:
    """Whether these are visual-context measurements, whose generator limits some cells (x names frames
    and tokens per frame and the table holds per-task accuracy)."""
    return set(x) == set(VC_INPUTS) and any(c.startswith("val_acc_") for c in data.columns)


def complete_rows(data: pd.DataFrame, x, gen: dict | None = None) -> pd.Series:
    """Rows of cells the generator does not limit (studio.studies.visual_context.complete); every row
    for measurements of anything else."""
    if not limited_by_generator(data, x):
        return pd.Series(True, index=data.index)
    gen = gen or vc.generator()
    return pd.Series(
        [vc.complete(T, M, gen) for T, M in zip(data["frames"], data["tokens_per_frame"])], index=data.index
    )


def replicates(data: pd.DataFrame, x) -> int:
    """Independent runs behind each cell: the seeds (the fewest rows per cell without a seed column)."""
    if "seed" in data.columns:
        return int(data["seed"].nunique())
    return int(data.groupby(list(x)).size().min()) if len(data) else 0


def _competence(data: pd.DataFrame, rows: pd.Series, x, what: str, y: str):
    """(failed seeds, gates) of the rows: the visual-context gates where the table holds them, else one
    gate that says competence cannot be checked (NaN: untestable)."""
    part = data[rows]
    if limited_by_generator(data, x) and "seed" in data.columns and len(part):
        part = part.rename(columns={y: "val_loss"}) if y != "val_loss" else part
        failed = vc.failed_seeds(part)
        return failed, vc.competence_gates(part[~part["seed"].isin(failed)], what)
    return [], [gate(f"accuracy above chance of {what} (the table holds no per-task accuracy)", math.nan, 0)]


# ---------------------------------------------------------------- law families
def aic_gaps(data: pd.DataFrame, laws, x, y: str, loss: str = "huber") -> dict:
    """{seed: AIC of the best one-input law minus that of the best two-input law}, each seed's rows fitted
    alone (> 0: the two-input law is better). Empty when the laws are not of both kinds."""
    if "seed" not in data.columns:
        groups = [(0, data)]
    else:
        groups = list(data.groupby("seed"))
    out = {}
    for seed, part in groups:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = scaling.compare(part, laws, x=list(x), y=y, loss=loss, loo=False)
        gap = aic_gap(table)
        if gap is None:
            return {}
        out[seed] = gap[0]
    return out


def aic_gap(table: pd.DataFrame):
    """(best one-input AIC - best two-input AIC, best two-input row, best one-input row), None without both kinds."""
    fits = table.attrs["fits"]
    n_in = table["law"].map(lambda label: fits[label].law.n_inputs)
    two, one = table[n_in == 2], table[n_in == 1]
    if two.empty or one.empty:
        return None
    best2, best1 = two.loc[two["aic"].idxmin()], one.loc[one["aic"].idxmin()]
    return float(best1["aic"] - best2["aic"]), best2, best1


FAMILY_CLAIM = "Frames and tokens per frame enter the loss separately: a joint law L(T, M) beats a law of T x M by AIC"


def law_family_verdicts(data, table, laws, x, y, loss="huber", gen=None) -> list[Verdict]:
    """[the claim on the cells the generator does not limit, the whole grid as a sanity row (visual-context
    measurements only)]; [] when `table` has no law of each kind. Effect: per-seed AIC gaps (aic_gaps),
    min_effect AIC_MARGIN. The claim needs more distinct cells than the largest law has parameters."""
    whole = aic_gap(table)
    if whole is None:
        return []
    gap, best2, best1 = whole
    pooled = (
        f"All rows pooled: best two-input law {best2['law']} (AIC {best2['aic']:.1f}), best one-input law "
        f"{best1['law']} (AIC {best1['aic']:.1f}), delta AIC {gap:+.1f}."
    )
    keep = complete_rows(data, x, gen)
    part = data[keep]
    cells = part.groupby(list(x)).ngroups if len(part) else 0
    k_max = int(table["k"].max()) if "k" in table else 0
    failed, competence = _competence(data, keep, x, "the cells the generator does not limit", y)
    gates = [
        gate(
            f"distinct cells the generator does not limit (more than the {k_max} parameters of the largest law)",
            cells,
            k_max,
        ),
        *competence,
    ]
    limited = limited_by_generator(data, x)
    scope = " on the cells the generator does not limit" if limited else ""
    if not all(g.passed for g in gates):
        out = [untestable(FAMILY_CLAIM + scope, OPT_VISOR, gates, pooled)]
    else:
        kept = part[~part["seed"].isin(failed)] if "seed" in part else part
        effect = paired_effect(aic_gaps(kept, laws, x, y, loss))
        out = [
            judge(
                FAMILY_CLAIM + scope,
                OPT_VISOR,
                effect,
                min_effect=AIC_MARGIN,
                gates=gates,
                failed_seeds=failed,
                n_total_seeds=replicates(part, x),
                evidence=pooled + " Effect: per seed, AIC of the best one-input law minus the best two-input law.",
            )
        ]
    if limited and not keep.all():
        kept = data[~data["seed"].isin(failed)]
        out.append(
            sanity(
                FAMILY_CLAIM + " on the whole grid (the generator's coverage step makes T count apart from T x M)",
                vc.GENERATOR,
                paired_effect(aic_gaps(kept, laws, x, y, loss)),
                min_effect=AIC_MARGIN,
                gates=competence,
                failed_seeds=failed,
                n_total_seeds=replicates(data, x),
                evidence=pooled + " Effect: per seed, AIC of the best one-input law minus the best two-input law.",
            )
        )
    return out


# ---------------------------------------------------------------- frames against tokens
def grid_middle(data: pd.DataFrame, x) -> dict:
    """The geometric mean of each input over the rows: the middle of the measured grid."""
    return {c: float(np.exp(np.log(data[c]).mean())) for c in x}


def complete_corner(data: pd.DataFrame, x, gen: dict | None = None) -> dict | None:
    """The smallest inputs among the cells the generator does not limit: doubling either from there stays
    among (or between) measured complete cells. None when there is no such cell."""
    part = data[complete_rows(data, x, gen)]
    return {c: float(part[c].min()) for c in x} if len(part) else None


def doubling_gains(
    fit: scaling.Fit,
    data: pd.DataFrame,
    x,
    boot: pd.DataFrame | None = None,
    level: float = LEVEL,
    at: dict | None = None,
) -> dict:
    """Loss saved by doubling each input at `at` ({x1: v, x2: v}; default the grid's geometric middle).

    Returns mid (one-row table of `at`), loss (the prediction there), gain_1, gain_2 and, with `boot`
    (fit.bootstrap's table), the percentile interval ci_low, ci_high of gain_1 - gain_2 over the resamples.
    """
    x1, x2 = x
    at = at or grid_middle(data, x)
    mid = pd.DataFrame({x1: [float(at[x1])], x2: [float(at[x2])]})
    base = fit.predict(mid)[0]
    out = {
        "mid": mid,
        "loss": float(base),
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


def doubling_sentence(gains: dict, x, source: str) -> str:
    """The doubling gains in numbers (the verdict is in the verdicts table)."""
    x1, x2 = x
    mid = gains["mid"]
    return (
        f"At ({x1}={mid[x1][0]:.3g}, {x2}={mid[x2][0]:.3g}) of the {source} data the law predicts {gains['loss']:.4f}; "
        f"doubling {x1} lowers it by {gains['gain_1']:.4f}, doubling {x2} by {gains['gain_2']:.4f} (difference "
        f"interval [{gains['ci_low']:.4f}, {gains['ci_high']:.4f}])."
    )


def doubling_report(fit: scaling.Fit, data: pd.DataFrame, x, boot=None, level: float = LEVEL, source: str = "") -> str:
    """doubling_sentence at the grid's middle and, where it differs, at complete_corner (what the claim uses)."""
    points = [("the grid's middle", grid_middle(data, x))]
    corner = complete_corner(data, x)
    if corner is not None and corner != points[0][1]:
        points.append(("the corner of the cells the generator does not limit", corner))
    return "\n".join(
        f"{name}: " + doubling_sentence(doubling_gains(fit, data, x, boot, level, at=at), x, source)
        for name, at in points
    )


def frames_vs_tokens_verdicts(
    fit: scaling.Fit,
    data: pd.DataFrame,
    x,
    y: str,
    boot: pd.DataFrame | None,
    level: float = LEVEL,
    gen: dict | None = None,
) -> list[Verdict]:
    """Opt-Visor's 'doubling frames helps more than doubling tokens per frame', from the fitted law.

    The claim: at complete_corner (where neither input is limited by the generator), gain_1 - gain_2 with
    the law's bootstrap interval, min_effect DOUBLING_MIN_EFFECT; gated on the doubled point staying inside
    the complete cells and on their competence; n_seeds: replicates. On visual-context measurements whose
    grid's middle lies elsewhere, the same statistic there is a sanity row (doubling T crosses the coverage
    step there). `boot` rows must come from `fit` (fit.bootstrap).
    """
    x1, x2 = x
    claim = f"Doubling {x1} lowers the loss more than doubling {x2}"
    keep = complete_rows(data, x, gen)
    corner = complete_corner(data, x, gen)
    failed, gates = _competence(data, keep, x, "the cells the generator does not limit", y)
    n_total = replicates(data, x)
    if corner is None:
        return [untestable(claim, OPT_VISOR, [gate("cells the generator does not limit", 0, 0)])]
    if failed:  # the law and its bootstrap without the failed seeds' rows
        data = data[~data["seed"].isin(failed)]
        fit = scaling.fit(data, fit.law, x=list(x), y=y, loss=fit.loss, warn=False)
        boot = None if boot is None else fit.bootstrap(len(boot), seed=0)
        keep = complete_rows(data, x, gen)
    part = data[keep]
    reach = max(2 * corner[x1] / part[x1].max(), 2 * corner[x2] / part[x2].max())
    misfit = float(np.sqrt(np.mean((fit.predict(part) - part[y].to_numpy(float)) ** 2)))
    gates = [
        gate("largest doubled input / the largest measured one among those cells", reach, 1 + 1e-9, above=False),
        # a law that misses the cells it is judged on by more than the smallest effect cannot resolve it
        gate("RMSE of the law on those cells (loss units)", misfit, DOUBLING_MIN_EFFECT, above=False),
        *gates,
    ]
    limited = limited_by_generator(data, x)
    scope = " where the generator limits neither" if limited else ""
    out = [_doubling_verdict(claim + scope, OPT_VISOR, fit, data, x, boot, level, corner, gates, failed, n_total)]
    middle = grid_middle(data, x)
    if limited and (middle[x1] < corner[x1] or middle[x2] < corner[x2]):
        out.append(
            _doubling_verdict(
                claim + " at the grid's middle, among the cells the generator limits (its coverage step)",
                vc.GENERATOR,
                fit,
                data,
                x,
                boot,
                level,
                middle,
                gates[2:],
                failed,
                n_total,
                kind=SANITY,
            )
        )
    return out


def _doubling_verdict(claim, paper, fit, data, x, boot, level, at, gates, failed, n_total, kind="claim") -> Verdict:
    g = doubling_gains(fit, data, x, boot, level, at=at)
    diff = g["gain_1"] - g["gain_2"]
    n = max(0, n_total - len(failed))
    effect = interval_effect(
        diff, g["ci_low"], g["ci_high"], n, f"percentile bootstrap of the law over {len(data)} rows"
    )
    return (sanity if kind == SANITY else judge)(
        claim,
        paper,
        effect,
        min_effect=DOUBLING_MIN_EFFECT,
        gates=gates,
        failed_seeds=failed,
        n_total_seeds=n_total,
        evidence=doubling_sentence(g, x, "measured"),
    )


# ---------------------------------------------------------------- the figures' tables
def plain_log_ticks(axis) -> None:
    """Ticks of a log axis at 1, 2 and 5 per decade labelled as plain numbers (0.2, 0.5, 1, 2), no minor
    labels: a short range otherwise gets crowded minor labels (3x10^-1, 4x10^-1, ...) that overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def law_curves(fit: scaling.Fit, data: pd.DataFrame, x, level: float = LEVEL, n_bootstrap: int = 1000, n: int = 60):
    """The fitted law against each input, one curve per measured value of the other, with its band.

    Columns: panel ("loss vs <input>"), the two inputs, pred, ci_low, ci_high, measured (the input lies
    inside the range measured at that value of the other: the figure draws the rest dashed)."""
    parts = []
    for xa, xb in [(x[0], x[1]), (x[1], x[0])]:
        grid = np.geomspace(data[xa].min(), data[xa].max(), n)
        for v, pts in data.groupby(xb):
            g = pd.DataFrame({xa: grid, xb: float(v)})
            band = fit.predict_band(g, level=level, n=n_bootstrap)
            inside = (grid >= pts[xa].min() * (1 - 1e-9)) & (grid <= pts[xa].max() * (1 + 1e-9))
            parts.append(pd.concat([g, band], axis=1).assign(panel=f"loss vs {xa}", measured=inside))
    return pd.concat(parts, ignore_index=True)


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


def measured_budgets(data: pd.DataFrame, x) -> tuple[float, float]:
    """The smallest and largest x1 * x2 among the measured rows."""
    budget = data[x[0]] * data[x[1]]
    return float(budget.min()), float(budget.max())


def extrapolated(frontier: pd.DataFrame, data: pd.DataFrame, x) -> pd.Series:
    """Frontier rows the measurements do not reach: the budget outside the measured x1 * x2, or the
    optimum outside the measured range of either input."""
    x1, x2 = x
    lo, hi = measured_budgets(data, x)
    o1, o2 = frontier[f"{x1}_opt"], frontier[f"{x2}_opt"]
    return (
        (frontier["budget"] < lo * (1 - 1e-9))
        | (frontier["budget"] > hi * (1 + 1e-9))
        | (o1 > data[x1].max())
        | (o2 > data[x2].max())
        | (o1 < data[x1].min())
        | (o2 < data[x2].min())
    )


def mark_extrapolation(frontier: pd.DataFrame, data: pd.DataFrame, x) -> pd.DataFrame:
    """The frontier with an `extrapolated` column (extrapolated()), what the figures draw dashed."""
    return frontier.assign(extrapolated=extrapolated(frontier, data, x).to_numpy())


def frontier_notes(frontier: pd.DataFrame, data: pd.DataFrame, x) -> list[str]:
    """Warnings a reader needs next to the frontier: extrapolation, and budgets with no interior optimum."""
    outside = frontier[extrapolated(frontier, data, x)]
    notes = []
    if len(outside):
        lo, hi = measured_budgets(data, x)
        notes.append(
            f"NOTE: for budgets {list(outside['budget'])} the budget or the optimum lies outside the measured range "
            f"(budgets {lo:g}-{hi:g}): extrapolation, drawn dashed."
        )
    if frontier["at_boundary"].any():
        notes.append(
            f"NOTE: for budgets {list(frontier.loc[frontier['at_boundary'], 'budget'])} the law has no "
            "interior optimum: the split is a bound."
        )
    return notes


def budget_share(frontier: pd.DataFrame, x, data: pd.DataFrame | None = None) -> str:
    """How the optimum grows with the budget: the slope of log x1* against log budget (over the measured
    budgets when `data` is given and at least two lie inside)."""
    x1, x2 = x
    rows, where = frontier, "all budgets asked for"
    if data is not None:
        inside = frontier[~extrapolated(frontier, data, x)]
        if len(inside) > 1:
            rows, where = inside, "the measured budgets"
    share = np.polyfit(np.log(rows["budget"]), np.log(rows[f"{x1}_opt"]), 1)[0] if len(rows) > 1 else float("nan")
    return f"Over {where}, {x1}* grows as budget^{share:.2f} and {x2}* as budget^{1 - share:.2f}."


# ---------------------------------------------------------------- all verdicts
def verdicts(
    *,
    chinchilla=None,
    data: pd.DataFrame | None = None,
    table: pd.DataFrame | None = None,
    best: scaling.Fit | None = None,
    boot: pd.DataFrame | None = None,
    x=None,
    y: str = "val_loss",
    laws=None,
    loss: str = "huber",
    source: str = "",
    level: float = LEVEL,
    gen: dict | None = None,
) -> list[Verdict]:
    """Every verdict this run can support, claims first. chinchilla: (fit, ci) or None when the validation
    was skipped; the measurement verdicts need data, table (compare's), best (the law drawn) with its
    bootstrap `boot`, and are left out for the synthetic example (it is not a measurement)."""
    out = []
    if chinchilla is not None:
        fit, ci = chinchilla
        out += [hoffmann_verdict(fit, ci), chinchilla_verdict(fit)]
    if source != SYNTHETIC and data is not None:
        if table is not None:
            out += law_family_verdicts(data, table, laws or list(table["law"]), x, y, loss, gen)
        if best is not None:
            out += frames_vs_tokens_verdicts(best, data, x, y, boot, level, gen)
    return [v for v in out if v.kind != SANITY] + [v for v in out if v.kind == SANITY]
