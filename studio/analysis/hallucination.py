"""Hallucination measures on captions and paired representations (numpy only).

    pairwise_separation(visual, faithful, hallucinated)   # 0.5 entangled ... 1 separated
    chair(captions, slots)                                 # CHAIR-style rates of generated captions
    caption_scores(generated, truth, slots)                # exact match, per-slot accuracy, CHAIR

Captions are those of `studio.data.scenes` (fixed template, six slot words).
"""

from __future__ import annotations

import numpy as np

from studio.analysis.gap import normalize
from studio.data import scenes as S


def pairwise_separation(visual, faithful, hallucinated) -> float:
    """Share of rows i with cos(visual_i, faithful_i) > cos(visual_i, hallucinated_i), ties counting
    one half. (n, width) x 3 -> float.

    0.5 when the representation cannot tell a scene's caption from its one-slot hallucination (or
    cannot see the caption at all, as the embedding layer's EOS), 1 when it always can.
    """
    v, f, h = normalize(visual), normalize(faithful), normalize(hallucinated)
    sf, sh = np.sum(v * f, 1), np.sum(v * h, 1)
    tie = np.isclose(sf, sh, rtol=0.0, atol=1e-6)
    return float(np.mean(np.where(tie, 0.5, sf > sh)))


def chair(captions, slots: list[dict]) -> dict[str, float]:
    """CHAIR-style hallucination rates of generated captions against their scenes' slots.

    An object mention is hallucinated when the object is not in the scene; an attribute mention
    (colour, object) when the object is absent or has another colour. Returns chair (all mentions),
    chair_object, chair_attribute, and the mean number of mentions per caption.
    """
    n_obj = n_attr = bad_obj = bad_attr = 0
    for text, sl in zip(captions, slots):
        present = {sl["object1"]: sl["colour1"], sl["object2"]: sl["colour2"]}
        for obj, colour in S.mentions(text):
            n_obj += 1
            bad_obj += obj not in present
            if colour is not None:
                n_attr += 1
                bad_attr += present.get(obj) != colour
    total = n_obj + n_attr
    nan = float("nan")
    return {
        "chair": (bad_obj + bad_attr) / total if total else nan,
        "chair_object": bad_obj / n_obj if n_obj else nan,
        "chair_attribute": bad_attr / n_attr if n_attr else nan,
        "mentions_per_caption": total / max(len(slots), 1),
    }


def caption_scores(generated: list[str], truth: list[str], slots: list[dict]) -> dict[str, float]:
    """Generated captions against the true ones: gen_exact (whole caption right), gen_<slot> (the
    slot word right, per slot of the template) and the `chair` rates."""
    out = {"gen_exact": float(np.mean([g == t for g, t in zip(generated, truth)]))}
    for slot, pos in S.SLOT_POSITION.items():
        out[f"gen_{slot}"] = float(
            np.mean([len(g.split()) > pos and g.split()[pos] == t.split()[pos] for g, t in zip(generated, truth)])
        )
    out.update(chair(generated, slots))
    return out


def separation_by_type(visual, faithful, hallucinated, types, kinds=S.HALLUCINATION_TYPES) -> dict[str, float]:
    """`pairwise_separation` of the rows of each hallucination type: {"fh_pairwise_<kind>": share}.
    (n, width) x 3 and types (n,) -> dict, in the order of `kinds`."""
    types = np.asarray(types)
    return {
        f"fh_pairwise_{k}": pairwise_separation(visual[types == k], faithful[types == k], hallucinated[types == k])
        for k in kinds
    }
