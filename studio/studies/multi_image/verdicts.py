"""The multi-image study's verdicts, with their thresholds (studio.studies.multi_image makes the tables
they read: `run_difference` rows, one per (arm, task, seed, change); `run_retrieval` hits, one per
(retriever, gallery, seed, round, query)).

A verdict holds when the claimed difference has the claimed sign; it is a tie when the difference of seed
means is inside the larger seed range of the two sides, or with fewer than MIN_SEEDS seeds; the retrieval
comparisons are also ties when a paired bootstrap over queries puts zero inside its interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.stats import percentile_interval
from studio.verdicts import Verdict, verdict

ONEDIFF, DIFFGROUND, CHATSEARCH = (
    "OneDiff (arXiv 2407.05645)",
    "DiffTracker (arXiv 2504.01952)",
    "ChatSearch (arXiv 2410.18715)",
)
MIN_SEEDS = 2  # fewer seeds: no spread to compare a difference with, so never resolved
GENERATIVE_NO_IMAGES = "generative, no images"  # the control's label in the hits table


def _compare(a: pd.Series, b: pd.Series) -> tuple[float, float, bool]:
    """(mean(a) - mean(b), the larger seed range of the two, tie) for per-seed values a and b."""
    diff = float(a.mean() - b.mean())
    spread = float(max(a.max() - a.min(), b.max() - b.min()))
    tie = min(a.notna().sum(), b.notna().sum()) < MIN_SEEDS or abs(diff) <= spread
    return diff, spread, tie


def _cell(rows: pd.DataFrame, arm: str, task: str, metric: str, change: str = "all") -> pd.Series:
    sel = (rows["arm"] == arm) & (rows["task"] == task) & (rows["change"] == change)
    return rows.loc[sel].set_index("seed")[metric]


def verdict_delta(rows: pd.DataFrame) -> Verdict:
    """The delta module beats concatenation on grounding F1 at equal visual tokens (multi-task models)."""
    claim = "A delta module (difference enhancement + common suppression) grounds differences better than concatenated image tokens at equal tokens"
    d, c = _cell(rows, "delta", "multi", "f1"), _cell(rows, "concat", "multi", "f1")
    diff, spread, tie = _compare(d, c)
    iou = (
        _cell(rows, "delta", "multi", "iou").mean() - _cell(rows, "concat", "multi", "iou").mean()
        if "iou" in rows
        else np.nan
    )
    ev = f"grounding F1 delta {d.mean():.3f} vs concat {c.mean():.3f} ({len(d)} seeds, 18 visual tokens each): {diff:+.3f} against a seed spread of {spread:.3f}{' (a tie)' if tie else ''}; IoU {iou:+.3f}"
    return verdict(claim, f"{ONEDIFF}; {DIFFGROUND}", diff > 0, ev, tie=tie, value=diff, spread=spread)


def verdict_multitask(rows: pd.DataFrame) -> Verdict:
    """Multi-task training beats single-task: caption word accuracy against caption-only models and grounding
    F1 against grounding-only models, averaged over the two heads and the arms trained both ways."""
    claim = "Multi-task training (caption + grounding) beats training each task alone"
    arms = sorted(set(rows.loc[rows["task"] != "multi", "arm"]))
    if not arms:
        return verdict(claim, ONEDIFF, False, "no single-task models were trained: not resolved.", tie=True)
    diffs, spreads, ties, parts = [], [], [], []
    for arm in arms:
        for metric, task in (("caption_words", "caption"), ("f1", "ground")):
            diff, spread, tie = _compare(_cell(rows, arm, "multi", metric), _cell(rows, arm, task, metric))
            diffs.append(diff)
            spreads.append(spread)
            ties.append(tie)
            parts.append(f"{arm} {metric} {diff:+.3f} (spread {spread:.3f})")
    value, spread = float(np.mean(diffs)), float(max(spreads))
    tie = abs(value) <= spread or any(np.isnan(spreads))
    ev = (
        "multi minus single: "
        + "; ".join(parts)
        + f"; mean {value:+.3f} against the largest seed spread {spread:.3f}{' (a tie)' if tie else ''}"
    )
    return verdict(claim, ONEDIFF, value > 0, ev, tie=tie, value=value, spread=spread)


def _recall_seeds(hits: pd.DataFrame, retriever: str, gallery: int, rnd: int, k: int) -> pd.Series:
    sel = (hits["retriever"] == retriever) & (hits["gallery"] == gallery) & (hits["round"] == rnd)
    return hits.loc[sel].groupby("seed")[f"recall_at_{k}"].mean()


def verdict_rounds(hits: pd.DataFrame, k: int = 5) -> Verdict:
    """Recall@k rises with rounds: last round minus first, for both retrievers, on the largest gallery."""
    claim = f"Retrieval improves as the dialogue adds rounds (recall@{k}, last round vs first)"
    n, last = int(hits["gallery"].max()), int(hits["round"].max())
    parts, diffs, spreads = [], [], []
    for ret in ("dual", "generative"):
        diff, spread, _ = _compare(_recall_seeds(hits, ret, n, last, k), _recall_seeds(hits, ret, n, 1, k))
        diffs.append(diff)
        spreads.append(spread)
        parts.append(f"{ret} {diff:+.3f}")
    value, spread = float(np.mean(diffs)), float(max(spreads))
    tie = hits["seed"].nunique() < MIN_SEEDS or abs(value) <= spread
    ev = (
        f"gallery {n}, round {last} minus round 1: "
        + ", ".join(parts)
        + f"; mean {value:+.3f} against a seed spread of {spread:.3f}{' (a tie)' if tie else ''}"
    )
    return verdict(claim, CHATSEARCH, value > 0, ev, tie=tie, value=value, spread=spread)


def query_interval(
    hits: pd.DataFrame, a: str, b: str, k: int, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Paired percentile bootstrap over queries of recall@k(a) - recall@k(b) after the last round on the
    largest gallery (hits averaged over seeds per query): how far the difference moves with other queries."""
    n, last = int(hits["gallery"].max()), int(hits["round"].max())
    sel = hits[(hits["gallery"] == n) & (hits["round"] == last)]
    per = sel.groupby(["retriever", "query"])[f"recall_at_{k}"].mean()
    d = (per.loc[a] - per.loc[b]).to_numpy()
    boot = d[np.random.default_rng(seed).integers(len(d), size=(n_bootstrap, len(d)))].mean(1)
    lo, hi = percentile_interval(boot)
    return float(lo), float(hi)


def _versus(hits, a: str, b: str, claim: str, k: int = 1) -> Verdict:
    """a beats b on recall@k after the last round, largest gallery: a tie when the difference of seed means
    is inside the larger seed range or the paired query-bootstrap interval of the difference holds 0."""
    n, last = int(hits["gallery"].max()), int(hits["round"].max())
    x, y = _recall_seeds(hits, a, n, last, k), _recall_seeds(hits, b, n, last, k)
    diff, spread, tie = _compare(x, y)
    lo, hi = query_interval(hits, a, b, k)
    tie = tie or lo <= 0 <= hi
    ev = (
        f"recall@{k} after {last} rounds, gallery {n}: {a} {x.mean():.3f} vs {b} {y.mean():.3f}, {diff:+.3f} against "
        f"a seed spread of {spread:.3f} (query bootstrap interval {lo:+.3f}..{hi:+.3f}){' (a tie)' if tie else ''}"
    )
    return verdict(claim, CHATSEARCH, diff > 0, ev, tie=tie, value=diff, spread=spread)


def verdict_generative(hits: pd.DataFrame) -> Verdict:
    return _versus(
        hits, "generative", "dual", "The generative retriever (interleaved LM) beats a contrastive dual encoder"
    )


def verdict_images(hits: pd.DataFrame) -> Verdict:
    return _versus(
        hits,
        "generative",
        GENERATIVE_NO_IMAGES,
        "Images in the dialogue context help the generative retriever (control: reference images blanked)",
    )


def verdicts(rows: pd.DataFrame, hits: pd.DataFrame) -> list[Verdict]:
    return [
        verdict_delta(rows),
        verdict_multitask(rows),
        verdict_rounds(hits),
        verdict_generative(hits),
        verdict_images(hits),
    ]
