"""AITQE in miniature: the scorer's labelled pairs, the keep / filter / rewrite policies, the runs of scorers,
rewriters and downstream captioners, and the tables and tolerances of their figures."""

from __future__ import annotations

import time

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
from studio.studies.hallucination.benchmark import (
    bench_rows,
    corpus_ids,
    evaluate_captioner,
)
from studio.studies.hallucination.config import POLICIES, SCORER_ARMS, TYPES, HallucinationConfig

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
    jobs = []  # per policies row: the downstream captioner's training data (features, ids, targets)
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
                jobs.append((corpus_feats[rows], pids, pids))
                policies.append(
                    {
                        "rate": rate,
                        "seed": seed,
                        "policy": policy,
                        **{k: out[k] for k in ("volume", "text_shift", "dirty", "truth_distance")},
                        "flag_recall": float(flagged[bad].mean()) if bad.any() else np.nan,
                        "flag_false": float(flagged[~bad].mean()) if (~bad).any() else np.nan,
                    }
                )
    for row, (metrics, ev) in zip(policies, downstream(cfg, jobs, data, policies, log=log)):
        name = f"{row['policy']}@{row['rate']:g}"
        p, g = bench_rows(name, row["seed"], ev)
        if p is not None:
            pope.append(p.assign(policy=row["policy"], rate=row["rate"]))
        gen.append(g.assign(policy=row["policy"], rate=row["rate"]))
        row["val_caption_acc"] = float(metrics.get("val/caption_acc", np.nan))
        row["mean_instance"] = float(np.nanmean([ev["generative"][f"{t}_instance"] for t in TYPES]))
        row["any_sentence"] = ev["generative"]["any_sentence"]
        row["caption_accuracy"] = ev["generative"]["caption_accuracy"]
    pope_cols = ["type", "metric", "value", "ci_low", "ci_high", "model", "seed", "kind", "policy", "rate"]
    return {
        "auc": pd.DataFrame(auc),
        "policies": pd.DataFrame(policies),
        "pope": pd.concat(pope, ignore_index=True) if pope else pd.DataFrame(columns=pope_cols),
        "generative": pd.concat(gen, ignore_index=True),
    }


def downstream(cfg: HallucinationConfig, jobs: list, data: dict, rows: list[dict], *, log=print) -> list:
    """One downstream captioner per job (its training data), trained at equal steps (cached) and scored by
    `evaluate_captioner`; `cfg.workers` at once. Returns (metrics, evaluation) per job, in job order.

    Each model trains on `cfg.threads` threads in its own process, so its weights do not depend on how
    many run beside it; in one process the 18 default models left one of two cores idle."""
    shared = (cfg, data["val"], data["bench"])
    tasks = [(i, job, rows[i]["seed"]) for i, job in enumerate(jobs)]
    results: dict = {}
    t0 = time.perf_counter()

    def done(i: int, result) -> None:
        results[i] = result[:2]
        for line in result[2]:
            log(line)
        r, ev = rows[i], result[1]
        log(
            f"[{len(results)}/{len(jobs)}] {r['policy'] + '@' + format(r['rate'], 'g'):>12} seed {r['seed']}: "
            f"volume {r['volume']:.2f}, dirty {r['dirty']:.3f}, any hallucination "
            f"{ev['generative']['any_sentence']:.3f} ({result[3]:.1f} s; {time.perf_counter() - t0:.0f} s so far)"
        )

    if cfg.workers <= 1 or len(jobs) <= 1:
        _share(*shared)
        for task in tasks:
            done(task[0], _downstream_one(task))
        return [results[i] for i in range(len(jobs))]
    from concurrent.futures import as_completed

    from studio.workers import spawn_pool

    with spawn_pool(min(cfg.workers, len(jobs)), _share, shared) as pool:
        futures = {pool.submit(_downstream_one, task): task[0] for task in tasks}
        for future in as_completed(futures):
            done(futures[future], future.result())
    return [results[i] for i in range(len(jobs))]


_SHARED: tuple = ()  # (config, validation tensors, benchmark): what every downstream job reads


def _share(cfg: HallucinationConfig, val: tuple, bench: dict) -> None:
    global _SHARED
    _SHARED = (cfg, val, bench)


def _downstream_one(task: tuple) -> tuple:
    """Train (or load) and evaluate one downstream captioner: (metrics, evaluation, log lines, seconds)."""
    _, train, seed = task
    cfg, val, bench = _SHARED
    lines: list[str] = []
    t0 = time.perf_counter()
    with cpu_threads(cfg.threads):
        model, metrics, _ = C.cached_captioner(
            {**cfg.downstream, "arm": "lm"}, train, val, seed=seed, threads=cfg.threads, log=lines.append
        )
        ev = evaluate_captioner(
            model, bench, n_bootstrap=cfg.n_bootstrap, seed=seed, discriminative=cfg.downstream_statements
        )
    return metrics, ev, lines, time.perf_counter() - t0


def _train_slots(gap_cfg) -> list[dict]:
    """The slot dicts of representation_gap's training scenes (those behind data['train'])."""
    return [S.make_scene(i, seed=gap_cfg.data_seed, split="train").slots for i in range(gap_cfg.n_train)]


# ---------------------------------------------------------------------------------------------------
# Tables for the figures


def auc_table(auc: pd.DataFrame) -> pd.DataFrame:
    """Per scorer and corruption (and "mean" over corruptions): seed mean, t interval clipped to AUC's range
    [0, 1] (a t interval over three seeds of an AUC near 1 reaches past it), n_seeds, per seed."""
    from studio.stats import summarise

    per_seed_mean = auc.groupby(["seed", "scorer"], as_index=False)["auc"].mean().assign(corruption="mean")
    full = pd.concat([auc, per_seed_mean], ignore_index=True)
    out = summarise(full, ["scorer", "corruption"], "auc")
    out[["ci_low", "ci_high"]] = out[["ci_low", "ci_high"]].clip(0.0, 1.0)
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


UNBOUNDED_METRICS = ("text_shift", "truth_distance")  # mean word edit distances; every other metric is a share


def downstream_table(aitqe: dict) -> pd.DataFrame:
    """Per rate, policy and metric of `downstream_long`: seed mean, t interval (clipped to the metric's
    range), n_seeds, min and max."""
    from studio.stats import summarise

    long = downstream_long(aitqe)
    out = summarise(long, ["rate", "policy", "metric"], "value")
    # intervals clipped to each metric's range: edit distances are >= 0, everything else is a share in [0, 1]
    upper = np.where(out["metric"].isin(UNBOUNDED_METRICS), np.inf, 1.0)
    out["ci_low"], out["ci_high"] = out["ci_low"].clip(lower=0.0), out["ci_high"].clip(upper=upper)
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
