"""The HACL ablation at small scale: train the captioner three ways, measure gap and hallucination.

    df, models = run_ablation(("lm", "contrastive", "hacl"), seeds=[0, 1, 2], config=AblationConfig(),
                              return_models=True)      # models keyed (arm, seed)
    save_verdicts(verdicts(df), "representation_gap")  # does the small run show what HACL claims?

For every (arm, seed) the captioner is trained on the same scenes (once: `captioner.cached_captioner`)
and measured on held-out scenes (unseen digit scans), one row per (arm, seed, space, layer, pool, metric):
- per layer (0 = embeddings ... L = last, after the final norm) and pooling ("eos", "mean"): the
  modality gap between visual sequences and their captions, a linear probe's held-out accuracy at
  telling visual from text, and two faithful-vs-hallucinated measures: `fh_pairwise` (share of scenes
  whose own caption is closer in cosine to the visual representation than its hallucinated twin:
  0.5 = entangled, 1 = separated) and `fh_probe` (a probe on captions alone; a hallucinated caption is
  only false given the image, so this stays near 0.5 whatever the training);
- in the contrastive heads' space (arms with heads): the same gap and `fh_pairwise`;
- from greedy captions: `gen_exact` (whole caption right), per-slot accuracy, and `chair` (CHAIR-style:
  share of mentioned objects and (colour, object) attributes not in the scene), split into
  `chair_object` and `chair_attribute`;
- from validation: `val_caption_acc` (teacher-forced accuracy on the six slot words), `val_lm_loss`;
  from training: the final losses and, read off the training history, the first (`train_loss_first`,
  `train_contrastive_loss_first`), which the verdicts' convergence rule compares.

`verdicts(df)` judges HACL's claims by studio.verdicts' one rule: per-seed paired effects, a slot-accuracy
gate, failed seeds (training that did not converge, a seed whose gap diverged: `failed_seeds`) named and
set aside, and the results true by construction as sanity rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from studio import verdicts as V
from studio.capture.hf.gap_profile import hf_gap_profile  # noqa: F401  (the notebook's HF section)
from studio.config import from_dict
from studio.data import scenes as S
from studio.models import captioner as C
from studio.models import cell_encoder as E
from studio.repro import cpu_threads
from studio.stats import t_interval
from studio.studies.representation_gap.measures import cached_measure, measure  # noqa: F401
from studio.studies.representation_gap.tables import (  # noqa: F401  (the notebook's tables)
    _select,
    arm_numbers,
    by_metric,
    hallucination_rows,
    last_layer,
    layer_curves,
    projection_inputs,
    seed_spread,
    shift_table,
)

ARMS = C.ARMS
ARM_LABELS = {"lm": "no contrastive", "contrastive": "contrastive", "hacl": "HACL"}
PAPER = "HACL (Jiang et al., CVPR 2024)"
TRAIN_METRICS = ("val/caption_acc", "val/lm_loss", "train/loss", "train/lm_loss", "train/contrastive_loss", "seconds")


@dataclass
class AblationConfig:
    n_train: int = 3000  # training scenes (train-split digit scans)
    n_eval: int = 400  # held-out scenes for every measurement (test-split scans)
    n_generate: int = 200  # of those, how many get a greedy caption for CHAIR
    data_seed: int = 0  # the scene streams; the same for every arm and training seed
    encoder: dict = field(default_factory=dict)  # CellEncoderConfig overrides
    captioner: dict = field(default_factory=dict)  # CaptionerConfig overrides (arm is set per arm)
    probe_pools: tuple = ("eos", "mean")  # poolings measured per layer
    progress: bool = False  # Lightning's progress bar
    threads: int | None = 1  # torch CPU threads while training (see captioner.fit_captioner)

    @classmethod
    def from_dict(cls, values: dict | None) -> AblationConfig:
        values = dict(values or {})
        if "arm" in (values.get("captioner") or {}):
            raise ValueError("captioner.arm is set by run_ablation's arms; leave it out of the config")
        cfg = from_dict(cls, values)
        from_dict(E.CellEncoderConfig, cfg.encoder)
        from_dict(C.CaptionerConfig, cfg.captioner)
        return cfg


def prepare_data(config: AblationConfig | dict, log=print) -> dict:
    """Scenes, their captions and visual features from the frozen encoder, computed once.

    Returns train / val: (features (n, 18, C), caption ids (n, 11), hallucinated ids (n, 11)) tensors;
    eval_bank: the held-out scenes' dict from `scenes.scene_bank`; encoder_info: the encoder's
    pretraining accuracies.
    """
    cfg = config if isinstance(config, AblationConfig) else AblationConfig.from_dict(config)
    with cpu_threads(cfg.threads):
        encoder = E.scene_encoder(cfg.encoder, log=log)
    train_bank = S.scene_bank(cfg.n_train, seed=cfg.data_seed, split="train")
    eval_bank = S.scene_bank(cfg.n_eval, seed=cfg.data_seed + 1, split="test")

    def tensors(bank):
        return (
            E.encode_clips(encoder, bank["frames"]),
            torch.from_numpy(bank["caption_ids"]),
            torch.from_numpy(bank["hallucinated_ids"]),
        )

    return {
        "train": tensors(train_bank),
        "val": tensors(eval_bank),
        "eval_bank": eval_bank,
        "encoder_info": dict(getattr(encoder.module, "pretrain_info", {})),
    }


def run_ablation(
    arms=ARMS,
    seeds: list[int] | None = None,
    config: AblationConfig | dict | None = None,
    *,
    data: dict | None = None,
    return_models: bool = False,
    log=print,
):
    """Train (or load from the cache) each arm for each seed on the same data and measure it.

    seeds: training seeds, default [0, 1, 2]. Returns a long DataFrame with columns arm, seed, space
    ("hidden", "head", "output", "train"), layer (-1 where none), pool, metric, value; with
    return_models also {(arm, seed): model}. Deterministic per seed; a warm rerun gives the same table.
    """
    cfg = config if isinstance(config, AblationConfig) else AblationConfig.from_dict(config)
    seeds = [0, 1, 2] if seeds is None else [int(s) for s in seeds]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; valid: {list(ARMS)}")
    data = data if data is not None else prepare_data(cfg, log=log)
    rows, models = [], {}
    for arm in arms:
        for seed in seeds:
            t0 = time.perf_counter()
            with cpu_threads(cfg.threads):
                model, metrics, folder = C.cached_captioner(
                    {**cfg.captioner, "arm": arm},
                    data["train"],
                    data["val"],
                    seed=seed,
                    threads=cfg.threads,
                    progress=cfg.progress,
                    log=log,
                )
                t1 = time.perf_counter()
                measured = cached_measure(model, folder, data, cfg, seed=seed, log=log)
            for r in measured:
                rows.append({"arm": arm, "seed": seed, **r})
            for k in TRAIN_METRICS:
                if k in metrics:
                    rows.append(
                        {
                            "arm": arm,
                            "seed": seed,
                            "space": "train",
                            "layer": -1,
                            "pool": "-",
                            "metric": k.replace("/", "_"),
                            "value": float(metrics[k]),
                        }
                    )
            first = model.history[0] if model.history else {}
            for k in ("loss", "contrastive_loss"):  # the first step's losses: the verdicts' convergence rule
                if k in first and not (k == "contrastive_loss" and arm == "lm"):  # lm logs a constant 0
                    rows.append(
                        {
                            "arm": arm,
                            "seed": seed,
                            "space": "train",
                            "layer": -1,
                            "pool": "-",
                            "metric": f"train_{k}_first",
                            "value": float(first[k]),
                        }
                    )
            log(
                f"{arm:>11} seed {seed}: caption acc {metrics.get('val/caption_acc', float('nan')):.3f}, "
                f"trained in {metrics['seconds']:.1f} s, now trained or loaded in {t1 - t0:.1f} s, "
                f"measured in {time.perf_counter() - t1:.1f} s"
            )
            if return_models:
                models[(arm, seed)] = model
    df = pd.DataFrame(rows)
    return (df, models) if return_models else df


SUMMARY = {  # the headline quantities: label -> (space, layer, pool, metric)
    "gap (last layer, EOS)": ("hidden", "last", "eos", "gap"),
    "visual-vs-text probe acc": ("hidden", "last", "eos", "vt_probe"),
    "faithful>hallucinated (last layer)": ("hidden", "last", "eos", "fh_pairwise"),
    "faithful-vs-hallucinated text-only probe": ("hidden", "last", "eos", "fh_probe"),
    "gap (heads)": ("head", -1, "eos", "gap"),
    "faithful>hallucinated (heads)": ("head", -1, "eos", "fh_pairwise"),
    "caption slot acc (teacher forced)": ("train", -1, "-", "val_caption_acc"),
    "generated caption exact": ("output", -1, "-", "gen_exact"),
    "CHAIR (share of mentions hallucinated)": ("output", -1, "-", "chair"),
}

METRIC_RANGE = {"gap": (0.0, 2.0)}  # every other summary quantity is a share or an accuracy: [0, 1]


def summary(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per arm, the headline numbers: mean over seeds with a t interval (`studio.stats.t_interval`),
    n_seeds and the per-seed values.

    gap and fh_pairwise at the last layer's EOS (the representation HACL trains), the same in the
    heads' space, visual-vs-text probe accuracy, caption accuracy and CHAIR. Intervals are clipped to the
    metric's range (METRIC_RANGE: a gap between unit vectors' centroids lies in [0, 2], shares and
    accuracies in [0, 1]).
    """
    top = last_layer(df)
    picks = {
        label: (space, top if layer == "last" else layer, pool, metric)
        for label, (space, layer, pool, metric) in SUMMARY.items()
    }
    rows = []
    for label, pick in picks.items():
        for arm, part in _select(df, *pick).groupby("arm", sort=False):
            x = part.sort_values("seed")["value"].to_numpy()
            mean, lo, hi = t_interval(x, level)
            lo, hi = np.clip([lo, hi], *METRIC_RANGE.get(pick[3], (0.0, 1.0)))  # NaN stays NaN
            rows.append(
                {
                    "quantity": label,
                    "arm": arm,
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_seeds": int(np.sum(~np.isnan(x))),
                    "per_seed": " ".join(f"{v:.3f}" for v in x),
                }
            )
    return pd.DataFrame(rows, columns=["quantity", "arm", "mean", "ci_low", "ci_high", "n_seeds", "per_seed"])


def summary_tolerance(df: pd.DataFrame) -> dict:
    """The tolerance of `summary`'s table for `studio figures --check`: per quantity, the largest range
    over seeds of any arm's value (studio.tolerance, grouped by `quantity`), for the mean, the interval
    and the per-seed values alike."""
    top = last_layer(df)
    spread = {}
    for label, (space, layer, pool, metric) in SUMMARY.items():
        ranges = _select(df, space, top if layer == "last" else layer, pool, metric).groupby("arm")["value"]
        width = float((ranges.max() - ranges.min()).max()) if len(ranges) else float("nan")
        if np.isfinite(width):
            spread[label] = width
    by = {"by": "quantity", "spread": spread}
    return {c: by for c in ("mean", "ci_low", "ci_high", "per_seed")}


CAPTION_QUALITY = ("val_caption_acc", "gen_exact", "chair")  # the caption panel's metrics, in its order


def caption_quality(out_rows: pd.DataFrame) -> pd.DataFrame:
    """Per arm and caption metric (`hallucination_rows`' first table): seed mean, min and max (the bars
    and their seed range, inside the metric's [0, 1] by construction)."""
    part = out_rows[out_rows.metric.isin(CAPTION_QUALITY)]
    return part.groupby(["arm", "metric"], sort=False)["value"].agg(["mean", "min", "max"]).reset_index()


# ---------------------------------------------------------------------------------------------------
# Verdicts: HACL's claims judged by studio.verdicts' one rule, with the gates and failed seeds below.

# A captioner that ignores the clip guesses each slot word from its slot's vocabulary: 1 / 4 for a colour,
# relation or move, 1 / 14 for an object, 0.19 over the six slots (teacher forced, as val_caption_acc).
_SLOT_VOCAB = {"attribute": S.COLOURS, "object": S.OBJECTS, "relation": S.RELATIONS, "event": S.EVENTS}
SLOT_CHANCE = float(np.mean([1 / len(_SLOT_VOCAB[S.SLOT_TYPE[s]]) for s in S.SLOTS]))
# Slot accuracy this far above that guess: the captioner reads the clip (one slot word in ten more than a
# blind guess), so its representations of clip and caption can be compared at all.
CAPTION_MARGIN = 0.1
# A seed diverged when its last-layer EOS gap is an outlier among the seeds: its externally studentised
# distance from its arm's other seeds (`diverged_seeds`) has a two-sided p below DIVERGED_ALPHA over the
# number of seeds tested (Bonferroni), so a study whose seeds all trained alike names one in at most 5 %
# of reruns. The committed diverged contrastive seed (gap 1.467 against 0.194 and 0.276) has t = 6.1 on 5
# degrees of freedom, p = 0.002 < 0.05 / 9; then the most distant seed (the LM-only arm's 1.243) has p = 0.08.
DIVERGED_ALPHA = 0.05
# The smallest shrink of the gap that matters: 0.1, under half of one 0.125 step of Liang et al.'s
# embedding shift (which moves CLIP's gap from 0.822 to 0.600): a smaller change leaves the cones in place.
GAP_MIN_EFFECT = 0.1
# The smallest separation margin that matters: 5 points of the faithful-closer share, about two binomial
# standard deviations of that share on 400 held-out scenes (sqrt(0.75 * 0.25 / 400) = 0.022). HACL gives
# its separation as a picture, not a number.
SEPARATION_MIN_EFFECT = 0.05
FAITHFUL_CHANCE = 0.5  # the faithful-closer share of representations that cannot tell the two captions apart
# Sanity band: a share within 0.05 of 0.5 counts as chance (two binomial standard deviations on 400 scenes).
CHANCE_BAND = 0.05


def _per_seed(df: pd.DataFrame, arm: str, *pick) -> pd.Series:
    part = _select(df, *pick)
    return part[part.arm == arm].groupby("seed")["value"].mean()


def _train_metric(df: pd.DataFrame, arm: str, metric: str) -> pd.Series:
    return _per_seed(df, arm, "train", -1, "-", metric)


def _pooled_sd(groups) -> tuple[float, int]:
    """(pooled within-group standard deviation, its degrees of freedom); groups of one add nothing."""
    ss, dof = 0.0, 0
    for g in groups:
        x = np.asarray(list(g), float)
        if len(x) > 1:
            ss += float(((x - x.mean()) ** 2).sum())
            dof += len(x) - 1
    return (math.sqrt(ss / dof) if dof else math.nan), dof


def _most_distant(left: dict):
    """(p, t, arm, seed, number tested) of the seed of `left` ({arm: {seed: value}}) farthest from its
    arm's other seeds (`diverged_seeds`), or None when no arm has three seeds."""
    from scipy import stats

    tested = []
    for arm, d in left.items():
        for seed, x in d.items():
            others = [v for s, v in d.items() if s != seed]
            if len(others) < 2:
                continue
            noise, dof = _pooled_sd([[v for s, v in dd.items() if (a, s) != (arm, seed)] for a, dd in left.items()])
            distance = abs(x - float(np.mean(others)))
            if noise > 0:
                t = distance / (noise * math.sqrt(1 + 1 / len(others)))
                p = float(2 * stats.t.sf(t, dof))
            else:
                t, p = (math.inf, 0.0) if distance > 0 else (0.0, 1.0)
            tested.append((p, -t, arm, seed))
    if not tested:
        return None
    p, t, arm, seed = min(tested)
    return p, -t, arm, seed, len(tested)


def diverged_seeds(values: dict, alpha: float = DIVERGED_ALPHA) -> dict:
    """Seeds far from their arm's other seeds: {arm: {seed: (t, p, number of seeds tested)}}.

    values: {arm: {seed: value}}. A seed's t is its distance from the mean of its arm's m other seeds over
    s * sqrt(1 + 1/m), where s is the pooled within-arm standard deviation of every other seed of every arm
    (the seed-to-seed noise, taken alike in every arm; the suspect neither moves the centre nor widens the
    noise): Student's t with the pooled degrees of freedom when every seed trained alike. The most distant
    seed is named when its two-sided p is below alpha / (the number of seeds tested), Bonferroni: seeds that
    all trained alike have one named in at most `alpha` of studies. It is then set aside and the rest tested
    again, so a second outlier, plain once the first no longer widens the noise, is named too. Two diverged
    seeds of the same size in two arms widen each other's noise and can both stay unnamed: the loss rule
    of `failed_seeds` is the other net. An arm needs two other seeds to test a seed; noise of exactly 0
    makes any distance significant.
    """
    left = {a: {s: float(v) for s, v in d.items() if math.isfinite(float(v))} for a, d in values.items()}
    flagged: dict = {}
    while (found := _most_distant(left)) is not None:
        p, t, arm, seed, n = found
        if not p < alpha / n:
            break
        flagged.setdefault(arm, {})[seed] = (t, p, n)
        del left[arm][seed]
    return flagged


def failed_seeds(df: pd.DataFrame) -> dict:
    """{arm: {seed: why}}: the seeds that failed (studio.verdicts' policy), set aside from every claim
    that reads their arm.

    - training did not converge: the final training loss (total, and the contrastive term for arms with
      one) not below FAILED_LOSS_SHARE of the first (`failed_by_loss`), where the table holds first
      losses (`train_loss_first`, `train_contrastive_loss_first`: run_ablation reads them off the history);
    - the run diverged: its last-layer EOS gap is an outlier among the seeds (`diverged_seeds`, DIVERGED_ALPHA).
    """
    arms = [a for a in ARMS if a in set(df.arm)]
    out: dict = {a: {} for a in arms}
    for arm in arms:
        for term in ("loss", "contrastive_loss"):
            first = _train_metric(df, arm, f"train_{term}_first")
            if (arm == "lm" and term == "contrastive_loss") or first.empty:
                continue
            final = _train_metric(df, arm, f"train_{term}").to_dict()
            for seed in V.failed_by_loss(first.to_dict(), final):
                f1 = final.get(seed, math.nan)
                out[arm].setdefault(
                    seed,
                    f"{term.replace('_', ' ')} {f1:.3g} not below {V.FAILED_LOSS_SHARE:g} x its first {first[seed]:.3g}",
                )
    top = last_layer(df)
    gaps = {a: _per_seed(df, a, "hidden", top, "eos", "gap").to_dict() for a in arms}
    for arm, flagged in diverged_seeds(gaps).items():
        for seed, (t, p, n_tested) in flagged.items():
            out[arm].setdefault(
                seed,
                f"diverged: last-layer gap {gaps[arm][seed]:.3f}, t = {t:.1f} from its arm's other seeds "
                f"(p = {p:.2g} < {DIVERGED_ALPHA:g} / {n_tested} seeds)",
            )
    return {a: d for a, d in out.items() if d}


def _set_aside(failed: dict, arms, seeds) -> tuple[set, list[str], str]:
    """The seeds a claim over `arms` sets aside (any of its arms failed there), their names for
    `failed_seeds` ("contrastive seed 2"), and a sentence saying why."""
    out, names, why = set(), [], []
    for seed in sorted(seeds):
        bad = [a for a in arms if seed in failed.get(a, {})]
        if bad:
            out.add(seed)
            names.append(f"{'+'.join(bad)} seed {seed}")
            why += [f"{a} seed {seed}: {failed[a][seed]}" for a in bad]
    return out, names, "; ".join(why)


def _caption_gate(df: pd.DataFrame, arms, exclude) -> V.Gate:
    """The worst arm's seed-mean slot accuracy (teacher forced, held out; failed seeds left out unless none
    is left: the seeds gate reports that)."""
    means = {}
    for arm in arms:
        acc = _train_metric(df, arm, "val_caption_acc")
        kept = acc.drop(index=[s for s in exclude if s in acc.index])
        means[arm] = float((kept if len(kept) else acc).mean()) if len(acc) else math.nan
    worst = min(means, key=lambda a: means[a] if np.isfinite(means[a]) else -math.inf)
    return V.above_chance(
        f"slot accuracy of the captioner, worst arm ({ARM_LABELS[worst]})", means[worst], SLOT_CHANCE, CAPTION_MARGIN
    )


def _values(s: pd.Series) -> str:
    return " ".join(f"{v:.3f}" for v in s.sort_index().to_numpy())


def verdict_gap(df: pd.DataFrame, arm: str, failed: dict | None = None) -> V.Verdict:
    """The modality gap (last-layer EOS) shrinks with `arm`'s contrastive learning: per seed, the LM-only
    arm's gap minus `arm`'s, judged on its own (one verdict per contrastive arm)."""
    failed = failed_seeds(df) if failed is None else failed
    top = last_layer(df)
    lm, other = (_per_seed(df, a, "hidden", top, "eos", "gap") for a in ("lm", arm))
    d = (lm - other).dropna()
    exclude, names, why = _set_aside(failed, ("lm", arm), d.index)
    effect = V.paired_effect(d.to_dict(), exclude=exclude)
    return V.judge(
        f"The modality gap shrinks with contrastive learning ({ARM_LABELS[arm]} vs no contrastive)",
        PAPER,
        effect,
        min_effect=GAP_MIN_EFFECT,
        gates=[_caption_gate(df, ("lm", arm), exclude)],
        failed_seeds=names,
        n_total_seeds=len(d),
        evidence=f"last-layer EOS gap per seed: {ARM_LABELS['lm']} {_values(lm)}; {ARM_LABELS[arm]} {_values(other)}"
        + (f"; {why}" if why else ""),
    )


def verdict_only_hacl(df: pd.DataFrame, *, heads: bool, failed: dict | None = None) -> V.Verdict:
    """Only HACL separates faithful from hallucinated captions: per seed, the smaller of HACL's
    faithful-closer share minus the best other arm's and minus chance (0.5); > 0 when HACL separates and
    beats every other arm. heads: where the contrastive loss acts (the projection heads; the last-layer
    EOS state for the LM-only arm, which has none); else the last-layer EOS states of every arm."""
    failed = failed_seeds(df) if failed is None else failed
    arms = [a for a in ARMS if a in set(df.arm)]
    top = last_layer(df)
    share = {a: _per_seed(df, a, "hidden", top, "eos", "fh_pairwise") for a in arms}
    if heads:
        share = {a: h if len(h := _per_seed(df, a, "head", -1, "eos", "fh_pairwise")) else share[a] for a in arms}
    others = [a for a in arms if a != "hacl"]
    best_other = pd.concat([share[a] for a in others], axis=1).max(axis=1, skipna=False)
    d = pd.concat([share["hacl"] - best_other, share["hacl"] - FAITHFUL_CHANCE], axis=1).min(axis=1, skipna=False)
    d = d.dropna()
    exclude, names, why = _set_aside(failed, arms, d.index)
    effect = V.paired_effect(d.to_dict(), exclude=exclude)
    where = "contrastive heads; last-layer EOS for the LM-only arm" if heads else "last-layer EOS states"
    return V.judge(
        "Only HACL separates hallucinated from faithful captions" + ("" if heads else ", on the last-layer EOS states"),
        PAPER,
        effect,
        min_effect=SEPARATION_MIN_EFFECT,
        gates=[_caption_gate(df, arms, exclude)],
        failed_seeds=names,
        n_total_seeds=len(d),
        evidence=f"faithful caption closer than its hallucination ({where}), per seed: "
        + "; ".join(f"{ARM_LABELS[a]} {_values(share[a])}" for a in arms)
        + f"; statistic: HACL minus the best of the other arms and chance ({FAITHFUL_CHANCE:g})"
        + (f"; {why}" if why else ""),
    )


def _at_chance(claim: str, values: pd.Series, evidence: str) -> V.Verdict:
    """A sanity row: every value within CHANCE_BAND of FAITHFUL_CHANCE (statistic: the band minus the
    distance, > 0 inside the band)."""
    effect = V.paired_effect((CHANCE_BAND - (values - FAITHFUL_CHANCE).abs()).to_dict())
    return V.sanity(
        claim,
        PAPER,
        effect,
        min_effect=CHANCE_BAND / 2,
        evidence=f"{evidence}: {' '.join(f'{v:.3f}' for v in values)} (band {FAITHFUL_CHANCE:g} +- {CHANCE_BAND:g})",
    )


def sanity_checks(df: pd.DataFrame) -> list[V.Verdict]:
    """Results true by construction, checked (kind "sanity"): a probe on captions alone cannot tell a
    caption from its one-word twin (only the clip makes one false); the embedding layer's EOS state has
    not seen the caption, so its faithful-closer share is exactly 0.5."""
    top = last_layer(df)
    probe = _select(df, "hidden", top, "eos", "fh_probe").set_index(["arm", "seed"])["value"]
    embed = _select(df, "hidden", 0, "eos", "fh_pairwise").set_index(["arm", "seed"])["value"]
    out = []
    if len(probe):
        out.append(
            _at_chance(
                "A probe on captions alone cannot tell faithful from hallucinated (by construction: at chance)",
                probe,
                "text-only probe accuracy, every arm and seed",
            )
        )
    if len(embed):
        out.append(
            _at_chance(
                "The embedding layer's EOS state has not seen the caption (faithful-closer share 0.5)",
                embed,
                "layer-0 EOS faithful-closer share, every arm and seed",
            )
        )
    return out


def verdicts(df: pd.DataFrame) -> list[V.Verdict]:
    """HACL's claims from `run_ablation`'s table, each through studio.verdicts.judge, then the sanity rows.

    1. The modality gap shrinks with contrastive learning: one verdict per contrastive arm against the
       LM-only arm (per-seed paired gap difference, last-layer EOS).
    2. Only HACL separates faithful from hallucinated captions where the contrastive loss acts (`verdict_only_hacl`).
    3. The same on the last-layer EOS states of every arm.
    Gates: each compared arm's slot accuracy above a blind guess (SLOT_CHANCE + CAPTION_MARGIN); failed seeds
    (`failed_seeds`) are set aside and named. Needs the lm and hacl arms; returns [] without them.
    """
    arms = [a for a in ARMS if a in set(df.arm)]
    if not {"lm", "hacl"} <= set(arms):
        return []
    failed = failed_seeds(df)
    out = [verdict_gap(df, a, failed) for a in arms if a != "lm"]
    out += [verdict_only_hacl(df, heads=True, failed=failed), verdict_only_hacl(df, heads=False, failed=failed)]
    return out + sanity_checks(df)
