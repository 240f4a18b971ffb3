"""Probe conditions: each `fn(episodes, rng) -> (episodes, targets)` ablates the images or the labels.

    eps, targets = apply_condition("demo_images_blank", episodes, seed=0)

Each condition draws from its own random stream (`_condition_rng`), so adding one never changes
another's numbers. Pure numpy.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from studio.data.episodes import SYMBOLS, Episode


def _with(e: Episode, condition: str, demos=None, query=None, answer=None, candidates=None) -> Episode:
    query = query if query is not None else e.query
    if answer is not None:  # the query shot carries the (new) true answer too, as built episodes do
        query = replace(query, answer=answer)
    return Episode(
        demos if demos is not None else list(e.demos),
        query,
        e.answer if answer is None else answer,
        list(e.candidates) if candidates is None else candidates,
        {**e.meta, "condition": condition},
    )


def _map_demo_images(episodes, condition, fn):
    eps = [_with(e, condition, demos=[replace(d, image=fn(d.image)) for d in e.demos]) for e in episodes]
    return eps, [e.answer for e in episodes]


def _derangement(k: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of range(k) with no fixed point (identity for k < 2)."""
    if k < 2:
        return np.arange(k)
    while True:
        p = rng.permutation(k)
        if np.all(p != np.arange(k)):
            return p


def cond_original(episodes, rng):
    """The episodes as built; targets = the true answers."""
    return [_with(e, "original") for e in episodes], [e.answer for e in episodes]


def cond_demo_images_blank(episodes, rng):
    """Every demonstration image replaced by zeros (same shape and dtype)."""
    return _map_demo_images(episodes, "demo_images_blank", lambda im: None if im is None else np.zeros_like(im))


def cond_demo_images_noise(episodes, rng):
    """Every demonstration image replaced by uniform noise in [0, 1) (same shape and dtype)."""
    return _map_demo_images(
        episodes, "demo_images_noise", lambda im: None if im is None else rng.random(im.shape).astype(im.dtype)
    )


def cond_demo_images_removed(episodes, rng):
    """Demonstrations keep their question and answer, image=None (text-only demonstrations)."""
    return _map_demo_images(episodes, "demo_images_removed", lambda im: None)


def cond_demo_images_shuffled(episodes, rng):
    """Images permuted among the demonstrations of each episode by a random derangement (no
    demonstration keeps its own image; another image of the same class may land there)."""
    eps = []
    for e in episodes:
        p = _derangement(len(e.demos), rng)
        eps.append(
            _with(e, "demo_images_shuffled", demos=[replace(d, image=e.demos[j].image) for d, j in zip(e.demos, p)])
        )
    return eps, [e.answer for e in episodes]


def cond_query_image_blank(episodes, rng):
    """The query image replaced by zeros; demonstrations untouched."""
    eps = [
        _with(
            e,
            "query_image_blank",
            query=replace(e.query, image=None if e.query.image is None else np.zeros_like(e.query.image)),
        )
        for e in episodes
    ]
    return eps, [e.answer for e in episodes]


def cond_labels_shuffled(episodes, rng):
    """Demonstration answers permuted across the demonstrations of each episode (the answer sequence
    changes whenever it holds two different answers); targets = the true answers."""
    eps = []
    for e in episodes:
        answers = [d.answer for d in e.demos]
        new = answers
        if len(set(answers)) > 1:
            while new == answers:
                new = [answers[j] for j in rng.permutation(len(answers))]
        eps.append(_with(e, "labels_shuffled", demos=[replace(d, answer=a) for d, a in zip(e.demos, new)]))
    return eps, [e.answer for e in episodes]


def cond_labels_permuted(episodes, rng):
    """One fixed derangement pi of the label set (all answers of all episodes, sorted) applied to every
    demonstration answer and the candidates; targets = pi(true answer). A model that follows the
    demonstrations scores as on the original; one that answers from its weights scores 0."""
    labels = sorted({a for e in episodes for a in list(e.candidates) + [e.answer] + [d.answer for d in e.demos]})
    pi = dict(zip(labels, [labels[j] for j in _derangement(len(labels), rng)]))
    eps = [
        _with(
            e,
            "labels_permuted",
            demos=[replace(d, answer=pi[d.answer]) for d in e.demos],
            answer=pi[e.answer],
            candidates=sorted(pi[c] for c in e.candidates),
        )
        for e in episodes
    ]
    return eps, [pi[e.answer] for e in episodes]


def cond_symbols(episodes, rng):
    """Each episode's answers replaced by fresh random symbols from `SYMBOLS` (one symbol per answer,
    distinct); targets = the symbol of the true answer. Only solvable in context."""
    eps, targets = [], []
    for e in episodes:
        labels = sorted(set(e.candidates) | {e.answer} | {d.answer for d in e.demos})
        if len(labels) > len(SYMBOLS):
            raise ValueError(f"episode has {len(labels)} answers, more than the {len(SYMBOLS)} symbols")
        sym = dict(zip(labels, (SYMBOLS[j] for j in rng.choice(len(SYMBOLS), size=len(labels), replace=False))))
        eps.append(
            _with(
                e,
                "symbols",
                demos=[replace(d, answer=sym[d.answer]) for d in e.demos],
                answer=sym[e.answer],
                candidates=sorted(sym[c] for c in e.candidates),
            )
        )
        targets.append(sym[e.answer])
    return eps, targets


CONDITIONS: dict[str, Callable] = {
    "original": cond_original,
    "demo_images_blank": cond_demo_images_blank,
    "demo_images_noise": cond_demo_images_noise,
    "demo_images_removed": cond_demo_images_removed,
    "demo_images_shuffled": cond_demo_images_shuffled,
    "query_image_blank": cond_query_image_blank,
    "labels_shuffled": cond_labels_shuffled,
    "labels_permuted": cond_labels_permuted,
    "symbols": cond_symbols,
}
# the demonstration-image ablations visual_reliance reports; the first is the headline score
IMAGE_ABLATIONS = ("demo_images_blank", "demo_images_noise", "demo_images_removed", "demo_images_shuffled")


def _condition_rng(seed: int, name: str) -> np.random.Generator:
    # each condition draws from its own stream: adding a condition never changes another's numbers
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def apply_condition(name: str, episodes: Sequence[Episode], seed: int = 0) -> tuple[list[Episode], list[str]]:
    """CONDITIONS[name] with the same random stream `probe` uses for it at this seed."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; valid: {', '.join(CONDITIONS)}")
    return CONDITIONS[name](list(episodes), _condition_rng(seed, name))
