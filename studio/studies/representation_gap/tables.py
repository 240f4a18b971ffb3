"""The tables behind the representation-gap notebook's figures, selected from the study's long table
(one row per arm, seed, space, layer, pool, metric: studio.studies.representation_gap.run_ablation)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.analysis import gap


def last_layer(df: pd.DataFrame) -> int:
    return int(df.loc[df["space"] == "hidden", "layer"].max())


def _select(df: pd.DataFrame, space: str, layer: int, pool: str, metric: str) -> pd.DataFrame:
    return df[(df.space == space) & (df.layer == layer) & (df.pool == pool) & (df.metric == metric)]


def arm_numbers(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One seed's last-layer EOS metrics per arm (rows arm, columns metric), plus fh_pairwise_heads
    (NaN for arms without heads): the numbers printed under the projection panels."""
    last = df[(df.space == "hidden") & (df.layer == last_layer(df)) & (df.pool == "eos") & (df.seed == seed)]
    table = last.pivot(index="arm", columns="metric", values="value")
    heads = df[(df.space == "head") & (df.seed == seed) & (df.metric == "fh_pairwise")].set_index("arm")["value"]
    table["fh_pairwise_heads"] = heads.reindex(table.index)
    return table


def seed_spread(df: pd.DataFrame) -> dict[str, float]:
    """Per metric, the largest range over seeds of any (arm, space, layer, pool) value: how far a rerun
    can move that metric with nothing changed (what `studio figures --check` tolerates)."""
    ranges = df.groupby(["arm", "space", "layer", "pool", "metric"])["value"].agg(lambda v: v.max() - v.min())
    return {str(m): float(v) for m, v in ranges.groupby(level="metric").max().items() if np.isfinite(v)}


def by_metric(spread: dict[str, float], *columns: str) -> dict:
    """A studio.tolerance entry for each of `columns` of a long table: the row's metric's seed spread."""
    return {c: {"by": "metric", "spread": spread} for c in columns}


def layer_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, pool, metric, layer): mean, min and max over seeds of gap, vt_probe and fh_pairwise."""
    hidden = df[df.space == "hidden"]
    return (
        hidden[hidden.metric.isin(["gap", "vt_probe", "fh_pairwise"])]
        .groupby(["arm", "pool", "metric", "layer"])["value"]
        .agg(["mean", "min", "max"])
        .reset_index()
    )


def shift_table(models: dict, data: dict, arms, seed: int, steps: int = 5) -> pd.DataFrame:
    """`gap.embedding_shift` on each arm's last-layer EOS states (model (arm, seed)), in steps of an
    eighth of its own gap (both sides move, so four steps close it). Columns as embedding_shift's
    plus arm and step."""
    parts = []
    for arm in arms:
        rep = models[(arm, seed)].representations(*data["val"][:2])
        v, t = rep["visual_eos"][:, -1], rep["text_eos"][:, -1]
        g0 = gap.modality_gap(v, t)
        s = gap.embedding_shift(v, t, lambdas=[g0 * k / 8 for k in range(steps)])
        s["arm"], s["step"] = arm, range(steps)
        parts.append(s)
    return pd.concat(parts, ignore_index=True)


def hallucination_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(caption rows: val_caption_acc, gen_exact, chair; last-layer EOS fh_pairwise per hallucination
    type, with a `type` column)."""
    out_rows = df[df.metric.isin(["val_caption_acc", "gen_exact", "chair"])]
    last = df[(df.space == "hidden") & (df.layer == last_layer(df)) & (df.pool == "eos")]
    by_type = last[last.metric.str.startswith("fh_pairwise_")].copy()
    by_type["type"] = by_type["metric"].str.removeprefix("fh_pairwise_")
    return out_rows, by_type


def projection_inputs(models: dict, data: dict, *, layer: int = -1, pool: str = "eos", n: int = 200):
    """Arrays and labels for ONE `studio.analysis.projection.project` call showing every arm at once.

    Each arm's representations are placed in its own block of coordinates (block-diagonal: rows of
    different arms are orthogonal), so one UMAP fit lays out each arm's points as its own island,
    exactly as separate fits would, while the notebook pays for a single fit. Returns
    (arrays_by_group {"visual", "text"}, labels {group: {"arm": ..., "caption": ...}}).
    """
    feats, ids, hall = (x[:n] for x in data["val"])
    keys = list(models)
    blocks = {"visual": [], "text": []}
    labels = {"visual": {"arm": [], "caption": []}, "text": {"arm": [], "caption": []}}
    reps = []
    for key in keys:
        m = models[key]
        r, rh = m.representations(feats, ids), m.representations(feats, hall)
        reps.append((key, r[f"visual_{pool}"][:, layer], r[f"text_{pool}"][:, layer], rh[f"text_{pool}"][:, layer]))
    width = sum(v.shape[1] for _, v, _, _ in reps)
    offset = 0
    for key, v, t, h in reps:
        d = v.shape[1]
        arm = key[0] if isinstance(key, tuple) else key

        def place(x, offset=offset, d=d):
            z = np.zeros((len(x), width), np.float32)
            z[:, offset : offset + d] = x
            return z

        blocks["visual"].append(place(v))
        blocks["text"] += [place(t), place(h)]
        labels["visual"]["arm"] += [arm] * len(v)
        labels["visual"]["caption"] += [None] * len(v)
        labels["text"]["arm"] += [arm] * (len(t) + len(h))
        labels["text"]["caption"] += ["faithful"] * len(t) + ["hallucinated"] * len(h)
        offset += d
    arrays = {g: np.concatenate(b) for g, b in blocks.items()}
    return arrays, labels
