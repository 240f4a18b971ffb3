"""Hallucination at small scale: a four-type benchmark (object, attribute, relation, event) and AITQE's ablation.

    cfg = HallucinationConfig.from_dict({...})
    data = prepare(cfg)                              # representation_gap's scenes and features, the benchmark
    bench = run_benchmark(cfg, data)                 # its three captioner arms (loaded from its cache), scored
    aitqe = run_aitqe(cfg, data)                     # scorers, data policies, downstream captioners, scored
    save_verdicts(verdicts(bench, aitqe), "hallucination")  # studio.verdicts' one rule, gates named

The benchmark (Hal-Eval's framework, `studio.data.hallucination`): per held-out scene, for each type one
true and one hallucinated statement (event = a narrative about an entity absent from the scene); a model
answers yes/no (POPE's metrics per type) and writes a caption (CHAIR-style instance and sentence rates per
type, and caption accuracy). The tiny captioners are representation_gap's three arms under its notebook's
default configuration, so after that notebook they load from the cache.

AITQE in miniature (`studio.models.quality_scorer`): a training corpus of representation_gap's training
scenes with a share `rate` of low-quality captions; a quality scorer trained with or without hard negatives
(AUC per corruption type on held-out pairs); three data policies at equal training steps (keep, filter
below the threshold, rewrite the flagged captions' slots); per policy the data volume, the text shift and
the downstream captioner's hallucination rates.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from studio.analysis import hal_eval as A
from studio.data import hallucination as D
from studio.models import captioner as C
from studio.models import cell_encoder as E
from studio.repro import cpu_threads
from studio.studies import representation_gap as rg
from studio.studies.hallucination.aitqe import (  # noqa: F401
    apply_policy,
    auc_table,
    auc_tolerance,
    downstream_long,
    downstream_table,
    downstream_tolerance,
    heldout_pairs,
    interval_tolerance,
    policy_tolerance,
    run_aitqe,
)
from studio.studies.hallucination.benchmark import (  # noqa: F401  (the notebook's and tests' names)
    bench_rows,
    check_captioner_fits,
    corpus_ids,
    evaluate_captioner,
    statement_scores,
)
from studio.studies.hallucination.config import (  # noqa: F401
    GAP_DEFAULT,
    POLICIES,
    SCORER_ARMS,
    TYPES,
    HallucinationConfig,
)
from studio.studies.hallucination.verdicts import (  # noqa: F401
    AITQE_PAPER,
    ANSWERED_MARGIN,
    AUC_CHANCE,
    EVENT_MIN_EFFECT,
    EVENT_PAPER,
    NEGATIVES_MIN_EFFECT,
    REWRITE_MIN_EFFECT,
    SCORER_MARGIN,
    YES_NO_CHANCE,
    verdict_event_hardest,
    verdict_negatives,
    verdict_rewrite,
    verdicts,
)


def prepare(config: HallucinationConfig | dict, log=print) -> dict:
    """representation_gap's data (train / val tensors, eval scenes) plus the benchmark's statements.

    bench: feats (n_statements, 18, C) and slots of the statement scenes, statements (8 per scene),
    calibration statements on the next n_calibration scenes with calibration_feats, n_generate, other.
    """
    cfg = config if isinstance(config, HallucinationConfig) else HallucinationConfig.from_dict(config)
    gap_cfg = rg.AblationConfig.from_dict(cfg.gap)
    data = rg.prepare_data(gap_cfg, log=log)
    bank = data["eval_bank"]
    feats = data["val"][0]
    n, m = cfg.n_statements, cfg.n_calibration
    seed = gap_cfg.data_seed + 1  # the eval scenes' stream
    st = D.statements(n, seed=seed, slots=bank["slots"][:n])
    cal = D.statements(m, seed=seed, start=n, slots=bank["slots"][n : n + m])
    data["bench"] = {
        "feats": feats[:n],
        "slots": bank["slots"][:n],
        "statements": st,
        "calibration": cal,
        "calibration_feats": feats[n : n + m],
        "n_generate": cfg.n_generate,
        "other": cfg.other,
        "longest": max(st["statement"], key=lambda s: len(s.split())),
    }
    with cpu_threads(cfg.threads):
        data["encoder"] = E.scene_encoder(gap_cfg.encoder, log=log)
    data["gap_config"] = gap_cfg
    return data


def run_benchmark(config: HallucinationConfig | dict, data: dict, *, log=print) -> dict:
    """Every arm x seed of representation_gap's captioner (cached_captioner: trained there, loaded here)
    through `evaluate_captioner`. Returns pope (per model, seed, type, metric, with bootstrap interval),
    generative (per model, seed, metric), answers and captions keyed (arm, seed)."""
    cfg = config if isinstance(config, HallucinationConfig) else HallucinationConfig.from_dict(config)
    gap_cfg = data["gap_config"]
    pope, gen, answers, captions = [], [], {}, {}
    for arm in cfg.arms:
        for seed in cfg.seeds:
            t0 = time.perf_counter()
            with cpu_threads(cfg.threads):
                model, _, _ = C.cached_captioner(
                    {**gap_cfg.captioner, "arm": arm},
                    data["train"],
                    data["val"],
                    seed=seed,
                    threads=cfg.threads,
                    log=log,
                )
                out = evaluate_captioner(model, data["bench"], n_bootstrap=cfg.n_bootstrap, seed=seed)
            p, g = bench_rows(arm, seed, out)
            pope.append(p)
            gen.append(g)
            answers[(arm, seed)], captions[(arm, seed)] = out["answers"], out["captions"]
            acc = p[p.metric == "accuracy"].set_index("type")["value"]
            log(
                f"{arm:>11} seed {seed}: accuracy "
                + ", ".join(f"{t} {acc[t]:.3f}" for t in TYPES)
                + f" ({time.perf_counter() - t0:.1f} s)"
            )
    return {
        "pope": pd.concat(pope, ignore_index=True),
        "generative": pd.concat(gen, ignore_index=True),
        "answers": answers,
        "captions": captions,
    }


def benchmark_table(bench: dict, data: dict, n_bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """model x type x metric: seeds pooled, with a percentile bootstrap over scenes (every seed's answers
    and captions of a resampled scene go together), n_seeds and the per-seed values."""
    b = data["bench"]
    rows = []
    per_seed_pope = bench["pope"].groupby(["model", "type", "metric"])["value"]
    for model in dict.fromkeys(m for m, _ in bench["answers"]):
        keys = [k for k in bench["answers"] if k[0] == model]
        ans = pd.concat([bench["answers"][k] for k in keys], ignore_index=True)
        disc = A.pope_table(
            ans["type"], ans["label"], ans["yes"], scenes=ans["scene"], n_bootstrap=n_bootstrap, seed=seed
        )
        disc["kind"] = "discriminative"
        caps = [c for k in keys for c in bench["captions"][k]]
        slots = [s for _ in keys for s in b["slots"][: len(bench["captions"][keys[0]])]]
        scenes = np.concatenate([np.arange(len(bench["captions"][k])) for k in keys])
        gen = A.generative_table(caps, slots, scenes=scenes, n_bootstrap=n_bootstrap, seed=seed)
        gen["kind"] = "generative"
        both = pd.concat([disc, gen], ignore_index=True).assign(model=model, n_seeds=len(keys))
        per = []
        for _, r in both.iterrows():
            if r["kind"] == "discriminative":
                v = per_seed_pope.get_group((model, r["type"], r["metric"])).to_numpy()
            else:
                name = r["metric"] if r["type"] == "all" else f"{r['type']}_{r['metric']}"
                g = bench["generative"]
                v = g[(g.model == model) & (g.metric == name)].sort_values("seed")["value"].to_numpy()
            per.append(" ".join(f"{x:.3f}" for x in v))
        both["per_seed"] = per
        rows.append(both)
    cols = ["model", "kind", "type", "metric", "value", "ci_low", "ci_high", "n_seeds", "per_seed"]
    return pd.concat(rows, ignore_index=True)[cols]


def example_statements(data: dict, scene: int = 0) -> pd.DataFrame:
    """The eight statements about one benchmark clip: type, label, statement."""
    st = data["bench"]["statements"]
    m = st["scene"] == scene
    return pd.DataFrame({"type": st["type"][m], "true": st["label"][m].astype(bool), "statement": st["statement"][m]})


def evaluate_hf(vlm, data: dict, *, n: int = 64, n_bootstrap: int = 200, seed: int = 0, batch: int = 8) -> dict:
    """The benchmark on a Hugging Face VLM (`studio.hf.load_vlm`): Hal-Eval's yes/no prompt for the
    statements of the first n benchmark clips (frames side by side), and a greedy caption of each.
    Returns pope (rows type, metric, value, ci_low, ci_high), generative (rows of `generative_table`),
    answers and captions. No threshold is fitted: the answer is the model's own yes or no."""
    from studio.capture.hf.hal_eval import clip_image, hf_captions, hf_yes_no

    st = data["bench"]["statements"]
    n = min(n, len(data["bench"]["slots"]))
    images = [clip_image(f) for f in data["eval_bank"]["frames"][:n]]
    m = st["scene"] < n
    texts = D.check_captions(st["statement"][m], what="statement")
    yes, margin = hf_yes_no(vlm, [images[i] for i in st["scene"][m]], texts, batch=batch)
    pope = A.pope_table(st["type"][m], st["label"][m], yes, scenes=st["scene"][m], n_bootstrap=n_bootstrap, seed=seed)
    captions = hf_captions(vlm, images, batch=batch)
    slots = data["bench"]["slots"][:n]
    generative = A.generative_table(captions, slots, n_bootstrap=n_bootstrap, seed=seed)
    answers = pd.DataFrame(
        {"scene": st["scene"][m], "type": st["type"][m], "label": st["label"][m], "margin": margin, "yes": yes}
    )
    return {"pope": pope, "generative": generative, "answers": answers, "captions": captions}
