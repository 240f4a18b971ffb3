"""Data sets a scaling law is fitted to: Chinchilla (validation), a user's CSV, or a synthetic example.

load_chinchilla()                      Epoch AI's 240 digitised points of Hoffmann et al.'s Figure 4
load_measurements(path)                a user's CSV, checked, one strategy at a time
measurements_or_example(path)          what the scaling notebook fits (ours, a user's, or synthetic)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from studio.analysis.scaling.inputs import prepare
from studio.analysis.scaling.laws import get_law

# The synthetic example used when no measurements exist yet (documented in synthetic_measurements).
SYNTHETIC_TRUTH = {"law": "additive", "params": {"E": 0.35, "A": 1.6, "alpha": 0.8, "B": 0.9, "beta": 0.45}}


def load_chinchilla(path=None, drop_highest: int = 5) -> pd.DataFrame:
    """Epoch AI's 245 points digitised from Hoffmann et al.'s Figure 4: columns N (parameters),
    D (tokens = Training FLOP / (6 N)), C (FLOP), loss. Drops the `drop_highest` highest-loss points
    the way Epoch did (keep loss < sorted(loss)[-drop_highest]), leaving 240."""
    from studio import paths

    path = paths.CHINCHILLA_CSV if path is None else path
    raw = pd.read_csv(path)
    df = pd.DataFrame(
        {
            "N": raw["Model Size"].astype(float),
            "C": raw["Training FLOP"].astype(float),
            "loss": raw["loss"].astype(float),
        }
    )
    df.insert(1, "D", df["C"] / (6.0 * df["N"]))
    if drop_highest > 0:
        df = df[df["loss"] < np.sort(df["loss"].to_numpy())[-drop_highest]]
    return df.reset_index(drop=True)


def synthetic_measurements(
    seed: int = 0,
    frames=(1, 2, 4, 8, 16, 32),
    tokens_per_frame=(1, 4, 16, 64, 196),
    seeds: int = 3,
    noise: float = 0.02,
    truth: Mapping | None = None,
) -> pd.DataFrame:
    """A documented stand-in for a visual-context sweep, used until real measurements exist.

    loss = E + A / frames^alpha + B / tokens_per_frame^beta with SYNTHETIC_TRUTH's parameters (frames
    matter more than tokens, as Opt-Visor found), times multiplicative log-normal noise of sd `noise`,
    one row per (frames, tokens_per_frame, seed). Not a measurement of anything.
    """
    truth = dict(truth or SYNTHETIC_TRUTH)
    law = get_law(truth["law"])
    rng = np.random.default_rng(seed)
    rows = [(t, m, s) for s in range(seeds) for t in frames for m in tokens_per_frame]
    df = pd.DataFrame(rows, columns=["frames", "tokens_per_frame", "seed"])
    clean = law(df["frames"].to_numpy(float), df["tokens_per_frame"].to_numpy(float), **truth["params"])
    df["loss"] = clean * np.exp(noise * rng.standard_normal(len(df)))
    df["source"] = "synthetic"
    return df


def resolve_y(df: pd.DataFrame, y: str | None = "val_loss") -> str:
    """The loss column: `y` when present; 'val_loss' and 'loss' stand in for each other (our sweep
    writes val_loss, the synthetic example and many users' files write loss); None = either."""
    if y is not None and y in df.columns:
        return y
    if y in (None, "val_loss", "loss"):
        for c in ("val_loss", "loss"):
            if c in df.columns:
                return c
    raise ValueError(f"loss column {y!r} not found (nor 'val_loss'/'loss'); the data has columns {list(df.columns)}")


def load_measurements(
    path, x=("frames", "tokens_per_frame"), y: str | None = "val_loss", where: Mapping | None = None
) -> tuple[pd.DataFrame, str, list[str]]:
    """Read a user's CSV of measurements and check it: returns (table, y column, notes).

    Keeps rows matching `where` ({column: value}); for any other column named like '*strategy*' with
    several values, keeps its most common value (a law is fitted to one strategy at a time) and says
    so in `notes`. Any problem (unreadable file, missing or non-numeric column, NaN, non-positive
    value) raises one ValueError that names the file.
    """
    from studio import paths

    p = paths.input_path(path)
    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises several types for malformed files
        raise ValueError(f"{p}: cannot read it as CSV ({e})") from e
    notes = []
    try:
        for col, val in (where or {}).items():
            if col not in df.columns:
                raise ValueError(f"filter column {col!r} not found; the data has columns {list(df.columns)}")
            df = df[df[col] == val]
        for col in [c for c in df.columns if "strategy" in c.lower() and c not in (where or {})]:
            values = df[col].value_counts()
            if len(values) > 1:
                keep = values.index[0]
                notes.append(
                    f"column {col!r} has {len(values)} values {list(values.index)}; fitting "
                    f"{col} == {keep!r} only (choose with `where`)"
                )
                df = df[df[col] == keep]
        y = resolve_y(df, y)
        prepare(df, x, y)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    if df.empty:
        raise ValueError(f"{p}: no rows left after filtering")
    return df.reset_index(drop=True), y, notes


def measurements_or_example(
    path: str | None = None,
    x=("frames", "tokens_per_frame"),
    y: str | None = "val_loss",
    where: Mapping | None = None,
    seed: int = 0,
):
    """What the scaling notebook fits: (table, y column, notes, source).

    path given: that CSV (checked by load_measurements). None: the results table the visual-context
    notebook publishes (figures/visual_context_results.csv) when it exists, else the synthetic
    example of synthetic_measurements(seed), with a note saying so.
    """
    from studio import paths

    if path is None:
        published = paths.FIGURES / "visual_context_results.csv"
        if published.is_file():
            path = published
        else:
            df = synthetic_measurements(seed=seed)
            law = get_law(SYNTHETIC_TRUTH["law"])
            truth = ", ".join(f"{k}={v:g}" for k, v in SYNTHETIC_TRUTH["params"].items())
            note = (
                f"NOTE: no measurements yet ({paths.relative(published)} does not exist): fitting the "
                f"SYNTHETIC example from studio.scaling.synthetic_measurements ({law.formula} with {truth}, "
                "2% log-normal noise, 3 seeds). It shows the method, not a finding."
            )
            return df, resolve_y(df, y), [note], "synthetic example"
    df, yc, notes = load_measurements(path, x, y, where)
    return df, yc, notes, paths.relative(path)
