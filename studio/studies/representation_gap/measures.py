"""The measurements of one trained captioner, and their cache.

`measure` computes every number the representation-gap study reads off a trained model (the gap, the
probes and the faithful-vs-hallucinated separations per layer and pooling, the heads' space, and the
greedy captions' scores) as rows {space, layer, pool, metric, value}. It costs about 2 s a model (the
probes and the greedy decoding), 20 s for the default nine models, so `cached_measure` keeps the rows
next to the model's cache key: a warm rerun of the notebook reads them, and a change to this code, the
analyses it calls or the model's own code measures again. The key leaves out the study's verdicts and
tables (they live in other modules), so editing those measures nothing again.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.analysis import gap
from studio.analysis import hallucination as H
from studio.cache import cached, code_fingerprint, load_checked
from studio.models import captioner as C
from studio.repro import stable_hash

# `config` below is the study's AblationConfig (probe_pools, n_generate and threads are read): not
# imported, not even for type checking, because the import would put the study's verdicts into this
# module's code fingerprint (grimp counts TYPE_CHECKING imports).

CACHE_KIND = "captioner-measures"


def measure(model: C.Captioner, data: dict, config, seed: int = 0) -> list[dict]:
    """Every measurement of one trained model, as rows {space, layer, pool, metric, value}."""
    feats, ids, hall = data["val"]
    rep = model.representations(feats, ids)
    rep_h = model.representations(feats, hall)
    n_layers = rep["visual_eos"].shape[1]
    rows = []

    def add(space, layer, pool, metric, value):
        rows.append({"space": space, "layer": layer, "pool": pool, "metric": metric, "value": float(value)})

    def four(space, layer, pool, v, t, h):  # the measures every (visual, caption, hallucination) triple gets
        for metric, value in (
            ("gap", gap.modality_gap(v, t)),
            ("vt_probe", gap.probe_separability(v, t, seed=seed)["accuracy"]),
            ("fh_pairwise", H.pairwise_separation(v, t, h)),
            ("matched_cosine", gap.matched_cosine(v, t)),
        ):
            add(space, layer, pool, metric, value)

    types = data["eval_bank"]["hallucination_type"]
    for pool in config.probe_pools:
        for layer in range(n_layers):
            v, t, h = rep[f"visual_{pool}"][:, layer], rep[f"text_{pool}"][:, layer], rep_h[f"text_{pool}"][:, layer]
            four("hidden", layer, pool, v, t, h)
            if layer == n_layers - 1:
                # captions alone, without the image: expected near 0.5 whatever the training
                add("hidden", layer, pool, "fh_probe", gap.probe_separability(t, h, seed=seed, paired=True)["accuracy"])
                for metric, value in H.separation_by_type(v, t, h, types).items():
                    add("hidden", layer, pool, metric, value)
    heads = model.projected(feats, ids)
    if heads is not None:
        (v, t), (_, h) = heads, model.projected(feats, hall)
        four("head", -1, "eos", v, t, h)
        for metric, value in H.separation_by_type(v, t, h, types).items():
            add("head", -1, "eos", metric, value)
        add("head", -1, "eos", "temperature", float(model.temperature.detach()))
    n, bank = config.n_generate, data["eval_bank"]  # greedy captions of the first n held-out scenes
    for k, value in H.caption_scores(model.generate(feats[:n]), list(bank["captions"][:n]), bank["slots"][:n]).items():
        add("output", -1, "-", k, value)
    return rows


def cached_measure(model: C.Captioner, model_folder: Path, data: dict, config, seed: int = 0, log=print) -> list[dict]:
    """`measure`, computed once per (model, held-out data, measurement settings, code) and read after.

    model_folder: the model's `cached_captioner` folder, whose name is the key of its config, seed,
    training data and code. The rows come back exactly (JSON keeps every float's digits).
    """
    feats, ids, hall = data["val"]
    bank = data["eval_bank"]
    key = {
        "model": Path(model_folder).name,
        "val": C.tensors_hash(feats, ids, hall),
        "bank": stable_hash([bank["captions"].tolist(), list(bank["slots"]), bank["hallucination_type"].tolist()], 16),
        "probe_pools": list(config.probe_pools),
        "n_generate": int(config.n_generate),
        "threads": config.threads,
        "seed": int(seed),
    }

    def build(folder: Path) -> None:
        rows = measure(model, data, config, seed=seed)
        (folder / "rows.json").write_text(json.dumps(rows) + "\n")

    folder = cached(CACHE_KIND, key, build, code=code_fingerprint(__name__), log=log)
    return load_checked(folder, lambda f: json.loads((f / "rows.json").read_text()))
