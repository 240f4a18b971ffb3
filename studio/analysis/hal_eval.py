"""Four-type hallucination metrics, discriminative (POPE-style) and generative (CHAIR-style), numpy only.

    pope(labels, yes)                                   # accuracy, precision, recall, f1, yes_ratio
    pope_table(types, labels, yes, scenes=...)          # per type, with bootstrap intervals over scenes
    generative_rates(captions, slots)                   # per type: instance and sentence rates, caption acc
    roc_auc(labels, scores)                             # the scorer's ranking quality

Positive = "yes, the statement matches the scene" (true statements). Captions are parsed leniently
(`parse`), so malformed generations are scored for what they do say.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from studio.data import scenes as S
from studio.stats import percentile_interval

POPE_METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")
TYPES = S.HALLUCINATION_TYPES
INVERSE = {"left-of": "right-of", "right-of": "left-of", "above": "below", "below": "above"}


def pope(labels, yes) -> dict[str, float]:
    """POPE's metrics with positive = yes: accuracy, precision, recall, f1, yes_ratio (NaN where undefined)."""
    y, p = np.asarray(labels, bool), np.asarray(yes, bool)
    if len(y) == 0:
        return dict.fromkeys(POPE_METRICS, float("nan"))
    tp, fp, fn = np.sum(y & p), np.sum(~y & p), np.sum(y & ~p)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {
        "accuracy": float(np.mean(y == p)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "yes_ratio": float(np.mean(p)),
    }


def _resample_weights(scenes, n_bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row -> scene index (n,), weights (R, n_scenes)): how often each scene is drawn per resample."""
    ids, inverse = np.unique(np.asarray(scenes), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(len(ids), size=(n_bootstrap, len(ids)))
    weights = np.zeros((n_bootstrap, len(ids)))
    np.add.at(weights, (np.arange(n_bootstrap)[:, None], draws), 1.0)
    return inverse, weights


def _pope_from_counts(c: np.ndarray) -> np.ndarray:
    """(..., 4) counts tp, fp, fn, tn -> (..., 5) POPE_METRICS, NaN where undefined."""
    tp, fp, fn, tn = np.moveaxis(c, -1, 0)
    n = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), np.nan)
        acc = np.where(n > 0, (tp + tn) / n, np.nan)
        yes = np.where(n > 0, (tp + fp) / n, np.nan)
    return np.stack([acc, precision, recall, f1, yes], -1)


def pope_table(types, labels, yes, *, scenes=None, n_bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per hallucination type, POPE's metrics with a percentile bootstrap over scenes (all statements of a
    resampled scene go together). Rows: type, metric, value, ci_low, ci_high."""
    types, labels, yes = np.asarray(types), np.asarray(labels, bool), np.asarray(yes, bool)
    scenes = np.arange(len(types)) if scenes is None else np.asarray(scenes)
    rows = []
    for kind in [t for t in TYPES if t in set(types)]:
        m = types == kind
        lab, ans = labels[m], yes[m]
        inverse, weights = _resample_weights(scenes[m], n_bootstrap, seed)
        cells = np.stack([lab & ans, ~lab & ans, lab & ~ans, ~lab & ~ans], 1).astype(float)
        per_scene = np.zeros((weights.shape[1], 4))
        np.add.at(per_scene, inverse, cells)
        point = _pope_from_counts(per_scene.sum(0))
        boots = _pope_from_counts(weights @ per_scene)
        for k, metric in enumerate(POPE_METRICS):
            col = boots[:, k][np.isfinite(boots[:, k])]
            lo, hi = percentile_interval(col) if len(col) else (np.nan, np.nan)
            rows.append({"type": kind, "metric": metric, "value": float(point[k]), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["type", "metric", "value", "ci_low", "ci_high"])


def best_threshold(scores, labels) -> float:
    """The threshold t maximising the accuracy of "yes when score > t" (midpoint between neighbours)."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    order = np.argsort(s)
    s, y = s[order], y[order]
    # "no" for the first k sorted scores: correct = negatives among them + positives after them
    correct = np.concatenate([[0], np.cumsum(~y)]) + (y.sum() - np.concatenate([[0], np.cumsum(y)]))
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0] - 1.0)
    if k == len(s):
        return float(s[-1])
    return float((s[k - 1] + s[k]) / 2)


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counting half); NaN without both classes."""
    y, s = np.asarray(labels, bool), np.asarray(scores, float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------------------------------------------
# Generative: what a caption says, and which of it is false


def parse(caption: str) -> dict:
    """What a caption claims, read leniently from left to right.

    mentions: [(colour or None, object)] in order; relations: [(i, relation, j)] between mentions i and
    j (the mentions just before and after the relation word); events: [(actor mention or None, move)]
    where the actor is the mention right before "moves", or the first mention when it is "it".
    """
    words = caption.split()
    mentions, relations, events = [], [], []
    pending_relation = None
    for k, w in enumerate(words):
        if w in S.OBJECTS:
            colour = words[k - 1] if k > 0 and words[k - 1] in S.COLOURS else None
            mentions.append((colour, w))
            if pending_relation is not None:
                relations.append((pending_relation[0], pending_relation[1], len(mentions) - 1))
                pending_relation = None
        elif w in S.RELATIONS and mentions:
            pending_relation = (len(mentions) - 1, w)
        elif w in S.EVENTS and k > 0 and words[k - 1] == "moves":
            before = words[k - 2] if k > 1 else None
            if before == "it":
                actor = 0 if mentions else None
            elif before in S.OBJECTS:
                actor = len(mentions) - 1
            else:
                actor = None
            events.append((actor, w))
    return {"mentions": mentions, "relations": relations, "events": events}


def judge(caption: str, slots: dict) -> dict[str, tuple[int, int]]:
    """Per type, (hallucinated instances, instances) in one caption against its scene's slots.

    object: object mentions not in the scene. attribute: colours given to objects that are in the scene,
    wrong. relation: relations between two present objects, false in the scene. event: "moves" clauses
    whose actor is absent from the scene, not the object that moved, or whose move is wrong.
    """
    present = {slots["object1"]: slots["colour1"], slots["object2"]: slots["colour2"]}
    truth = {
        (slots["object1"], slots["relation"], slots["object2"]),
        (slots["object2"], INVERSE[slots["relation"]], slots["object1"]),
    }
    p = parse(caption)
    ment = p["mentions"]
    out = {t: [0, 0] for t in TYPES}
    for colour, obj in ment:
        out["object"][1] += 1
        out["object"][0] += obj not in present
        if colour is not None and obj in present:
            out["attribute"][1] += 1
            out["attribute"][0] += colour != present[obj]
    for i, rel, j in p["relations"]:
        a, b = ment[i][1], ment[j][1]
        if a in present and b in present and a != b:
            out["relation"][1] += 1
            out["relation"][0] += (a, rel, b) not in truth
    for actor, move in p["events"]:
        out["event"][1] += 1
        if actor is None:
            out["event"][0] += 1
            continue
        # the actor's colour is the attribute count's business: an event is about who moves, and where
        out["event"][0] += ment[actor][1] != slots["object1"] or move != slots["event"]
    return {t: (v[0], v[1]) for t, v in out.items()}


def generative_rates(captions, slots: list[dict]) -> dict[str, float]:
    """CHAIR-style rates per type over captions: <type>_instance (hallucinated / all instances of the type,
    corpus level), <type>_sentence (captions with at least one hallucination of the type / all captions),
    any_sentence (captions with any hallucination), caption_accuracy (exact true caption) and
    slot_accuracy (the template's six slot words right, position by position)."""
    counts = {t: np.zeros(2) for t in TYPES}
    sentence = {t: 0 for t in TYPES}
    anyh = exact = 0
    slot_hits = []
    for text, sl in zip(captions, slots):
        j = judge(text, sl)
        for t, (bad, n) in j.items():
            counts[t] += (bad, n)
            sentence[t] += bad > 0
        anyh += any(bad for bad, _ in j.values())
        truth = S.render(sl)
        exact += text == truth
        w, tw = text.split(), truth.split()
        slot_hits.append(np.mean([len(w) > k and w[k] == tw[k] for k in S.SLOT_POSITION.values()]))
    n = max(len(slots), 1)
    out = {}
    for t in TYPES:
        bad, total = counts[t]
        out[f"{t}_instance"] = float(bad / total) if total else float("nan")
        out[f"{t}_sentence"] = sentence[t] / n
    out["any_sentence"] = anyh / n
    out["caption_accuracy"] = exact / n
    out["slot_accuracy"] = float(np.mean(slot_hits)) if slot_hits else float("nan")
    return out


def generative_table(
    captions, slots: list[dict], *, scenes=None, n_bootstrap: int = 200, seed: int = 0
) -> pd.DataFrame:
    """`generative_rates` as rows type, metric ("instance", "sentence"; type "all": "any_sentence",
    "caption_accuracy"), value, ci_low, ci_high, with a percentile bootstrap over scenes (the captions of a
    resampled scene go together; `scenes` defaults to one scene per caption)."""
    n = len(captions)
    scenes = np.arange(n) if scenes is None else np.asarray(scenes)
    judged = [judge(c, s) for c, s in zip(captions, slots)]
    bad = np.array([[j[t][0] for t in TYPES] for j in judged], float).reshape(n, len(TYPES))
    tot = np.array([[j[t][1] for t in TYPES] for j in judged], float).reshape(n, len(TYPES))
    exact = np.array([c == S.render(s) for c, s in zip(captions, slots)], float)
    # per caption: bad and total instances per type, a sentence flag per type, any, exact, and a count of 1
    cells = np.concatenate([bad, tot, bad > 0, (bad.sum(1) > 0)[:, None], exact[:, None], np.ones((n, 1))], 1)
    names = [(t, "instance") for t in TYPES] + [(t, "sentence") for t in TYPES]
    names += [("all", "any_sentence"), ("all", "caption_accuracy")]
    k = len(TYPES)

    def rates(c: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            inst = np.where(c[..., k : 2 * k] > 0, c[..., :k] / c[..., k : 2 * k], np.nan)
            rest = c[..., 2 * k : 3 * k + 2] / c[..., -1:]
        return np.concatenate([inst, rest], -1)

    if n == 0:
        return pd.DataFrame(
            [{"type": t, "metric": m, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan} for t, m in names]
        )
    inverse, weights = _resample_weights(scenes, n_bootstrap, seed)
    per_scene = np.zeros((weights.shape[1], cells.shape[1]))
    np.add.at(per_scene, inverse, cells)
    point, boots = rates(per_scene.sum(0)), rates(weights @ per_scene)
    rows = []
    for j, (kind, metric) in enumerate(names):
        col = boots[:, j][np.isfinite(boots[:, j])]
        lo, hi = percentile_interval(col) if len(col) else (np.nan, np.nan)
        rows.append({"type": kind, "metric": metric, "value": float(point[j]), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["type", "metric", "value", "ci_low", "ci_high"])
