"""Predictors for the ICL probes: callables list[Episode] -> list[str], planted ones and adapters.

The planted predictors check the probe (nearest-image matching must lose accuracy when demonstration
images go; majority vote must not care). Models plug in through `episodes_to_arrays` (images, masks,
answer indices into `answer_vocabulary()`) and `scores_predictor(score_fn)`. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from studio.data.episodes import Episode, answer_vocabulary

Predictor = Callable[[list], list]


def _majority_answer(answers: Sequence[str]) -> str:
    # ties go to the most recent of the tied answers (a recency bias, deterministic)
    if not answers:
        return ""
    counts: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, a in enumerate(answers):
        counts[a] = counts.get(a, 0) + 1
        last[a] = i
    return max(counts, key=lambda a: (counts[a], last[a]))


def majority_predictor(episodes: Sequence[Episode]) -> list[str]:
    """The most frequent demonstration answer (ties: the most recent of them). Ignores all images."""
    return [_majority_answer([d.answer for d in e.demos]) for e in episodes]


def last_label_predictor(episodes: Sequence[Episode]) -> list[str]:
    """The last demonstration's answer (recency bias). Ignores all images."""
    return [e.demos[-1].answer if e.demos else "" for e in episodes]


def random_demo_label_predictor(seed: int = 0) -> Predictor:
    """A predictor answering a uniformly random demonstration answer (its own rng, seeded once)."""
    rng = np.random.default_rng(seed)

    def predict(episodes: Sequence[Episode]) -> list[str]:
        return [e.demos[int(rng.integers(len(e.demos)))].answer if e.demos else "" for e in episodes]

    return predict


def nearest_image_predictor(episodes: Sequence[Episode]) -> list[str]:
    """The answer of the demonstration whose image is nearest (Euclidean) to the query image.

    Ties (e.g. all demonstration images blanked) go to the first demonstration; demonstrations
    without an image are skipped; with no usable image at all it falls back to the majority answer.
    """
    out = []
    for e in episodes:
        usable = [d for d in e.demos if d.image is not None]
        if e.query.image is None or not usable:
            out.append(_majority_answer([d.answer for d in e.demos]))
            continue
        q = np.asarray(e.query.image, dtype=np.float64).ravel()
        dist = [np.sum((np.asarray(d.image, dtype=np.float64).ravel() - q) ** 2) for d in usable]
        out.append(usable[int(np.argmin(dist))].answer)
    return out


def episodes_to_arrays(episodes: Sequence[Episode], vocab: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Stack episodes of one shape into arrays, for models. vocab: answer strings (default
    `answer_vocabulary()`); answers are indices into it, -1 where blank ("" in blinded episodes).

    Returns images (n, S + 1, *image_shape) float32 (demonstrations then the query; zeros where an
    image is None), image_mask (n, S + 1) bool (True where an image is present), demo_answers (n, S)
    int64, target (n,) int64, candidates (n, W) int64. All episodes need the same number of
    demonstrations and ways and one image shape.
    """
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes")
    vocab = list(answer_vocabulary() if vocab is None else vocab)
    index = {a: i for i, a in enumerate(vocab)}

    def idx(a):
        if a == "":
            return -1
        if a not in index:
            raise ValueError(f"answer {a!r} is not in the vocabulary ({len(vocab)} answers)")
        return index[a]

    shots = {len(e.demos) for e in episodes}
    ways = {len(e.candidates) for e in episodes}
    shapes = {np.shape(im) for e in episodes for im in [e.query.image] + [d.image for d in e.demos] if im is not None}
    if len(shots) != 1 or len(ways) != 1 or len(shapes) > 1:
        raise ValueError(
            f"episodes differ in shots {sorted(shots)}, ways {sorted(ways)} or image shape {sorted(shapes)}"
        )
    if not shapes:
        raise ValueError("no episode has any image: the image shape is unknown")
    (S,), (shape,) = shots, shapes
    n = len(episodes)
    images = np.zeros((n, S + 1, *shape), dtype=np.float32)
    mask = np.zeros((n, S + 1), dtype=bool)
    for i, e in enumerate(episodes):
        for j, im in enumerate([d.image for d in e.demos] + [e.query.image]):
            if im is not None:
                images[i, j], mask[i, j] = im, True
    return {
        "images": images,
        "image_mask": mask,
        "demo_answers": np.array([[idx(d.answer) for d in e.demos] for e in episodes], dtype=np.int64).reshape(n, S),
        "target": np.array([idx(e.answer) for e in episodes], dtype=np.int64),
        "candidates": np.array([[idx(c) for c in e.candidates] for e in episodes], dtype=np.int64),
    }


def scores_predictor(
    score_fn: Callable[[dict], np.ndarray],
    vocab: Sequence[str] | None = None,
    candidates_only: bool = False,
    batch_size: int = 1024,
) -> Predictor:
    """A predictor from a scoring function: score_fn(episodes_to_arrays(batch, vocab)) -> (b, V) scores
    over `vocab`; the answer is the argmax over the whole vocabulary (exact match, as generation is), or
    over each episode's candidates with candidates_only=True (as a multiple-choice probe)."""
    vocab = list(answer_vocabulary() if vocab is None else vocab)

    def predict(episodes: Sequence[Episode]) -> list[str]:
        episodes, out = list(episodes), []
        for start in range(0, len(episodes), batch_size):
            arrays = episodes_to_arrays(episodes[start : start + batch_size], vocab)
            scores = np.asarray(score_fn(arrays), dtype=np.float64)
            if scores.shape != (len(arrays["target"]), len(vocab)):
                expected = (len(arrays["target"]), len(vocab))
                raise ValueError(f"score_fn returned shape {scores.shape}, expected {expected}")
            if candidates_only:
                cand = arrays["candidates"]
                best = cand[np.arange(len(cand)), np.argmax(np.take_along_axis(scores, cand, axis=1), axis=1)]
            else:
                best = np.argmax(scores, axis=1)
            out += [vocab[int(b)] for b in best]
        return out

    return predict
