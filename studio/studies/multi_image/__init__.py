"""The multi-image study: difference captioning and grounding (OneDiff, DiffGround) and conversational
retrieval (ChatSearch), at small scale on the scenes' grid.

    enc = encoder({"steps": 400})                                     # the frozen cell encoder (cached)
    diff = difference_data(enc, n_train=3000, n_eval=600)             # pairs with 0-3 planted changes
    rows = run_difference(diff, models_to_train(["delta"]), [0, 1], steps=300)   # per (arm, task, seed, change)
    ret = retrieval_data(enc, n_train=2000, galleries=[50, 200])      # galleries and dialogues
    hits = run_retrieval(ret, [0, 1], steps=300)                      # per (retriever, gallery, seed, round, query)
    recall = recall_table(hits)                                       # recall@k per round with bootstrap intervals
    save_verdicts(verdicts(rows, hits, difference_chance(diff["eval_bank"])), "multi_image")

Difference models (`studio.models.delta`) get 18 visual tokens in both arms: "concat" (the two images'
tokens) and "delta" (the same tokens through a difference gate: common suppression, difference
enhancement, plus the signed difference). Each is trained multi-task (caption + grounding); the arms in
`single_task_arms` are also trained on each task alone. Retrievers (`studio.models.retriever`): a dual
encoder over the text rounds, and the generative retriever (the tiny interleaved LM), the latter also
scored with the reference images blanked ("no images in context" control).

Verdicts (`studio.studies.multi_image.verdicts`, through `studio.verdicts.judge`): per-seed paired
differences in the claimed direction, gated on every arm compared being above its task's baseline
(`difference_chance`: predict no cell for grounding, the instruction alone for captions; k / N for
retrieval); fewer than MIN_SEEDS usable seeds is inconclusive. "Recall rises with rounds" is a sanity row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from studio.analysis.grounding import grounding_scores, recall_at_k
from studio.cache import code_fingerprint
from studio.data import dialogues as Dg
from studio.data import pairs as P
from studio.data import scenes as S
from studio.models import cell_encoder as E
from studio.models.delta import ARMS, TASKS, DeltaConfig, build_diffnet, diffnet_spec
from studio.models.net_fit import cached_net
from studio.models.retriever import RetrieverConfig, build_retriever, retriever_spec
from studio.plain import check_probability
from studio.repro import cpu_threads
from studio.stats import percentile_interval
from studio.studies.multi_image.verdicts import (  # noqa: F401  (the notebook's verdicts)
    CHATSEARCH,
    DIFFGROUND,
    GENERATIVE_NO_IMAGES,
    MIN_SEEDS,
    ONEDIFF,
    difference_baselines,
    query_interval,
    verdict_delta,
    verdict_generative,
    verdict_images,
    verdict_multitask,
    verdict_rounds,
    verdicts,
)
from studio.training import OptimConfig

WARMUP = 0.1
KS = (1, 5)
CHANGES = (*P.CHANGE_TYPES, P.NONE)
RETRIEVER_LABELS = ("dual", "generative", GENERATIVE_NO_IMAGES)


# ---------------------------------------------------------------- frozen features
def encoder(config: dict | None = None, threads: int | None = 1, log=print):
    """The frozen, pretrained cell encoder of the scenes (`cell_encoder.scene_encoder`, cached by config)."""
    with cpu_threads(threads):
        return E.scene_encoder(config or {}, log=log)


@torch.no_grad()
def image_features(enc, images: np.ndarray, batch: int = 1024) -> torch.Tensor:
    """images (..., 3, SIZE, SIZE) -> frozen cell features (..., 9, C)."""
    x = torch.as_tensor(images)
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = torch.cat([enc(flat[i : i + batch]) for i in range(0, len(flat), batch)])
    return out.reshape(*lead, *out.shape[1:])


# ---------------------------------------------------------------- difference captioning and grounding
def difference_data(enc, n_train: int = 3000, n_eval: int = 600, data_seed: int = 0) -> dict:
    """Training pairs (train-split scans) and held-out pairs (test-split scans) as tensors
    (feats (n, 2, 9, C), instruction_ids (n, 2), description_ids (n, 4), changed (n, 9)) and the eval bank."""
    train = P.pair_bank(n_train, seed=data_seed, split="train")
    bank = P.pair_bank(n_eval, seed=data_seed + 1, split="test")

    def tensors(b):
        return (
            image_features(enc, b["images"]),
            torch.from_numpy(b["instruction_ids"]),
            torch.from_numpy(b["description_ids"]),
            torch.from_numpy(b["changed"]),
        )

    return {"train": tensors(train), "eval": tensors(bank), "eval_bank": bank}


def models_to_train(single_task_arms=("delta",)) -> list[tuple[str, str]]:
    """(arm, task) pairs: every arm multi-task, the `single_task_arms` also on each task alone."""
    bad = [a for a in single_task_arms if a not in ARMS]
    if bad:
        raise ValueError(f"unknown arm(s) {bad}; valid: {list(ARMS)}")
    return [(a, "multi") for a in ARMS] + [(a, t) for a in single_task_arms for t in TASKS if t != "multi"]


def train_difference(
    data: dict,
    arm: str,
    task: str,
    seed: int,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    model: dict | None = None,
    log=print,
):
    """One difference model, trained once per (config, seed, data, code) and loaded after."""
    cfg = DeltaConfig(arm=arm, task=task, **(model or {}))
    optim = OptimConfig(lr=lr, weight_decay=0.01, warmup=WARMUP, steps=steps)
    spec = diffnet_spec(cfg, data["train"][0].shape[-1])
    code = code_fingerprint("studio.models.delta", "studio.models.net_fit")
    return cached_net(
        "multi_image_delta",
        spec,
        build_diffnet,
        data["train"],
        optim,
        batch_size=batch_size,
        seed=seed,
        code=code,
        log=log,
    )


def evaluate_difference(net, data: dict) -> pd.DataFrame:
    """Per held-out pair: caption_exact (all four words), caption_words (share right), precision, recall,
    f1, iou of the predicted cells; change = the asked type ("none" without one)."""
    feats, instr, desc, changed = data["eval"]
    with cpu_threads(1):
        words, masks = net.predict(feats, instr)
    right = (words == desc).numpy()
    g = grounding_scores(masks.numpy(), changed.numpy())
    return pd.DataFrame(
        {
            "change": data["eval_bank"]["asked"],
            "caption_exact": right.all(1).astype(float),
            "caption_words": right.mean(1),
            **g,
        }
    )


METRICS = ("caption_exact", "caption_words", "precision", "recall", "f1", "iou")
HEAD_OF = {
    "caption_exact": "caption",
    "caption_words": "caption",
    "precision": "ground",
    "recall": "ground",
    "f1": "ground",
    "iou": "ground",
}


def run_difference(
    data: dict,
    models,
    seeds,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    model: dict | None = None,
    log=print,
) -> pd.DataFrame:
    """One row per (arm, task, seed, change) with the mean of each metric over its pairs and n (pairs),
    plus change = "all"; a metric of a head the model was not trained on is NaN. seconds: training time."""
    rows = []
    for arm, task in models:
        for seed in seeds:
            net, metrics, _ = train_difference(
                data, arm, task, seed, steps=steps, batch_size=batch_size, lr=lr, model=model, log=log
            )
            per = evaluate_difference(net, data)
            for m in METRICS:
                if task != "multi" and HEAD_OF[m] != task:
                    per[m] = np.nan
            for change, part in [("all", per), *per.groupby("change")]:
                rows.append(
                    {
                        "arm": arm,
                        "task": task,
                        "seed": seed,
                        "change": change,
                        "n": len(part),
                        **part[list(METRICS)].mean().to_dict(),
                        "seconds": metrics["seconds"],
                    }
                )
    return pd.DataFrame(rows)


def difference_chance(bank: dict) -> dict[str, float]:
    """The difference tasks' baselines on a pair bank (the verdicts' chance levels): f1, the grounding F1 of
    predicting no cell (= the share of pairs with no change of the asked type); caption_words, the word
    accuracy of the instruction alone (per asked type, the most frequent word at each position)."""
    asked, desc = np.asarray(bank["instruction_ids"])[:, -1], np.asarray(bank["description_ids"])
    right = np.zeros(desc.shape, bool)
    for kind in np.unique(asked):
        m = asked == kind
        for j in range(desc.shape[1]):
            words, counts = np.unique(desc[m, j], return_counts=True)
            right[m, j] = desc[m, j] == words[counts.argmax()]
    return {"f1": float(np.mean(np.asarray(bank["asked"]) == P.NONE)), "caption_words": float(right.mean())}


def difference_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (arm, task, change): seed mean, min and max of every metric, n_seeds."""
    g = rows.groupby(["arm", "task", "change"], sort=False)
    out = g[list(METRICS)].mean()
    for m in METRICS:
        out[f"{m}_min"], out[f"{m}_max"] = g[m].min(), g[m].max()
    out["n_seeds"] = g["seed"].nunique()
    return out.reset_index()


# ---------------------------------------------------------------- conversational retrieval
def check_knobs(*, p_nothing: float, galleries) -> None:
    """Refuse, before any training, the retrieval knobs that `retrieval_data` would refuse later."""
    check_probability("p_nothing", p_nothing, below_one=True)
    small = [n for n in galleries if n < max(KS)]
    if small:
        raise ValueError(
            f"galleries: a gallery of {small[0]} scenes is smaller than k={max(KS)}: recall@{max(KS)} needs a gallery of at least {max(KS)}"
        )


def retrieval_data(
    enc,
    n_train: int = 3000,
    galleries=(50, 200),
    n_queries: int = 100,
    rounds: int = Dg.ROUNDS,
    p_nothing: float = 0.25,
    data_seed: int = 0,
) -> dict:
    """Training dialogues (one per train-split layout) and, per gallery size N, a gallery of N held-out
    layouts with dialogues about min(N, n_queries) of them. Refuses a gallery smaller than the largest k."""
    check_knobs(p_nothing=p_nothing, galleries=galleries)  # p_nothing = 1: no round says anything
    blank = image_features(enc, np.zeros((1, 3, S.SIZE, S.SIZE), np.float32))[0]

    def batch(layouts, dialogues, images):
        inter = Dg.interleave(dialogues["round_ids"], dialogues["has_reference"])
        return (
            torch.from_numpy(inter["ids"]),
            torch.from_numpy(inter["slot"]),
            torch.from_numpy(inter["query"]),
            image_features(enc, dialogues["references"]),
            images[torch.from_numpy(dialogues["target"])],
            torch.from_numpy(dialogues["round_ids"]),
        )

    train_layouts = Dg.gallery_layouts(n_train, seed=data_seed, split="train")
    train_images = image_features(enc, Dg.render_gallery(train_layouts, seed=data_seed))
    train_d = Dg.dialogue_bank(train_layouts, seed=data_seed, rounds=rounds, p_nothing=p_nothing)
    out = {"train": batch(train_layouts, train_d, train_images), "galleries": {}, "blank": blank}
    for n in galleries:
        seed = data_seed + 1000 + int(n)
        layouts = Dg.gallery_layouts(int(n), seed=seed, split="test")
        images = image_features(enc, Dg.render_gallery(layouts, seed=seed))
        targets = np.random.default_rng([seed, 37]).choice(int(n), size=min(int(n), n_queries), replace=False)
        d = Dg.dialogue_bank(layouts, seed=seed, rounds=rounds, p_nothing=p_nothing, targets=targets)
        out["galleries"][int(n)] = {
            "queries": batch(layouts, d, images),
            "images": images,
            "kinds": d["kinds"],
            "targets": d["target"],
        }
    return out


def train_retriever(
    data: dict,
    kind: str,
    seed: int,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    model: dict | None = None,
    log=print,
):
    cfg = RetrieverConfig(kind=kind, **(model or {}))
    optim = OptimConfig(lr=lr, weight_decay=0.01, warmup=WARMUP, steps=steps)
    spec = retriever_spec(cfg, data["train"][3].shape[-1])
    code = code_fingerprint("studio.models.retriever", "studio.models.net_fit")
    return cached_net(
        "multi_image_retriever",
        spec,
        build_retriever,
        data["train"],
        optim,
        batch_size=batch_size,
        seed=seed,
        code=code,
        log=log,
    )


def run_retrieval(
    data: dict, seeds, *, steps: int, batch_size: int = 64, lr: float = 2e-3, model: dict | None = None, log=print
) -> pd.DataFrame:
    """One row per (retriever, gallery, seed, round, query): hit@k for k in KS (0/1) and the round's clue."""
    rows = []
    for kind in ("dual", "generative"):
        for seed in seeds:
            net, _, _ = train_retriever(
                data, kind, seed, steps=steps, batch_size=batch_size, lr=lr, model=model, log=log
            )
            for n, g in data["galleries"].items():
                variants = [(kind, g["queries"])]
                if kind == "generative":  # the control: every reference image replaced by a blank one
                    q = list(g["queries"])
                    q[3] = data["blank"].expand_as(q[3]).clone()
                    variants.append((GENERATIVE_NO_IMAGES, tuple(q)))
                for label, queries in variants:
                    with cpu_threads(1):
                        s = net.scores(queries, g["images"]).numpy()  # (n, R, N)
                    tpos = g["targets"]
                    for r in range(s.shape[1]):
                        hits = {f"recall_at_{k}": recall_at_k(s[:, r], tpos, k) for k in KS}
                        rows.append(
                            pd.DataFrame(
                                {
                                    "retriever": label,
                                    "gallery": n,
                                    "seed": seed,
                                    "round": r + 1,
                                    "query": np.arange(len(s)),
                                    "clue": g["kinds"][:, r],
                                    **hits,
                                }
                            )
                        )
    return pd.concat(rows, ignore_index=True)


def recall_table(hits: pd.DataFrame, n_bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per (retriever, gallery, round, k): mean recall over queries and seeds, a percentile bootstrap
    interval over queries (ci_low, ci_high), the seed means' min and max, n_seeds, and chance k / N."""
    rng = np.random.default_rng(seed)
    rows = []
    for (ret, n, r), part in hits.groupby(["retriever", "gallery", "round"], sort=False):
        per_query = part.groupby("query")
        for k in KS:
            col = f"recall_at_{k}"
            q = per_query[col].mean().to_numpy()  # averaged over seeds
            boot = q[rng.integers(len(q), size=(n_bootstrap, len(q)))].mean(1)
            lo, hi = percentile_interval(boot)
            seeds = part.groupby("seed")[col].mean()
            rows.append(
                {
                    "retriever": ret,
                    "gallery": n,
                    "round": r,
                    "k": k,
                    "mean": q.mean(),
                    "ci_low": lo,
                    "ci_high": hi,
                    "seed_min": seeds.min(),
                    "seed_max": seeds.max(),
                    "n_seeds": len(seeds),
                    "chance": k / n,
                }
            )
    return pd.DataFrame(rows)


def seed_spread(table: pd.DataFrame, keys: list[str], columns: list[str]) -> dict[str, float]:
    """Per column, the largest range over seeds within any group of `keys` (what --check tolerates)."""
    from studio.tolerance import seed_range

    return seed_range(table, keys, columns)


def describe_models(models) -> str:
    return ", ".join(f"{a}/{t}" for a, t in models)
