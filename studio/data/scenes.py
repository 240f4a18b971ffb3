"""Synthetic scenes with true and hallucinated captions, for the HACL ablation.

A scene is a two-frame clip on a 3 x 3 grid of 8 x 8 cells (24 x 24 pixels, RGB). It holds two objects
of different kinds (a digit scan from `studio.data.digits`, or a drawn shape), each in one colour; the
two share a row (relation left-of / right-of) or a column (above / below) in the first frame, and
between the frames the first object moves one cell (the event). Its caption comes from one template,

    "a red three left-of a blue square then it moves up"

with six slots (colour1, object1, relation, colour2, object2, event) filled from a closed vocabulary.
A hallucinated caption changes exactly one slot to something false, by the taxonomy of the event-
hallucination benchmark: object (an object not in the scene), attribute (a wrong colour), relation,
event. Every slot is one word, so a hallucinated caption has the true caption's length and style and
differs from it in exactly one token.

Everything is deterministic from (seed, index): `make_scene(index, seed=..., split=...)`.
The tokenizer is a WordLevel `tokenizers` model over the closed vocabulary, wrapped in
PreTrainedTokenizerFast (`scene_tokenizer()`), built locally: nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from studio.data.digits import DIGIT_WORDS, split_digits

GRID = 3  # cells per side
CELL = 8  # pixels per cell (the digit scans are 8 x 8)
SIZE = GRID * CELL
FRAMES = 2

COLOURS = ("red", "green", "blue", "yellow")
RGB = {"red": (1.0, 0.15, 0.1), "green": (0.1, 0.85, 0.2), "blue": (0.15, 0.3, 1.0), "yellow": (1.0, 0.9, 0.1)}
SHAPES = ("square", "circle", "triangle", "cross")
OBJECTS = DIGIT_WORDS + SHAPES
RELATIONS = ("left-of", "right-of", "above", "below")
EVENTS = ("up", "down", "left", "right")
STEP = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

SLOTS = ("colour1", "object1", "relation", "colour2", "object2", "event")
SLOT_TYPE = {
    "colour1": "attribute",
    "object1": "object",
    "relation": "relation",
    "colour2": "attribute",
    "object2": "object",
    "event": "event",
}
HALLUCINATION_TYPES = ("object", "attribute", "relation", "event")
# The template, word by word; "{slot}" marks where a slot's word goes.
TEMPLATE = (
    "a",
    "{colour1}",
    "{object1}",
    "{relation}",
    "a",
    "{colour2}",
    "{object2}",
    "then",
    "it",
    "moves",
    "{event}",
)
SLOT_POSITION = {t[1:-1]: i for i, t in enumerate(TEMPLATE) if t.startswith("{")}
CAPTION_LENGTH = len(TEMPLATE)

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<bos>", "<eos>", "<unk>", "<image>"
SPECIALS = (PAD, BOS, EOS, UNK, IMAGE)

# Per-cell labels for pretraining the encoder: 0 = empty, 1.. = OBJECTS; colour 0 = none, 1.. = COLOURS.
N_OBJECT_CLASSES = len(OBJECTS) + 1
N_COLOUR_CLASSES = len(COLOURS) + 1


@dataclass(frozen=True)
class Scene:
    """One clip. frames (FRAMES, 3, SIZE, SIZE) float32 in [0, 1]; cell_object / cell_colour
    (FRAMES, GRID, GRID) int64 labels per cell (0 = empty); slots: the caption's six words."""

    frames: np.ndarray
    cell_object: np.ndarray
    cell_colour: np.ndarray
    slots: dict = field(hash=False)
    index: int = 0
    seed: int = 0

    @property
    def caption(self) -> str:
        return render(self.slots)

    @property
    def objects(self) -> dict[str, str]:
        """What is in the scene: object word -> its colour."""
        return {self.slots["object1"]: self.slots["colour1"], self.slots["object2"]: self.slots["colour2"]}


def render(slots: dict) -> str:
    """The caption for a slot dict (every slot must be present)."""
    missing = [s for s in SLOTS if s not in slots]
    if missing:
        raise ValueError(f"slots missing {missing}; a caption needs {list(SLOTS)}")
    return " ".join(slots[t[1:-1]] if t.startswith("{") else t for t in TEMPLATE)


@lru_cache(maxsize=1)
def _shape_masks() -> dict[str, np.ndarray]:
    """8 x 8 masks of the four shapes, drawn once."""
    y, x = np.mgrid[0:CELL, 0:CELL] + 0.5
    c = CELL / 2
    square = np.zeros((CELL, CELL), np.float32)
    square[1:7, 1:7] = 1.0
    square[3:5, 3:5] = 0.0  # hollow centre: not the same blob as a filled digit
    circle = (((y - c) ** 2 + (x - c) ** 2) <= 3.2**2).astype(np.float32)
    triangle = ((y >= 1.5) & (y <= 6.5) & (np.abs(x - c) <= (y - 1.0) * 0.62)).astype(np.float32)
    cross = ((np.abs(x - c) <= 1.0) | (np.abs(y - c) <= 1.0)).astype(np.float32)
    cross[[0, -1], :] = 0.0
    cross[:, [0, -1]] = 0.0
    return {"square": square, "circle": circle, "triangle": triangle, "cross": cross}


@lru_cache(maxsize=4)
def _digit_bank(split: str, split_seed: int = 0) -> dict[int, np.ndarray]:
    """Digit scans by class from one half of `split_digits`: train scenes never share a scan with test."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = split_digits(0.3, seed=split_seed)[split]
    return {c: images[labels == c] for c in range(10)}


def _draw(kind: str, rng: np.random.Generator, split: str) -> np.ndarray:
    """An 8 x 8 intensity map of one object."""
    if kind in SHAPES:
        return _shape_masks()[kind] * rng.uniform(0.75, 1.0)
    bank = _digit_bank(split)[DIGIT_WORDS.index(kind)]
    return bank[rng.integers(len(bank))]


def make_scene(index: int, *, seed: int = 0, split: str = "train", noise: float = 0.04) -> Scene:
    """The scene number `index` of stream `seed`, drawing digit scans from `split` ("train"/"test")."""
    rng = np.random.default_rng([int(seed), int(index), 0 if split == "train" else 1])
    k1, k2 = rng.choice(len(OBJECTS), size=2, replace=False)
    c1, c2 = rng.choice(len(COLOURS), size=2, replace=True)
    obj1, obj2 = OBJECTS[k1], OBJECTS[k2]
    col1, col2 = COLOURS[c1], COLOURS[c2]
    # Place the pair in one row or one column, then pick a move of object 1 that stays on the grid and
    # does not land on object 2. Retry until one exists (every layout has one on a 3 x 3 grid but a
    # cornered pair may need a redraw).
    while True:
        if rng.random() < 0.5:  # same row
            r = int(rng.integers(GRID))
            a, b = rng.choice(GRID, size=2, replace=False)
            p1, p2 = (r, int(a)), (r, int(b))
            relation = "left-of" if a < b else "right-of"
        else:
            col = int(rng.integers(GRID))
            a, b = rng.choice(GRID, size=2, replace=False)
            p1, p2 = (int(a), col), (int(b), col)
            relation = "above" if a < b else "below"
        moves = [e for e in EVENTS if _moved(p1, e) != p2 and _on_grid(_moved(p1, e))]
        if moves:
            break
    event = moves[int(rng.integers(len(moves)))]
    q1 = _moved(p1, event)

    img1, img2 = _draw(obj1, rng, split), _draw(obj2, rng, split)
    frames = np.zeros((FRAMES, 3, SIZE, SIZE), np.float32)
    cell_object = np.zeros((FRAMES, GRID, GRID), np.int64)
    cell_colour = np.zeros((FRAMES, GRID, GRID), np.int64)
    for f, pos1 in enumerate((p1, q1)):
        for img, pos, k, c in ((img1, pos1, k1, c1), (img2, p2, k2, c2)):
            y, x = pos[0] * CELL, pos[1] * CELL
            frames[f, :, y : y + CELL, x : x + CELL] = (
                img[None] * np.asarray(RGB[COLOURS[c]], np.float32)[:, None, None]
            )
            cell_object[f, pos[0], pos[1]] = k + 1
            cell_colour[f, pos[0], pos[1]] = c + 1
    if noise > 0:
        frames = np.clip(frames + rng.normal(0.0, noise, frames.shape).astype(np.float32), 0.0, 1.0)
    slots = {"colour1": col1, "object1": obj1, "relation": relation, "colour2": col2, "object2": obj2, "event": event}
    return Scene(
        frames=frames, cell_object=cell_object, cell_colour=cell_colour, slots=slots, index=int(index), seed=int(seed)
    )


def _moved(p: tuple[int, int], event: str) -> tuple[int, int]:
    dy, dx = STEP[event]
    return p[0] + dy, p[1] + dx


def _on_grid(p: tuple[int, int]) -> bool:
    return 0 <= p[0] < GRID and 0 <= p[1] < GRID


def hallucinate(slots: dict, kind: str, rng: np.random.Generator) -> tuple[dict, str]:
    """Change exactly one slot of `slots` to a false value of type `kind`; return (new slots, slot).

    object: object1 or object2 becomes an object absent from the scene; attribute: colour1 or colour2
    becomes another colour; relation: another relation; event: another direction.
    """
    if kind not in HALLUCINATION_TYPES:
        raise ValueError(f"unknown hallucination type {kind!r}; valid: {list(HALLUCINATION_TYPES)}")
    new = dict(slots)
    if kind == "object":
        slot = ("object1", "object2")[int(rng.integers(2))]
        choices = [o for o in OBJECTS if o not in (slots["object1"], slots["object2"])]
    elif kind == "attribute":
        slot = ("colour1", "colour2")[int(rng.integers(2))]
        choices = [c for c in COLOURS if c != slots[slot]]
    elif kind == "relation":
        slot = "relation"
        choices = [r for r in RELATIONS if r != slots["relation"]]
    else:
        slot = "event"
        choices = [e for e in EVENTS if e != slots["event"]]
    new[slot] = choices[int(rng.integers(len(choices)))]
    return new, slot


def hallucinated_caption(scene: Scene, kind: str | None = None) -> tuple[str, str, str]:
    """A hallucinated caption of `scene`: (caption, type, slot). Deterministic from the scene's
    (seed, index); with kind None the type is drawn too (uniform over HALLUCINATION_TYPES)."""
    rng = np.random.default_rng([scene.seed, scene.index, 7])
    if kind is None:
        kind = HALLUCINATION_TYPES[int(rng.integers(len(HALLUCINATION_TYPES)))]
    slots, slot = hallucinate(scene.slots, kind, rng)
    return render(slots), kind, slot


# ---------------------------------------------------------------------------------------------------
# Tokenizer


def vocabulary() -> list[str]:
    """Every word a caption can contain, specials first (ids 0..4), in a fixed order."""
    words = list(SPECIALS)
    for w in ("a", "then", "it", "moves", *COLOURS, *OBJECTS, *RELATIONS, *EVENTS):
        if w not in words:
            words.append(w)
    return words


@lru_cache(maxsize=1)
def scene_tokenizer():
    """A WordLevel tokenizer over `vocabulary()`, as a transformers PreTrainedTokenizerFast.

    encode("a red three ...") gives one id per word, without specials; the model adds <bos>/<eos>.
    """
    from studio.data.vocab import wordlevel_tokenizer

    return wordlevel_tokenizer(vocabulary())


def encode(captions: list[str]) -> np.ndarray:
    """(n, CAPTION_LENGTH) int64 token ids; every caption has the template's length."""
    tok = scene_tokenizer()
    ids = tok(list(captions), add_special_tokens=False)["input_ids"]
    bad = [c for c, i in zip(captions, ids) if len(i) != CAPTION_LENGTH]
    if bad:
        raise ValueError(f"caption(s) not of template length {CAPTION_LENGTH}: {bad[:3]}")
    return np.asarray(ids, dtype=np.int64)


def decode(ids) -> str:
    """Words for a sequence of ids, stopping at <eos>, dropping <bos>/<pad>."""
    tok = scene_tokenizer()
    words = []
    for i in ids:
        w = tok.convert_ids_to_tokens(int(i))
        if w == EOS:
            break
        if w not in (BOS, PAD):
            words.append(w)
    return " ".join(words)


# ---------------------------------------------------------------------------------------------------
# Banks of scenes, as arrays


def scene_bank(n: int, *, seed: int = 0, split: str = "train", start: int = 0) -> dict[str, np.ndarray]:
    """n scenes with their captions and one hallucinated caption each (its type drawn per scene,
    deterministically).

    Returns frames (n, FRAMES, 3, SIZE, SIZE) float32, cell_object / cell_colour (n, FRAMES, GRID, GRID),
    caption_ids / hallucinated_ids (n, CAPTION_LENGTH) int64, hallucination_type (n,) str,
    hallucinated_slot (n,) str, captions / hallucinated (n,) str, slots: list of dicts.
    """
    scenes = [make_scene(start + i, seed=seed, split=split) for i in range(n)]
    hall = [hallucinated_caption(s) for s in scenes]
    captions = [s.caption for s in scenes]
    return {
        "frames": np.stack([s.frames for s in scenes]),
        "cell_object": np.stack([s.cell_object for s in scenes]),
        "cell_colour": np.stack([s.cell_colour for s in scenes]),
        "captions": np.asarray(captions),
        "hallucinated": np.asarray([h[0] for h in hall]),
        "hallucination_type": np.asarray([h[1] for h in hall]),
        "hallucinated_slot": np.asarray([h[2] for h in hall]),
        "caption_ids": encode(captions),
        "hallucinated_ids": encode([h[0] for h in hall]),
        "slots": [s.slots for s in scenes],
    }


def mentions(caption: str) -> list[tuple[str, str | None]]:
    """The (object, colour or None) mentions in a caption, template or not: each object word, with the
    colour word right before it if there is one. Used by the CHAIR-style hallucination rate."""
    words = caption.split()
    out = []
    for i, w in enumerate(words):
        if w in OBJECTS:
            out.append((w, words[i - 1] if i > 0 and words[i - 1] in COLOURS else None))
    return out
