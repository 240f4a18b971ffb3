"""How much does multimodal in-context learning look at the images? Episodes, predictors, probes, a score.

An `Episode` is a few demonstrations (image, question, answer) and a query whose answer is to be
guessed. Anything that answers episodes can be probed: a *predictor* is a callable taking a list of
episodes and returning a list of answer strings (the tiny ICL model, a Hugging Face VLM adapter, or
the planted predictors below). Predictors only ever see `blind` copies: the query's answer, every
class label and the private meta keys removed.

    eps = digit_episodes(2000, shots=4, ways=2, symbols=True, seed=0)
    table = probe(my_predictor, eps, seed=0)           # one row per condition and baseline
    score = visual_reliance(my_predictor, eps, seed=0)  # acc(original) - acc(demo images blanked)

Conditions (`CONDITIONS`, each `fn(episodes, rng) -> (episodes, targets)`) ablate the images or the
labels; baselines (majority demonstration label, last demonstration label, "the answer is one of the
demonstration labels", chance) are computed on the same episodes. Accuracies carry percentile
bootstrap CIs; differences between conditions use a paired bootstrap over episodes.
`evaluate` gives per-episode correctness once; pass it as `correct=` to `probe` and
`visual_reliance` so that an expensive predictor runs once per condition. Models plug in through
`episodes_to_arrays` (images, masks, answer indices into `answer_vocabulary()`) and
`scores_predictor(score_fn)`.

Pure numpy/pandas: no torch, no Lightning.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from studio.data.digits import split_digits

DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "bar")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLOUR_RGB = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
# 50 meaningless answer symbols (SymDPO's idea): none is an English word or a class word here.
SYMBOLS: tuple[str, ...] = (
    "dax", "wug", "blick", "fep", "zorp", "kiki", "bouba", "tupa", "gazzer", "lorp",
    "mib", "snarf", "quon", "vexa", "yilt", "drabe", "frell", "glim", "horp", "jarn",
    "klep", "lunt", "morb", "nesk", "ovit", "plew", "quib", "rask", "sprock", "tove",
    "wabe", "mome", "rath", "gimble", "zib", "tazzle", "noop", "fiddit", "grunf", "pleck",
    "shmoo", "twib", "yorb", "kazum", "pim", "dorf", "vunk", "slith", "brell", "zaff",
)
QUESTIONS = {"digits": "What digit is this?", "shape": "What shape is this?", "colour": "What colour is this?"}
# meta keys a predictor must not see (they give the class of the query or of the demonstrations)
# (and "condition": a predictor is not told which ablation it faces)
PRIVATE_META = ("classes", "answer_map", "query_label", "query_is_majority", "condition")


def answer_vocabulary() -> tuple[str, ...]:
    """Every answer string a builder or a condition can produce: digit words, scene words, symbols."""
    return DIGIT_WORDS + SHAPES + COLOURS + SYMBOLS


# --------------------------------------------------------------------------------------------------
# Episodes
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Shot:
    """One (image, question, answer). image: (8, 8) float32 for digits, (S, S, 3) for scenes, values in
    [0, 1]; None when removed. label: the class index (None in what predictors see)."""

    image: np.ndarray | None
    question: str
    answer: str
    label: int | None = None


@dataclass(frozen=True, eq=False)
class Episode:
    """Demonstrations, a query and the true answer (also in query.answer; both "" in `blinded` copies).
    candidates: the episode's answer strings (the `ways` answers in play), sorted so that their order
    says nothing about the answer. meta: source, split, ways, shots, symbols, mapping, balanced,
    majority, seed, index (+ condition after a condition; + private keys in PRIVATE_META)."""

    demos: list[Shot]
    query: Shot
    answer: str
    candidates: list[str]
    meta: dict = field(default_factory=dict)

    def blinded(self) -> "Episode":
        """The copy a predictor sees: query answer and true answer "", no labels, no private meta."""
        return Episode(
            demos=[replace(d, label=None) for d in self.demos],
            query=replace(self.query, answer="", label=None),
            answer="",
            candidates=list(self.candidates),
            meta={k: v for k, v in self.meta.items() if k not in PRIVATE_META},
        )


def blind(episodes: Sequence[Episode]) -> list[Episode]:
    """What predictors receive: `Episode.blinded` of each."""
    return [e.blinded() for e in episodes]


def _check_common(n, shots, ways, n_classes, balanced, majority, mapping, symbols, split):
    for name, v in (("n", n), ("shots", shots), ("ways", ways)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an int, got {v!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    if not 1 <= ways <= n_classes:
        raise ValueError(f"ways must be in 1..{n_classes} (the number of classes), got {ways}")
    if symbols and ways > len(SYMBOLS):
        raise ValueError(f"ways must be <= {len(SYMBOLS)} (the symbol pool) with symbols, got {ways}")
    if mapping not in (None, "fixed", "random"):
        raise ValueError(f"mapping must be 'fixed', 'random' or None, got {mapping!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not balanced and shots <= ways:
        raise ValueError(f"balanced=False needs shots > ways (one class a strict majority), "
                         f"got shots={shots}, ways={ways}")
    if majority is not None:
        if balanced:
            raise ValueError("majority= needs balanced=False: balanced demonstrations have no majority label")
        if not 0.0 <= majority <= 1.0:
            raise ValueError(f"majority must be a probability in [0, 1], got {majority}")


def _build(n, *, shots, ways, symbols, seed, split, mapping, balanced, majority, n_classes, class_words,
           question, draw, source, extra_meta) -> list[Episode]:
    """The builder shared by digits and scenes. draw(c, k, rng) -> list of k distinct images of class c."""
    _check_common(n, shots, ways, n_classes, balanced, majority, mapping, symbols, split)
    mapping = mapping or ("random" if symbols else "fixed")
    split_code = 0 if split == "test" else 1
    out = []
    for i in range(int(n)):
        # one generator per episode: episode i is the same whatever n is
        rng = np.random.default_rng([int(seed), split_code, i])
        classes = rng.choice(n_classes, size=ways, replace=False)
        if mapping == "fixed":
            answers = [SYMBOLS[c] if symbols else class_words[c] for c in classes]
        else:
            pool = SYMBOLS if symbols else class_words
            answers = [pool[j] for j in rng.choice(len(pool), size=ways, replace=False)]
        answer_map = {int(c): a for c, a in zip(classes, answers)}
        # demonstration counts per class (in the order of `classes`)
        if balanced:
            counts = np.full(ways, shots // ways)
            counts[rng.choice(ways, size=shots % ways, replace=False)] += 1
            major = None
        else:
            counts = np.ones(ways, dtype=int)
            major = int(rng.integers(ways))
            counts[major] = shots - (ways - 1)
        if majority is None:
            q = int(rng.integers(ways))
        elif rng.random() < majority:
            q = major
        else:
            q = int(rng.choice([j for j in range(ways) if j != major]))
        demos = []
        query_image = None
        for j, c in enumerate(classes):
            k = int(counts[j]) + (1 if j == q else 0)
            if k == 0:
                continue
            imgs = draw(int(c), k, rng)
            if j == q:
                query_image, imgs = imgs[-1], imgs[:-1]
            demos += [Shot(im, question, answer_map[int(c)], int(c)) for im in imgs]
        demos = [demos[p] for p in rng.permutation(len(demos))]
        qc = int(classes[q])
        meta = dict(source=source, split=split, ways=int(ways), shots=int(shots), symbols=bool(symbols),
                    mapping=mapping, balanced=bool(balanced), majority=majority, seed=int(seed), index=i,
                    **extra_meta, classes=[int(c) for c in classes], answer_map=answer_map,
                    query_label=qc, query_is_majority=(q == major))
        query = Shot(query_image, question, answer_map[qc], qc)
        out.append(Episode(demos, query, answer_map[qc], sorted(answers), meta))
    return out


def digit_episodes(n: int, shots: int = 4, ways: int = 2, symbols: bool = False, seed: int = 0,
                   split: str = "test", mapping: str | None = None, balanced: bool = True,
                   majority: float | None = None, test_fraction: float = 0.3, split_seed: int = 0) -> list[Episode]:
    """n episodes from scikit-learn's digits (8x8 float32 images in [0, 1]).

    shots: demonstrations per episode (all classes together). ways: classes per episode (<= 10).
    symbols: answers are meaningless symbols from `SYMBOLS` instead of class words ("zero".."nine").
    mapping: "fixed" (class c -> its word, or SYMBOLS[c]: solvable from the weights) or "random"
        (each episode re-draws the answers of its classes from the words or the symbols: only solvable
        in context); None = "fixed" for words, "random" for symbols.
    balanced: demonstration counts as equal as possible (4 shots, 2 ways: 2 + 2); False: one class
        gets shots - (ways - 1) and the others 1 (3 + 1). With shots < ways only `shots` classes appear.
    majority: with balanced=False, the probability that the query is of the majority demonstration
        class (a text shortcut); None = the query class is uniform over the episode's classes.
    split: "test" or "train" images of `split_digits(test_fraction, split_seed)`, disjoint; the split
        does not move with `seed`, so training and probe episodes never share images.
    Deterministic in (seed, split, index); demonstrations and query images of an episode are distinct.
    """
    _check_common(n, shots, ways, 10, balanced, majority, mapping, symbols, split)
    images, labels = split_digits(test_fraction, seed=split_seed)[split]
    by_class = [np.flatnonzero(labels == c) for c in range(10)]

    def draw(c, k, rng):
        if k > len(by_class[c]):
            raise ValueError(f"class {c} has only {len(by_class[c])} {split} images, {k} needed")
        return [images[j] for j in rng.choice(by_class[c], size=k, replace=False)]

    return _build(n, shots=shots, ways=ways, symbols=symbols, seed=seed, split=split, mapping=mapping,
                  balanced=balanced, majority=majority, n_classes=10, class_words=DIGIT_WORDS,
                  question=QUESTIONS["digits"], draw=draw, source="digits", extra_meta={})


def render_scene(shape: int, colour: int, size: int = 16, rng: np.random.Generator | None = None,
                 noise: float = 0.05) -> np.ndarray:
    """One synthetic scene: a coloured shape on black, random position/scale, pixel noise.

    Returns (size, size, 3) float32 in [0, 1]. shape indexes SHAPES, colour indexes COLOURS.
    """
    rng = rng or np.random.default_rng(0)
    r = rng.uniform(0.25, 0.4) * size
    cy, cx = rng.uniform(r, size - r, size=2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = (y - cy) / r, (x - cx) / r
    name = SHAPES[shape]
    if name == "circle":
        m = dy**2 + dx**2 <= 1
    elif name == "square":
        m = (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8)
    elif name == "triangle":
        m = (dy <= 0.8) & (dy >= -1) & (np.abs(dx) <= (dy + 1) / 1.8 * 0.9)
    elif name == "cross":
        m = ((np.abs(dy) <= 0.3) & (np.abs(dx) <= 1)) | ((np.abs(dx) <= 0.3) & (np.abs(dy) <= 1))
    elif name == "ring":
        d = dy**2 + dx**2
        m = (d <= 1) & (d >= 0.4)
    else:  # bar
        m = (np.abs(dy) <= 0.25) & (np.abs(dx) <= 1)
    img = m[..., None] * COLOUR_RGB[colour] * rng.uniform(0.7, 1.0)
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def scene_episodes(n: int, shots: int = 4, ways: int = 2, symbols: bool = False, seed: int = 0,
                   split: str = "test", mapping: str | None = None, balanced: bool = True,
                   majority: float | None = None, attribute: str = "shape", size: int = 16) -> list[Episode]:
    """n episodes of synthetic scenes, (size, size, 3) float32 in [0, 1]: a coloured shape on black.

    attribute: "shape" (classes SHAPES, colour random) or "colour" (classes COLOURS, shape random), so
    the other attribute is a distractor. The other arguments are those of `digit_episodes` (ways <= 6).
    Scenes are rendered afresh, so "train" and "test" differ only in their random stream.
    """
    if attribute not in ("shape", "colour"):
        raise ValueError(f"attribute must be 'shape' or 'colour', got {attribute!r}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    words = SHAPES if attribute == "shape" else COLOURS

    def draw(c, k, rng):
        other = rng.integers(len(COLOURS if attribute == "shape" else SHAPES), size=k)
        return [render_scene(c, int(o), size, rng) if attribute == "shape" else render_scene(int(o), c, size, rng)
                for o in other]

    return _build(n, shots=shots, ways=ways, symbols=symbols, seed=seed, split=split,
                  mapping=mapping, balanced=balanced, majority=majority, n_classes=len(words),
                  class_words=words, question=QUESTIONS[attribute], draw=draw, source="scenes",
                  extra_meta={"attribute": attribute})


# --------------------------------------------------------------------------------------------------
# Planted predictors: list[Episode] -> list[str]
# --------------------------------------------------------------------------------------------------
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
        raise ValueError(f"episodes differ in shots {sorted(shots)}, ways {sorted(ways)} "
                         f"or image shape {sorted(shapes)}")
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
    return {"images": images, "image_mask": mask,
            "demo_answers": np.array([[idx(d.answer) for d in e.demos] for e in episodes],
                                     dtype=np.int64).reshape(n, S),
            "target": np.array([idx(e.answer) for e in episodes], dtype=np.int64),
            "candidates": np.array([[idx(c) for c in e.candidates] for e in episodes], dtype=np.int64)}


def scores_predictor(score_fn: Callable[[dict], np.ndarray], vocab: Sequence[str] | None = None,
                     candidates_only: bool = False, batch_size: int = 1024) -> Predictor:
    """A predictor from a scoring function: score_fn(episodes_to_arrays(batch, vocab)) -> (b, V) scores
    over `vocab`; the answer is the argmax over the whole vocabulary (exact match, as generation is), or
    over each episode's candidates with candidates_only=True (as a multiple-choice probe)."""
    vocab = list(answer_vocabulary() if vocab is None else vocab)

    def predict(episodes: Sequence[Episode]) -> list[str]:
        episodes, out = list(episodes), []
        for start in range(0, len(episodes), batch_size):
            arrays = episodes_to_arrays(episodes[start:start + batch_size], vocab)
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


# --------------------------------------------------------------------------------------------------
# Conditions: fn(episodes, rng) -> (transformed episodes, target answers)
# --------------------------------------------------------------------------------------------------
def _with(e: Episode, condition: str, demos=None, query=None, answer=None, candidates=None) -> Episode:
    query = query if query is not None else e.query
    if answer is not None:  # the query shot carries the (new) true answer too, as built episodes do
        query = replace(query, answer=answer)
    return Episode(demos if demos is not None else list(e.demos), query,
                   e.answer if answer is None else answer,
                   list(e.candidates) if candidates is None else candidates,
                   {**e.meta, "condition": condition})


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
    return _map_demo_images(episodes, "demo_images_noise",
                            lambda im: None if im is None else rng.random(im.shape).astype(im.dtype))


def cond_demo_images_removed(episodes, rng):
    """Demonstrations keep their question and answer, image=None (text-only demonstrations)."""
    return _map_demo_images(episodes, "demo_images_removed", lambda im: None)


def cond_demo_images_shuffled(episodes, rng):
    """Images permuted among the demonstrations of each episode by a random derangement (no
    demonstration keeps its own image; another image of the same class may land there)."""
    eps = []
    for e in episodes:
        p = _derangement(len(e.demos), rng)
        eps.append(_with(e, "demo_images_shuffled",
                         demos=[replace(d, image=e.demos[j].image) for d, j in zip(e.demos, p)]))
    return eps, [e.answer for e in episodes]


def cond_query_image_blank(episodes, rng):
    """The query image replaced by zeros; demonstrations untouched."""
    eps = [_with(e, "query_image_blank", query=replace(e.query, image=None if e.query.image is None
                                                        else np.zeros_like(e.query.image))) for e in episodes]
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
    eps = [_with(e, "labels_permuted", demos=[replace(d, answer=pi[d.answer]) for d in e.demos],
                 answer=pi[e.answer], candidates=sorted(pi[c] for c in e.candidates)) for e in episodes]
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
        eps.append(_with(e, "symbols", demos=[replace(d, answer=sym[d.answer]) for d in e.demos],
                         answer=sym[e.answer], candidates=sorted(sym[c] for c in e.candidates)))
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


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------
def _norm(s) -> str:
    return str(s).strip().lower()


def _predict(predictor: Predictor, episodes: list[Episode]) -> list[str]:
    preds = predictor(blind(episodes))
    preds = list(preds)
    if len(preds) != len(episodes):
        raise ValueError(f"predictor returned {len(preds)} answers for {len(episodes)} episodes")
    return preds


def evaluate(predictor: Predictor, episodes: Sequence[Episode], seed: int = 0,
             conditions: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Per-episode correctness under each condition: {condition: bool array (n,)}.

    The predictor sees blinded copies only; an answer is correct when it equals the condition's target
    after stripping whitespace and lower-casing.
    """
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes to probe")
    names = list(CONDITIONS) if conditions is None else list(conditions)
    unknown = [c for c in names if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; valid: {', '.join(CONDITIONS)}")
    out = {}
    for name in names:
        eps, targets = apply_condition(name, episodes, seed)
        preds = _predict(predictor, eps)
        out[name] = np.array([_norm(p) == _norm(t) for p, t in zip(preds, targets)], dtype=bool)
    return out


def _check_boot(n_boot, level):
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_accuracy(correct: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                       rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """(accuracy, ci_low, ci_high): percentile bootstrap over episodes. Resampling n binary outcomes
    with replacement gives Binomial(n, p) / n exactly, so that is drawn directly."""
    _check_boot(n_boot, level)
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    p = float(correct.mean())
    rng = rng or np.random.default_rng(0)
    draws = rng.binomial(n, p, size=n_boot) / n
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return p, float(lo), float(hi)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                     rng: np.random.Generator | None = None) -> dict:
    """Paired bootstrap over episodes of two correctness vectors on the same episodes.

    Returns diff = mean(a) - mean(b) and ratio = mean(b) / mean(a) (nan when mean(a) = 0), each with
    percentile CI (diff_ci_low, diff_ci_high, ratio_ci_low, ratio_ci_high). Resampling episodes is
    drawing the four (a, b) outcome cells from a multinomial, done directly.
    """
    _check_boot(n_boot, level)
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in shape: {a.shape} vs {b.shape}")
    n = len(a)
    cells = np.array([np.sum(a & b), np.sum(a & ~b), np.sum(~a & b), np.sum(~a & ~b)], dtype=float)
    rng = rng or np.random.default_rng(0)
    draws = rng.multinomial(n, cells / n, size=n_boot)
    ma, mb = (draws[:, 0] + draws[:, 1]) / n, (draws[:, 0] + draws[:, 2]) / n
    q = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(ma > 0, mb / np.where(ma > 0, ma, 1), np.nan)
    pa, pb = float(a.mean()), float(b.mean())
    dlo, dhi = np.quantile(ma - mb, q)
    if np.all(np.isnan(ratios)):
        rlo = rhi = np.nan
    else:
        rlo, rhi = np.nanquantile(ratios, q)
    return {"diff": pa - pb, "diff_ci_low": float(dlo), "diff_ci_high": float(dhi),
            "ratio": pb / pa if pa > 0 else float("nan"), "ratio_ci_low": float(rlo), "ratio_ci_high": float(rhi)}


def _boot_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(b"bootstrap"), zlib.crc32(name.encode())])


def in_demo_labels(episodes: Sequence[Episode]) -> np.ndarray:
    """Per episode: is the true answer one of the demonstration answers? bool (n,)."""
    return np.array([e.answer in {d.answer for d in e.demos} for e in episodes], dtype=bool)


def _reuse(predictor, episodes, seed, names, correct) -> dict[str, np.ndarray]:
    correct = dict(correct or {})
    for name, c in correct.items():
        if len(c) != len(episodes):
            raise ValueError(f"correct[{name!r}] has {len(c)} entries for {len(episodes)} episodes")
    missing = [c for c in names if c not in correct]
    if missing:
        correct.update(evaluate(predictor, episodes, seed, missing))
    return {c: np.asarray(correct[c], dtype=bool) for c in names}


def probe(predictor: Predictor, episodes: Sequence[Episode], seed: int = 0,
          conditions: Sequence[str] | None = None, n_boot: int = 1000, level: float = 0.95,
          baselines: bool = True, correct: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Accuracy of `predictor` under each condition, with the baselines on the same episodes.

    Returns one row per condition (kind "condition") then per baseline (kind "baseline"):
    kind, condition, accuracy, ci_low, ci_high (percentile bootstrap, `level`), n, delta (accuracy -
    accuracy on "original", nan without it). Baselines: baseline_majority (majority demonstration
    answer), baseline_last (last demonstration answer), baseline_in_demo_labels (share of episodes
    whose answer is among the demonstration answers: the ceiling of any copy-a-label strategy) and
    baseline_chance (mean 1 / number of candidates; its CI is the point).
    correct: an `evaluate` result for these episodes and seed, to reuse (conditions missing from it are
    evaluated); it lets `probe` and `visual_reliance` share one pass of an expensive predictor.
    """
    _check_boot(n_boot, level)
    episodes = list(episodes)
    names = list(CONDITIONS) if conditions is None else list(conditions)
    correct = _reuse(predictor, episodes, seed, names, correct)
    rows = []
    for name, c in correct.items():
        acc, lo, hi = bootstrap_accuracy(c, n_boot, level, _boot_rng(seed, name))
        rows.append(dict(kind="condition", condition=name, accuracy=acc, ci_low=lo, ci_high=hi, n=len(c)))
    if baselines:
        base = {
            "baseline_majority": evaluate(majority_predictor, episodes, seed, ["original"])["original"],
            "baseline_last": evaluate(last_label_predictor, episodes, seed, ["original"])["original"],
            "baseline_in_demo_labels": in_demo_labels(episodes),
        }
        for name, c in base.items():
            acc, lo, hi = bootstrap_accuracy(c, n_boot, level, _boot_rng(seed, name))
            rows.append(dict(kind="baseline", condition=name, accuracy=acc, ci_low=lo, ci_high=hi, n=len(c)))
        chance = float(np.mean([1.0 / max(len(e.candidates), 1) for e in episodes]))
        rows.append({"kind": "baseline", "condition": "baseline_chance", "accuracy": chance,
                     "ci_low": chance, "ci_high": chance, "n": len(episodes)})
    df = pd.DataFrame(rows)
    ref = correct["original"].mean() if "original" in correct else np.nan
    df["delta"] = df["accuracy"] - ref
    return df


def probe_many(predictors: dict[str, Predictor], episodes: Sequence[Episode], seed: int = 0, **kw) -> pd.DataFrame:
    """`probe` for each named predictor on the same episodes and seed, stacked with a `model` column
    (baselines once, under model "baseline")."""
    tables = []
    for i, (name, p) in enumerate(predictors.items()):
        t = probe(p, episodes, seed=seed, baselines=(i == 0), **kw)
        t.insert(0, "model", np.where(t["kind"] == "baseline", "baseline", name))
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def visual_reliance(predictor: Predictor, episodes: Sequence[Episode], seed: int = 0,
                    ablation: str = "demo_images_blank", n_boot: int = 1000, level: float = 0.95,
                    correct: dict[str, np.ndarray] | None = None) -> dict:
    """How much the predictor's accuracy depends on the demonstration images.

    reliance = acc(original) - acc(`ablation`), by default demonstration images blanked to zeros
    (the definition of the prototype in shared/reference/icl-notes.md and of SymDPO's Fig. 1b);
    text_only_ratio = acc(demonstration images removed) / acc(original) (nan when acc(original) = 0).
    Both with paired-bootstrap CIs over episodes. Also reported for every ablation in IMAGE_ABLATIONS:
    acc_<name>, reliance_<name> and its CI. The same seed gives the same ablated episodes as `probe`.
    correct: an `evaluate` result to reuse, as in `probe`.

    Returns a flat dict: ablation, n, acc_original, reliance, reliance_ci_low, reliance_ci_high,
    text_only_ratio, text_only_ratio_ci_low, text_only_ratio_ci_high, acc_<name>, reliance_<name>,
    reliance_<name>_ci_low, reliance_<name>_ci_high for each image ablation.
    """
    if ablation not in CONDITIONS or ablation == "original":
        raise ValueError(f"unknown ablation {ablation!r}; valid: {', '.join(c for c in CONDITIONS if c != 'original')}")
    _check_boot(n_boot, level)
    episodes = list(episodes)
    names = ["original"] + list(dict.fromkeys(list(IMAGE_ABLATIONS) + [ablation]))
    correct = _reuse(predictor, episodes, seed, names, correct)
    orig = correct["original"]
    out = {"ablation": ablation, "n": len(orig), "acc_original": float(orig.mean())}
    for name in names[1:]:
        pb = paired_bootstrap(orig, correct[name], n_boot, level, _boot_rng(seed, "reliance_" + name))
        out[f"acc_{name}"] = float(correct[name].mean())
        out[f"reliance_{name}"] = pb["diff"]
        out[f"reliance_{name}_ci_low"] = pb["diff_ci_low"]
        out[f"reliance_{name}_ci_high"] = pb["diff_ci_high"]
        if name == ablation:
            out["reliance"] = pb["diff"]
            out["reliance_ci_low"], out["reliance_ci_high"] = pb["diff_ci_low"], pb["diff_ci_high"]
        if name == "demo_images_removed":
            out["text_only_ratio"] = pb["ratio"]
            out["text_only_ratio_ci_low"], out["text_only_ratio_ci_high"] = pb["ratio_ci_low"], pb["ratio_ci_high"]
    return out
