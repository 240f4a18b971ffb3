"""The tiny ICL model's answer vocabulary and its image classes: 10 digits x 8 rotations/flips.

Answers share one vocabulary:

    words:   one fixed word per class ("three", and "three/r90", ... for the rotated/flipped classes)
    symbols: meaningless tokens "#00".."#49", re-drawn per episode (only solvable in context)

Classes are the 10 digits under the 8 rotations/flips of the square (up to 80 classes), so that the
number of classes can vary as in Chan et al. (2022); the main probes use the 10 upright digits.
"""

from __future__ import annotations

import numpy as np

from studio.data.digits import DIGIT_WORDS, split_digits

WORDS = DIGIT_WORDS
TRANSFORMS = ("", "/r90", "/r180", "/r270", "/f", "/fr90", "/fr180", "/fr270")  # dihedral group of the square
MAX_CLASSES = len(WORDS) * len(TRANSFORMS)
N_SYMBOLS = 50
IMAGE_PIXELS = 64


class Vocab:
    """Token ids: words 0..79 (class c = transform * 10 + digit), then symbols 80..129."""

    def __init__(self, n_symbols: int = N_SYMBOLS):
        self.words = [w + t for t in TRANSFORMS for w in WORDS]
        self.symbols = [f"#{i:02d}" for i in range(n_symbols)]
        self.tokens = self.words + self.symbols
        self.index = {s: i for i, s in enumerate(self.tokens)}
        self.n_words, self.n_symbols, self.size = len(self.words), n_symbols, len(self.tokens)
        # How other modules may spell the upright digit classes.
        for d, w in enumerate(WORDS):
            for alias in (str(d), w.capitalize(), w.upper()):
                self.index.setdefault(alias, d)

    def word(self, cls: int) -> int:
        return int(cls)

    def symbol(self, k: int) -> int:
        return self.n_words + int(k)


VOCAB = Vocab()


def transform_images(images: np.ndarray, t: int) -> np.ndarray:
    """(n, 8, 8) -> (n, 8, 8) under dihedral element t (0..7): rotate t % 4 quarter turns, flip if t >= 4."""
    out = images[:, :, ::-1] if t >= 4 else images
    return np.ascontiguousarray(np.rot90(out, k=t % 4, axes=(1, 2)))


def class_pools(split: str, n_classes: int = MAX_CLASSES, split_seed: int = 0) -> list[np.ndarray]:
    """Images of each class of one split: list (n_classes) of (n_c, 64) float32 arrays.

    The train/test images are disjoint (studio.data.digits.split_digits); class c is digit c % 10 under
    transform c // 10, so the first 10 classes are the upright digits.
    """
    if not 1 <= n_classes <= MAX_CLASSES:
        raise ValueError(f"n_classes must be in 1..{MAX_CLASSES}, got {n_classes}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = split_digits(0.3, seed=split_seed)[split]
    pools = []
    for c in range(n_classes):
        x = transform_images(images[labels == c % 10], c // 10)
        pools.append(x.reshape(len(x), IMAGE_PIXELS).astype(np.float32))
    return pools
