"""The backbones study's verdicts, with their gates and thresholds. Each reads a table the study makes (the
cells' `results_table`, or `measure_costs`' timed steps) and goes through `studio.verdicts.judge`.

- SSM loss (VL-Mamba): per seed, the Mamba's held-out loss minus the Llama's, averaged over the budget
  line's cells both trained, judged as non-inferiority within LOSS_PARITY nats. Gates: both backbones
  learned at every cell compared (seed-mean held-out loss below FAILED_LOSS_SHARE x ln 10, accuracy above
  chance + LINE_ACC_MARGIN), and equal parameters. A seed at chance at a cell where its other seeds are
  not is named and set aside.
- Scan order (VL-Mamba): per seed, the bidirectional scan's spatial-task loss minus the cross scan's,
  non-inferiority within SCAN_PARITY nats. Gates: the token grid is large enough for order to exist
  (MIN_SCAN_GRID) and both scans learned the spatial task (chance + SCAN_ACC_MARGIN).
- Cost laws (VL-Mamba's crossover, Kimi-VL's active parameters): claims, not sanity rows. What a step
  keeps in memory is a function of the shapes and of the implementations, not of training, so no seed
  enters it (COST_RUNS); but no generator makes the result true either: VL-Mamba's and Kimi-VL's claims
  are about these architectures, and the measurement is what can contradict them. Their intervals go
  through `interval_effect` (the crossover: the two fitted laws' paired bootstrap; the MoE: the ratio's
  range over the steps measured), and each is gated on the measurement being in the regime the claim is
  about (attention superlinear in the lengths measured; active parameters matched).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from studio.data.video import DIGIT_WORDS
from studio.studies.backbones.cost import cost_exponents, cost_ratios, crossover, exponent_gap
from studio.verdicts import (
    FAILED_LOSS_SHARE,
    MIN_SEEDS,  # noqa: F401  (the study's name for the rule's seed minimum)
    Gate,
    Verdict,
    above_chance,
    failed_at_chance,
    gate,
    interval_effect,
    judge,
    paired_effect,
    untestable,
)

VL_MAMBA, KIMI_VL = "VL-Mamba", "Kimi-VL"
SSM, ATTENTION, MOE = "mamba", "llama", "moe"

# ---------------------------------------------------------------- competence on the budget line
CHANCE = 1 / len(DIGIT_WORDS)  # both tasks answer a digit word: 10 classes
CHANCE_LOSS = math.log(len(DIGIT_WORDS))  # ln 10: the held-out loss of a model that learned only the answer set
# A cell "trained" when its seed-mean held-out loss is below this (the core's FAILED_LOSS_SHARE of ln 10).
LEARNED_LOSS = FAILED_LOSS_SHARE * CHANCE_LOSS
# Ten points above chance at every cell of the line: the model reads the video there. Not more: at T = 1 one
# sampled frame sees the needle a quarter of the time, so even the transformer tops out near 0.3 there.
LINE_ACC_MARGIN = 0.1
PARAM_MATCH = 0.02  # "equal parameters": total (mamba) or active (moe) parameters within 2 % of the Llama's
# A held-out loss within 0.1 nats of the transformer's (the right digit's probability within about 10 %)
# counts as reaching it.
LOSS_PARITY = 0.1

# ---------------------------------------------------------------- scan orders
SCAN_ACC_MARGIN = 0.2  # issue 29's gate: the spatial task learned, accuracy at least chance + 0.2
# Order needs a grid: on 2 x 2 patches a row, a column and a reversed scan visit the same 4 neighbours, so the
# scan orders barely differ; VL-Mamba scans its vision encoder's whole patch grid. At least 4 x 4 (issue 29).
MIN_SCAN_GRID = 4
SCAN_PARITY = 0.05  # nats of spatial-task loss: "at least as well" = within 5 % of the answer's probability

# ---------------------------------------------------------------- costs
# A cost is measured, not trained: no training seed enters it (memory is a function of the shapes), so the
# rule's seed minimum does not apply; one measured run is the unit, its interval the bootstrap over steps.
COST_RUNS = 1
# What each cost metric of `measure_costs` is called in a claim. Step time depends on the machine and its
# load, so the notebook's published verdicts use memory (on a CPU the activation bytes autograd keeps: a
# function of the shapes, the same on every machine); benchmarks/bench_backbones.py prints the step-time ones.
COST_NAMES = {"seconds": "step time", "memory_mb": "activation memory"}
# VL-Mamba's advantage rests on attention's quadratic term: where attention's cost exponent is not above 1
# (the lower end of its bootstrap band), its L^2 term is not visible and no crossover can show.
SUPERLINEAR = 1.0
# An exponent gap under a quarter of the quadratic-vs-linear gap (1.0) the claim rests on would not matter.
MIN_EXPONENT_GAP = 0.25
MOE_PARITY = 0.1  # "costs no more": the MoE's cost per active parameter within 10 % of the dense step's


def _runs(table: pd.DataFrame, backbone: str, value: str) -> pd.DataFrame:
    """`value` of one backbone's MLP-connector runs: index seed, one column per (frames, tokens_per_frame)."""
    part = table[(table["backbone"] == backbone) & (table["scan"] == "none")]
    return part.set_index(["seed", "frames", "tokens_per_frame"])[value].unstack(["frames", "tokens_per_frame"])


def _cell(c) -> str:
    return "({}, {})".format(*map(int, c))


def _failed_runs(acc: pd.DataFrame, loss: pd.DataFrame, chance: float, margin: float) -> dict:
    """{seed: why} for seeds at chance at a column (cell) where other seeds are not, or with a NaN loss."""
    out = {}
    for c in acc.columns:
        for s in loss.index[~np.isfinite(loss[c].to_numpy(float))].tolist():
            out.setdefault(s, f"diverged at {_cell(c)}, loss {loss.loc[s, c]}")
        for s in failed_at_chance(acc[c].dropna().to_dict(), chance, margin):
            out.setdefault(s, f"at chance at {_cell(c)}, accuracy {acc.loc[s, c]:.3f}")
    return out


def _line(name: str, acc: pd.DataFrame, loss: pd.DataFrame, kept) -> list[Gate]:
    """Gates on one backbone's worst cell (seed means over the kept seeds): loss and accuracy."""
    a, lo = acc.loc[acc.index.isin(kept)].mean(), loss.loc[loss.index.isin(kept)].mean()
    worst_loss, worst_acc = lo.idxmax(), a.idxmin()
    return [
        gate(f"{name}: held-out loss at its worst cell {_cell(worst_loss)} (ln 10 = {CHANCE_LOSS:.3f})",
             lo[worst_loss], LEARNED_LOSS, above=False),
        above_chance(f"{name}: accuracy at its worst cell {_cell(worst_acc)}", a[worst_acc], CHANCE, LINE_ACC_MARGIN),
    ]  # fmt: skip


def _named(failed: dict) -> str:
    return "; ".join(f"seed {s} ({why})" for s, why in sorted(failed.items()))


def verdict_ssm_loss(table: pd.DataFrame) -> Verdict:
    """VL-Mamba: a state-space LM is competitive with a transformer. statistic: per seed, LOSS_PARITY minus
    the mean over the cells both backbones trained of (mamba - llama) held-out loss (> 0: the SSM within
    the parity margin); min_effect LOSS_PARITY, so "not reproduced" means the SSM is worse on the whole
    interval. Gates: `_line` for each backbone, and total parameters matched within PARAM_MATCH."""
    claim = (
        f"At equal parameters the state-space LM reaches the transformer's held-out loss (within {LOSS_PARITY} nats)"
    )
    loss = {b: _runs(table, b, "val_loss") for b in (SSM, ATTENTION)}
    acc = {b: _runs(table, b, "val_acc") for b in (SSM, ATTENTION)}
    cells = loss[SSM].columns.intersection(loss[ATTENTION].columns)
    seeds = loss[SSM].index.intersection(loss[ATTENTION].index)
    if not len(cells) or not len(seeds):
        return untestable(claim, VL_MAMBA, [gate("cells trained with both backbones, same seeds", 0, 0)])
    for b in (SSM, ATTENTION):
        loss[b], acc[b] = loss[b].loc[seeds, cells], acc[b].loc[seeds, cells]
    failed = {}
    for b in (SSM, ATTENTION):
        for s, why in _failed_runs(acc[b], loss[b], CHANCE, LINE_ACC_MARGIN).items():
            failed.setdefault(s, f"{b} {why}")
    kept = [s for s in seeds if s not in failed]
    gates = [g for b in (SSM, ATTENTION) for g in _line(b, acc[b], loss[b], kept)]
    n = table[table["scan"] == "none"].groupby("backbone")["n_params"].median() if "n_params" in table else None
    if n is not None and {SSM, ATTENTION} <= set(n.index):
        gates.append(gate("mamba / llama total parameters, distance from 1", abs(n[SSM] / n[ATTENTION] - 1),
                          PARAM_MATCH, above=False))  # fmt: skip
    gap = (loss[SSM] - loss[ATTENTION]).mean(axis=1)  # per seed, mean over cells: > 0 the SSM worse
    effect = paired_effect({s: LOSS_PARITY - g for s, g in gap.items()}, exclude=failed)
    mean = {b: loss[b].loc[kept].mean() if kept else loss[b].mean() for b in (SSM, ATTENTION)}
    evidence = (
        f"Held-out loss mamba vs llama per cell (T, M), mean over seeds {kept or list(seeds)}: "
        + "; ".join(f"{_cell(c)} {mean[SSM][c]:.3f} vs {mean[ATTENTION][c]:.3f}" for c in cells)
        + f"; mamba - llama per seed: {', '.join(f'{s}: {g:+.3f}' for s, g in gap.items())}"
        + f" (the statistic is {LOSS_PARITY} minus this, > 0: within parity)."
        + f" Best split: mamba {_cell(mean[SSM].idxmin())}, llama {_cell(mean[ATTENTION].idxmin())}."
        + (f" Failed: {_named(failed)}." if failed else "")
    )
    return judge(claim, VL_MAMBA, effect, min_effect=LOSS_PARITY, evidence=evidence, gates=gates,
                 failed_seeds=sorted(failed), n_total_seeds=len(seeds))  # fmt: skip


def verdict_crossover(
    costs: pd.DataFrame, metric: str = "seconds", *, n_bootstrap: int = 200, seed: int = 0, min_length: int = 0
) -> Verdict:
    """VL-Mamba: the SSM's cost grows more slowly with the sequence than attention's, so it crosses below it.
    metric: a cost column of `measure_costs` (COST_NAMES). statistic: alpha_llama - alpha_mamba of the fitted
    laws with the paired bootstrap interval (`exponent_gap`); min_effect MIN_EXPONENT_GAP. Gate: attention's
    exponent is superlinear (lower end of its band above SUPERLINEAR). The evidence names the crossover."""
    what = COST_NAMES[metric]
    claim = f"The state-space LM's {what} grows more slowly with visual tokens than attention's (a crossover exists)"
    exps = cost_exponents(costs, (metric,), n_bootstrap=n_bootstrap, seed=seed, min_length=min_length)
    e = exps.set_index("backbone")
    if not {SSM, ATTENTION} <= set(e.index):
        n = int(costs.loc[costs["length"] >= min_length, "length"].nunique())
        return untestable(claim, VL_MAMBA, [gate(f"lengths with {what} of both backbones", n, 1)])
    s, a = e.loc[SSM], e.loc[ATTENTION]
    g = exponent_gap(costs, SSM, ATTENTION, metric, n_bootstrap=n_bootstrap, seed=seed, min_length=min_length)
    effect = interval_effect(g["gap"], g["ci_low"], g["ci_high"], COST_RUNS,
                             f"bootstrap of the two laws over {len(costs)} steps, one measured run")  # fmt: skip
    gates = [gate(f"llama's {what} exponent, lower end of its band (attention superlinear)", a["ci_low"], SUPERLINEAR)]
    cross = crossover(costs, SSM, ATTENTION, metric, n_bootstrap=n_bootstrap, seed=seed, min_length=min_length)
    ratios = cost_ratios(costs[costs["length"] >= min_length], metric)
    where = (
        "never within the fitted laws"
        if not np.isfinite(cross["length"])
        else f"{cross['length']:,.0f} visual tokens [{cross['ci_low']:,.0f}, {cross['ci_high']:,.0f}]"
        + (" (inside the lengths measured)" if cross["measured"] else f" (extrapolated beyond {cross['lengths']})")
    )
    evidence = (
        f"{what.capitalize()} ~ length^alpha over {s['lengths']} visual tokens: mamba {s['alpha']:.2f} "
        f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}], llama {a['alpha']:.2f} [{a['ci_low']:.2f}, {a['ci_high']:.2f}]."
        f" Mamba's {what} is {ratios['mamba_vs_llama'].iloc[0]:.1f}x the Llama's at {ratios['length'].iloc[0]} "
        f"and {ratios['mamba_vs_llama'].iloc[-1]:.1f}x at {ratios['length'].iloc[-1]} tokens; it becomes cheaper at "
        + where
        + (f" ({cross['share_never']:.0%} of resamples never cross)." if cross["share_never"] > 0 else ".")
        + " A measurement of the implementations, not of training: no seed enters it."
    )
    return judge(claim, VL_MAMBA, effect, min_effect=MIN_EXPONENT_GAP, evidence=evidence, gates=gates,
                 min_seeds=COST_RUNS)  # fmt: skip


def _scan_cell(table: pd.DataFrame):
    scans = table[table["scan"] != "none"]
    return None if scans.empty else scans[["frames", "tokens_per_frame"]].drop_duplicates().iloc[0]


def verdict_scan(table: pd.DataFrame) -> Verdict:
    """VL-Mamba: the bidirectional scan (BSM) is at least as good as the cross scan (CSM). statistic: per
    seed, SCAN_PARITY minus the mean over backbones with both of (bidirectional - cross) spatial-task loss
    (> 0: BSM within parity); min_effect SCAN_PARITY. Gates: grid side >= MIN_SCAN_GRID, both scans above
    chance + SCAN_ACC_MARGIN on the spatial task. The evidence lists every order."""
    claim = "The bidirectional scan serves the spatial task at least as well as the four-way cross scan"
    value_col = "val_loss_spatial" if "val_loss_spatial" in table else "val_loss"
    acc_col = "val_acc_spatial" if "val_acc_spatial" in table else "val_acc"
    cell = _scan_cell(table)
    if cell is None:
        return untestable(claim, VL_MAMBA, [gate("scan-order cells trained", 0, 0)])
    at = table[(table["frames"] == cell["frames"]) & (table["tokens_per_frame"] == cell["tokens_per_frame"])]
    at = at[at["backbone"].isin(table.loc[table["scan"] != "none", "backbone"].unique())]
    loss = at.set_index(["seed", "backbone", "scan"])[value_col].unstack(["backbone", "scan"])
    acc = at.set_index(["seed", "backbone", "scan"])[acc_col].unstack(["backbone", "scan"])
    pairs = [b for b in loss.columns.get_level_values(0).unique() if {(b, "bidirectional"), (b, "cross")} <= set(loss)]
    side = math.isqrt(int(cell["tokens_per_frame"]))
    grid = gate(f"patches per side of the scanned grid ({side} x {side})", side, MIN_SCAN_GRID - 1)
    if not pairs:
        return untestable(claim, VL_MAMBA, [gate("backbones trained with both the bidirectional and cross scan", 0, 0)])
    cols = [(b, sc) for b in pairs for sc in ("bidirectional", "cross")]
    failed = {}
    for b, sc in cols:
        for s in loss.index[~np.isfinite(loss[(b, sc)].to_numpy(float))].tolist():
            failed.setdefault(s, f"{b} {sc} diverged, loss {loss.loc[s, (b, sc)]}")
        for s in failed_at_chance(acc[(b, sc)].dropna().to_dict(), CHANCE, SCAN_ACC_MARGIN):
            failed.setdefault(s, f"{b} {sc} at chance, spatial accuracy {acc.loc[s, (b, sc)]:.3f}")
    kept = [s for s in loss.index if s not in failed]
    mean_acc = acc.loc[kept, cols].mean()
    worst = mean_acc.idxmin()
    gates = [grid, above_chance(f"spatial accuracy of {worst[0]} {worst[1]}", mean_acc[worst], CHANCE, SCAN_ACC_MARGIN)]
    gap = pd.concat([loss[(b, "bidirectional")] - loss[(b, "cross")] for b in pairs], axis=1).mean(axis=1)
    effect = paired_effect({s: SCAN_PARITY - g for s, g in gap.items()}, exclude=failed)
    m, ma = loss.loc[kept].mean() if kept else loss.mean(), acc.loc[kept].mean() if kept else acc.mean()
    evidence = (
        f"Spatial-task loss (accuracy) at (T, M) = ({cell['frames']}, {cell['tokens_per_frame']}), mean over "
        f"seeds {kept or list(loss.index)}: "
        + "; ".join(f"{b} {sc} {m[(b, sc)]:.3f} ({ma[(b, sc)]:.2f})" for b, sc in loss.columns)
        + f". Bidirectional - cross per seed: {', '.join(f'{s}: {g:+.3f}' for s, g in gap.items())}"
        + f" (the statistic is {SCAN_PARITY} minus this)."
        + (f" Failed: {_named(failed)}." if failed else "")
    )
    return judge(claim, VL_MAMBA, effect, min_effect=SCAN_PARITY, evidence=evidence, gates=gates,
                 failed_seeds=sorted(failed), n_total_seeds=len(loss.index))  # fmt: skip


def verdict_moe_cost(costs: pd.DataFrame, table: pd.DataFrame, metric: str = "seconds") -> Verdict:
    """Kimi-VL: few active parameters make a large MoE cheap; a step's cost follows the active parameters.
    metric: a cost column of `measure_costs` (COST_NAMES). statistic: MOE_PARITY minus (the median over
    lengths and repeats of the MoE's cost per active parameter / the Llama's, minus 1), its interval the
    range of that ratio over lengths and repeats; min_effect MOE_PARITY ("not reproduced": the MoE costs
    more per active parameter at every length and repeat). Gate: active parameters matched within
    PARAM_MATCH. The evidence adds total parameters and the held-out loss of the two."""
    what = COST_NAMES[metric]
    claim = f"At matched active parameters a mixture-of-experts step costs no more {what} than the dense step"
    if not {MOE, ATTENTION} <= set(costs["backbone"]):
        return untestable(claim, KIMI_VL, [gate(f"backbones with {what} measured (moe and llama)", 0, 0)])
    per = costs.assign(per_active=costs[metric] / costs["n_active"])
    wide = per.pivot_table(index=["length", "repeat"], columns="backbone", values="per_active")
    ratio = wide[MOE] / wide[ATTENTION]
    n = costs.groupby("backbone")[["n_params", "n_active"]].first()
    matched = gate("moe / llama active parameters, distance from 1",
                   abs(n.loc[MOE, "n_active"] / n.loc[ATTENTION, "n_active"] - 1), PARAM_MATCH, above=False)  # fmt: skip
    med = float(ratio.median())
    effect = interval_effect(MOE_PARITY - (med - 1), MOE_PARITY - (ratio.max() - 1), MOE_PARITY - (ratio.min() - 1),
                             COST_RUNS, f"range over {len(ratio)} steps (lengths x repeats), one measured run")  # fmt: skip
    loss = ""
    moe, att = _runs(table, MOE, "val_loss"), _runs(table, ATTENTION, "val_loss")
    both = moe.columns.intersection(att.columns)
    if len(both):
        d = float((moe[both].mean() - att[both].mean()).mean())
        loss = f" Held-out loss moe - llama, mean over {len(both)} cells: {d:+.3f} (context, not judged)."
    by_len = ratio.groupby(level="length").median()
    evidence = (
        f"MoE {n.loc[MOE, 'n_params']:,} parameters ({n.loc[MOE, 'n_active']:,} active) vs Llama "
        f"{n.loc[ATTENTION, 'n_params']:,}: {what} per active parameter, MoE / Llama, "
        + ", ".join(f"{r:.2f} at {length}" for length, r in by_len.items())
        + f" (median {med:.2f}; the statistic is {MOE_PARITY} minus its excess over 1)."
        + (
            " Kimi-VL's claim is about compute per active parameter; activation memory adds the router and the"
            " tokens dispatched to each expert (benchmarks/bench_backbones.py times the steps)."
            if metric == "memory_mb"
            else ""
        )
        + loss
    )
    return judge(claim, KIMI_VL, effect, min_effect=MOE_PARITY, evidence=evidence, gates=[matched], min_seeds=COST_RUNS)
