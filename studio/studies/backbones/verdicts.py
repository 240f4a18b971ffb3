"""The backbones study's verdicts, with their thresholds. Each reads a table the study makes (the cells'
results_table, or measure_costs' timed steps) and is a tie when its difference does not clear the noise:
the seed range of the cells compared (loss), the bootstrap bands of the fitted exponents (cost), the
spread of the ratio over repeats (timing)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.studies.backbones.cost import cost_exponents, cost_ratios, crossover
from studio.verdicts import Verdict, verdict

VL_MAMBA, KIMI_VL = "VL-Mamba", "Kimi-VL"
MIN_SEEDS = 2  # fewer seeds: no spread to compare a difference with, so never resolved
SSM, ATTENTION, MOE = "mamba", "llama", "moe"


def _few(claim: str, paper: str, what: str) -> Verdict:
    return verdict(claim, paper, False, f"{what}: not resolved at this scale.", tie=True)


def _cells(table: pd.DataFrame, backbone: str, value: str = "val_loss") -> pd.DataFrame:
    """Seed mean, min, max and count of `value` per (frames, tokens_per_frame) of one backbone's MLP-connector cells."""
    part = table[(table["backbone"] == backbone) & (table["scan"] == "none")]
    g = part.groupby(["frames", "tokens_per_frame"])[value]
    return pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max(), "n_seeds": g.count()})


def verdict_ssm_loss(table: pd.DataFrame) -> Verdict:
    """VL-Mamba: a state-space LM is competitive with a transformer. value: mean over the cells both
    backbones trained of (mamba - llama) seed-mean held-out loss (< 0: the SSM lower); spread: the widest
    seed range of those cells; a tie inside it (or < MIN_SEEDS seeds)."""
    claim = "At equal parameters the state-space LM reaches the transformer's held-out loss"
    ssm, att = _cells(table, SSM), _cells(table, ATTENTION)
    both = ssm.index.intersection(att.index)
    if not len(both):
        return _few(claim, VL_MAMBA, "no cell trained with both backbones")
    ssm, att = ssm.loc[both], att.loc[both]
    diff = ssm["mean"] - att["mean"]
    value = float(diff.mean())
    spread = float(max((ssm["max"] - ssm["min"]).max(), (att["max"] - att["min"]).max()))
    tie = int(min(ssm["n_seeds"].min(), att["n_seeds"].min())) < MIN_SEEDS or abs(value) <= spread
    best = {k: "({}, {})".format(*map(int, t["mean"].idxmin())) for k, t in (("mamba", ssm), ("llama", att))}
    evidence = (
        "Held-out loss mamba vs llama per cell (T, M): "
        + "; ".join(f"({t}, {m}) {ssm.loc[(t, m), 'mean']:.3f} vs {att.loc[(t, m), 'mean']:.3f}" for t, m in both)
        + f"; mean difference {value:+.3f} against a seed spread of {spread:.3f}"
        + (" (a tie)" if tie else "")
        + f". Best split: mamba (T, M) = {best['mamba']}, llama {best['llama']}."
    )
    return verdict(claim, VL_MAMBA, value <= 0, evidence, tie=tie, value=value, spread=spread)


# What each cost metric of `measure_costs` is called in a claim. Step time depends on the machine and its
# load, so the notebook's published verdicts use memory (on a CPU the activation bytes autograd keeps: a
# function of the shapes, the same on every machine); benchmarks/bench_backbones.py prints the step-time ones.
COST_NAMES = {"seconds": "step time", "memory_mb": "activation memory"}


def verdict_crossover(
    costs: pd.DataFrame, metric: str = "seconds", *, n_bootstrap: int = 200, seed: int = 0, min_length: int = 0
) -> Verdict:
    """VL-Mamba: the SSM's cost grows more slowly with the sequence than attention's, so it crosses below it.
    metric: a cost column of `measure_costs` (COST_NAMES). value: alpha_llama - alpha_mamba of the fitted
    laws (> 0 supports the claim); spread: the wider half-band of the two; a tie when the bands overlap.
    The evidence names the crossover length with its band, measured or extrapolated."""
    what = COST_NAMES[metric]
    claim = f"The state-space LM's {what} grows more slowly with visual tokens than attention's (a crossover exists)"
    exps = cost_exponents(costs, (metric,), n_bootstrap=n_bootstrap, seed=seed, min_length=min_length)
    e = exps.set_index("backbone")
    if not {SSM, ATTENTION} <= set(e.index):
        return _few(claim, VL_MAMBA, f"{what} at fewer than two lengths per backbone")
    s, a = e.loc[SSM], e.loc[ATTENTION]
    value = float(a["alpha"] - s["alpha"])
    spread = float(max(s["ci_high"] - s["ci_low"], a["ci_high"] - a["ci_low"]) / 2)
    tie = not (a["ci_low"] > s["ci_high"] or s["ci_low"] > a["ci_high"])
    cross = crossover(costs, SSM, ATTENTION, metric, n_bootstrap=n_bootstrap, seed=seed, min_length=min_length)
    ratios = cost_ratios(costs, metric)
    where = (
        "never within the fitted laws"
        if not np.isfinite(cross["length"])
        else f"{cross['length']:,.0f} visual tokens [{cross['ci_low']:,.0f}, {cross['ci_high']:,.0f}]"
        + (" (inside the lengths timed)" if cross["measured"] else f" (extrapolated beyond {cross['lengths']})")
    )
    evidence = (
        f"{what.capitalize()} ~ length^alpha over {s['lengths']} visual tokens: mamba {s['alpha']:.2f} "
        f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}], llama {a['alpha']:.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}]"
        + (" (bands overlap: a tie)" if tie else "")
        + f". Mamba's {what} is {ratios['mamba_vs_llama'].iloc[0]:.1f}x the Llama's at {ratios['length'].iloc[0]} "
        f"and {ratios['mamba_vs_llama'].iloc[-1]:.1f}x at {ratios['length'].iloc[-1]} tokens; it becomes cheaper at "
        + where
        + (f" ({cross['share_never']:.0%} of resamples never cross)." if cross["share_never"] > 0 else ".")
    )
    return verdict(claim, VL_MAMBA, value > 0, evidence, tie=tie, value=value, spread=spread)


def verdict_scan(table: pd.DataFrame) -> Verdict:
    """VL-Mamba: the bidirectional scan (BSM) is at least as good as the cross scan (CSM). value: mean over
    backbones with both of (cross - bidirectional) seed-mean loss on the spatial task (> 0: BSM lower);
    spread: the widest seed range of the scan cells; a tie inside it. The evidence lists every order."""
    claim = "The bidirectional scan serves the spatial task at least as well as the four-way cross scan"
    value_col = "val_loss_spatial" if "val_loss_spatial" in table else "val_loss"
    acc_col = "val_acc_spatial" if "val_acc_spatial" in table else "val_acc"
    scans = table[table["scan"] != "none"]
    if scans.empty:
        return _few(claim, VL_MAMBA, "no scan-order cells")
    cell = scans[["frames", "tokens_per_frame"]].drop_duplicates().iloc[0]
    at = table[(table["frames"] == cell["frames"]) & (table["tokens_per_frame"] == cell["tokens_per_frame"])]
    at = at[at["backbone"].isin(scans["backbone"].unique())]
    g = at.groupby(["backbone", "scan"])
    s = pd.DataFrame(
        {"mean": g[value_col].mean(), "min": g[value_col].min(), "max": g[value_col].max(),
         "acc": g[acc_col].mean(), "n_seeds": g[value_col].count()}
    )  # fmt: skip
    pairs = [b for b in s.index.get_level_values(0).unique() if {(b, "bidirectional"), (b, "cross")} <= set(s.index)]
    if not pairs:
        return _few(claim, VL_MAMBA, "no backbone trained with both the bidirectional and the cross scan")
    value = float(np.mean([s.loc[(b, "cross"), "mean"] - s.loc[(b, "bidirectional"), "mean"] for b in pairs]))
    spread = float((s["max"] - s["min"]).max())
    tie = int(s["n_seeds"].min()) < MIN_SEEDS or abs(value) <= spread
    widest = float((s["mean"].groupby(level=0).max() - s["mean"].groupby(level=0).min()).max())
    evidence = (
        f"Spatial-task loss (accuracy) at (T, M) = ({cell['frames']}, {cell['tokens_per_frame']}): "
        + "; ".join(f"{b} {sc} {r['mean']:.3f} ({r['acc']:.2f})" for (b, sc), r in s.iterrows())
        + f". Cross - bidirectional {value:+.3f} against a seed spread of {spread:.3f}"
        + (" (a tie)" if tie else "")
        + f"; the widest gap between any two orders (none = the MLP connector) is {widest:.3f}, "
        + ("inside" if widest <= spread else "outside")
        + " the seed spread."
    )
    return verdict(claim, VL_MAMBA, value >= 0, evidence, tie=tie, value=value, spread=spread)


def verdict_moe_cost(costs: pd.DataFrame, table: pd.DataFrame, metric: str = "seconds") -> Verdict:
    """Kimi-VL: few active parameters make a large MoE cheap; a step's cost follows the active parameters.
    metric: a cost column of `measure_costs` (COST_NAMES). value: median over lengths of (MoE cost per
    active parameter) / (Llama's) (<= 1 supports the claim); spread: half the widest range over repeats of
    that ratio at one length; a tie when |value - 1| <= spread. The evidence adds total parameters and the
    held-out loss of the two at matched active parameters."""
    what = COST_NAMES[metric]
    claim = f"At matched active parameters a mixture-of-experts step costs no more {what} than the dense step"
    if not {MOE, ATTENTION} <= set(costs["backbone"]):
        return _few(claim, KIMI_VL, f"no {what} of both backbones")
    per = costs.assign(per_active=costs[metric] / costs["n_active"])
    wide = per.pivot_table(index=["length", "repeat"], columns="backbone", values="per_active")
    ratio = (wide[MOE] / wide[ATTENTION]).rename("ratio").reset_index()
    by_len = ratio.groupby("length")["ratio"]
    value = float(by_len.median().median())
    spread = float(((by_len.max() - by_len.min()) / 2).max())
    tie = abs(value - 1) <= spread
    n = costs.groupby("backbone")[["n_params", "n_active"]].first()
    loss = ""
    moe, att = _cells(table, MOE), _cells(table, ATTENTION)
    both = moe.index.intersection(att.index)
    if len(both):
        d = float((moe.loc[both, "mean"] - att.loc[both, "mean"]).mean())
        sp = float(max((moe["max"] - moe["min"]).max(), (att["max"] - att["min"]).max()))
        loss = f" Held-out loss moe - llama over {len(both)} cells {d:+.3f} (seed spread {sp:.3f})."
    evidence = (
        f"MoE {n.loc[MOE, 'n_params']:,} parameters ({n.loc[MOE, 'n_active']:,} active) vs Llama "
        f"{n.loc[ATTENTION, 'n_params']:,}: {what} per active parameter, MoE / Llama, "
        + ", ".join(f"{r:.2f} at {length}" for length, r in by_len.median().items())
        + f" (median {value:.2f}, repeat spread {spread:.2f}"
        + (": a tie)." if tie else ").")
        + loss
    )
    return verdict(claim, KIMI_VL, value <= 1, evidence, tie=tie, value=value, spread=spread)
