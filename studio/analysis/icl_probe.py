"""How much does multimodal in-context learning look at the images? Evaluate, probe, score.

Anything that answers episodes (studio.data.episodes) can be probed: a *predictor* is a callable taking
a list of episodes and returning a list of answer strings (the tiny ICL model, a Hugging Face VLM
adapter, or the planted predictors of studio.analysis.icl_predictors). Predictors only ever see `blind`
copies: the query's answer, every class label and the private meta keys removed.

    eps = digit_episodes(2000, shots=4, ways=2, symbols=True, seed=0)
    table = probe(my_predictor, eps, seed=0)           # one row per condition and baseline
    score = visual_reliance(my_predictor, eps, seed=0)  # acc(original) - acc(demo images blanked)

Conditions (studio.analysis.icl_conditions) ablate the images or the labels; baselines (majority
demonstration label, last demonstration label, "the answer is one of the demonstration labels", chance)
are computed on the same episodes. Accuracies carry percentile bootstrap CIs
(`studio.stats.percentile_interval`); differences between conditions use a paired bootstrap over
episodes. `evaluate` gives per-episode correctness once; pass it as `correct=` to `probe` and
`visual_reliance` so that an expensive predictor runs once per condition.

Pure numpy/pandas: no torch, no Lightning.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from studio.analysis.icl_conditions import CONDITIONS, IMAGE_ABLATIONS, apply_condition
from studio.analysis.icl_predictors import Predictor, last_label_predictor, majority_predictor
from studio.data.episodes import Episode, blind
from studio.stats import percentile_interval


def _norm(s) -> str:
    return str(s).strip().lower()


def _predict(predictor: Predictor, episodes: list[Episode]) -> list[str]:
    preds = predictor(blind(episodes))
    preds = list(preds)
    if len(preds) != len(episodes):
        raise ValueError(f"predictor returned {len(preds)} answers for {len(episodes)} episodes")
    return preds


def evaluate(
    predictor: Predictor, episodes: Sequence[Episode], seed: int = 0, conditions: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Per-episode correctness under each condition: {condition: bool array (n,)}.

    The predictor sees blinded copies only; an answer is correct when it equals the condition's target
    after stripping whitespace and lower-casing.
    """
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes to probe")
    names = list(CONDITIONS) if conditions is None else list(conditions)
    unknown = [c for c in names if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; valid: {', '.join(CONDITIONS)}")
    out = {}
    for name in names:
        eps, targets = apply_condition(name, episodes, seed)
        preds = _predict(predictor, eps)
        out[name] = np.array([_norm(p) == _norm(t) for p, t in zip(preds, targets)], dtype=bool)
    return out


def _check_boot(n_boot, level):
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_accuracy(
    correct: np.ndarray, n_boot: int = 1000, level: float = 0.95, rng: np.random.Generator | None = None
) -> tuple[float, float, float]:
    """(accuracy, ci_low, ci_high): percentile bootstrap over episodes. Resampling n binary outcomes
    with replacement gives Binomial(n, p) / n exactly, so that is drawn directly."""
    _check_boot(n_boot, level)
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    p = float(correct.mean())
    rng = rng or np.random.default_rng(0)
    draws = rng.binomial(n, p, size=n_boot) / n
    lo, hi = percentile_interval(draws, level)
    return p, float(lo), float(hi)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 1000, level: float = 0.95, rng: np.random.Generator | None = None
) -> dict:
    """Paired bootstrap over episodes of two correctness vectors on the same episodes.

    Returns diff = mean(a) - mean(b) and ratio = mean(b) / mean(a) (nan when mean(a) = 0), each with
    percentile CI (diff_ci_low, diff_ci_high, ratio_ci_low, ratio_ci_high). Resampling episodes is
    drawing the four (a, b) outcome cells from a multinomial, done directly.
    """
    _check_boot(n_boot, level)
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in shape: {a.shape} vs {b.shape}")
    n = len(a)
    cells = np.array([np.sum(a & b), np.sum(a & ~b), np.sum(~a & b), np.sum(~a & ~b)], dtype=float)
    rng = rng or np.random.default_rng(0)
    draws = rng.multinomial(n, cells / n, size=n_boot)
    ma, mb = (draws[:, 0] + draws[:, 1]) / n, (draws[:, 0] + draws[:, 2]) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(ma > 0, mb / np.where(ma > 0, ma, 1), np.nan)
    pa, pb = float(a.mean()), float(b.mean())
    dlo, dhi = percentile_interval(ma - mb, level)
    ratios = ratios[~np.isnan(ratios)]  # resamples with no correct original answer have no ratio
    rlo, rhi = percentile_interval(ratios, level) if len(ratios) else (np.nan, np.nan)
    return {
        "diff": pa - pb,
        "diff_ci_low": float(dlo),
        "diff_ci_high": float(dhi),
        "ratio": pb / pa if pa > 0 else float("nan"),
        "ratio_ci_low": float(rlo),
        "ratio_ci_high": float(rhi),
    }


def _boot_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(b"bootstrap"), zlib.crc32(name.encode())])


def in_demo_labels(episodes: Sequence[Episode]) -> np.ndarray:
    """Per episode: is the true answer one of the demonstration answers? bool (n,)."""
    return np.array([e.answer in {d.answer for d in e.demos} for e in episodes], dtype=bool)


def _reuse(predictor, episodes, seed, names, correct) -> dict[str, np.ndarray]:
    correct = dict(correct or {})
    for name, c in correct.items():
        if len(c) != len(episodes):
            raise ValueError(f"correct[{name!r}] has {len(c)} entries for {len(episodes)} episodes")
    missing = [c for c in names if c not in correct]
    if missing:
        correct.update(evaluate(predictor, episodes, seed, missing))
    return {c: np.asarray(correct[c], dtype=bool) for c in names}


def probe(
    predictor: Predictor,
    episodes: Sequence[Episode],
    seed: int = 0,
    conditions: Sequence[str] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    baselines: bool = True,
    correct: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Accuracy of `predictor` under each condition, with the baselines on the same episodes.

    Returns one row per condition (kind "condition") then per baseline (kind "baseline"):
    kind, condition, accuracy, ci_low, ci_high (percentile bootstrap, `level`), n, delta (accuracy -
    accuracy on "original", nan without it). Baselines: baseline_majority (majority demonstration
    answer), baseline_last (last demonstration answer), baseline_in_demo_labels (share of episodes
    whose answer is among the demonstration answers: the ceiling of any copy-a-label strategy) and
    baseline_chance (mean 1 / number of candidates; its CI is the point).
    correct: an `evaluate` result for these episodes and seed, to reuse (conditions missing from it are
    evaluated); it lets `probe` and `visual_reliance` share one pass of an expensive predictor.
    """
    _check_boot(n_boot, level)
    episodes = list(episodes)
    names = list(CONDITIONS) if conditions is None else list(conditions)
    correct = _reuse(predictor, episodes, seed, names, correct)
    rows = []
    for name, c in correct.items():
        acc, lo, hi = bootstrap_accuracy(c, n_boot, level, _boot_rng(seed, name))
        rows.append(dict(kind="condition", condition=name, accuracy=acc, ci_low=lo, ci_high=hi, n=len(c)))
    if baselines:
        base = {
            "baseline_majority": evaluate(majority_predictor, episodes, seed, ["original"])["original"],
            "baseline_last": evaluate(last_label_predictor, episodes, seed, ["original"])["original"],
            "baseline_in_demo_labels": in_demo_labels(episodes),
        }
        for name, c in base.items():
            acc, lo, hi = bootstrap_accuracy(c, n_boot, level, _boot_rng(seed, name))
            rows.append(dict(kind="baseline", condition=name, accuracy=acc, ci_low=lo, ci_high=hi, n=len(c)))
        chance = float(np.mean([1.0 / max(len(e.candidates), 1) for e in episodes]))
        rows.append(
            {
                "kind": "baseline",
                "condition": "baseline_chance",
                "accuracy": chance,
                "ci_low": chance,
                "ci_high": chance,
                "n": len(episodes),
            }
        )
    df = pd.DataFrame(rows)
    ref = correct["original"].mean() if "original" in correct else np.nan
    df["delta"] = df["accuracy"] - ref
    return df


def probe_many(predictors: dict[str, Predictor], episodes: Sequence[Episode], seed: int = 0, **kw) -> pd.DataFrame:
    """`probe` for each named predictor on the same episodes and seed, stacked with a `model` column
    (baselines once, under model "baseline")."""
    tables = []
    for i, (name, p) in enumerate(predictors.items()):
        t = probe(p, episodes, seed=seed, baselines=(i == 0), **kw)
        t.insert(0, "model", np.where(t["kind"] == "baseline", "baseline", name))
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def visual_reliance(
    predictor: Predictor,
    episodes: Sequence[Episode],
    seed: int = 0,
    ablation: str = "demo_images_blank",
    n_boot: int = 1000,
    level: float = 0.95,
    correct: dict[str, np.ndarray] | None = None,
) -> dict:
    """How much the predictor's accuracy depends on the demonstration images.

    reliance = acc(original) - acc(`ablation`), by default demonstration images blanked to zeros
    (the definition of the prototype in shared/reference/icl-notes.md and of SymDPO's Fig. 1b);
    text_only_ratio = acc(demonstration images removed) / acc(original) (nan when acc(original) = 0).
    Both with paired-bootstrap CIs over episodes. Also reported for every ablation in IMAGE_ABLATIONS:
    acc_<name>, reliance_<name> and its CI. The same seed gives the same ablated episodes as `probe`.
    correct: an `evaluate` result to reuse, as in `probe`.

    Returns a flat dict: ablation, n, acc_original, reliance, reliance_ci_low, reliance_ci_high,
    text_only_ratio, text_only_ratio_ci_low, text_only_ratio_ci_high, acc_<name>, reliance_<name>,
    reliance_<name>_ci_low, reliance_<name>_ci_high for each image ablation.
    """
    if ablation not in CONDITIONS or ablation == "original":
        raise ValueError(f"unknown ablation {ablation!r}; valid: {', '.join(c for c in CONDITIONS if c != 'original')}")
    _check_boot(n_boot, level)
    episodes = list(episodes)
    names = ["original"] + list(dict.fromkeys(list(IMAGE_ABLATIONS) + [ablation]))
    correct = _reuse(predictor, episodes, seed, names, correct)
    orig = correct["original"]
    out = {"ablation": ablation, "n": len(orig), "acc_original": float(orig.mean())}
    for name in names[1:]:
        pb = paired_bootstrap(orig, correct[name], n_boot, level, _boot_rng(seed, "reliance_" + name))
        out[f"acc_{name}"] = float(correct[name].mean())
        out[f"reliance_{name}"] = pb["diff"]
        out[f"reliance_{name}_ci_low"] = pb["diff_ci_low"]
        out[f"reliance_{name}_ci_high"] = pb["diff_ci_high"]
        if name == ablation:
            out["reliance"] = pb["diff"]
            out["reliance_ci_low"], out["reliance_ci_high"] = pb["diff_ci_low"], pb["diff_ci_high"]
        if name == "demo_images_removed":
            out["text_only_ratio"] = pb["ratio"]
            out["text_only_ratio_ci_low"], out["text_only_ratio_ci_high"] = pb["ratio_ci_low"], pb["ratio_ci_high"]
    return out
