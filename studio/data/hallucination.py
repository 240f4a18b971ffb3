"""The four-type hallucination benchmark and the noisy caption corpus of the AITQE ablation (numpy only).

    table = statements(200, seed=1, split="test")     # balanced yes/no statements, per type
    corpus = noisy_corpus(slots, rate=0.3, seed=0)     # captions with a controlled share of bad ones
    check_captions(["a red three ..."])                # refuses the first row that does not fit, by number

Statements follow the event-hallucination benchmark (Hal-Eval): every hallucinated statement has one
type, and the scene's true statement of the same form is its positive.
- object, attribute, relation: the template caption with one slot swapped (`scenes.hallucinate`) against
  the true caption;
- event: a *narrative* ("... then a green circle moves up"): an entity absent from the scene (an object
  not in it, with a colour) doing an action of the scene vocabulary, against the true narrative that
  names the object that really moved ("... then a red three moves up"). A narrative has 13 words.

The corpus of the AITQE ablation takes each training scene's caption and, for a share `rate` of the
rows, makes it low quality in one of CORRUPTIONS ways: a hallucinated slot of each type, a truncation
(the first 3 to 8 words), or the caption of another scene. Everything is deterministic from the seeds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from studio.data import scenes as S

TYPES = S.HALLUCINATION_TYPES  # object, attribute, relation, event
NARRATIVE_LENGTH = S.CAPTION_LENGTH + 2  # "then it moves up" -> "then a green circle moves up"
LENGTHS = (S.CAPTION_LENGTH, NARRATIVE_LENGTH)  # the lengths a statement can have
CORRUPTIONS = ("object", "attribute", "relation", "event", "truncation", "other_scene")
TRUNCATE = (3, 9)  # a truncated caption keeps between 3 and 8 of its words
CLEAN = "clean"


def narrative(slots: dict, colour: str, obj: str, event: str) -> str:
    """The caption of `slots` whose last clause names its actor: "... then a {colour} {obj} moves {event}"."""
    head = S.render(slots).split()[: S.SLOT_POSITION["object2"] + 1]
    return " ".join([*head, "then", "a", colour, obj, "moves", event])


def true_narrative(slots: dict) -> str:
    """The true narrative: the object that moved (object 1), its colour and its move."""
    return narrative(slots, slots["colour1"], slots["object1"], slots["event"])


def event_hallucination(slots: dict, rng: np.random.Generator) -> str:
    """A narrative event hallucination: an object absent from the scene, in some colour, making some move."""
    absent = [o for o in S.OBJECTS if o not in (slots["object1"], slots["object2"])]
    obj = absent[int(rng.integers(len(absent)))]
    colour = S.COLOURS[int(rng.integers(len(S.COLOURS)))]
    event = S.EVENTS[int(rng.integers(len(S.EVENTS)))]
    return narrative(slots, colour, obj, event)


def statement_pair(slots: dict, kind: str, rng: np.random.Generator) -> tuple[str, str]:
    """(true statement, hallucinated statement) of type `kind` for one scene."""
    if kind == "event":
        return true_narrative(slots), event_hallucination(slots, rng)
    new, _ = S.hallucinate(slots, kind, rng)
    return S.render(slots), S.render(new)


def statements(n: int, *, seed: int = 0, split: str = "test", start: int = 0, slots: list | None = None) -> dict:
    """Balanced yes/no statements about n scenes: per scene and type one true and one hallucinated.

    Returns arrays of length 8n, scene-major: scene (index into the n scenes), type, label (1 = true,
    0 = hallucinated), statement (str). `slots` (the scenes' slot dicts) skips rebuilding the scenes.
    """
    if slots is None:
        slots = [S.make_scene(start + i, seed=seed, split=split).slots for i in range(n)]
    rows = {"scene": [], "type": [], "label": [], "statement": []}
    for i, sl in enumerate(slots[:n]):
        rng = np.random.default_rng([int(seed), int(start + i), 13])
        for kind in TYPES:
            for label, text in zip((1, 0), statement_pair(sl, kind, rng)):
                rows["scene"].append(i)
                rows["type"].append(kind)
                rows["label"].append(label)
                rows["statement"].append(text)
    return {k: np.asarray(v) for k, v in rows.items()}


# ---------------------------------------------------------------------------------------------------
# Captions that fit, or a refusal that names the first row that does not


def caption_problem(caption: str, lengths=LENGTHS) -> str | None:
    """Why `caption` does not fit the scene vocabulary and lengths, or None when it does."""
    if not isinstance(caption, str):
        return f"not a string ({type(caption).__name__})"
    words = caption.split()
    known = set(S.vocabulary()) - set(S.SPECIALS)
    unknown = [w for w in words if w not in known]
    if unknown:
        return (
            f"unknown word {unknown[0]!r} (the scene vocabulary has {len(known)} words, e.g. 'red', 'three', 'left-of')"
        )
    if len(words) not in lengths:
        return f"{len(words)} words; a caption here has {' or '.join(map(str, lengths))}"
    return None


def check_captions(captions, lengths=LENGTHS, what: str = "caption") -> list[str]:
    """The captions as a list of str, or ValueError naming the first row that does not fit."""
    captions = list(captions)
    for i, c in enumerate(captions):
        problem = caption_problem(c, lengths)
        if problem:
            raise ValueError(f"{what} row {i} ({str(c)[:60]!r}) does not fit: {problem}")
    return captions


def read_captions(path, lengths=LENGTHS) -> list[str]:
    """Captions from a text file (one per line) or a CSV with a `caption` column, checked row by row.

    Rows are numbered from 0 over the captions (blank lines of a text file are skipped and not counted).
    """
    path = Path(path)
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if "caption" not in (reader.fieldnames or []):
                raise ValueError(f"{path}: a caption CSV needs a 'caption' column, found {reader.fieldnames}")
            captions = [r["caption"].strip() for r in reader]
    else:
        captions = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return check_captions(captions, lengths, what=f"{path.name}:")


# ---------------------------------------------------------------------------------------------------
# The noisy corpus of the AITQE ablation


def corrupt(slots: dict, kind: str, rng: np.random.Generator, other: dict | None = None) -> str:
    """A low-quality caption of `slots`: one of CORRUPTIONS (other_scene needs `other`'s slots)."""
    if kind in TYPES:
        return S.render(S.hallucinate(slots, kind, rng)[0])
    if kind == "truncation":
        keep = int(rng.integers(*TRUNCATE))
        return " ".join(S.render(slots).split()[:keep])
    if kind == "other_scene":
        if other is None:
            raise ValueError("an other_scene corruption needs the other scene's slots")
        return S.render(other)
    raise ValueError(f"unknown corruption {kind!r}; valid: {list(CORRUPTIONS)}")


def noisy_corpus(slots: list[dict], rate: float, *, seed: int = 0, kinds=CORRUPTIONS) -> dict:
    """The scenes' captions with a share `rate` of rows corrupted, the kinds in equal shares.

    Exactly round(rate * n) rows are corrupted, chosen at random; kinds cycle over those rows in a
    random order. Returns captions (n,) str, original (n,) str (the true captions) and kind (n,) str
    ("clean" or one of `kinds`).
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    bad = [k for k in kinds if k not in CORRUPTIONS]
    if bad:
        raise ValueError(f"unknown corruption(s) {bad}; valid: {list(CORRUPTIONS)}")
    n = len(slots)
    rng = np.random.default_rng([int(seed), 31])
    chosen = rng.permutation(n)[: int(round(rate * n))]
    kind = np.full(n, CLEAN, dtype=object)
    kind[chosen] = [kinds[i % len(kinds)] for i in range(len(chosen))]
    original = [S.render(s) for s in slots]
    captions = list(original)
    for i in chosen:
        r = np.random.default_rng([int(seed), int(i), 37])
        other = slots[(i + 1 + int(r.integers(n - 1))) % n] if n > 1 else slots[i]
        captions[i] = corrupt(slots[i], kind[i], r, other)
    return {"captions": np.asarray(captions), "original": np.asarray(original), "kind": kind.astype(str)}


def word_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two captions counted in words (insert, delete, substitute)."""
    x, y = a.split(), b.split()
    prev = list(range(len(y) + 1))
    for i, wx in enumerate(x, 1):
        cur = [i]
        for j, wy in enumerate(y, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wx != wy)))
        prev = cur
    return prev[-1]
