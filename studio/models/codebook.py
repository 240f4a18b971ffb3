"""A codebook of visual words over the frozen frame features, learned once by k-means and cached.

    book = codebook(bank, CodebookConfig(codes=64))   # studio.cache entry keyed by config + bank + code
    book.words        # (codes, C) float32 centroids: coarse_fine's discrete tokens (MaVEn's visual words)
    book.threshold    # salience above which a patch counts as content (native_resolution's allocation)

k-means (k-means++ start, Lloyd iterations, numpy, seeded) runs on `patches` patch features drawn from
the training bank only. The content threshold is the `content_quantile` quantile of patch salience
(distance from the frame's median patch, studio.models.strategies.salience) over the same draw: with
8-pixel digits covering 4-9 of 64 cells, the top tenth of patches is mostly digits and distractors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from studio.cache import cached, code_fingerprint, load_checked
from studio.config import from_dict


@dataclass(frozen=True)
class CodebookConfig:
    codes: int = 64  # visual words
    patches: int = 20000  # patch features k-means runs on (from the training bank)
    iterations: int = 25
    content_quantile: float = 0.9  # salience quantile above which a patch is content
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> CodebookConfig:
        return from_dict(cls, d)


@dataclass(frozen=True)
class Codebook:
    words: np.ndarray  # (codes, C) float32
    threshold: float
    info: dict


def _salience(x: np.ndarray) -> np.ndarray:
    """(..., P, C) -> (..., P), as studio.models.strategies.salience (numpy)."""
    return np.linalg.norm(x - np.median(x, axis=-2, keepdims=True), axis=-1)


def kmeans(x: np.ndarray, k: int, iterations: int, seed: int) -> tuple[np.ndarray, float]:
    """(n, C) points -> ((k, C) centroids, mean squared distance to the nearest one)."""
    rng = np.random.default_rng(seed)
    cent = [x[rng.integers(len(x))]]
    d2 = ((x - cent[0]) ** 2).sum(1)
    for _ in range(1, k):  # k-means++
        cent.append(x[rng.choice(len(x), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((x - cent[-1]) ** 2).sum(1))
    cent = np.stack(cent)
    for _ in range(iterations):
        dist = (x**2).sum(1)[:, None] - 2 * x @ cent.T + (cent**2).sum(1)[None]
        near = dist.argmin(1)
        for j in range(k):
            members = x[near == j]
            if len(members):
                cent[j] = members.mean(0)
    dist = (x**2).sum(1)[:, None] - 2 * x @ cent.T + (cent**2).sum(1)[None]
    return cent.astype(np.float32), float(dist.min(1).mean())


def _build(folder: Path, features: np.ndarray, cfg: CodebookConfig) -> None:
    N, F, P, C = features.shape
    rng = np.random.default_rng(cfg.seed)
    frames_needed = max(1, cfg.patches // P)
    vid, fr = rng.integers(N, size=frames_needed), rng.integers(F, size=frames_needed)
    order = np.argsort(vid, kind="stable")  # sorted reads are faster on the memmap
    frames = np.asarray(features[vid[order], fr[order]], np.float32)  # (n, P, C)
    sal = _salience(frames)
    words, inertia = kmeans(frames.reshape(-1, C), cfg.codes, cfg.iterations, cfg.seed)
    np.save(folder / "words.npy", words)
    info = {"threshold": float(np.quantile(sal, cfg.content_quantile)), "inertia": inertia, "frames": len(frames)}
    (folder / "info.json").write_text(json.dumps(info, indent=1) + "\n")


def _load(folder: Path) -> Codebook:
    info = json.loads((folder / "info.json").read_text())
    return Codebook(np.load(folder / "words.npy"), float(info["threshold"]), info)


def codebook(features: np.ndarray, cfg: CodebookConfig, bank_key: dict, *, log=print) -> Codebook:
    """The codebook of a training bank `features` (N, F, P, C), cached under `bank_key` (what made the bank)."""
    folder = cached(
        "codebook",
        {"codebook": asdict(cfg), "bank": bank_key},
        lambda tmp: _build(tmp, features, cfg),
        code=code_fingerprint(__name__),
        log=log,
    )
    return load_checked(folder, _load)
