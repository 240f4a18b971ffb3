"""Verdicts: does a small-scale run reproduce its paper's claim? One rule for every study, in code.

    effect = paired_effect({0: +0.12, 1: +0.09, 2: +0.15})          # per-seed, in the claimed direction
    gates = [above_chance("arms name the digit", acc, chance=0.1, margin=0.1),
             converged_gate(first_loss, final_loss)]
    v = judge("Frames beat tokens at equal budget", "Opt-Visor", effect, min_effect=0.05,
              gates=gates, evidence="...")
    save_verdicts([v, ...], "visual_context")    # figures/visual_context_verdicts.csv, printed too

The four outcomes (`judge`, the only place that decides one):
- `untestable`: a competence gate failed: the small model cannot do what the claim is about (it is at
  chance on the capability, a seed did not train, the metric does not respond to a positive control).
  Never read as a reproduction or a refutation. The evidence names the gate and its number.
- `inconclusive`: fewer than MIN_SEEDS usable seeds (after failed seeds are set aside), or an interval
  that is neither above 0 nor below `min_effect`. The evidence gives the interval and the smallest
  effect these seeds could have detected (`Effect.detectable`), so a reader sees a power problem.
- `reproduced`: the effect's 95 % interval lies above 0 (the claimed direction is positive).
- `not reproduced`: the interval lies below `min_effect`, the smallest effect that would matter for the
  claim (which includes an interval above 0 in the opposite direction).

A claim that is not a difference of arms (a fitted parameter against a published one, an optimum that
moves with a knob) states its statistic and interval as an `Effect` (`interval_effect`) and goes through
the same rule. Results true by construction of the generator are `kind="sanity"` rows: pipeline checks,
listed apart and never counted as findings.

Failed seeds (one policy, CONTRIBUTING.md): a seed whose training diverged (a NaN, or a final loss not
below FAILED_LOSS_SHARE of its first) or stayed at chance on the capability while the others did not is
named in `failed_seeds`, set aside from the statistic, and counted by the `seeds trained` gate: when more
than MAX_FAILED_SHARE of the seeds failed the claim is untestable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from studio.stats import LEVEL, t_interval

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, UNTESTABLE = "reproduced", "not reproduced", "inconclusive", "untestable"
OUTCOMES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, UNTESTABLE)
CLAIM, SANITY = "claim", "sanity"
KINDS = (CLAIM, SANITY)
MIN_SEEDS = 3  # fewer usable seeds: always inconclusive ("too few seeds")
# A seed "trained" when its final loss is below this share of its first (and finite): a model that kept
# more than 90 % of its starting loss learned next to nothing.
FAILED_LOSS_SHARE = 0.9
MAX_FAILED_SHARE = 1 / 3  # more failed seeds than this share: the claim is untestable
COLUMNS = (
    "claim",
    "paper",
    "kind",
    "outcome",
    "statistic",
    "ci_low",
    "ci_high",
    "min_effect",
    "n_seeds",
    "gates",
    "failed_seeds",
    "evidence",
)
KIND = "verdicts"  # the figures index kind of a verdict table


# ---------------------------------------------------------------------------------------------- gates
@dataclass(frozen=True)
class Gate:
    """A competence gate: `value` compared with `threshold` (`passed` when value > threshold, or < with
    `above=False`). NaN never passes."""

    name: str
    value: float
    threshold: float
    passed: bool
    above: bool = True

    def line(self) -> str:
        op = ">" if self.above else "<"
        return f"{self.name} = {_num(self.value)} (needs {op} {_num(self.threshold)})"


def gate(name: str, value, threshold, *, above: bool = True) -> Gate:
    value, threshold = float(value), float(threshold)
    ok = math.isfinite(value) and (value > threshold if above else value < threshold)
    return Gate(name, value, threshold, bool(ok), above)


def above_chance(name: str, accuracy, chance: float, margin: float) -> Gate:
    """The arms' accuracy on the capability the claim needs is above chance by `margin`."""
    return gate(f"{name} (chance {_num(chance)})", accuracy, chance + margin)


def converged_gate(name: str, first_loss, final_loss, share: float = FAILED_LOSS_SHARE) -> Gate:
    """Training converged: the worst final / first loss ratio over seeds is below `share` (NaN fails)."""
    first, final = np.asarray(first_loss, float), np.asarray(final_loss, float)
    ratio = float(np.max(final / first)) if first.size and np.all(np.isfinite(final / first)) else math.nan
    return gate(f"{name}: worst final / first loss", ratio, share, above=False)


def responds(name: str, effect: Effect) -> Gate:
    """A positive control: the metric moves (its interval excludes 0) when the data is changed on purpose.
    value: the lower end of the control's interval in the direction it must move; threshold 0."""
    return gate(f"{name} (positive control, lower end of its interval)", effect.ci_low, 0.0)


def seeds_gate(n_total: int, failed: Sequence) -> Gate:
    share = len(failed) / n_total if n_total else math.nan
    return gate("share of seeds that failed", share, MAX_FAILED_SHARE + 1e-12, above=False)


def failed_by_loss(first: Mapping, final: Mapping, share: float = FAILED_LOSS_SHARE) -> list:
    """Seeds whose final loss is NaN or not below `share` of their first."""
    out = []
    for seed, f0 in first.items():
        f1 = final.get(seed, math.nan)
        if not (math.isfinite(f0) and math.isfinite(f1) and f1 < share * f0):
            out.append(seed)
    return sorted(out)


def failed_against_blind(loss: Mapping, blind, accuracy: Mapping, chance: float, margin: float) -> list:
    """Failed seeds where the tables hold no first loss: the blind-guess loss (`blind`: one number, or one
    per seed) stands in for it in failed_by_loss, and failed_at_chance adds seeds at chance. When every
    seed is at the blind loss the task was not learned: a competence gate's finding, so only NaN seeds
    are named then (as failed_at_chance names none when all are at chance)."""
    first = dict(blind) if isinstance(blind, Mapping) else dict.fromkeys(loss, float(blind))
    by_loss = failed_by_loss(first, loss)
    if len(by_loss) == len(first):
        by_loss = [s for s in by_loss if not math.isfinite(loss[s])]
    return sorted(set(by_loss) | set(failed_at_chance(accuracy, chance, margin)))


def failed_at_chance(accuracy: Mapping, chance: float, margin: float) -> list:
    """Seeds at chance (accuracy <= chance + margin) while at least one other seed is above it."""
    low = [s for s, a in accuracy.items() if not a > chance + margin]
    return sorted(low) if len(low) < len(accuracy) else []


# --------------------------------------------------------------------------------------------- effects
@dataclass(frozen=True)
class Effect:
    """The statistic a verdict rests on, signed so that > 0 is the claimed direction.

    ci_low, ci_high: its 95 % interval; n_seeds: the independent runs behind it; detectable: the
    smallest effect these data could have told from 0 (the interval's half-width: an effect that size
    would put the lower end at 0); method: how the interval was made, for the evidence."""

    statistic: float
    ci_low: float
    ci_high: float
    n_seeds: int
    detectable: float = math.nan
    method: str = ""
    per_seed: dict = field(default_factory=dict)


def paired_effect(per_seed: Mapping, level: float = LEVEL, *, exclude: Iterable = ()) -> Effect:
    """Student's t interval over per-seed paired differences {seed: effect} (NaN seeds dropped), minus
    the seeds in `exclude` (failed seeds)."""
    drop = set(exclude)
    kept = {s: float(v) for s, v in per_seed.items() if s not in drop and math.isfinite(float(v))}
    mean, lo, hi = t_interval(list(kept.values()), level)
    return Effect(
        mean, lo, hi, len(kept), (hi - lo) / 2, f"t interval over {len(kept)} seed{'s' if len(kept) != 1 else ''}", kept
    )


def interval_effect(statistic, ci_low, ci_high, n_seeds: int, method: str) -> Effect:
    """An effect whose interval was computed elsewhere (a bootstrap over episodes, refits of a law)."""
    lo, hi = float(ci_low), float(ci_high)
    return Effect(float(statistic), lo, hi, int(n_seeds), (hi - lo) / 2, method)


# -------------------------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    claim: str
    paper: str
    outcome: str
    evidence: str
    statistic: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    min_effect: float = math.nan
    n_seeds: int = 0
    gates: tuple = ()
    failed_seeds: tuple = ()
    kind: str = CLAIM

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def line(self) -> str:
        tag = "SANITY " if self.kind == SANITY else ""
        return f"{tag}{self.outcome.upper()}: {self.claim} ({self.paper})\n    {self.evidence}"

    def row(self) -> dict:
        d = asdict(self)
        d["gates"] = json.dumps([asdict(g) for g in self.gates])
        d["failed_seeds"] = json.dumps(list(self.failed_seeds))
        return d


def judge(
    claim: str,
    paper: str,
    effect: Effect,
    *,
    min_effect: float,
    evidence: str,
    gates: Sequence[Gate] = (),
    failed_seeds: Sequence = (),
    n_total_seeds: int | None = None,
    min_seeds: int = MIN_SEEDS,
    kind: str = CLAIM,
) -> Verdict:
    """The one rule (module docstring). `min_effect` > 0 in the claim's units; `failed_seeds` were set
    aside from `effect` already (paired_effect's `exclude`) and are counted against `n_total_seeds`."""
    if not (isinstance(min_effect, (int, float)) and min_effect > 0):
        raise ValueError(f"{claim!r}: min_effect must be > 0 (the smallest effect that matters), got {min_effect!r}")
    gates = list(gates)
    failed = tuple(failed_seeds)
    if failed:
        gates.append(seeds_gate(n_total_seeds or effect.n_seeds + len(failed), failed))
    lo, hi = effect.ci_low, effect.ci_high
    failed_gates = [g for g in gates if not g.passed]
    if failed_gates:
        outcome = UNTESTABLE
        why = "untestable: " + "; ".join(g.line() for g in failed_gates)
    elif effect.n_seeds < min_seeds:
        outcome = INCONCLUSIVE
        why = f"inconclusive: too few seeds ({effect.n_seeds} usable, needs {min_seeds})"
    elif not (math.isfinite(lo) and math.isfinite(hi)):
        outcome = INCONCLUSIVE
        why = "inconclusive: no interval"
    elif lo > 0:
        outcome = REPRODUCED
        why = "reproduced: interval above 0" + (
            f" (but below min_effect {_num(min_effect)})" if hi < min_effect else ""
        )
    elif hi < min_effect:
        outcome = NOT_REPRODUCED
        why = f"not reproduced: interval below min_effect {_num(min_effect)}"
    else:
        outcome = INCONCLUSIVE
        why = (
            f"inconclusive: interval spans 0 and reaches min_effect {_num(min_effect)}; these seeds detect "
            f"effects of about {_num(effect.detectable)} or more"
        )
    stat = (
        f"effect {_num(effect.statistic, signed=True)} [{_num(lo, signed=True)}, {_num(hi, signed=True)}]"
        f" ({effect.method})"
    )
    named = f"; failed seeds set aside: {list(failed)}" if failed else ""
    return Verdict(
        claim,
        paper,
        outcome,
        f"{why}. {stat}{named}. {evidence}".strip(),
        float(effect.statistic),
        float(lo),
        float(hi),
        float(min_effect),
        int(effect.n_seeds),
        tuple(gates),
        failed,
        kind,
    )


def sanity(claim: str, paper: str, effect: Effect, *, min_effect: float, evidence: str, **kw) -> Verdict:
    """A result true by construction of the generator: judged by the same rule, listed as a pipeline check."""
    return judge(claim, paper, effect, min_effect=min_effect, evidence=evidence, kind=SANITY, **kw)


def untestable(
    claim: str, paper: str, gates: Sequence[Gate], evidence: str = "", kind: str = CLAIM, min_effect: float = math.nan
) -> Verdict:
    """A claim whose data are missing or whose gates failed before any effect could be computed."""
    empty = Effect(math.nan, math.nan, math.nan, 0, method="no effect computed")
    v = judge(claim, paper, empty, min_effect=1.0, evidence=evidence, gates=gates, kind=kind)
    return replace(v, min_effect=float(min_effect))


def tally(outcomes: Iterable[str]) -> str:
    """'N claims; R reproduced, X not reproduced, I inconclusive, U untestable'."""
    outcomes = list(outcomes)
    counts = {o: outcomes.count(o) for o in OUTCOMES}
    n = len(outcomes)
    return f"{n} claim{'s' if n != 1 else ''}; " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES)


def _num(x, signed: bool = False) -> str:
    x = float(x)
    if not math.isfinite(x):
        return "nan"
    text = f"{x:+.3g}" if signed else f"{x:.3g}"
    return text


def verdict_table(verdicts) -> pd.DataFrame:
    return pd.DataFrame([v.row() for v in verdicts], columns=list(COLUMNS))


def save_verdicts(verdicts, study: str, *, echo=print, out_dir=None) -> pd.DataFrame:
    """Print each verdict and save the table as `<study>_verdicts` next to the study's figures."""
    from studio.figures import save_table

    table = verdict_table(verdicts)
    for v in verdicts:
        echo(v.line())
    claims = [v.outcome for v in verdicts if v.kind == CLAIM]
    echo(f"{study}: {tally(claims)}")
    save_table(
        table,
        f"{study}_verdicts",
        caption=f"Verdicts of the {study} study: claim, paper, kind, outcome, statistic and interval, gates, evidence.",
        kind=KIND,
        out_dir=out_dir,
    )
    return table
