"""scikit-learn's bundled 8x8 digit images (1,797 real scans, 10 classes): the only images we ship.

Studies draw training and evaluation images from disjoint halves (`split_digits`), so that a model
that answers correctly on test videos or episodes has generalised to unseen images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# The number words, the one list every vocabulary (video answers, scene captions, ICL labels) uses.
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@lru_cache(maxsize=1)
def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """images (1797, 8, 8) float32 in [0, 1]; labels (1797,) int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)
    images.setflags(write=False)
    labels = d.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def split_digits(test_fraction: float = 0.3, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split per class into {"train": (images, labels), "test": (images, labels)}, disjoint images."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = load_digits_images()
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test[rng.choice(idx, size=int(round(test_fraction * len(idx))), replace=False)] = True
    return {"train": (images[~test], labels[~test]), "test": (images[test], labels[test])}


def pool_grid(images: np.ndarray, g: int) -> np.ndarray:
    """Mean-pool (n, H, W) images to (n, g, g): g*g 'tokens' per image, as Opt-Visor pools patches."""
    n, h, w = images.shape
    if h % g or w % g:
        raise ValueError(f"grid {g} must divide the image size {h}x{w}")
    return images.reshape(n, g, h // g, g, w // g).mean(axis=(2, 4))
