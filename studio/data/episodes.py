"""Episodes for multimodal in-context learning: a few (image, question, answer) demonstrations and a query.

    eps = digit_episodes(2000, shots=4, ways=2, symbols=True, seed=0)   # scikit-learn digits
    eps = scene_episodes(500, attribute="colour")                       # a coloured shape on black
    seen = blind(eps)                                                   # what a predictor receives

An `Episode` holds its demonstrations, a query and the true answer; predictors only ever see `blind`
copies (the query's answer, every class label and the private meta keys removed). The answers come
from one vocabulary (`answer_vocabulary()`): the digit words, the episode scenes' shape and colour
words, and 50 meaningless symbols. Pure numpy: the probes live in studio.analysis.icl_probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from studio.data.digits import DIGIT_WORDS, split_digits

# The scene episodes' own shapes and colours (studio.data.scenes draws other ones for its captions).
EPISODE_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "bar")
EPISODE_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
EPISODE_RGB = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
# 50 meaningless answer symbols (SymDPO's idea): none is an English word or a class word here.
SYMBOLS: tuple[str, ...] = (
    "dax",
    "wug",
    "blick",
    "fep",
    "zorp",
    "kiki",
    "bouba",
    "tupa",
    "gazzer",
    "lorp",
    "mib",
    "snarf",
    "quon",
    "vexa",
    "yilt",
    "drabe",
    "frell",
    "glim",
    "horp",
    "jarn",
    "klep",
    "lunt",
    "morb",
    "nesk",
    "ovit",
    "plew",
    "quib",
    "rask",
    "sprock",
    "tove",
    "wabe",
    "mome",
    "rath",
    "gimble",
    "zib",
    "tazzle",
    "noop",
    "fiddit",
    "grunf",
    "pleck",
    "shmoo",
    "twib",
    "yorb",
    "kazum",
    "pim",
    "dorf",
    "vunk",
    "slith",
    "brell",
    "zaff",
)
QUESTIONS = {"digits": "What digit is this?", "shape": "What shape is this?", "colour": "What colour is this?"}
# meta keys a predictor must not see (they give the class of the query or of the demonstrations)
# (and "condition": a predictor is not told which ablation it faces)
PRIVATE_META = ("classes", "answer_map", "query_label", "query_is_majority", "condition")


def answer_vocabulary() -> tuple[str, ...]:
    """Every answer string a builder or a condition can produce: digit words, scene words, symbols."""
    return DIGIT_WORDS + EPISODE_SHAPES + EPISODE_COLOURS + SYMBOLS


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

    def blinded(self) -> Episode:
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
        raise ValueError(
            f"balanced=False needs shots > ways (one class a strict majority), got shots={shots}, ways={ways}"
        )
    if majority is not None:
        if balanced:
            raise ValueError("majority= needs balanced=False: balanced demonstrations have no majority label")
        if not 0.0 <= majority <= 1.0:
            raise ValueError(f"majority must be a probability in [0, 1], got {majority}")


def _build(
    n,
    *,
    shots,
    ways,
    symbols,
    seed,
    split,
    mapping,
    balanced,
    majority,
    n_classes,
    class_words,
    question,
    draw,
    source,
    extra_meta,
) -> list[Episode]:
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
        meta = dict(
            source=source,
            split=split,
            ways=int(ways),
            shots=int(shots),
            symbols=bool(symbols),
            mapping=mapping,
            balanced=bool(balanced),
            majority=majority,
            seed=int(seed),
            index=i,
            **extra_meta,
            classes=[int(c) for c in classes],
            answer_map=answer_map,
            query_label=qc,
            query_is_majority=(q == major),
        )
        query = Shot(query_image, question, answer_map[qc], qc)
        out.append(Episode(demos, query, answer_map[qc], sorted(answers), meta))
    return out


def digit_episodes(
    n: int,
    shots: int = 4,
    ways: int = 2,
    symbols: bool = False,
    seed: int = 0,
    split: str = "test",
    mapping: str | None = None,
    balanced: bool = True,
    majority: float | None = None,
    test_fraction: float = 0.3,
    split_seed: int = 0,
) -> list[Episode]:
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

    return _build(
        n,
        shots=shots,
        ways=ways,
        symbols=symbols,
        seed=seed,
        split=split,
        mapping=mapping,
        balanced=balanced,
        majority=majority,
        n_classes=10,
        class_words=DIGIT_WORDS,
        question=QUESTIONS["digits"],
        draw=draw,
        source="digits",
        extra_meta={},
    )


def render_scene(
    shape: int, colour: int, size: int = 16, rng: np.random.Generator | None = None, noise: float = 0.05
) -> np.ndarray:
    """One synthetic scene: a coloured shape on black, random position/scale, pixel noise.

    Returns (size, size, 3) float32 in [0, 1]. shape indexes EPISODE_SHAPES, colour indexes EPISODE_COLOURS.
    """
    rng = rng or np.random.default_rng(0)
    r = rng.uniform(0.25, 0.4) * size
    cy, cx = rng.uniform(r, size - r, size=2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = (y - cy) / r, (x - cx) / r
    name = EPISODE_SHAPES[shape]
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
    img = m[..., None] * EPISODE_RGB[colour] * rng.uniform(0.7, 1.0)
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def scene_episodes(
    n: int,
    shots: int = 4,
    ways: int = 2,
    symbols: bool = False,
    seed: int = 0,
    split: str = "test",
    mapping: str | None = None,
    balanced: bool = True,
    majority: float | None = None,
    attribute: str = "shape",
    size: int = 16,
) -> list[Episode]:
    """n episodes of synthetic scenes, (size, size, 3) float32 in [0, 1]: a coloured shape on black.

    attribute: "shape" (classes EPISODE_SHAPES, colour random) or "colour" (classes EPISODE_COLOURS,
    shape random), so the other attribute is a distractor. The other arguments are those of `digit_episodes` (ways <= 6).
    Scenes are rendered afresh, so "train" and "test" differ only in their random stream.
    """
    if attribute not in ("shape", "colour"):
        raise ValueError(f"attribute must be 'shape' or 'colour', got {attribute!r}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    words = EPISODE_SHAPES if attribute == "shape" else EPISODE_COLOURS

    def draw(c, k, rng):
        other = rng.integers(len(EPISODE_COLOURS if attribute == "shape" else EPISODE_SHAPES), size=k)
        return [
            render_scene(c, int(o), size, rng) if attribute == "shape" else render_scene(int(o), c, size, rng)
            for o in other
        ]

    return _build(
        n,
        shots=shots,
        ways=ways,
        symbols=symbols,
        seed=seed,
        split=split,
        mapping=mapping,
        balanced=balanced,
        majority=majority,
        n_classes=len(words),
        class_words=words,
        question=QUESTIONS[attribute],
        draw=draw,
        source="scenes",
        extra_meta={"attribute": attribute},
    )
