"""How far apart are two sets of embeddings? The modality gap and its friends, as plain functions.

Every metric takes arrays of shape (n, d) (numpy, or anything `np.asarray` reads, torch CPU tensors
included) and returns a float (`cosine_structure` and `probe_separability` return a dict of floats),
so they work on any embeddings: the tiny captioning model's, a Hugging Face VLM's, CLIP's.
`studio.analysis.gap_bootstrap` wraps any of them for a confidence interval (`bootstrap`) and runs them
layer by layer (`layer_profile`, `layer_similarity`); `studio.gap` offers both modules' names.

Formulas (see shared/reference/papers.md):
- gap vector = mean(normalize(visual)) - mean(normalize(text)); the modality gap is its norm
  (Liang et al. 2022: 0.82 for CLIP on 5,000 MSCOCO pairs);
- embedding shift: x' = normalize(x - lam * g_unit), y' = normalize(y + lam * g_unit);
- cone effect: mean pairwise cosine within one modality, self pairs excluded;
- linear CKA (Kornblith et al. 2019), columns centred: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F);
- mutual kNN (Huh et al. 2024): mean_i |N_X^k(i) & N_Y^k(i)| / k, neighbours by inner product of
  normalised rows, self excluded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "normalize",
    "gap_vector",
    "modality_gap",
    "embedding_shift",
    "matched_cosine",
    "cosine_structure",
    "cone_effect",
    "linear_cka",
    "mutual_knn",
    "probe_separability",
    "probe_accuracy",
    "probe_auc",
]


def _as2d(x, name: str = "array") -> np.ndarray:
    """(n, d) float64 array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _paired(x, y, names=("visual", "text")) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as2d(x, names[0]), _as2d(y, names[1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must be paired row by row: {x.shape[0]} != {y.shape[0]} rows")
    return x, y


def _duplicate_sensitive(fn):
    """Mark a metric that duplicated rows would bias (neighbours, held-out folds): `bootstrap`
    half-samples for it instead of resampling with replacement."""
    fn.duplicate_sensitive = True
    return fn


def normalize(x) -> np.ndarray:
    """Rows scaled to unit L2 norm. (n, d) -> (n, d); zero rows stay zero."""
    x = _as2d(x)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


# --- the modality gap (Liang et al. 2022) -------------------------------------------------------------


def gap_vector(visual, text) -> np.ndarray:
    """Centroid of the L2-normalised visual rows minus that of the text rows. (n, d), (m, d) -> (d,).

    The two sets need not be paired (n may differ from m), but must share the dimension d.
    """
    v, t = _as2d(visual, "visual"), _as2d(text, "text")
    if v.shape[1] != t.shape[1]:
        raise ValueError(f"visual and text must share the dimension: {v.shape[1]} != {t.shape[1]}")
    return normalize(v).mean(0) - normalize(t).mean(0)


def modality_gap(visual, text) -> float:
    """The norm of `gap_vector`: 0 for identical sets, at most 2 (Liang et al.: 0.82 for CLIP)."""
    return float(np.linalg.norm(gap_vector(visual, text)))


def embedding_shift(visual, text, lambdas: Sequence[float] = (0.0, 0.125, 0.25, 0.375)) -> pd.DataFrame:
    """Liang et al.'s shift experiment: move both modalities towards each other along the gap.

    x' = normalize(x - lam * g_unit), y' = normalize(y + lam * g_unit) with g_unit the unit gap vector
    (computed once, on the unshifted data). Returns one row per lambda: `lam`, `distance` (the norm
    of the difference of the shifted centroids, i.e. the gap after the shift), `matched_cosine` (mean
    cosine of row-paired visual/text, NaN when the sets are not paired) and `visual_cone`,
    `text_cone` (mean within-modality pairwise cosine after the shift).
    """
    v, t = normalize(visual), normalize(text)
    g = gap_vector(v, t)
    norm = np.linalg.norm(g)
    g_unit = g / norm if norm > 0 else g
    rows = []
    for lam in lambdas:
        vs, ts = normalize(v - lam * g_unit), normalize(t + lam * g_unit)
        rows.append(
            {
                "lam": float(lam),
                "distance": modality_gap(vs, ts),
                "matched_cosine": float(np.mean(np.sum(vs * ts, 1))) if len(vs) == len(ts) else float("nan"),
                "visual_cone": cone_effect(vs),
                "text_cone": cone_effect(ts),
            }
        )
    return pd.DataFrame(rows)


# --- cosine structure ---------------------------------------------------------------------------------


def matched_cosine(visual, text) -> float:
    """Mean cosine similarity of row-paired (visual[i], text[i]). (n, d), (n, d) -> float."""
    v, t = _paired(visual, text)
    return float(np.mean(np.sum(normalize(v) * normalize(t), 1)))


def cone_effect(x) -> float:
    """Mean pairwise cosine within one set, self pairs excluded (the cone effect). (n, d) -> float.

    Liang et al.: 0.47-0.56 for trained CLIP encoders, 0.99 for a random ResNet.
    """
    z = normalize(x)
    n = len(z)
    if n < 2:
        raise ValueError("the cone effect needs at least 2 rows")
    s = z.sum(0)
    # sum over all ordered pairs i != j of z_i . z_j = |sum z|^2 - sum |z_i|^2, without an n x n matrix
    return float((s @ s - np.sum(z * z)) / (n * (n - 1)))


def cosine_structure(visual, text) -> dict[str, float]:
    """Matched vs unmatched pair similarities and the cone of each modality. (n, d), (n, d) -> dict.

    Keys: `matched` (mean cos(v_i, t_i)), `unmatched` (mean cos(v_i, t_j), i != j), `margin`
    (matched - unmatched), `visual_cone`, `text_cone` (mean pairwise cosine within each modality)
    and `gap` (the modality gap).
    """
    v, t = _paired(visual, text)
    zv, zt = normalize(v), normalize(t)
    n = len(zv)
    if n < 2:
        raise ValueError("cosine_structure needs at least 2 pairs")
    diag = np.sum(zv * zt, 1)
    total = zv.sum(0) @ zt.sum(0)  # sum over all (i, j) of cos(v_i, t_j)
    matched = float(diag.mean())
    unmatched = float((total - diag.sum()) / (n * (n - 1)))
    return {
        "matched": matched,
        "unmatched": unmatched,
        "margin": matched - unmatched,
        "visual_cone": cone_effect(zv),
        "text_cone": cone_effect(zt),
        "gap": modality_gap(zv, zt),
    }


# --- representational similarity ----------------------------------------------------------------------


@_duplicate_sensitive
def linear_cka(X, Y, *, debiased: bool = False) -> float:
    """Linear CKA of row-paired representations (Kornblith et al. 2019). (n, d1), (n, d2) -> [0, 1].

    debiased=False (the default, and what every figure of the workbench uses): the biased plug-in
    HSIC estimator: columns are centred and CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), with no
    small-sample correction. It is biased upwards at small n: two independent Gaussian sets of 50
    points in 100 dimensions give about 0.4, and more so with duplicated rows (`bootstrap` half-samples
    it for that reason).
    debiased=True: the unbiased HSIC estimator of Song et al. (2012) in place of the plug-in one
    (Kornblith et al.'s "debiased CKA"; needs n >= 4): near 0 on independent data, and may be slightly
    negative there. Both are invariant to orthogonal transforms and isotropic scaling of either side,
    1 for X vs X @ Q. Computed through the n x n Gram matrices when n < d (same value, less work).
    """
    x, y = _paired(X, Y, ("X", "Y"))
    x, y = x - x.mean(0), y - y.mean(0)
    if debiased:
        return _debiased_cka(x @ x.T, y @ y.T)
    if x.shape[0] < max(x.shape[1], y.shape[1]):
        kx, ky = x @ x.T, y @ y.T
        num, dx, dy = np.sum(kx * ky), np.linalg.norm(kx), np.linalg.norm(ky)
    else:
        num, dx, dy = np.linalg.norm(y.T @ x) ** 2, np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if dx == 0 or dy == 0:
        raise ValueError("linear_cka: one representation is constant (no variance after centring)")
    return float(num / (dx * dy))


def _unbiased_hsic(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC of two n x n Gram matrices (their diagonals are ignored)."""
    n = k.shape[0]
    k, m = k.copy(), m.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(m, 0.0)
    ones_k, ones_m = k.sum(0), m.sum(0)
    value = np.sum(k * m) + ones_k.sum() * ones_m.sum() / ((n - 1) * (n - 2)) - 2.0 * ones_k @ ones_m / (n - 2)
    return float(value / (n * (n - 3)))


def _debiased_cka(kx: np.ndarray, ky: np.ndarray) -> float:
    if kx.shape[0] < 4:
        raise ValueError("linear_cka(debiased=True) needs at least 4 paired rows")
    dx, dy = _unbiased_hsic(kx, kx), _unbiased_hsic(ky, ky)
    if dx <= 0 or dy <= 0:
        raise ValueError("linear_cka: one representation is constant (no variance after centring)")
    return _unbiased_hsic(kx, ky) / float(np.sqrt(dx * dy))


def _knn(z: np.ndarray, k: int) -> np.ndarray:
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)  # self excluded
    # argsort of -sim, stable, so that ties resolve by index the same way in both spaces
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


@_duplicate_sensitive
def mutual_knn(X, Y, k: int = 10) -> float:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024). (n, d1), (n, d2) -> [0, 1].

    Neighbours by inner product of L2-normalised rows, self excluded; the score is the mean over rows
    of |N_X(i) & N_Y(i)| / k. 1 when both spaces rank neighbours alike; about k/(n-1) by chance.
    Duplicated rows would be each other's neighbours in both spaces: `bootstrap` half-samples it.
    """
    x, y = _paired(X, Y, ("X", "Y"))
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"mutual_knn needs 1 <= k < n, got k={k}, n={n}")
    nx, ny = _knn(normalize(x), k), _knn(normalize(y), k)
    overlap = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(nx, ny)]
    return float(np.mean(overlap) / k)


# --- linear-probe separability ------------------------------------------------------------------------


@_duplicate_sensitive
def probe_separability(
    A, B, seed: int = 0, *, folds: int = 5, C: float = 1.0, paired: bool = False
) -> dict[str, float]:
    """How well a logistic-regression probe tells rows of A from rows of B, on held-out rows.

    (n, d), (m, d) -> dict with `accuracy`, `auc` (both from out-of-fold predictions of a stratified
    `folds`-fold cross-validation, so every row is scored by a probe that never saw it), `balanced`
    (class-balanced accuracy) and `n`. Features are standardised inside each fold. 0.5 = inseparable,
    1 = linearly separable. Used for visual vs text tokens and for faithful vs hallucinated captions.

    paired=True (n == m): A[i] and B[i] are twins (a caption and its one-word hallucination) and go
    to the same fold. Otherwise a held-out caption's twin sits in the training folds with the
    opposite label, and near-duplicates with opposite labels push accuracy below chance.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = _as2d(A, "A"), _as2d(B, "B")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A and B must share the dimension: {a.shape[1]} != {b.shape[1]}")
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    folds = min(folds, len(a), len(b))
    if folds < 2:
        raise ValueError("probe_separability needs at least 2 rows in each of A and B")
    if paired and len(a) != len(b):
        raise ValueError(f"paired=True needs as many rows in A as in B: {len(a)} != {len(b)}")
    groups = np.r_[np.arange(len(a)), np.arange(len(b))] if paired else None
    splitter = (StratifiedGroupKFold if paired else StratifiedKFold)(folds, shuffle=True, random_state=seed)
    score = np.empty(len(y))
    for train, test in splitter.split(x, y, groups):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        probe.fit(x[train], y[train])
        score[test] = probe.decision_function(x[test])
    pred = (score > 0).astype(int)
    return {
        "accuracy": float((pred == y).mean()),
        "auc": float(roc_auc_score(y, score)),
        "balanced": float(balanced_accuracy_score(y, pred)),
        "n": int(len(y)),
    }


@_duplicate_sensitive
def probe_accuracy(A, B, seed: int = 0) -> float:
    """`probe_separability(A, B, seed)["accuracy"]`, as a float metric for `bootstrap`/`layer_profile`."""
    return probe_separability(A, B, seed)["accuracy"]


@_duplicate_sensitive
def probe_auc(A, B, seed: int = 0) -> float:
    """`probe_separability(A, B, seed)["auc"]`, as a float metric for `bootstrap`/`layer_profile`."""
    return probe_separability(A, B, seed)["auc"]


# --- confidence intervals and layer profiles ----------------------------------------------------------
