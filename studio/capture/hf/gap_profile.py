"""The representation-gap analysis of studio.studies.representation_gap, run on a Hugging Face VLM."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio.analysis import gap
from studio.analysis import hallucination as H
from studio.capture.activations import run_with_cache
from studio.data import scenes as S


def hf_gap_profile(
    vlm, n: int = 64, *, seed: int = 0, batch: int = 8, layers=None, template: str = "<image> {caption}"
) -> pd.DataFrame:
    """The same gap analysis on a Hugging Face VLM (a `studio.hf.VLMAdapter`, e.g. from `load_vlm`).

    Each held-out scene's first frame goes in with its caption and, separately, with its hallucinated
    caption. Per decoder layer: the gap between the mean of the visual tokens and the caption's last
    token (pool "eos"), a visual-vs-text probe, and `fh_pairwise` (is the scene's own caption's last
    token closer in cosine to the image's tokens than its hallucination's?). Captions pass through the
    model together with the image (a causal VLM's image tokens do not see the caption, so the visual
    side is the same in both runs). Returns rows layer, metric, value (as `measure`'s hidden rows).
    """
    bank = S.scene_bank(n, seed=seed + 1, split="test")
    images = [[np.ascontiguousarray(f[0].transpose(1, 2, 0))] for f in bank["frames"]]
    per_layer: dict[str, dict[str, list]] = {}
    for i in range(0, n, batch):
        for which, key in (("faithful", "captions"), ("hallucinated", "hallucinated")):
            texts = [template.format(caption=c) for c in bank[key][i : i + batch]]
            inputs = vlm.build_inputs(images[i : i + batch], texts)
            _, cache = run_with_cache(vlm, inputs, names_filter=layers, stop_early=True)
            for name in cache.layers:
                d = per_layer.setdefault(name, {"visual": [], "faithful": [], "hallucinated": []})
                if which == "faithful":
                    d["visual"].append(cache.pooled(name, "visual", "mean"))
                d[which].append(cache.pooled(name, "text", "last"))
    rows = []
    for depth, (name, d) in enumerate(per_layer.items()):
        v, t, h = (np.concatenate(d[k]) for k in ("visual", "faithful", "hallucinated"))
        for metric, value in (
            ("gap", gap.modality_gap(v, t)),
            ("vt_probe", gap.probe_separability(v, t, seed=seed)["accuracy"]),
            ("fh_pairwise", H.pairwise_separation(v, t, h)),
            ("fh_probe", gap.probe_separability(t, h, seed=seed, paired=True)["accuracy"]),
        ):
            rows.append({"layer": depth, "module": name, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)
