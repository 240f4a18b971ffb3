"""Cell-level grounding scores and retrieval recall@k (numpy only).

    grounding_scores(pred, true)     # per pair: precision, recall, f1, iou of the changed cells
    recall_at_k(scores, target, k)   # per query: 1 when the target ranks in the top k

Grounding: pred and true are (n, cells) 0/1 masks. A pair whose truth and prediction are both empty (no
change of the asked type, and none predicted) is a perfect answer: precision = recall = f1 = iou = 1;
one empty and the other not scores 0. IoU is the changed region's intersection over union, in cells.
"""

from __future__ import annotations

import numpy as np


def grounding_scores(pred, true) -> dict[str, np.ndarray]:
    """Per-row precision, recall, f1 and iou of 0/1 cell masks pred, true (n, cells)."""
    p, t = np.asarray(pred).astype(bool), np.asarray(true).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} masks differ in shape")
    tp = (p & t).sum(1).astype(float)
    n_p, n_t, union = p.sum(1).astype(float), t.sum(1).astype(float), (p | t).sum(1).astype(float)
    both_empty = (n_p == 0) & (n_t == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_p > 0, tp / n_p, 0.0)
        recall = np.where(n_t > 0, tp / n_t, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        iou = np.where(union > 0, tp / union, 0.0)
    out = {"precision": precision, "recall": recall, "f1": f1, "iou": iou}
    return {k: np.where(both_empty, 1.0, v) for k, v in out.items()}


def recall_at_k(scores, target, k: int) -> np.ndarray:
    """(n,) 0/1: whether the target's score ranks among the top k of its row (ties count against it).

    scores: (n, N) candidate scores per query; target: (n,) the right candidate's index. A gallery smaller
    than k is refused (recall@k would be 1 by construction)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"scores must be (queries, gallery), got shape {s.shape}")
    if k < 1 or k > s.shape[1]:
        raise ValueError(f"a gallery of {s.shape[1]} scenes is smaller than k={k}: recall@{k} needs k <= gallery")
    t = np.asarray(target, dtype=int)
    own = s[np.arange(len(s)), t]
    rank = (s >= own[:, None]).sum(1) - 1  # candidates scoring at least as high, other than the target
    return (rank < k).astype(float)
