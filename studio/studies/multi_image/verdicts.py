"""The multi-image study's verdicts, with their gates and thresholds (studio.studies.multi_image makes the
tables they read: `run_difference` rows, one per (arm, task, seed, change); `run_retrieval` hits, one per
(retriever, gallery, seed, round, query)). Every verdict goes through `studio.verdicts.judge`.

Each claim's statistic is a per-seed paired difference (arms paired by training seed) in the claimed
direction. Gates: every arm compared is above its task's baseline by a declared margin (grounding: the F1
of predicting no cell; captions: the word accuracy of the instruction alone, `difference_chance`;
retrieval: k / gallery). A seed at its baseline while the arm's other seeds are not is named in
`failed_seeds` and set aside (studio.verdicts' policy). "Recall rises with rounds" is a sanity row: each
round adds one true clue by construction of the dialogues (studio.data.dialogues).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from studio.stats import percentile_interval
from studio.verdicts import (
    MIN_SEEDS,  # noqa: F401  (the study's name for the rule's seed minimum)
    Verdict,
    above_chance,
    failed_at_chance,
    gate,
    judge,
    paired_effect,
    sanity,
    untestable,
)

ONEDIFF, DIFFGROUND, CHATSEARCH = (
    "OneDiff (arXiv 2407.05645)",
    "DiffTracker (arXiv 2504.01952)",
    "ChatSearch (arXiv 2410.18715)",
)
GENERATIVE_NO_IMAGES = "generative, no images"  # the control's label in the hits table

# ---------------------------------------------------------------- difference captioning and grounding
# An arm grounds when its F1 clears the predict-no-cell baseline (the share of pairs with no asked change,
# 0.24 on the default bank) by 0.2: it finds the changed cells of at least about a quarter of the pairs
# that have them. The one collapsed concat seed of the default run (F1 0.31) is under it.
F1_MARGIN = 0.2
# An arm captions when its word accuracy clears the instruction-only baseline (the most frequent word per
# position given the asked type: 0.46 on the default bank) by 0.1, four-tenths of a word per caption.
CAPTION_MARGIN = 0.1
# Five points of F1 (or of word accuracy): about one more changed cell found (word right) in every twenty
# pairs, beyond the +-0.03 that another 600-pair eval bank moves the mean. The papers give no size in
# these units (OneDiff reports CIDEr; DiffTracker no numbers we could read).
MIN_F1_GAIN = 0.05
MIN_WORD_GAIN = 0.05

# ---------------------------------------------------------------- retrieval
# A retriever retrieves when its recall@k after the last round clears chance (k / gallery) by 0.1: ten
# more targets per hundred queries than guessing.
RECALL_MARGIN = 0.1
# Five more targets per hundred queries found in the top k: the smallest retrieval gain that would matter.
MIN_RECALL_GAIN = 0.05


# ---------------------------------------------------------------- helpers
def _seeds(rows: pd.DataFrame, arm: str, task: str, metric: str, change: str = "all") -> pd.Series:
    sel = (rows["arm"] == arm) & (rows["task"] == task) & (rows["change"] == change)
    return rows.loc[sel].set_index("seed")[metric]


def _failed(per_arm: Mapping[str, pd.Series], chance: float, margin: float) -> dict:
    """{seed: why}: seeds at chance (<= chance + margin) where the same arm's other seeds are not, or NaN."""
    out = {}
    for name, values in per_arm.items():
        for s in values.index[values.isna()].tolist():
            out.setdefault(s, f"{name}: no value (diverged)")
        for s in failed_at_chance(values.dropna().to_dict(), chance, margin):
            out.setdefault(s, f"{name} at chance: {values[s]:.3f}")
    return out


def _kept_gates(per_arm: Mapping[str, pd.Series], failed, name: str, chance: float, margin: float) -> list:
    """One above-chance gate per arm on its kept seeds' mean; `name` formats with {arm}."""
    return [
        above_chance(name.format(arm=arm), v.drop(index=[s for s in failed if s in v.index]).mean(), chance, margin)
        for arm, v in per_arm.items()
    ]


def _named(failed: dict) -> str:
    return " Failed: " + "; ".join(f"seed {s} ({why})" for s, why in sorted(failed.items())) + "." if failed else ""


def _per_seed(x: Mapping, signed: bool = True) -> str:
    return ", ".join(f"{s}: {v:+.3f}" if signed else f"{s}: {v:.3f}" for s, v in x.items())


def _none_share(rows: pd.DataFrame) -> float:
    """Share of held-out pairs with no change of the asked type (the F1 of predicting no cell)."""
    one = rows[["arm", "task", "seed"]].drop_duplicates().iloc[0]
    part = rows[(rows["arm"] == one["arm"]) & (rows["task"] == one["task"]) & (rows["seed"] == one["seed"])]
    n = part.set_index("change")["n"]
    return float(n.get("none", 0) / n["all"])


def difference_baselines(rows: pd.DataFrame, chance: Mapping | None = None) -> dict:
    """The chance levels of the difference tasks: f1 (predict no cell: the share of "none" pairs) and
    caption_words (given by `chance`, e.g. `difference_chance(bank)`; without it the floor of a model that
    only repeats the asked type as its first word)."""
    none = _none_share(rows) if "n" in rows else 0.0
    out = {"f1": none, "caption_words": 0.25 * (1 - none)}
    out.update({k: float(v) for k, v in (chance or {}).items() if k in out})
    return out


# ---------------------------------------------------------------- difference verdicts
def verdict_delta(rows: pd.DataFrame, chance: Mapping | None = None) -> Verdict:
    """The delta module beats concatenation on grounding F1 at equal visual tokens (multi-task models).
    statistic: per seed, F1(delta) - F1(concat); min_effect MIN_F1_GAIN. Gates: each arm's F1 above the
    predict-no-cell baseline + F1_MARGIN (over its kept seeds)."""
    claim = "A delta module (difference enhancement + common suppression) grounds differences better than concatenated image tokens at equal tokens"
    paper = f"{ONEDIFF}; {DIFFGROUND}"
    base = difference_baselines(rows, chance)["f1"]
    f1 = {arm: _seeds(rows, arm, "multi", "f1") for arm in ("delta", "concat")}
    seeds = f1["delta"].index.intersection(f1["concat"].index)
    if not len(seeds):
        return untestable(claim, paper, [gate("seeds trained with both arms", 0, 0)])
    f1 = {k: v.loc[seeds] for k, v in f1.items()}
    failed = _failed(f1, base, F1_MARGIN)
    gates = _kept_gates(f1, failed, "grounding F1 of {arm} over predicting no cell", base, F1_MARGIN)
    diff = f1["delta"] - f1["concat"]
    effect = paired_effect(diff.to_dict(), exclude=failed)
    weak = ""
    if "change" in rows:
        per = rows[(rows["task"] == "multi") & (rows["change"] != "all")].groupby(["arm", "change"])["f1"].mean()
        low = [f"{a} {c} {v:.2f}" for (a, c), v in per.items() if v < 0.05]
        weak = f" Seed-mean F1 under 0.05 on: {', '.join(low)}." if low else ""
    iou = ""
    if "iou" in rows:
        d = _seeds(rows, "delta", "multi", "iou").loc[seeds] - _seeds(rows, "concat", "multi", "iou").loc[seeds]
        iou = f" IoU delta - concat per seed: {_per_seed(d)}."
    ev = (
        f"Grounding F1 per seed, delta {_per_seed(f1['delta'], False)}; concat {_per_seed(f1['concat'], False)} "
        f"(18 visual tokens each; predict-no-cell baseline {base:.3f}); delta - concat {_per_seed(diff)}."
        + iou
        + weak
        + _named(failed)
    )
    return judge(claim, paper, effect, min_effect=MIN_F1_GAIN, evidence=ev, gates=gates,
                 failed_seeds=sorted(failed), n_total_seeds=len(seeds))  # fmt: skip


HEADS = {  # head: metric, its name, min_effect, gate margin, what its chance level is
    "caption": ("caption_words", "caption word accuracy", MIN_WORD_GAIN, CAPTION_MARGIN, "the instruction alone"),
    "ground": ("f1", "grounding F1", MIN_F1_GAIN, F1_MARGIN, "predicting no cell"),
}


def verdict_multitask(rows: pd.DataFrame, head: str = "caption", chance: Mapping | None = None) -> Verdict:
    """Multi-task training (caption + grounding) beats training `head` alone: per seed, the mean over the
    arms trained both ways of metric(multi) - metric(single), where the metric is caption word accuracy
    (head "caption") or grounding F1 ("ground"): one verdict per metric, never their average. Gates:
    each model compared above its baseline (`difference_baselines`) + the head's margin."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")
    metric, what, min_effect, margin, baseline = HEADS[head]
    claim = f"Multi-task training (caption + grounding on the same pairs) gives a better {what} than training on {head} alone"
    base = difference_baselines(rows, chance)[metric]
    arms = sorted(set(rows.loc[rows["task"] == head, "arm"]))
    if not arms:
        return untestable(claim, ONEDIFF, [gate(f"arms trained on {head} alone", 0, 0)])
    models = {f"{arm}/{task}": _seeds(rows, arm, task, metric) for arm in arms for task in ("multi", head)}
    seeds = sorted(set.intersection(*(set(v.index) for v in models.values())))
    models = {k: v.loc[seeds] for k, v in models.items()}
    failed = _failed(models, base, margin)
    gates = _kept_gates(models, failed, what + " of {arm} over " + baseline, base, margin)
    diff = pd.concat([models[f"{a}/multi"] - models[f"{a}/{head}"] for a in arms], axis=1).mean(axis=1)
    effect = paired_effect(diff.to_dict(), exclude=failed)
    ev = (
        f"{what[0].upper()}{what[1:]} per seed: "
        + "; ".join(f"{k} {_per_seed(v, False)}" for k, v in models.items())
        + f"; multi - single (mean over arms {arms}) {_per_seed(diff)}. Both arms train on the same pairs: "
        "OneDiff's coupled-sample data (extra pseudo-pairs and captions) is absent, so this is multi-task "
        "training at equal data." + _named(failed)
    )
    return judge(claim, ONEDIFF, effect, min_effect=min_effect, evidence=ev, gates=gates,
                 failed_seeds=sorted(failed), n_total_seeds=len(seeds))  # fmt: skip


# ---------------------------------------------------------------- retrieval verdicts
def _recall_seeds(hits: pd.DataFrame, retriever: str, gallery: int, rnd: int, k: int) -> pd.Series:
    sel = (hits["retriever"] == retriever) & (hits["gallery"] == gallery) & (hits["round"] == rnd)
    return hits.loc[sel].groupby("seed")[f"recall_at_{k}"].mean()


def _last(hits: pd.DataFrame) -> tuple[int, int]:
    return int(hits["gallery"].max()), int(hits["round"].max())


def verdict_rounds(hits: pd.DataFrame, k: int = 5) -> Verdict:
    """Sanity: recall@k rises with rounds (each round adds one true clue, by construction). statistic: per
    seed, the mean over the two retrievers of recall@k after the last round minus after the first, on the
    largest gallery; min_effect MIN_RECALL_GAIN. Gates: each retriever above chance after the last round."""
    claim = f"Retrieval improves as the dialogue adds rounds (recall@{k}, last round vs first)"
    n, last = _last(hits)
    first = {r: _recall_seeds(hits, r, n, 1, k) for r in ("dual", "generative")}
    end = {r: _recall_seeds(hits, r, n, last, k) for r in ("dual", "generative")}
    failed = _failed(end, k / n, RECALL_MARGIN)
    gates = _kept_gates(end, failed, f"recall@{k} of {{arm}} after round {last}, gallery {n}", k / n, RECALL_MARGIN)
    gain = {r: end[r] - first[r] for r in end}
    diff = pd.concat(gain.values(), axis=1).mean(axis=1)
    effect = paired_effect(diff.to_dict(), exclude=failed)
    ev = (
        f"Gallery {n}, recall@{k} round {last} minus round 1 per seed: "
        + "; ".join(f"{r} {_per_seed(g)}" for r, g in gain.items())
        + ". True by construction: each round adds one clue about the target (or, by design, nothing), so "
        "this checks the dialogues and the retrievers' use of them, not ChatSearch's finding." + _named(failed)
    )
    return sanity(claim, CHATSEARCH, effect, min_effect=MIN_RECALL_GAIN, evidence=ev, gates=gates,
                  failed_seeds=sorted(failed), n_total_seeds=int(hits["seed"].nunique()))  # fmt: skip


def query_interval(
    hits: pd.DataFrame, a: str, b: str, k: int, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Paired percentile bootstrap over queries of recall@k(a) - recall@k(b) after the last round on the
    largest gallery (hits averaged over seeds per query): how far the difference moves with other queries."""
    n, last = _last(hits)
    sel = hits[(hits["gallery"] == n) & (hits["round"] == last)]
    per = sel.groupby(["retriever", "query"])[f"recall_at_{k}"].mean()
    d = (per.loc[a] - per.loc[b]).to_numpy()
    boot = d[np.random.default_rng(seed).integers(len(d), size=(n_bootstrap, len(d)))].mean(1)
    lo, hi = percentile_interval(boot)
    return float(lo), float(hi)


def _versus(hits, a: str, b: str, claim: str, gated: tuple[str, ...], note: str, k: int = 1) -> Verdict:
    """a beats b on recall@k after the last round, largest gallery: per seed, recall(a) - recall(b);
    min_effect MIN_RECALL_GAIN. Gates: each retriever in `gated` above chance k / N + RECALL_MARGIN."""
    n, last = _last(hits)
    x, y = _recall_seeds(hits, a, n, last, k), _recall_seeds(hits, b, n, last, k)
    seeds = x.index.intersection(y.index)
    if not len(seeds):
        return untestable(claim, CHATSEARCH, [gate(f"seeds with both {a} and {b}", 0, 0)])
    x, y = x.loc[seeds], y.loc[seeds]
    recall = {a: x, b: y}
    failed = _failed({r: recall[r] for r in gated}, k / n, RECALL_MARGIN)
    gates = _kept_gates(
        {r: recall[r] for r in gated},
        failed,
        f"recall@{k} of {{arm}} after round {last}, gallery {n}",
        k / n,
        RECALL_MARGIN,
    )
    diff = x - y
    effect = paired_effect(diff.to_dict(), exclude=failed)
    lo, hi = query_interval(hits, a, b, k)
    ev = (
        f"Recall@{k} after {last} rounds, gallery {n}, per seed: {a} {_per_seed(x, False)}; {b} {_per_seed(y, False)}; "
        f"difference {_per_seed(diff)} (a paired bootstrap over the {hits['query'].nunique()} queries, seeds "
        f"averaged, gives {lo:+.3f}..{hi:+.3f}; context, not the rule's interval). {note}" + _named(failed)
    )
    return judge(claim, CHATSEARCH, effect, min_effect=MIN_RECALL_GAIN, evidence=ev, gates=gates,
                 failed_seeds=sorted(failed), n_total_seeds=len(seeds))  # fmt: skip


def verdict_generative(hits: pd.DataFrame) -> Verdict:
    return _versus(
        hits,
        "generative",
        "dual",
        "The generative retriever (interleaved LM) beats a contrastive dual encoder",
        ("generative", "dual"),
        "The dual encoder reads the dialogue text only and the generative retriever also the reference "
        "images, so the comparison mixes architecture with input.",
    )


def verdict_images(hits: pd.DataFrame) -> Verdict:
    return _versus(
        hits,
        "generative",
        GENERATIVE_NO_IMAGES,
        "Images in the dialogue context help the generative retriever (control: reference images blanked at test time)",
        ("generative",),
        "The images are blanked at test time only, in a model trained with them: this measures how much the "
        "model relies on them, not a model trained without images.",
    )


def verdicts(rows: pd.DataFrame, hits: pd.DataFrame, chance: Mapping | None = None) -> list[Verdict]:
    """Every verdict of the study; `chance`: the difference tasks' baselines (`difference_chance(bank)`)."""
    return [
        verdict_delta(rows, chance),
        verdict_multitask(rows, "caption", chance),
        verdict_multitask(rows, "ground", chance),
        verdict_rounds(hits),
        verdict_generative(hits),
        verdict_images(hits),
    ]
