"""Image pairs with planted differences, for difference captioning and grounding (OneDiff, DiffGround).

A layout puts 2-4 objects (the scenes' digits and shapes, `studio.data.scenes.OBJECTS`, each in one of
its COLOURS) in distinct cells of the scenes' 3 x 3 grid of 8 x 8 cells. A pair is a layout (`before`)
and a copy of it (`after`) with 0-3 planted changes, each of a different type:

    replaced  an object becomes another kind of object, same cell, same colour
    colour    an object takes another colour
    added     an object appears in an empty cell
    removed   an object disappears
    moved     an object moves one cell (up, down, left or right) into an empty cell

Each change knows its grid cells (row-major indices 0..8; a move touches two) and a description of four
words, `kind colour object detail`, e.g. "colour red three blue", "moved red three up",
"added blue square -", "removed red three -", "replaced red three square"; a pair with no change of the
asked type is described "none - - -". The instruction asks about one type of change ("where did the
colour change?" is the two words "where colour"): a present one when the pair has changes, any type
when it has none. Unchanged objects keep their scan in both images; the pixel noise is drawn per image.

Everything is deterministic from (seed, index): `make_pair(index, seed=..., split=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from studio.data import scenes as S
from studio.data.scenes import _draw  # the scenes' own object drawing (shape masks, digit scans)

CHANGE_TYPES = ("replaced", "colour", "added", "removed", "moved")
MAX_CHANGES = 3  # a 3 x 3 grid with up to 4 objects holds three changes of distinct types
MIN_OBJECTS, MAX_OBJECTS = 2, 4
CELLS = S.GRID * S.GRID
NONE, BLANK = "none", "-"
DESCRIPTION_LENGTH = 4  # kind colour object detail
INSTRUCTION = ("where", "{kind}")
NEEDS_OBJECT = ("replaced", "colour", "removed", "moved")  # types that change an existing object


@dataclass(frozen=True)
class Change:
    """One planted change: its type, the cells it touches (row-major) and its four-word description."""

    kind: str
    cells: tuple[int, ...]
    description: str


@dataclass(frozen=True)
class Pair:
    """before / after (3, SIZE, SIZE) float32 images; cell_object / cell_colour (2, GRID, GRID) labels
    (0 = empty) of the two images; changes; the asked type and the answer to it (description, cells)."""

    before: np.ndarray
    after: np.ndarray
    cell_object: np.ndarray
    cell_colour: np.ndarray
    changes: tuple[Change, ...] = field(hash=False)
    asked: str = NONE
    index: int = 0
    seed: int = 0

    @property
    def answer(self) -> Change:
        """The change the instruction asks about, or a "none" change with no cells."""
        for c in self.changes:
            if c.kind == self.asked:
                return c
        return Change(NONE, (), " ".join([NONE] + [BLANK] * (DESCRIPTION_LENGTH - 1)))

    @property
    def instruction(self) -> str:
        return f"where {self.asked}"


def check_changes(n_changes: int, kinds=CHANGE_TYPES) -> tuple[str, ...]:
    """The change types to draw from, refusing an unknown type or a count the scene cannot hold."""
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in CHANGE_TYPES]
    if unknown:
        raise ValueError(f"unknown change type(s) {unknown}; valid: {list(CHANGE_TYPES)}")
    if not 0 <= int(n_changes) <= MAX_CHANGES:
        raise ValueError(
            f"n_changes={n_changes}: a {S.GRID} x {S.GRID} scene with at most {MAX_OBJECTS} objects holds "
            f"0..{MAX_CHANGES} planted changes"
        )
    if int(n_changes) > len(set(kinds)):
        raise ValueError(f"n_changes={n_changes} needs {n_changes} distinct change types, got kinds {list(kinds)}")
    return kinds


# ---------------------------------------------------------------------------------------------------
# Layouts: objects in cells, rendered like the scenes


@dataclass
class Item:
    obj: int  # index into S.OBJECTS
    colour: int  # index into S.COLOURS
    cell: int  # row-major
    image: np.ndarray  # (CELL, CELL) intensity map


def random_layout(rng: np.random.Generator, n_objects: int, split: str) -> list[Item]:
    """n_objects distinct kinds of object in distinct cells, each in a random colour."""
    kinds = rng.choice(len(S.OBJECTS), size=n_objects, replace=False)
    cells = rng.choice(CELLS, size=n_objects, replace=False)
    colours = rng.integers(len(S.COLOURS), size=n_objects)
    return [
        Item(int(k), int(c), int(p), _draw(S.OBJECTS[int(k)], rng, split)) for k, c, p in zip(kinds, colours, cells)
    ]


def render_layout(items: list[Item], rng: np.random.Generator, noise: float = 0.04):
    """(image (3, SIZE, SIZE) float32, cell_object (GRID, GRID), cell_colour (GRID, GRID)) of a layout."""
    img = np.zeros((3, S.SIZE, S.SIZE), np.float32)
    obj = np.zeros((S.GRID, S.GRID), np.int64)
    col = np.zeros((S.GRID, S.GRID), np.int64)
    for it in items:
        r, c = divmod(it.cell, S.GRID)
        y, x = r * S.CELL, c * S.CELL
        img[:, y : y + S.CELL, x : x + S.CELL] = (
            it.image[None] * np.asarray(S.RGB[S.COLOURS[it.colour]], np.float32)[:, None, None]
        )
        obj[r, c], col[r, c] = it.obj + 1, it.colour + 1
    if noise > 0:
        img = np.clip(img + rng.normal(0.0, noise, img.shape).astype(np.float32), 0.0, 1.0)
    return img, obj, col


def _step(cell: int, direction: str) -> int | None:
    r, c = divmod(cell, S.GRID)
    dr, dc = S.STEP[direction]
    r, c = r + dr, c + dc
    return r * S.GRID + c if 0 <= r < S.GRID and 0 <= c < S.GRID else None


# ---------------------------------------------------------------------------------------------------
# Pairs


def _plant(kind: str, items: list[Item], touched: set[int], rng, split: str) -> Change | None:
    """Apply one change of `kind` to `items` (in place), away from `touched` cells; None if impossible."""
    occupied = {it.cell for it in items}
    free = [p for p in range(CELLS) if p not in occupied and p not in touched]
    movable = [i for i, it in enumerate(items) if it.cell not in touched]
    words = lambda it: f"{S.COLOURS[it.colour]} {S.OBJECTS[it.obj]}"  # noqa: E731
    if kind == "added":
        if not free:
            return None
        present = {it.obj for it in items}
        k = int(rng.choice([o for o in range(len(S.OBJECTS)) if o not in present]))
        it = Item(k, int(rng.integers(len(S.COLOURS))), int(rng.choice(free)), _draw(S.OBJECTS[k], rng, split))
        items.append(it)
        return Change(kind, (it.cell,), f"added {words(it)} {BLANK}")
    if not movable:
        return None
    i = int(rng.choice(movable))
    it = items[i]
    if kind == "removed":
        items.pop(i)
        return Change(kind, (it.cell,), f"removed {words(it)} {BLANK}")
    if kind == "colour":
        new = int(rng.choice([c for c in range(len(S.COLOURS)) if c != it.colour]))
        before = words(it)
        it.colour = new
        return Change(kind, (it.cell,), f"colour {before} {S.COLOURS[new]}")
    if kind == "replaced":
        present = {x.obj for x in items}
        new = int(rng.choice([o for o in range(len(S.OBJECTS)) if o not in present]))
        before = words(it)
        it.obj, it.image = new, _draw(S.OBJECTS[new], rng, split)
        return Change(kind, (it.cell,), f"replaced {before} {S.OBJECTS[new]}")
    # moved: one step into a free, untouched cell
    options = [(d, _step(it.cell, d)) for d in S.EVENTS]
    options = [(d, q) for d, q in options if q is not None and q in free]
    if not options:
        return None
    d, q = options[int(rng.integers(len(options)))]
    before = words(it)
    origin = it.cell
    it.cell = q
    return Change(kind, (origin, q), f"moved {before} {d}")


def make_pair(
    index: int,
    *,
    seed: int = 0,
    split: str = "train",
    n_changes: int | None = None,
    kinds=CHANGE_TYPES,
    noise: float = 0.04,
) -> Pair:
    """Pair number `index` of stream `seed`: n_changes (None: drawn from 0..MAX_CHANGES) of distinct types
    drawn from `kinds`, planted into a layout of 2-4 objects. Refuses an unknown type or an impossible count."""
    kinds = check_changes(0 if n_changes is None else n_changes, kinds)
    rng = np.random.default_rng([int(seed), int(index), 0 if split == "train" else 1, 17])
    if n_changes is None:
        n_changes = int(rng.integers(min(MAX_CHANGES, len(set(kinds))) + 1))
    for _ in range(100):  # a drawn combination that does not fit (no free neighbour to move to) is redrawn
        types = [str(k) for k in rng.choice(sorted(set(kinds)), size=n_changes, replace=False)]
        need = sum(t in NEEDS_OBJECT for t in types)
        n_objects = int(rng.integers(max(MIN_OBJECTS, need), MAX_OBJECTS + 1))
        items = random_layout(rng, n_objects, split)
        before_items = [Item(it.obj, it.colour, it.cell, it.image) for it in items]
        touched: set[int] = set()
        changes = []
        for t in types:
            ch = _plant(t, items, touched, rng, split)
            if ch is None:
                break
            touched |= set(ch.cells)
            changes.append(ch)
        if len(changes) == n_changes:
            break
    else:  # pragma: no cover - 100 failed draws do not happen with these sizes
        raise RuntimeError(f"could not plant {n_changes} changes of types {kinds} in pair {index}")
    asked = changes[int(rng.integers(len(changes)))].kind if changes else CHANGE_TYPES[int(rng.integers(5))]
    img_b, obj_b, col_b = render_layout(before_items, rng, noise)
    img_a, obj_a, col_a = render_layout(items, rng, noise)
    return Pair(
        before=img_b,
        after=img_a,
        cell_object=np.stack([obj_b, obj_a]),
        cell_colour=np.stack([col_b, col_a]),
        changes=tuple(changes),
        asked=asked,
        index=int(index),
        seed=int(seed),
    )


# ---------------------------------------------------------------------------------------------------
# Tokens and banks


def vocabulary() -> list[str]:
    """Every word of an instruction or a description, specials first (the scenes' five), fixed order."""
    words = list(S.SPECIALS)
    for w in ("answer", "where", NONE, BLANK, *CHANGE_TYPES, *S.COLOURS, *S.OBJECTS, *S.EVENTS):
        if w not in words:
            words.append(w)
    return words


@lru_cache(maxsize=1)
def word_ids() -> dict[str, int]:
    return {w: i for i, w in enumerate(vocabulary())}


def encode_words(texts) -> np.ndarray:
    """(n, words) int64 ids of space-separated texts of equal length; an unknown word is refused."""
    ids = word_ids()
    rows = [t.split() for t in texts]
    bad = sorted({w for r in rows for w in r if w not in ids})
    if bad:
        raise ValueError(f"word(s) {bad} not in the pairs vocabulary")
    return np.asarray([[ids[w] for w in r] for r in rows], dtype=np.int64)


def decode_words(ids) -> str:
    words = vocabulary()
    return " ".join(words[int(i)] for i in ids)


def pair_bank(n: int, *, seed: int = 0, split: str = "train", start: int = 0, kinds=CHANGE_TYPES) -> dict:
    """n pairs as arrays: images (n, 2, 3, SIZE, SIZE) float32 (before, after); instruction_ids (n, 2);
    description_ids (n, DESCRIPTION_LENGTH); changed (n, CELLS) 0/1 cells of the asked change; asked (n,) str
    (the type, or "none"); n_changes (n,); descriptions (n,) str."""
    pairs = [make_pair(start + i, seed=seed, split=split, kinds=kinds) for i in range(n)]
    changed = np.zeros((n, CELLS), np.int64)
    for i, p in enumerate(pairs):
        changed[i, list(p.answer.cells)] = 1
    return {
        "images": np.stack([np.stack([p.before, p.after]) for p in pairs]),
        "instruction_ids": encode_words([p.instruction for p in pairs]),
        "description_ids": encode_words([p.answer.description for p in pairs]),
        "descriptions": np.asarray([p.answer.description for p in pairs]),
        "changed": changed,
        "asked": np.asarray([p.answer.kind for p in pairs]),
        "n_changes": np.asarray([len(p.changes) for p in pairs]),
    }
