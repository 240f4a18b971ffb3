"""Galleries of scenes and multi-round dialogues that describe one of them, for conversational retrieval
(ChatSearch).

A gallery scene is a layout of 2-4 objects on the scenes' 3 x 3 grid (`studio.data.pairs.random_layout`,
one image). A dialogue describes a target over ROUNDS rounds, each adding one clue of four words:

    object      "object three - -"            the scene holds a three
    colour      "colour red - -"              something in it is red
    relation    "relation three left-of square"  (rows differ: above / below; else left-of / right-of)
    position    "position square top left"    row word (top middle bottom), column word (left centre right)
    reference   "like <image> - -"            followed by an image of the target's objects and colours
                                              in other cells (ChatSearch's image-referenced rounds)
    nothing     "ok - - -" / "hmm - - -" / "more - - -"   deliberately uninformative

A round is uninformative with probability `p_nothing`; at most one round per dialogue holds a reference
image. Deterministic from (seed, index): `make_dialogue(index, seed=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from studio.data import pairs as P
from studio.data import scenes as S

CLUE_TYPES = ("object", "colour", "relation", "position", "reference")
FILLERS = ("ok", "hmm", "more")
ROW_WORDS, COL_WORDS = ("top", "middle", "bottom"), ("left", "centre", "right")
ROUND_WORDS = 4
ROUNDS = 5  # rounds in a dialogue by default
IMAGE_SLOT = "<image>"  # the word the reference round's image follows


@dataclass(frozen=True)
class Dialogue:
    """rounds: ROUNDS texts of ROUND_WORDS words; kinds: each round's clue type ("nothing" for a filler);
    reference: (3, SIZE, SIZE) image of the reference round (zeros when the dialogue has none)."""

    rounds: tuple[str, ...]
    kinds: tuple[str, ...]
    reference: np.ndarray = field(hash=False)
    target: int = 0


def gallery_layouts(n: int, *, seed: int = 0, split: str = "test", start: int = 0) -> list[list[P.Item]]:
    """n layouts of 2-4 objects, deterministic from (seed, index)."""
    out = []
    for i in range(start, start + n):
        rng = np.random.default_rng([int(seed), int(i), 0 if split == "train" else 1, 23])
        out.append(P.random_layout(rng, int(rng.integers(P.MIN_OBJECTS, P.MAX_OBJECTS + 1)), split))
    return out


def render_gallery(layouts, *, seed: int = 0) -> np.ndarray:
    """(n, 3, SIZE, SIZE) images of layouts (noise drawn per (seed, index))."""
    return np.stack(
        [P.render_layout(items, np.random.default_rng([int(seed), i, 29]))[0] for i, items in enumerate(layouts)]
    )


def _relation(a: P.Item, b: P.Item) -> str:
    (ra, ca), (rb, cb) = divmod(a.cell, S.GRID), divmod(b.cell, S.GRID)
    if ra != rb:
        return "above" if ra < rb else "below"
    return "left-of" if ca < cb else "right-of"


def clue(kind: str, items: list[P.Item], rng: np.random.Generator) -> str:
    """One round's text of type `kind` about the layout `items`."""
    pick = lambda: items[int(rng.integers(len(items)))]  # noqa: E731
    if kind == "object":
        return f"object {S.OBJECTS[pick().obj]} - -"
    if kind == "colour":
        return f"colour {S.COLOURS[pick().colour]} - -"
    if kind == "relation":
        a, b = (items[int(i)] for i in rng.choice(len(items), size=2, replace=False))
        return f"relation {S.OBJECTS[a.obj]} {_relation(a, b)} {S.OBJECTS[b.obj]}"
    if kind == "position":
        it = pick()
        r, c = divmod(it.cell, S.GRID)
        return f"position {S.OBJECTS[it.obj]} {ROW_WORDS[r]} {COL_WORDS[c]}"
    if kind == "reference":
        return f"like {IMAGE_SLOT} - -"
    if kind == "nothing":
        return f"{FILLERS[int(rng.integers(len(FILLERS)))]} - - -"
    raise ValueError(f"unknown clue type {kind!r}; valid: {[*CLUE_TYPES, 'nothing']}")


def reference_image(items: list[P.Item], rng: np.random.Generator) -> np.ndarray:
    """The target's objects and colours (same scans) moved to other cells: what, not where."""
    cells = rng.choice(P.CELLS, size=len(items), replace=False)
    moved = [P.Item(it.obj, it.colour, int(c), it.image) for it, c in zip(items, cells)]
    return P.render_layout(moved, rng)[0]


def make_dialogue(
    index: int, items: list[P.Item], *, seed: int = 0, rounds: int = ROUNDS, p_nothing: float = 0.25, target: int = 0
) -> Dialogue:
    """The dialogue number `index` of stream `seed` about the layout `items` (gallery position `target`)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rng = np.random.default_rng([int(seed), int(index), 31])
    kinds, texts = [], []
    for _ in range(rounds):
        if rng.random() < p_nothing:
            kind = "nothing"
        else:
            options = [k for k in CLUE_TYPES if k != "reference" or "reference" not in kinds]
            kind = options[int(rng.integers(len(options)))]
        kinds.append(kind)
        texts.append(clue(kind, items, rng))
    ref = reference_image(items, rng) if "reference" in kinds else np.zeros((3, S.SIZE, S.SIZE), np.float32)
    return Dialogue(tuple(texts), tuple(kinds), ref, int(target))


def vocabulary() -> list[str]:
    """Every word of a round, specials first (the scenes' five), in a fixed order."""
    words = list(S.SPECIALS)
    for w in (
        "<query>",
        "-",
        "like",
        *CLUE_TYPES,
        *FILLERS,
        *S.COLOURS,
        *S.OBJECTS,
        *S.RELATIONS,
        *ROW_WORDS,
        *COL_WORDS,
    ):
        if w not in words:
            words.append(w)
    return words


@lru_cache(maxsize=1)
def word_ids() -> dict[str, int]:
    return {w: i for i, w in enumerate(vocabulary())}


def dialogue_bank(layouts, *, seed: int = 0, rounds: int = ROUNDS, p_nothing: float = 0.25, targets=None) -> dict:
    """Dialogues about `layouts` (all of them, or those at `targets`): round_ids (n, rounds, ROUND_WORDS)
    int64; has_reference (n, rounds) bool; references (n, 3, SIZE, SIZE) float32; kinds (n, rounds) str;
    target (n,) int64 positions in `layouts`."""
    targets = list(range(len(layouts))) if targets is None else [int(t) for t in targets]
    ids = word_ids()
    ds = [
        make_dialogue(i, layouts[t], seed=seed, rounds=rounds, p_nothing=p_nothing, target=t)
        for i, t in enumerate(targets)
    ]
    return {
        "round_ids": np.asarray([[[ids[w] for w in r.split()] for r in d.rounds] for d in ds], dtype=np.int64),
        "has_reference": np.asarray([[k == "reference" for k in d.kinds] for d in ds], dtype=bool),
        "references": np.stack([d.reference for d in ds]),
        "kinds": np.asarray([d.kinds for d in ds]),
        "target": np.asarray(targets, dtype=np.int64),
    }


QUERY = "<query>"  # the generative retriever's retrieval token, after every round


def interleave(round_ids: np.ndarray, has_reference: np.ndarray) -> dict[str, np.ndarray]:
    """The generative retriever's sequences: [<bos>] then per round its words, the 9 reference image slots
    after a reference round, and a <query> token. Right-padded with <pad> to one length.

    Returns ids (n, S) int64 (0 = <pad> at image slots too), slot (n, S) int64 (the reference image's cell
    0..8 at an image slot, else -1), query (n, rounds) int64 positions of the <query> tokens."""
    n, rounds, _ = round_ids.shape
    ids = word_ids()
    length = 1 + rounds * (ROUND_WORDS + 1) + (P.CELLS if has_reference.any() else 0)
    seq = np.zeros((n, length), np.int64)
    slot = np.full((n, length), -1, np.int64)
    query = np.zeros((n, rounds), np.int64)
    for i in range(n):
        pos = 0
        seq[i, pos], pos = ids["<bos>"], pos + 1
        for r in range(rounds):
            seq[i, pos : pos + ROUND_WORDS] = round_ids[i, r]
            pos += ROUND_WORDS
            if has_reference[i, r]:
                slot[i, pos : pos + P.CELLS] = np.arange(P.CELLS)
                pos += P.CELLS
            seq[i, pos], query[i, r] = ids[QUERY], pos
            pos += 1
    return {"ids": seq, "slot": slot, "query": query}
