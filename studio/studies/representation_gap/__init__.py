"""The HACL ablation at small scale: train the captioner three ways, measure gap and hallucination.

    df, models = run_ablation(("lm", "contrastive", "hacl"), seeds=[0, 1, 2], config=AblationConfig(),
                              return_models=True)      # models keyed (arm, seed)
    save_verdicts(verdict(df), "representation_gap")   # does the small run show what HACL claims?

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
- from validation: `val_caption_acc` (teacher-forced accuracy on the six slot words), `val_lm_loss`.
"""

from __future__ import annotations

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
SEPARATED = 0.75  # faithful-closer share at which an arm counts as separating faithful from hallucinated
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


def summary(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per arm, the headline numbers: mean over seeds with a t interval (`studio.stats.t_interval`),
    n_seeds and the per-seed values.

    gap and fh_pairwise at the last layer's EOS (the representation HACL trains), the same in the
    heads' space, visual-vs-text probe accuracy, caption accuracy and CHAIR.
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


def _per_seed(df: pd.DataFrame, arm: str, *pick) -> pd.Series:
    part = _select(df, *pick)
    return part[part.arm == arm].groupby("seed")["value"].mean()


def _margin(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """(mean, t half-width) of the per-seed paired differences a - b; half-width NaN below 2 seeds."""
    mean, _, hi = t_interval((a - b).dropna())
    return mean, hi - mean


def _inside(mean: float, half: float) -> bool:
    return not abs(mean) > half  # inside the seed spread; always with one seed (NaN spread): never resolved


def _fmt(d: dict) -> str:
    return ", ".join(f"{ARM_LABELS[a]} {v:.3f}" for a, v in d.items())


def _only_hacl(claim: str, where: str, per_seed: dict[str, pd.Series]) -> V.Verdict:
    """HACL's share >= SEPARATED, every other arm's below it, and HACL ahead on every seed;
    a tie when the thresholds hold but a margin over another arm is inside the seed spread."""
    means = {a: float(s.mean()) for a, s in per_seed.items()}
    others = [a for a in per_seed if a != "hacl"]
    margins = {a: _margin(per_seed["hacl"], per_seed[a]) for a in others}
    thresholds = means["hacl"] >= SEPARATED and all(means[a] < SEPARATED for a in others)
    every_seed = all(bool(((d := (per_seed["hacl"] - per_seed[a]).dropna()) > 0).all() and len(d)) for a in others)
    closest = min(others, key=lambda a: margins[a][0])
    value, spread = margins[closest]
    return V.verdict(
        claim,
        PAPER,
        holds=thresholds and every_seed,
        tie=thresholds and any(_inside(*margins[a]) for a in others),
        value=value,
        spread=spread,
        evidence=f"faithful caption closer than its hallucination ({where}; seed means, separated >= {SEPARATED}): "
        f"{_fmt(means)}; HACL's smallest margin {value:+.3f} over {ARM_LABELS[closest]}, "
        f"t half-width {spread:.3f}",
    )


def verdict(df: pd.DataFrame) -> list[V.Verdict]:
    """Does the run show HACL's claims? Computed from df (`run_ablation`'s table), never asserted.

    1. The modality gap (last-layer EOS) shrinks with contrastive learning: both contrastive arms'
       seed means below the LM-only arm's; a tie when a paired per-seed difference's mean is inside
       its t half-width (or there is one seed).
    2. Only HACL separates faithful from hallucinated captions where the contrastive loss acts (the
       heads; the last-layer EOS state for the LM-only arm, which has none): HACL's fh_pairwise share
       is at least SEPARATED, every other arm's below it, and HACL is ahead on every seed; a tie when
       a margin is inside the seed spread.
    3. The same on the last-layer EOS states of every arm.
    Needs the lm and hacl arms; returns [] without them.
    """
    arms = [a for a in ARMS if a in set(df.arm)]
    if not {"lm", "hacl"} <= set(arms):
        return []
    top = last_layer(df)
    hidden = ("hidden", top, "eos")
    gaps = {a: _per_seed(df, a, *hidden, "gap") for a in arms}
    shrink = {a: _margin(gaps["lm"], gaps[a]) for a in arms if a != "lm"}
    least = min(shrink, key=lambda a: shrink[a][0])
    gap_verdict = V.verdict(
        "The modality gap shrinks with contrastive learning",
        PAPER,
        holds=all(gaps[a].mean() < gaps["lm"].mean() for a in shrink),
        tie=any(_inside(*m) for m in shrink.values()),
        value=shrink[least][0],
        spread=shrink[least][1],
        evidence=f"last-layer EOS gap (seed means): {_fmt({a: g.mean() for a, g in gaps.items()})}; "
        f"smallest shrink {shrink[least][0]:+.3f} ({ARM_LABELS[least]}), t half-width {shrink[least][1]:.3f}",
    )
    f_hidden = {a: _per_seed(df, a, *hidden, "fh_pairwise") for a in arms}
    f_heads = {a: _per_seed(df, a, "head", -1, "eos", "fh_pairwise") for a in arms}
    f_heads = {a: s if len(s) else f_hidden[a] for a, s in f_heads.items()}
    return [
        gap_verdict,
        _only_hacl(
            "Only HACL separates hallucinated from faithful captions",
            "contrastive heads; last-layer EOS for the LM-only arm",
            f_heads,
        ),
        _only_hacl(
            "Only HACL separates hallucinated from faithful captions, on the last-layer EOS states",
            "last-layer EOS states",
            f_hidden,
        ),
    ]
