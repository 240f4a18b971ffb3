"""The workload-optimum study's verdicts, with their thresholds and competence gates (studio.verdicts.judge
decides every outcome; studio.studies.workload_optimum makes the per-seed tables they read: seed_optima,
token_gains, shortcut_seeds, each with the seed's health columns seed_loss, seed_acc, blind_loss, chance).

Claims (Opt-Visor) and a pipeline check (Event-Bench's shortcut, true by construction):
- `verdict_needle`: T* grows as the needle gets shorter. Per seed, the measured T* of each budget line (the
  line's cell of lowest held-out loss for that seed) at the shortest and the longest learned needle, log2 of
  their ratio averaged over the lines: > 0 is the claimed direction. A T* at the end of its line is a bound
  (the loss still falls there: T* >= the line's most frames, or <= its fewest), and the verdict says so; its
  interval is then opened to the line's span on the side the bound leaves unknown.
- `verdict_size`: tokens per frame matter more for smaller digits. Per seed, the share of the loss that 16
  instead of 4 tokens per frame save at equal T (token_gains), smallest learned digit minus largest.
- `verdict_events` (sanity): one frame keeps less of the best counting accuracy as events get denser. A
  single frame cannot count flashes it does not see: the generator makes this so, whatever the model.

Gates, computed from the study's own cells: the compared workloads were learned (their best cell beats the
workload's chance by LEARNED_MARGIN); their best cells trained (held-out loss below FAILED_LOSS_SHARE of the
blind-guess loss, which stands in for the first loss these tables do not hold); and the cells with 16 tokens
per frame trained (the (4, 16) control against (4, 4): 16 tokens see a superset of the 4 tokens' input, so a
trained cell does not lose by them). Failed seeds (CONTRIBUTING.md): a seed whose best cell of a workload
has a NaN loss, or sits at the blind-guess loss or at chance while another seed of that workload does not,
is named and set aside; a workload at chance in every seed is not a failed seed but an unlearned workload.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from studio.verdicts import (
    MIN_SEEDS,  # noqa: F401  (re-exported: the study's seed floor is the core rule's)
    Effect,
    Verdict,
    converged_gate,
    failed_against_blind,
    gate,
    judge,
    paired_effect,
    sanity,
    untestable,
)

OPT_VISOR, EVENT_BENCH = "Opt-Visor", "Event-Bench"
MIN_VALUES = 2  # a trend needs at least this many learned knob values
CHANCE = 0.1  # accuracy of a guess among the 10 digit answers (retrieval, spatial, ordering)
LEARNED_MARGIN = 0.15  # a workload counts as learned when its best cell beats its chance by this much accuracy;
# an unlearned one (every cell near chance) has no optimum to speak of and is left out of laws and verdicts
# T* in log2 units: the lines step T by a factor 4; a factor 2 in frames is the smallest move of the optimum
# that would change how a budget is split (Opt-Visor gives no effect size)
MIN_TSTAR_LOG2 = 1.0
# the token gain is a share of the loss: two digit sizes whose gains differ by less than 5 % of the loss
# would split a budget the same way (Opt-Visor gives no effect size)
MIN_GAIN_DIFF = 0.05
# 16 tokens per frame see a superset of the 4 tokens' input (the same 8 x 8 grid pooled 2 x 2 instead of
# 4 x 4, no parameter added): a trained cell's loss with 16 is at most this share above its loss with 4 (about
# one cell's seed range at this recipe); more says the 16-token cells are undertrained, not that tokens hurt
M16_EXCESS = 0.10
# the shortcut is a share of the best accuracy above chance: a generator in which one frame could count
# dense events would lose less than a quarter of it between the sparsest and the densest workload
SHORTCUT_MIN_DROP = 0.25
CONTROL = (4, 4, 16)  # the token control: T = 4 with 4 and with 16 tokens per frame
HEALTH = ("seed_loss", "seed_acc", "blind_loss", "chance")  # per (value, seed) columns of the tables


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


def blind_loss(tasks: str, events: int = 0) -> float:
    """Cross-entropy of the blind guess (uniform over each question's answers, the task known) on an equal
    mix of `tasks`: what a model that learned nothing from the video scores (ln 10 on digit questions)."""
    names = str(tasks).split("+")
    return float(np.mean([-math.log(task_chance(t, int(events))) for t in names]))


# ---------------------------------------------------------------- shared pieces
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


def _values_gate(knob: str, n: int):
    return gate(f"learned {knob} values (best cell {LEARNED_MARGIN:g} above chance)", n, MIN_VALUES - 1)


def failed_seeds(rows: pd.DataFrame) -> tuple[list, list[str]]:
    """Seeds that failed in any workload of `rows` (columns value, seed and HEALTH), and one phrase each.

    Per workload: a NaN loss; a best loss not below FAILED_LOSS_SHARE of the blind-guess loss while another
    seed's is (studio.verdicts.failed_by_loss, the blind-guess loss standing in for the first loss); a best
    accuracy within LEARNED_MARGIN of chance while another seed's is above (failed_at_chance). A workload
    where every seed is at the blind loss or at chance was not learned: its gate says so, no seed is named."""
    failed, why = set(), []
    health = rows.drop_duplicates(["value", "seed"])
    for value, g in health.groupby("value"):
        first = dict(zip(g["seed"], g["blind_loss"]))
        final = dict(zip(g["seed"], g["seed_loss"]))
        accuracy = dict(zip(g["seed"], g["seed_acc"]))
        for s in failed_against_blind(final, first, accuracy, float(g["chance"].iloc[0]), LEARNED_MARGIN):
            r = g[g["seed"] == s].iloc[0]
            why.append(
                f"seed {s} at {value:g} (best loss {r.seed_loss:.3g} = {r.seed_loss / r.blind_loss:.2f} of the "
                f"blind-guess {r.blind_loss:.3g}, best accuracy {r.seed_acc:.2f}, chance {r.chance:.2f})"
            )
            failed.add(s)
    return sorted(failed), why


def _failed_text(why: list[str]) -> str:
    return ("Failed seeds: " + "; ".join(why) + ". ") if why else ""


def _trained_gate(name: str, rows: pd.DataFrame, loss: str):
    """The cells' held-out loss against the blind-guess loss (it stands in for the first loss), worst row."""
    return converged_gate(f"{name} (blind-guess loss as the first)", rows["blind_loss"], rows[loss])


def _seeds(rows: pd.DataFrame) -> int:
    return int(rows["seed"].nunique())


def _control_gate(gains: pd.DataFrame | None, values) -> tuple[list, str]:
    """The 16-token cells trained: at each of `values` with the (4, 4) / (4, 16) pair, L(4, 16) / L(4, 4) - 1
    (seed means) at most M16_EXCESS. ([gate] or [] without the pair, and a sentence.)"""
    if gains is None or gains.empty:
        return [], "No (4, 4) / (4, 16) control cells in this profile: the 16-token cells' training is unchecked. "
    part = gains[gains["value"].isin(list(values))]
    if part.empty:
        return [], "No (4, 4) / (4, 16) control cells at these workloads: the 16-token cells' training is unchecked. "
    excess = part.groupby("value").apply(
        lambda g: g["loss_high"].mean() / g["loss_low"].mean() - 1, include_groups=False
    )
    worst = excess.idxmax()
    text = (
        "Control, 16 vs 4 tokens per frame at T = 4 (a superset of the input, so a trained cell does not lose by "
        "it): the loss changes by " + ", ".join(f"{e:+.1%} at digit_size {v:g}" for v, e in excess.items()) + ". "
    )
    name = f"16-token cells trained: L(4, 16) / L(4, 4) - 1 at digit_size {worst:g}"
    return [gate(name, excess[worst], M16_EXCESS, above=False)], text


# ---------------------------------------------------------------- T* against the needle
def _edge_note(rows: pd.DataFrame, label: str) -> list[str]:
    out = []
    for (b, edge), g in rows[rows["edge"] != ""].groupby(["budget", "edge"]):
        sign = ">=" if edge == "most frames" else "<="
        out.append(
            f"{label} at T*M={b:g}: the best cell is the line's {edge} in seed(s) "
            f"{', '.join(map(str, sorted(g['seed'])))} (T* {sign} {g['frames'].iloc[0]:g}, a bound)"
        )
    return out


def _fitted_text(optima: pd.DataFrame | None, values) -> str:
    """The laws' T* for the two values (context): 'T* [band]' with ' (bound)' at the grid's edge."""
    if optima is None or optima.empty:
        return ""
    parts = []
    for v in values:
        o = optima[optima["value"] == v].sort_values("budget")
        for r in o.itertuples():
            sign = getattr(r, "bound", "")  # fit_optima: ">=" / "<=" at the end of the line, "" inside
            bound = f" (a bound: T* {sign} {r.frames_opt:.2g})" if isinstance(sign, str) and sign else ""
            parts.append(
                f"{v:g} at T*M={r.budget:g} ({r.law}): {r.frames_opt:.2g} [{r.frames_ci_low:.2g}, "
                f"{r.frames_ci_high:.2g}]{bound}"
            )
    return (
        (
            "Fitted T* per workload (context, not judged; each workload's law family chosen on its own cells): "
            + "; ".join(parts)
            + ". "
        )
        if parts
        else ""
    )


def verdict_needle(
    seed_opt: pd.DataFrame, optima: pd.DataFrame | None = None, gains: pd.DataFrame | None = None
) -> Verdict:
    """T* grows as the needle gets shorter (Opt-Visor). seed_opt: seed_optima of the needle series; optima:
    the fitted T* (context in the evidence); gains: token_gains of the size series, whose centre workload
    (8-pixel digits) holds the 16-token control for the cells on these lines."""
    claim = "The optimal number of frames T* grows as the needle gets shorter"
    seed_opt, note = _learned_only(seed_opt, "needle_frames")
    values = sorted(seed_opt["value"].unique())
    if len(values) < MIN_VALUES:
        return untestable(claim, OPT_VISOR, [_values_gate("needle_frames", len(values))], note)
    short, long_ = values[0], values[-1]
    pair = seed_opt[seed_opt["value"].isin([short, long_])]
    budgets = sorted(set(pair.loc[pair["value"] == short, "budget"]) & set(pair.loc[pair["value"] == long_, "budget"]))
    pair = pair[pair["budget"].isin(budgets)]
    failed, why = failed_seeds(pair)
    kept = pair[~pair["seed"].isin(failed)]
    s_rows, l_rows = kept[kept["value"] == short], kept[kept["value"] == long_]
    a = s_rows.set_index(["seed", "budget"])["frames"]
    b = l_rows.set_index(["seed", "budget"])["frames"]
    both = a.index.intersection(b.index)
    per_seed = np.log2(a.loc[both] / b.loc[both]).groupby(level="seed").mean()
    effect = paired_effect(per_seed.to_dict())
    lower = (s_rows["edge"] == "most frames").any() or (l_rows["edge"] == "fewest frames").any()
    upper = (s_rows["edge"] == "fewest frames").any() or (l_rows["edge"] == "most frames").any()
    bound = ""
    if lower or upper:  # the measured T* is a bound there: open the interval to the line's span on that side
        span = float(
            np.mean([np.log2(r.frames_max / r.frames_min) for r in kept.drop_duplicates("budget").itertuples()])
        )
        lo = min(effect.ci_low, -span) if upper else effect.ci_low
        hi = max(effect.ci_high, span) if lower else effect.ci_high
        kind = (
            "a lower bound"
            if lower and not upper
            else ("an upper bound" if upper and not lower else "unknown on both sides")
        )
        method = effect.method + f", opened to the lines' span {span:g} on the side the bound leaves unknown"
        effect = Effect(effect.statistic, lo, hi, effect.n_seeds, effect.detectable, method, effect.per_seed)
        bound = (
            f"This verdict rests on a bound: the effect is {kind} ("
            + "; ".join(_edge_note(s_rows, f"needle {short:g}") + _edge_note(l_rows, f"needle {long_:g}"))
            + "). "
        )
    control, control_text = _control_gate(gains, [8])
    gates = [
        _values_gate("needle_frames", len(values)),
        _trained_gate(f"best cells at needle_frames {short:g} and {long_:g}", kept, "val_loss"),
        *control,
    ]

    def per_line(rows):
        return "; ".join(
            f"T*M={bud:g}: " + ", ".join(f"{t:g}" for t in g.sort_values("seed")["frames"])
            for bud, g in rows.groupby("budget")
        )

    evidence = (
        note
        + f"Measured T* (each seed's best cell on the line, seeds {', '.join(map(str, sorted(kept['seed'].unique())))}): "
        f"needle {short:g}: {per_line(s_rows)}; needle {long_:g}: {per_line(l_rows)}; per seed log2(T* {short:g} / "
        f"T* {long_:g}) averaged over the lines: "
        + ", ".join(f"{v:+.2f}" for v in per_seed)
        + ". "
        + bound
        + control_text
        + _failed_text(why)
        + _fitted_text(optima, [short, long_])
    )
    return judge(
        claim,
        OPT_VISOR,
        effect,
        min_effect=MIN_TSTAR_LOG2,
        gates=gates,
        evidence=evidence.strip(),
        failed_seeds=failed,
        n_total_seeds=_seeds(pair),
    )


# ---------------------------------------------------------------- what more tokens per frame buy
def verdict_size(gains: pd.DataFrame, optima: pd.DataFrame | None = None) -> Verdict:
    """Tokens matter more as objects get smaller (Opt-Visor): per seed, the token gain (token_gains: share of
    the loss saved by 16 instead of 4 tokens per frame at equal T) of the smallest learned digit minus that of
    the largest; gated on the 16-token cells having trained at both (M16_EXCESS). optima: the fitted T* of
    the size series (context: fewer frames at the optimum = more of the budget to tokens)."""
    claim = "Tokens per frame matter more as objects get smaller (more tokens per frame save more of the loss)"
    gains, note = _learned_only(gains, "digit_size")
    values = sorted(gains["value"].unique())
    if len(values) < MIN_VALUES:
        return untestable(claim, OPT_VISOR, [_values_gate("digit_size", len(values))], note)
    small, large = values[0], values[-1]
    pair = gains[gains["value"].isin([small, large])]
    failed, why = failed_seeds(pair)
    kept = pair[~pair["seed"].isin(failed)]
    g = kept.pivot_table(index="seed", columns="value", values="gain")
    per_seed = (g[small] - g[large]).dropna() if {small, large} <= set(g.columns) else pd.Series(dtype=float)
    effect = paired_effect(per_seed.to_dict())
    control, control_text = _control_gate(kept, [small, large])
    cells = pd.concat([kept.assign(loss=kept["loss_low"]), kept.assign(loss=kept["loss_high"])])
    gates = [
        _values_gate("digit_size", len(values)),
        _trained_gate(f"(4, 4) and (4, 16) cells at digit_size {small:g} and {large:g}", cells, "loss"),
        *control,
    ]
    summary = kept.groupby("value")["gain"].agg(["mean", "min", "max"])
    evidence = (
        note
        + f"16 instead of 4 tokens per frame (T = {kept['frames'].iloc[0]}) save "
        + ", ".join(
            f"{r['mean']:+.1%} [{r['min']:+.1%}, {r['max']:+.1%}] of the loss at digit_size {v:g}"
            for v, r in summary.iterrows()
        )
        + f" (seed mean [range]); per seed, digit_size {small:g} minus {large:g}: "
        + ", ".join(f"{v:+.1%}" for v in per_seed)
        + ". "
        + control_text
        + _failed_text(why)
        + _fitted_text(optima, [small, large])
    )
    return judge(
        claim,
        OPT_VISOR,
        effect,
        min_effect=MIN_GAIN_DIFF,
        gates=gates,
        evidence=evidence.strip(),
        failed_seeds=failed,
        n_total_seeds=_seeds(pair),
    )


# ---------------------------------------------------------------- Event-Bench's few-frame shortcut
def verdict_events(short: pd.DataFrame) -> Verdict:
    """Event-Bench's few-frame shortcut, as a pipeline check (`sanity`): one frame keeps less of the best
    counting accuracy above chance at the densest learned workload than at the sparsest. A single frame
    sees at most one of the flashes it must count, so the generator makes this true whatever the model;
    it checks that the counting videos and the T = 1 cells do what they are built to. short: shortcut_seeds
    of the events series; per seed, sparsest shortcut minus densest (> 0: the expected direction)."""
    claim = "Denser events remove the few-frame shortcut (one frame keeps less of the best accuracy)"
    short, note = _learned_only(short, "events")
    values = sorted(short["value"].unique())
    if len(values) < MIN_VALUES:
        return untestable(claim, EVENT_BENCH, [_values_gate("events", len(values))], note, kind="sanity")
    sparse, dense = values[0], values[-1]
    pair = short[short["value"].isin([sparse, dense])]
    failed, why = failed_seeds(pair)
    kept = pair[~pair["seed"].isin(failed)]
    g = kept.pivot_table(index="seed", columns="value", values="shortcut")
    per_seed = (g[sparse] - g[dense]).dropna() if {sparse, dense} <= set(g.columns) else pd.Series(dtype=float)
    effect = paired_effect(per_seed.to_dict())
    gates = [
        _values_gate("events", len(values)),
        _trained_gate(f"best cells at {sparse:g} and {dense:g} events", kept, "seed_loss"),
    ]
    s = kept.groupby("value").agg(
        shortcut=("shortcut", "mean"), t1=("acc_t1", "mean"), best=("acc_best", "mean"), T=("best_frames", "first")
    )
    evidence = (
        note
        + "By construction: one frame sees at most one of the flashes it must count. One frame keeps "
        + ", ".join(f"{r.shortcut:.0%} (T=1 acc {r.t1:.2f}, best {r.best:.2f} at T={r.T:g})" for r in s.itertuples())
        + f" of the best accuracy above chance at {', '.join(f'{v:g}' for v in s.index)} events; per seed, "
        f"{sparse:g} minus {dense:g} events: " + ", ".join(f"{v:+.2f}" for v in per_seed) + ". " + _failed_text(why)
    )
    return sanity(
        claim,
        EVENT_BENCH,
        effect,
        min_effect=SHORTCUT_MIN_DROP,
        gates=gates,
        evidence=evidence.strip(),
        failed_seeds=failed,
        n_total_seeds=_seeds(pair),
    )
