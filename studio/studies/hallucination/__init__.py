"""Hallucination at small scale: a four-type benchmark (object, attribute, relation, event) and AITQE's ablation.

    cfg = HallucinationConfig.from_dict({...})
    data = prepare(cfg)                              # representation_gap's scenes and features, the benchmark
    bench = run_benchmark(cfg, data)                 # its three captioner arms (loaded from its cache), scored
    aitqe = run_aitqe(cfg, data)                     # scorers, data policies, downstream captioners, scored
    save_verdicts(verdicts(bench, aitqe), "hallucination")

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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from studio.analysis import hal_eval as A
from studio.config import from_dict
from studio.data import hallucination as D
from studio.data import scenes as S
from studio.models import captioner as C
from studio.models import cell_encoder as E
from studio.models import quality_scorer as Q
from studio.repro import cpu_threads
from studio.studies import representation_gap as rg
from studio.studies.hallucination.benchmark import (  # noqa: F401  (the notebook's and tests' names)
    check_captioner_fits,
    corpus_ids,
    evaluate_captioner,
    statement_scores,
)
from studio.studies.hallucination.verdicts import (  # noqa: F401
    AITQE_PAPER,
    EVENT_PAPER,
    verdict_event_hardest,
    verdict_negatives,
    verdict_rewrite,
    verdicts,
)

TYPES = D.TYPES
POLICIES = ("keep", "filter", "rewrite")
SCORER_ARMS = {"random": False, "hard": True}  # scorer arm -> hard negatives
# representation_gap's notebook defaults: the same config loads its cached captioners and encoder
GAP_DEFAULT = {
    "n_train": 3000,
    "n_eval": 400,
    "encoder": {"steps": 400, "n_scenes": 1500},
    "captioner": {"steps": 500, "batch_size": 64, "hidden": 64, "layers": 3},
}


@dataclass
class HallucinationConfig:
    arms: tuple = C.ARMS  # representation_gap's captioner arms evaluated by the benchmark
    seeds: list = field(default_factory=lambda: [0, 1, 2])  # training seeds of every model
    gap: dict = field(default_factory=lambda: dict(GAP_DEFAULT))  # representation_gap's AblationConfig
    n_statements: int = 200  # held-out scenes with statements (the first of representation_gap's eval scenes)
    n_calibration: int = 100  # the next held-out scenes: their statements set each captioner's yes threshold
    n_generate: int = 200  # held-out scenes captioned greedily (of the n_statements)
    other: int = 2  # other clips behind the captioner's yes/no score
    downstream_statements: bool = False  # also ask the downstream captioners the yes/no statements (slower)
    n_bootstrap: int = 200  # resamples of scenes behind every interval of the benchmark table
    rates: tuple = (0.3, 0.6)  # shares of low-quality captions in the training corpus
    n_label: int = 1500  # scenes of the scorer's labelled pairs (their own stream)
    threshold: float = 0.5  # a caption scored below it is flagged (dropped by filter, edited by rewrite)
    scorer: dict = field(default_factory=dict)  # ScorerConfig overrides (hard_negatives is set per arm)
    rewriter: dict = field(default_factory=dict)  # RewriterConfig overrides
    downstream: dict = field(default_factory=lambda: {"steps": 300, "layers": 2})  # CaptionerConfig overrides
    threads: int | None = 1

    @classmethod
    def from_dict(cls, values: dict | None) -> HallucinationConfig:
        cfg = from_dict(cls, dict(values or {}))
        rg.AblationConfig.from_dict(cfg.gap)
        from_dict(Q.ScorerConfig, cfg.scorer)
        from_dict(Q.RewriterConfig, cfg.rewriter)
        from_dict(C.CaptionerConfig, cfg.downstream)
        if "arm" in cfg.downstream or "hard_negatives" in cfg.scorer:
            raise ValueError("downstream.arm and scorer.hard_negatives are set by the study; leave them out")
        need = cfg.n_statements + cfg.n_calibration
        n_eval = cfg.gap.get("n_eval", rg.AblationConfig().n_eval)
        if need > n_eval:
            raise ValueError(f"n_statements + n_calibration = {need} > representation_gap's n_eval = {n_eval}")
        if cfg.n_generate > cfg.n_statements:
            raise ValueError(f"n_generate {cfg.n_generate} > n_statements {cfg.n_statements}")
        bad = [a for a in cfg.arms if a not in C.ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; valid: {list(C.ARMS)}")
        return cfg


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


def _bench_rows(model_name: str, seed: int, out: dict) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    pope = None if out["pope"] is None else out["pope"].assign(model=model_name, seed=seed, kind="discriminative")
    gen = pd.DataFrame(
        [{"model": model_name, "seed": seed, "metric": k, "value": v} for k, v in out["generative"].items()]
        + [{"model": model_name, "seed": seed, "metric": "threshold", "value": out["threshold"]}]
    )
    return pope, gen


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
            p, g = _bench_rows(arm, seed, out)
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


# ---------------------------------------------------------------------------------------------------
# AITQE: scorer, policies, downstream captioners


def _pairs(slots: list[dict], seed: int, hard: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The scorer's labelled pairs: every scene's true caption (good) and one bad caption of it. Random
    negatives: the caption of another scene or a truncation, half each; hard: a quarter each, and half
    one-slot hallucinations of the four types (AITQE's contrastive bad caption of a good sample)."""
    n = len(slots)
    captions, good, scene = [], [], []
    kinds = ("other_scene", "truncation") if not hard else ("other_scene", "truncation", *TYPES)
    weights = np.array([1, 1]) if not hard else np.array([2, 2, 1, 1, 1, 1])
    for i, sl in enumerate(slots):
        rng = np.random.default_rng([int(seed), i, 41])
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        other = slots[(i + 1 + int(rng.integers(n - 1))) % n]
        captions += [S.render(sl), D.corrupt(sl, kind, rng, other)]
        good += [1, 0]
        scene += [i, i]
    return captions, np.asarray(good), np.asarray(scene)


def heldout_pairs(slots: list[dict], seed: int) -> dict:
    """Per scene its true caption and one caption of every corruption: captions, kind, scene."""
    n = len(slots)
    captions, kind, scene = [], [], []
    for i, sl in enumerate(slots):
        rng = np.random.default_rng([int(seed), i, 43])
        other = slots[(i + 1 + int(rng.integers(n - 1))) % n]
        for k in (D.CLEAN, *D.CORRUPTIONS):
            captions.append(S.render(sl) if k == D.CLEAN else D.corrupt(sl, k, rng, other))
            kind.append(k)
            scene.append(i)
    return {"captions": captions, "kind": np.asarray(kind), "scene": np.asarray(scene)}


def _slots_of(caption: str) -> dict | None:
    """The slot dict of a whole template caption whose slot words fit their slots, else None."""
    words = caption.split()
    if len(words) != S.CAPTION_LENGTH:
        return None
    out = {}
    for slot, pos in S.SLOT_POSITION.items():
        if words[pos] not in Q.SLOT_WORDS[slot]:
            return None
        out[slot] = words[pos]
    return out


def apply_policy(policy: str, captions, original, p_good, threshold: float, rewritten=None) -> dict:
    """One data policy on a corpus: keep (everything), filter (drop p_good < threshold), rewrite (replace
    the flagged captions by `rewritten`). Returns rows (kept row indices), captions (kept), volume (share
    kept), text_shift (mean word edit distance from the corpus captions over kept rows), dirty (share of
    kept captions that are not the true caption) and truth_distance (mean edit distance from the truth)."""
    # object arrays: a fixed-width str array would cut a rewritten caption longer than every original
    captions, original = np.asarray(captions, dtype=object), np.asarray(original, dtype=object)
    flagged = np.asarray(p_good) < threshold
    if policy == "keep":
        rows, new = np.arange(len(captions)), captions.copy()
    elif policy == "filter":
        rows = np.flatnonzero(~flagged)
        new = captions[rows]
    elif policy == "rewrite":
        rows, new = np.arange(len(captions)), captions.copy()
        new[flagged] = np.asarray(rewritten, dtype=object)[flagged]
    else:
        raise ValueError(f"unknown policy {policy!r}; valid: {list(POLICIES)}")
    shift = [D.word_edit_distance(a, b) for a, b in zip(new, captions[rows])]
    truth = [D.word_edit_distance(a, b) for a, b in zip(new, original[rows])]
    return {
        "rows": rows,
        "captions": new,
        "volume": len(rows) / max(len(captions), 1),
        "text_shift": float(np.mean(shift)) if shift else 0.0,
        "dirty": float(np.mean([a != b for a, b in zip(new, original[rows])])) if len(rows) else 0.0,
        "truth_distance": float(np.mean(truth)) if truth else 0.0,
    }


def run_aitqe(config: HallucinationConfig | dict, data: dict, *, log=print) -> dict:
    """The AITQE ablation. Per seed: both scorers (random / hard negatives) on the labelled pairs, their AUC
    per corruption on held-out pairs; per rate and seed: the noisy corpus, the hard scorer's flags, the slot
    rewriter (trained on the captions the scorer keeps), the three policies, and one downstream captioner
    per policy at equal steps, evaluated by `evaluate_captioner`.

    Returns auc (seed, scorer, corruption, auc), policies (rate, seed, policy, volume, text_shift, dirty,
    truth_distance, flag_recall, flag_false), downstream pope / generative (model "<policy>@<rate>").
    """
    cfg = config if isinstance(config, HallucinationConfig) else HallucinationConfig.from_dict(config)
    gap_cfg = data["gap_config"]
    label_bank = S.scene_bank(cfg.n_label, seed=gap_cfg.data_seed + 5, split="train")
    label_feats = E.encode_clips(data["encoder"], label_bank["frames"])
    held = heldout_pairs(data["bench"]["slots"], seed=gap_cfg.data_seed + 6)
    held_feats = data["bench"]["feats"][held["scene"]]
    held_ids = Q.caption_slots(held["captions"])
    corpus_feats = data["train"][0]
    train_slots = _train_slots(gap_cfg)
    auc, policies, pope, gen = [], [], [], []
    scorers = {}
    for seed in cfg.seeds:
        for arm, hard in SCORER_ARMS.items():
            caps, good, scene = _pairs(label_bank["slots"], seed, hard)
            ids = Q.caption_slots(caps)
            scorer, _ = Q.cached_scorer(
                {**cfg.scorer, "hard_negatives": hard},
                label_feats[scene],
                ids,
                torch.from_numpy(good),
                seed=seed,
                threads=cfg.threads,
                log=log,
            )
            with cpu_threads(cfg.threads):
                p = Q.score(scorer, held_feats, held_ids)
            for kind in D.CORRUPTIONS:
                m = (held["kind"] == D.CLEAN) | (held["kind"] == kind)
                auc.append(
                    {
                        "seed": seed,
                        "scorer": arm,
                        "corruption": kind,
                        "auc": A.roc_auc(held["kind"][m] == D.CLEAN, p[m]),
                    }
                )
            scorers[(arm, seed)] = scorer
        log(
            f"scorers seed {seed}: mean AUC "
            + ", ".join(
                f"{a} {np.mean([r['auc'] for r in auc if r['seed'] == seed and r['scorer'] == a]):.3f}"
                for a in SCORER_ARMS
            )
        )
    rcfg = from_dict(Q.RewriterConfig, cfg.rewriter)
    for rate in cfg.rates:
        for seed in cfg.seeds:
            corpus = D.noisy_corpus(train_slots, rate, seed=seed)
            with cpu_threads(cfg.threads):
                p_good = Q.score(scorers[("hard", seed)], corpus_feats, Q.caption_slots(corpus["captions"]))
            flagged = p_good < cfg.threshold
            whole = [i for i in range(len(flagged)) if _slots_of(corpus["captions"][i]) is not None]
            kept = [i for i in whole if not flagged[i]]
            if not kept:  # a scorer that flags everything leaves the rewriter only the unscreened corpus
                log(f"rate {rate:g} seed {seed}: the scorer kept no caption; the rewriter learns from all of them")
                kept = whole
            rewriter, _ = Q.cached_rewriter(
                rcfg,
                corpus_feats[kept],
                torch.from_numpy(Q.slot_targets([_slots_of(corpus["captions"][i]) for i in kept])),
                seed=seed,
                threads=cfg.threads,
                log=log,
            )
            with cpu_threads(cfg.threads):
                rewritten = Q.rewrite(rewriter, corpus_feats, corpus["captions"], rcfg.confidence)
            bad = corpus["kind"] != D.CLEAN
            for policy in POLICIES:
                out = apply_policy(policy, corpus["captions"], corpus["original"], p_good, cfg.threshold, rewritten)
                rows = torch.from_numpy(out["rows"])
                if len(rows) < from_dict(C.CaptionerConfig, cfg.downstream).batch_size:
                    log(f"{policy}@{rate:g} seed {seed}: {len(rows)} captions left, fewer than one batch: no training")
                pids = torch.from_numpy(corpus_ids(out["captions"]))
                t0 = time.perf_counter()
                with cpu_threads(cfg.threads):
                    model, metrics, _ = C.cached_captioner(
                        {**cfg.downstream, "arm": "lm"},
                        (corpus_feats[rows], pids, pids),
                        data["val"],
                        seed=seed,
                        threads=cfg.threads,
                        log=log,
                    )
                    ev = evaluate_captioner(
                        model,
                        data["bench"],
                        n_bootstrap=cfg.n_bootstrap,
                        seed=seed,
                        discriminative=cfg.downstream_statements,
                    )
                name = f"{policy}@{rate:g}"
                p, g = _bench_rows(name, seed, ev)
                if p is not None:
                    pope.append(p.assign(policy=policy, rate=rate))
                gen.append(g.assign(policy=policy, rate=rate))
                policies.append(
                    {
                        "rate": rate,
                        "seed": seed,
                        "policy": policy,
                        **{k: out[k] for k in ("volume", "text_shift", "dirty", "truth_distance")},
                        "flag_recall": float(flagged[bad].mean()) if bad.any() else np.nan,
                        "flag_false": float(flagged[~bad].mean()) if (~bad).any() else np.nan,
                        "val_caption_acc": float(metrics.get("val/caption_acc", np.nan)),
                        "mean_instance": float(np.nanmean([ev["generative"][f"{t}_instance"] for t in TYPES])),
                        "any_sentence": ev["generative"]["any_sentence"],
                        "caption_accuracy": ev["generative"]["caption_accuracy"],
                    }
                )
                log(
                    f"{name:>12} seed {seed}: volume {out['volume']:.2f}, dirty {out['dirty']:.3f}, "
                    f"any hallucination {ev['generative']['any_sentence']:.3f} ({time.perf_counter() - t0:.1f} s)"
                )
    pope_cols = ["type", "metric", "value", "ci_low", "ci_high", "model", "seed", "kind", "policy", "rate"]
    return {
        "auc": pd.DataFrame(auc),
        "policies": pd.DataFrame(policies),
        "pope": pd.concat(pope, ignore_index=True) if pope else pd.DataFrame(columns=pope_cols),
        "generative": pd.concat(gen, ignore_index=True),
    }


def _train_slots(gap_cfg) -> list[dict]:
    """The slot dicts of representation_gap's training scenes (those behind data['train'])."""
    return [S.make_scene(i, seed=gap_cfg.data_seed, split="train").slots for i in range(gap_cfg.n_train)]


# ---------------------------------------------------------------------------------------------------
# Tables for the figures


def auc_table(auc: pd.DataFrame) -> pd.DataFrame:
    """Per scorer and corruption (and "mean" over corruptions): seed mean, t interval, n_seeds, per seed."""
    from studio.stats import summarise

    per_seed_mean = auc.groupby(["seed", "scorer"], as_index=False)["auc"].mean().assign(corruption="mean")
    full = pd.concat([auc, per_seed_mean], ignore_index=True)
    out = summarise(full, ["scorer", "corruption"], "auc")
    per = (
        full.sort_values("seed")
        .groupby(["scorer", "corruption"])["auc"]
        .apply(lambda v: " ".join(f"{x:.3f}" for x in v))
    )
    return out.merge(per.rename("per_seed").reset_index(), on=["scorer", "corruption"])


def downstream_long(aitqe: dict) -> pd.DataFrame:
    """Per (rate, seed, policy) and metric one value: volume, text_shift, dirty, truth_distance, flag rates,
    val_caption_acc, the generative rates (<type>_instance, any_sentence, caption_accuracy, slot_accuracy)
    and, when the downstream captioners answered statements, disc_accuracy_<type>."""
    pol = aitqe["policies"].melt(["rate", "seed", "policy"], var_name="metric", value_name="value")
    pol = pol[~pol.metric.isin(["any_sentence", "caption_accuracy"])]  # also in the generative rows
    g = aitqe["generative"]
    g = g[g.metric.isin([f"{t}_instance" for t in TYPES] + ["any_sentence", "caption_accuracy", "slot_accuracy"])]
    d = aitqe["pope"]
    d = d[d.metric == "accuracy"].assign(metric=lambda x: "disc_accuracy_" + x["type"])
    cols = ["rate", "seed", "policy", "metric", "value"]
    return pd.concat([pol[cols], g[cols], d[cols]], ignore_index=True).astype({"value": float})


def downstream_table(aitqe: dict) -> pd.DataFrame:
    """Per rate, policy and metric of `downstream_long`: seed mean, t interval, n_seeds, min and max."""
    from studio.stats import summarise

    long = downstream_long(aitqe)
    out = summarise(long, ["rate", "policy", "metric"], "value")
    rng = long.groupby(["rate", "policy", "metric"])["value"].agg(["min", "max"]).reset_index()
    return out.merge(rng, on=["rate", "policy", "metric"])


# ---------------------------------------------------------------------------------------------------
# What `studio figures --check` tolerates, and the notebook's small helpers


def interval_tolerance(table: pd.DataFrame) -> dict:
    """A benchmark table's values move within half their own bootstrap interval."""
    from studio.tolerance import intervals

    return intervals(table, {"value": ("ci_low", "ci_high")})


def auc_tolerance(auc: pd.DataFrame) -> dict:
    """`auc_table`'s numbers: the widest range over seeds of any scorer's AUC on any corruption."""
    from studio.tolerance import seed_range

    width = seed_range(auc, ["scorer", "corruption"], ["auc"]).get("auc", 0.0)
    return {c: width for c in ("mean", "ci_low", "ci_high")}


def downstream_tolerance(aitqe: dict) -> dict:
    """`downstream_table`'s numbers, per metric: the widest range over seeds within any (rate, policy)."""
    long = downstream_long(aitqe)
    g = long.groupby(["rate", "policy", "metric"])["value"]
    width = (g.max() - g.min()).groupby(level="metric").max().fillna(0.0)
    by = {"by": "metric", "spread": {k: float(v) for k, v in width.items()}}
    return {c: by for c in ("mean", "ci_low", "ci_high", "min", "max")}


def policy_tolerance(policies: pd.DataFrame) -> dict:
    """The per-run policy table: per column, the widest range over seeds within any (rate, policy)."""
    from studio.tolerance import seed_range

    return seed_range(policies, ["rate", "policy"])


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
