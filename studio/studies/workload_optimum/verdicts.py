"""The workload-optimum study's verdicts, with their thresholds (studio.studies.workload_optimum makes
the tables they read: optima_table, token_pairs, shortcut; each has a `learned` column)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.verdicts import Verdict, verdict

OPT_VISOR, EVENT_BENCH = "Opt-Visor", "Event-Bench"
MIN_VALUES = 2  # a trend needs at least this many knob values
MIN_SEEDS = 2  # fewer seeds: no spread to compare a difference with, so never resolved
CHANCE = 0.1  # accuracy of a guess among the 10 digit answers (retrieval, spatial, ordering)
LEARNED_MARGIN = 0.15  # a workload counts as learned when its best cell beats its chance by this much accuracy;
# an unlearned one (every cell near chance) has no optimum to speak of and is left out of laws and verdicts


def task_chance(task: str, events: int = 0, max_count: int = 3) -> float:
    """Accuracy of the best blind guess at one question of studio.data.video: a digit 1/10; a count
    uniform in 0..events (with `events`) or 1..max_count; a motion 1/4."""
    if task == "counting":
        return 1 / (events + 1) if events else 1 / max_count
    return 0.25 if task == "motion" else CHANCE


def workload_chance(tasks: str, events: int = 0) -> float:
    """Chance accuracy of a workload's equal mix of `tasks` ("retrieval+spatial", as results_table writes it)."""
    names = str(tasks).split("+")
    return float(np.mean([task_chance(t, int(events)) for t in names]))


def _few(claim: str, paper: str, what: str, note: str = "") -> Verdict:
    return verdict(claim, paper, False, f"{note}{what}: not resolved at this scale.", tie=True)


def _learned_only(table: pd.DataFrame, knob: str) -> tuple[pd.DataFrame, str]:
    """The rows of learned workloads, and a sentence naming the knob values left out (empty if none)."""
    keep = table["learned"].astype(bool)
    out = sorted(table.loc[~keep, "value"].unique())
    note = (
        f"Not learned at this scale (no cell {LEARNED_MARGIN:.2f} accuracy above chance), left out: {knob} = "
        + ", ".join(f"{v:g}" for v in out)
        + ". "
    )
    return table[keep], (note if out else "")


def _extremes(optima: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    values = sorted(optima["value"].unique())
    by = optima.set_index(["value", "budget"])
    return by.loc[values[0]], by.loc[values[-1]]


def verdict_needle(optima: pd.DataFrame) -> Verdict:
    """T* grows as the needle gets shorter: T* of the shortest needle above that of the longest.

    value: mean over budgets of log2(T* shortest / T* longest); spread: the widest half-band (log2) of
    the two. Holds when value > 0; a tie when the bands overlap at every budget (or fewer values)."""
    claim = "The optimal number of frames T* grows as the needle gets shorter"
    return _trend(optima, claim, OPT_VISOR, sign=-1, what="needle_frames")


def _ends(table: pd.DataFrame):
    """(first row, last row, first - last seed mean, the larger seed range of the two, tie) of a table
    sorted by knob value: a difference inside that range, or with fewer than MIN_SEEDS seeds, is a tie."""
    first, last = table.iloc[0], table.iloc[-1]
    diff = float(first["mean"] - last["mean"])
    spread = float(max(first["max"] - first["min"], last["max"] - last["min"]))
    return first, last, diff, spread, min(first.n_seeds, last.n_seeds) < MIN_SEEDS or abs(diff) <= spread


def verdict_size(pairs: pd.DataFrame, optima: pd.DataFrame) -> Verdict:
    """Tokens matter more as objects get smaller: the measured token gain (token_pairs: share of the loss
    saved by 16 instead of 4 tokens per frame at equal T) of the smallest digit above that of the largest.
    value: the difference; spread: the larger seed range of the two; a tie inside it (or < MIN_SEEDS).
    The evidence adds the laws' T* for the two sizes (fewer frames at the optimum = more to tokens)."""
    claim = "Tokens per frame matter more as objects get smaller (more tokens per frame save more of the loss)"
    pairs, note = _learned_only(pairs, "digit_size")
    if len(pairs) < MIN_VALUES:
        return _few(claim, OPT_VISOR, f"{len(pairs)} learned object sizes measured with 4 and 16 tokens", note)
    p = pairs.sort_values("value")
    small, large, diff, spread, tie = _ends(p)
    tstar = _trend(optima, claim, OPT_VISOR, sign=+1, what="digit_size")
    evidence = note + (
        f"16 instead of 4 tokens per frame (T = {small.frames}) save "
        + ", ".join(f"{r.mean:.1%} of the loss at digit_size {r.value:g}" for r in p.itertuples())
        + f"; difference smallest - largest {diff:+.1%} against a seed spread of {spread:.1%}"
        + (" (a tie)" if tie else "")
        + f". The optimum's split: {tstar.evidence.replace(note, '')}"
    )
    return verdict(claim, OPT_VISOR, diff > 0, evidence, tie=tie, value=diff, spread=spread)


def _trend(optima: pd.DataFrame, claim: str, paper: str, sign: int, what: str) -> Verdict:
    """T* at the largest knob value against the smallest, per budget; `sign` +1: the claim expects T* to
    grow with the knob, -1: to shrink. value: mean over budgets of sign * log2(T* largest / T* smallest);
    spread: the widest log2 half-band of the two."""
    optima, note = _learned_only(optima, what)
    values = sorted(optima["value"].unique())
    if len(values) < MIN_VALUES:
        return _few(claim, paper, f"{len(values)} learned {what} values", note)
    lo, hi = _extremes(optima)
    b = lo.index.intersection(hi.index)
    lo, hi = lo.loc[b], hi.loc[b]
    value = float((sign * np.log2(hi["frames_opt"] / lo["frames_opt"])).mean())
    disjoint = (hi["frames_ci_low"] > lo["frames_ci_high"]) | (lo["frames_ci_low"] > hi["frames_ci_high"])
    half = np.concatenate([np.log2(t["frames_ci_high"] / t["frames_ci_low"]).to_numpy() / 2 for t in (lo, hi)])
    spread = float(np.nanmax(half)) if np.isfinite(half).any() else None
    evidence = note + (
        f"T* at {what} {values[0]:g} vs {values[-1]:g}: "
        + "; ".join(
            f"T*M={k:g}: {lo.loc[k, 'frames_opt']:.2g} [{lo.loc[k, 'frames_ci_low']:.2g}, "
            f"{lo.loc[k, 'frames_ci_high']:.2g}] vs {hi.loc[k, 'frames_opt']:.2g} "
            f"[{hi.loc[k, 'frames_ci_low']:.2g}, {hi.loc[k, 'frames_ci_high']:.2g}]"
            for k in b
        )
        + (
            f" (bands disjoint at {int(disjoint.sum())} of {len(b)} budgets)"
            if disjoint.any()
            else " (bands overlap at every budget, or there are none: a tie)"
        )
    )
    return verdict(claim, paper, value > 0, evidence, tie=not disjoint.any(), value=value, spread=spread)


def verdict_events(short: pd.DataFrame) -> Verdict:
    """Event-Bench: event-dense videos defeat the few-frame shortcut. The shortcut of the densest
    workload below that of the sparsest; a tie inside the larger seed range of the two (or < MIN_SEEDS).
    value: sparsest shortcut - densest shortcut (> 0 supports the claim); spread: that seed range."""
    claim = "Denser events remove the few-frame shortcut (one frame keeps less of the best accuracy)"
    short, note = _learned_only(short, "events")
    if len(short) < MIN_VALUES:
        return _few(claim, EVENT_BENCH, f"{len(short)} learned event densities", note)
    s = short.sort_values("value")
    sparse, dense, drop, spread, tie = _ends(s)
    evidence = note + (
        "One frame keeps "
        + ", ".join(
            f"{r.mean:.0%} (T=1 acc {r.acc_t1:.2f}, best {r.acc_best:.2f} at T={r.best_frames})" for r in s.itertuples()
        )
        + f" of the best accuracy above chance at {', '.join(f'{v:g}' for v in s['value'])} events; "
        f"drop {drop:+.2f} against a seed spread of {spread:.2f}" + (": a tie." if tie else ".")
    )
    return verdict(claim, EVENT_BENCH, drop > 0, evidence, tie=tie, value=drop, spread=spread)
