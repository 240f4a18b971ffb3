"""Verdicts: does a small-scale run reproduce its paper's claim? Computed in code, published as a table.

    v = [verdict("Frames beat tokens at equal budget", "Opt-Visor", holds=wins > losses, tie=not resolved,
                 evidence=f"frames won {wins} of {n} pairs", value=wins / n, spread=seed_range)]
    save_verdicts(v, "visual_context")     # figures/visual_context_verdicts.csv, printed too

Each row: claim, paper, verdict (one of VERDICTS), value (the number the verdict rests on), spread
(the seed spread it was compared with, NaN where none applies), evidence (one line). A difference
inside the seed spread is a tie, never "reproduced". The README's Findings section is written from
these tables (studio.workbench.readme), and `studio figures --check` compares them by their verdicts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

REPRODUCED, NOT_REPRODUCED, TIE = "reproduced", "not reproduced", "tie"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, TIE)
COLUMNS = ("claim", "paper", "verdict", "value", "spread", "evidence")
KIND = "verdicts"  # the figures index kind of a verdict table


@dataclass(frozen=True)
class Verdict:
    claim: str
    paper: str
    verdict: str
    evidence: str
    value: float = math.nan
    spread: float = math.nan

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def line(self) -> str:
        return f"{self.verdict.upper()}: {self.claim} ({self.paper})\n    {self.evidence}"


def verdict(
    claim: str,
    paper: str,
    holds: bool,
    evidence: str,
    *,
    tie: bool = False,
    value: float | None = None,
    spread: float | None = None,
) -> Verdict:
    """A Verdict: a tie when `tie` (the difference is inside the seed spread), else by `holds`."""
    outcome = TIE if tie else (REPRODUCED if bool(holds) else NOT_REPRODUCED)
    return Verdict(
        claim,
        paper,
        outcome,
        evidence,
        math.nan if value is None else float(value),
        math.nan if spread is None else float(spread),
    )


def verdict_table(verdicts) -> pd.DataFrame:
    return pd.DataFrame([asdict(v) for v in verdicts], columns=list(COLUMNS))


def save_verdicts(verdicts, study: str, *, echo=print, out_dir=None) -> pd.DataFrame:
    """Print each verdict and save the table as `<study>_verdicts` next to the study's figures."""
    from studio.figures import save_table

    table = verdict_table(verdicts)
    for v in verdicts:
        echo(v.line())
    save_table(
        table,
        f"{study}_verdicts",
        caption=f"Verdicts of the {study} study: claim, paper, outcome, evidence.",
        kind=KIND,
        out_dir=out_dir,
    )
    return table
