"""The HACL ablation at small scale: train the captioner three ways, measure gap and hallucination.

    df, models = run_ablation(("lm", "contrastive", "hacl"), seeds=(0, 1, 2), config=AblationConfig(),
                              return_models=True)
    verdict(df)   # does the small run show what HACL claims?

For every (arm, seed) the captioner (`studio.models.captioner`) is trained on the same scenes and then
measured on held-out scenes (digit scans never seen in training), with `studio.gap`:
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

The result is long: one row per (arm, seed, space, layer, pool, metric) with `value`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from studio.analysis import gap
from studio.config import from_dict
from studio.data import scenes as S
from studio.models import captioner as C

ARMS = C.ARMS
ARM_LABELS = {"lm": "no contrastive", "contrastive": "contrastive", "hacl": "HACL"}


@dataclass
class AblationConfig:
    n_train: int = 3000          # training scenes (train-split digit scans)
    n_eval: int = 400            # held-out scenes for every measurement (test-split scans)
    n_generate: int = 200        # of those, how many get a greedy caption for CHAIR
    data_seed: int = 0           # the scene streams; the same for every arm and training seed
    encoder: dict = field(default_factory=dict)    # EncoderConfig overrides
    captioner: dict = field(default_factory=dict)  # CaptionerConfig overrides (arm is set per arm)
    probe_pools: tuple = ("eos", "mean")           # poolings measured per layer
    progress: bool = False       # Lightning's progress bar
    threads: int | None = 1      # torch CPU threads while training (see captioner.fit_captioner)

    @classmethod
    def from_dict(cls, values: dict | None) -> "AblationConfig":
        values = dict(values or {})
        if "arm" in (values.get("captioner") or {}):
            raise ValueError("captioner.arm is set by run_ablation's arms; leave it out of the config")
        cfg = from_dict(cls, values)
        from_dict(C.EncoderConfig, cfg.encoder)
        from_dict(C.CaptionerConfig, cfg.captioner)
        return cfg


def prepare_data(config: AblationConfig | dict, log=print) -> dict:
    """Scenes, their captions and visual features from the frozen encoder, computed once.

    Returns train / val: (features (n, 18, F), caption ids (n, 11), hallucinated ids (n, 11)) tensors;
    eval_bank: the held-out scenes' dict from `scenes.scene_bank`; encoder_info: the encoder's
    pretraining accuracies.
    """
    cfg = config if isinstance(config, AblationConfig) else AblationConfig.from_dict(config)
    with C.cpu_threads(cfg.threads):
        encoder = C.scene_encoder(cfg.encoder, log=log)
    train_bank = S.scene_bank(cfg.n_train, seed=cfg.data_seed, split="train")
    eval_bank = S.scene_bank(cfg.n_eval, seed=cfg.data_seed + 1, split="test")

    def tensors(bank):
        return (C.encode_clips(encoder, bank["frames"]), torch.from_numpy(bank["caption_ids"]),
                torch.from_numpy(bank["hallucinated_ids"]))

    return {"train": tensors(train_bank), "val": tensors(eval_bank), "eval_bank": eval_bank,
            "encoder_info": dict(getattr(encoder.module, "pretrain_info", {}))}


def pairwise_separation(visual, faithful, hallucinated) -> float:
    """Share of rows i with cos(visual_i, faithful_i) > cos(visual_i, hallucinated_i), ties counting
    one half. (n, d) x 3 -> float.

    0.5 when the representation cannot tell a scene's caption from its one-slot hallucination (or
    cannot see the caption at all, as the embedding layer's EOS), 1 when it always can.
    """
    v, f, h = gap.normalize(visual), gap.normalize(faithful), gap.normalize(hallucinated)
    sf, sh = np.sum(v * f, 1), np.sum(v * h, 1)
    tie = np.isclose(sf, sh, rtol=0.0, atol=1e-6)
    return float(np.mean(np.where(tie, 0.5, sf > sh)))


def chair(captions, slots: list[dict]) -> dict[str, float]:
    """CHAIR-style hallucination rates of generated captions against their scenes' slots.

    An object mention is hallucinated when the object is not in the scene; an attribute mention
    (colour, object) when the object is absent or has another colour. Returns chair (all mentions),
    chair_object, chair_attribute, and the mean number of mentions per caption.
    """
    n_obj = n_attr = bad_obj = bad_attr = 0
    for text, sl in zip(captions, slots):
        present = {sl["object1"]: sl["colour1"], sl["object2"]: sl["colour2"]}
        for obj, colour in S.mentions(text):
            n_obj += 1
            bad_obj += obj not in present
            if colour is not None:
                n_attr += 1
                bad_attr += present.get(obj) != colour
    total = n_obj + n_attr
    nan = float("nan")
    return {"chair": (bad_obj + bad_attr) / total if total else nan,
            "chair_object": bad_obj / n_obj if n_obj else nan,
            "chair_attribute": bad_attr / n_attr if n_attr else nan,
            "mentions_per_caption": total / max(len(slots), 1)}


def generation_metrics(model: C.Captioner, data: dict, n: int) -> dict[str, float]:
    feats = data["val"][0][:n]
    bank = data["eval_bank"]
    generated = model.generate(feats)
    truth = list(bank["captions"][:n])
    out = {"gen_exact": float(np.mean([g == t for g, t in zip(generated, truth)]))}
    for slot, pos in S.SLOT_POSITION.items():
        out[f"gen_{slot}"] = float(np.mean([len(g.split()) > pos and g.split()[pos] == t.split()[pos]
                                            for g, t in zip(generated, truth)]))
    out.update(chair(generated, bank["slots"][:n]))
    return out


def measure(model: C.Captioner, data: dict, config: AblationConfig, seed: int = 0) -> list[dict]:
    """Every measurement of one trained model, as rows {space, layer, pool, metric, value}."""
    feats, ids, hall = data["val"]
    rep = model.representations(feats, ids)
    rep_h = model.representations(feats, hall)
    n_layers = rep["visual_eos"].shape[1]
    rows = []

    def add(space, layer, pool, metric, value):
        rows.append({"space": space, "layer": layer, "pool": pool, "metric": metric, "value": float(value)})

    types = data["eval_bank"]["hallucination_type"]
    for pool in config.probe_pools:
        for layer in range(n_layers):
            v, t, h = rep[f"visual_{pool}"][:, layer], rep[f"text_{pool}"][:, layer], rep_h[f"text_{pool}"][:, layer]
            add("hidden", layer, pool, "gap", gap.modality_gap(v, t))
            add("hidden", layer, pool, "vt_probe", gap.probe_separability(v, t, seed=seed)["accuracy"])
            add("hidden", layer, pool, "fh_pairwise", pairwise_separation(v, t, h))
            add("hidden", layer, pool, "matched_cosine", gap.matched_cosine(v, t))
            if layer == n_layers - 1:
                # captions alone, without the image: expected near 0.5 whatever the training
                add("hidden", layer, pool, "fh_probe", gap.probe_separability(t, h, seed=seed, paired=True)["accuracy"])
                for kind in S.HALLUCINATION_TYPES:
                    m = types == kind
                    add("hidden", layer, pool, f"fh_pairwise_{kind}", pairwise_separation(v[m], t[m], h[m]))
    heads = model.projected(feats, ids)
    if heads is not None:
        v, t = heads
        _, h = model.projected(feats, hall)
        add("head", -1, "eos", "gap", gap.modality_gap(v, t))
        add("head", -1, "eos", "vt_probe", gap.probe_separability(v, t, seed=seed)["accuracy"])
        add("head", -1, "eos", "fh_pairwise", pairwise_separation(v, t, h))
        add("head", -1, "eos", "matched_cosine", gap.matched_cosine(v, t))
        for kind in S.HALLUCINATION_TYPES:
            m = types == kind
            add("head", -1, "eos", f"fh_pairwise_{kind}", pairwise_separation(v[m], t[m], h[m]))
        add("head", -1, "eos", "temperature", float(model.temperature.detach()))
    for k, value in generation_metrics(model, data, config.n_generate).items():
        add("output", -1, "-", k, value)
    return rows


def run_ablation(arms=ARMS, seeds=(0, 1, 2), config: AblationConfig | dict | None = None, *,
                 data: dict | None = None, return_models: bool = False, log=print):
    """Train each arm for each seed on the same data and measure it (see the module docstring).

    Returns a long DataFrame with columns arm, seed, space ("hidden", "head", "output", "train"),
    layer (-1 where none), pool, metric, value; with return_models also {(arm, seed): model}.
    Deterministic per seed.
    """
    cfg = config if isinstance(config, AblationConfig) else AblationConfig.from_dict(config)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; valid: {list(ARMS)}")
    data = data if data is not None else prepare_data(cfg, log=log)
    rows, models = [], {}
    for arm in arms:
        for seed in seeds:
            t0 = time.perf_counter()
            with C.cpu_threads(cfg.threads):
                model, metrics = C.fit_captioner({**cfg.captioner, "arm": arm}, data["train"], data["val"],
                                                 seed=int(seed), progress=cfg.progress, threads=None)
                measured = measure(model, data, cfg, seed=int(seed))
            for r in measured:
                rows.append({"arm": arm, "seed": int(seed), **r})
            for k in ("val/caption_acc", "val/lm_loss", "train/loss", "train/lm_loss", "train/contrastive_loss", "seconds"):
                if k in metrics:
                    rows.append({"arm": arm, "seed": int(seed), "space": "train", "layer": -1, "pool": "-",
                                 "metric": k.replace("/", "_"), "value": float(metrics[k])})
            log(f"{arm:>11} seed {seed}: caption acc {metrics.get('val/caption_acc', float('nan')):.3f}, "
                f"trained {metrics['seconds']:.1f} s, measured {time.perf_counter() - t0 - metrics['seconds']:.1f} s")
            if return_models:
                models[(arm, int(seed))] = model
    df = pd.DataFrame(rows)
    return (df, models) if return_models else df


def last_layer(df: pd.DataFrame) -> int:
    return int(df.loc[df["space"] == "hidden", "layer"].max())


def summary(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per arm, the headline numbers (mean over seeds with a t interval, and the per-seed values).

    gap and fh_pairwise at the last layer's EOS (the representation HACL trains), the same in the
    heads' space, visual-vs-text probe accuracy, caption accuracy and CHAIR.
    """
    from scipy import stats

    top = last_layer(df)
    picks = {
        "gap (last layer, EOS)": ("hidden", top, "eos", "gap"),
        "visual-vs-text probe acc": ("hidden", top, "eos", "vt_probe"),
        "faithful>hallucinated (last layer)": ("hidden", top, "eos", "fh_pairwise"),
        "faithful-vs-hallucinated text-only probe": ("hidden", top, "eos", "fh_probe"),
        "gap (heads)": ("head", -1, "eos", "gap"),
        "faithful>hallucinated (heads)": ("head", -1, "eos", "fh_pairwise"),
        "caption slot acc (teacher forced)": ("train", -1, "-", "val_caption_acc"),
        "generated caption exact": ("output", -1, "-", "gen_exact"),
        "CHAIR (share of mentions hallucinated)": ("output", -1, "-", "chair"),
    }
    rows = []
    for label, (space, layer, pool, metric) in picks.items():
        sel = df[(df.space == space) & (df.layer == layer) & (df.pool == pool) & (df.metric == metric)]
        for arm, part in sel.groupby("arm", sort=False):
            x = part.sort_values("seed")["value"].to_numpy()
            half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
            rows.append({"quantity": label, "arm": arm, "mean": x.mean(), "ci_low": x.mean() - half,
                         "ci_high": x.mean() + half, "seeds": len(x), "per_seed": " ".join(f"{v:.3f}" for v in x)})
    return pd.DataFrame(rows)


def verdict(df: pd.DataFrame, separated: float = 0.75) -> dict:
    """Does the run show HACL's two claims? Computed from df, never asserted.

    gap_shrinks: the last-layer EOS gap of both contrastive arms is below the LM-only arm's (seed means).
    only_hacl_separates: in the space the contrastive loss acts on (the heads; the last-layer EOS state
    for the LM-only arm, which has no heads), HACL's faithful>hallucinated share is at least
    `separated`, above each other arm's on every seed (a paired comparison: a win inside the seed
    spread is not a win), and neither other arm reaches `separated`.
    The same test on the last-layer EOS states of every arm is reported as only_hacl_separates_hidden.
    Returns the booleans, the numbers they rest on and a one-paragraph text.
    """
    top = last_layer(df)
    hid = df[(df.space == "hidden") & (df.layer == top) & (df.pool == "eos")].groupby(["metric", "arm"])["value"].mean()
    head = df[df.space == "head"].groupby(["metric", "arm"])["value"].mean()
    arms = [a for a in ARMS if a in set(df.arm)]
    g = {a: float(hid.get(("gap", a), np.nan)) for a in arms}
    f_hidden = {a: float(hid.get(("fh_pairwise", a), np.nan)) for a in arms}
    f = {a: float(head.get(("fh_pairwise", a), f_hidden[a])) for a in arms}
    # per-seed values of the same quantities, for the paired every-seed comparison
    hid_seed = df[(df.space == "hidden") & (df.layer == top) & (df.pool == "eos") & (df.metric == "fh_pairwise")]
    head_seed = df[(df.space == "head") & (df.metric == "fh_pairwise")]
    f_seed_hidden = {a: hid_seed[hid_seed.arm == a].groupby("seed")["value"].mean() for a in arms}
    f_seed = {a: (head_seed[head_seed.arm == a].groupby("seed")["value"].mean()
                  if (head_seed.arm == a).any() else f_seed_hidden[a]) for a in arms}
    out = {"gap": g, "fh_pairwise": f, "fh_pairwise_hidden": f_hidden, "threshold": separated}
    if not {"lm", "hacl"} <= set(arms):
        out.update(gap_shrinks=None, only_hacl_separates=None, only_hacl_separates_hidden=None,
                   text="needs at least the lm and hacl arms")
        return out
    contrastive = [a for a in ("contrastive", "hacl") if a in arms]
    others = [a for a in arms if a != "hacl"]

    def beats_every_seed(per_seed, a):
        diff = (per_seed["hacl"] - per_seed[a]).dropna()
        return bool(len(diff) and (diff > 0).all())

    def only_hacl(x, per_seed):
        return bool(x["hacl"] >= separated and all(
            beats_every_seed(per_seed, a) and x[a] < separated for a in others))

    out["gap_shrinks"] = bool(all(g[a] < g["lm"] for a in contrastive))
    out["only_hacl_separates"] = only_hacl(f, f_seed)
    out["only_hacl_separates_hidden"] = only_hacl(f_hidden, f_seed_hidden)
    fmt = lambda d: ", ".join(f"{ARM_LABELS[a]} {d[a]:.3f}" for a in arms)  # noqa: E731
    out["text"] = (
        f"Modality gap at the last layer's EOS (seed mean): {fmt(g)}. "
        + ("It shrinks with contrastive learning, as HACL reports. " if out["gap_shrinks"] else
           "It does NOT shrink with contrastive learning in this run, unlike HACL's figure. ")
        + "Share of held-out clips whose own caption is closer to the clip than its one-word hallucination "
        + f"(0.5 = entangled; separated means >= {separated} and ahead of the other arms on every seed), "
        + "where the contrastive loss acts "
        + f"(heads; last-layer EOS for the LM-only arm): {fmt(f)}; on the last-layer EOS states: {fmt(f_hidden)}. "
        + ("Only HACL separates hallucinated from faithful captions, as the paper claims."
           if out["only_hacl_separates"] else
           "The claim that only HACL separates hallucinated from faithful captions is NOT reproduced here.")
        + (" On the last-layer EOS states too." if out["only_hacl_separates_hidden"] and out["only_hacl_separates"] else ""))
    return out


def projection_inputs(models: dict, data: dict, *, layer: int = -1, pool: str = "eos", n: int = 200):
    """Arrays and labels for ONE `studio.analysis.projection.project` call showing every arm at once.

    Each arm's representations are placed in its own block of coordinates (block-diagonal: rows of
    different arms are orthogonal), so one UMAP fit lays out each arm's points as its own island,
    exactly as separate fits would, while the notebook pays for a single fit. Returns
    (arrays_by_group {"visual", "text"}, labels {group: {"arm": ..., "caption": ...}}).
    """
    feats, ids, hall = (x[:n] for x in data["val"])
    keys = list(models)
    blocks = {"visual": [], "text": []}
    labels = {"visual": {"arm": [], "caption": []}, "text": {"arm": [], "caption": []}}
    reps = []
    for key in keys:
        m = models[key]
        r, rh = m.representations(feats, ids), m.representations(feats, hall)
        reps.append((key, r[f"visual_{pool}"][:, layer], r[f"text_{pool}"][:, layer], rh[f"text_{pool}"][:, layer]))
    width = sum(v.shape[1] for _, v, _, _ in reps)
    offset = 0
    for key, v, t, h in reps:
        d = v.shape[1]
        arm = key[0] if isinstance(key, tuple) else key

        def place(x):
            z = np.zeros((len(x), width), np.float32)
            z[:, offset:offset + d] = x
            return z

        blocks["visual"].append(place(v))
        blocks["text"] += [place(t), place(h)]
        labels["visual"]["arm"] += [arm] * len(v)
        labels["visual"]["caption"] += [None] * len(v)
        labels["text"]["arm"] += [arm] * (len(t) + len(h))
        labels["text"]["caption"] += ["faithful"] * len(t) + ["hallucinated"] * len(h)
        offset += d
    arrays = {g: np.concatenate(b) for g, b in blocks.items()}
    return arrays, labels


def config_dict(cfg: AblationConfig) -> dict:
    return asdict(cfg)


def hf_gap_profile(vlm, n: int = 64, *, seed: int = 0, batch: int = 8, layers=None,
                   template: str = "<image> {caption}") -> pd.DataFrame:
    """The same gap analysis on a Hugging Face VLM (a `studio.hf.VLMAdapter`, e.g. from `load_vlm`).

    Each held-out scene's first frame goes in with its caption and, separately, with its hallucinated
    caption. Per decoder layer: the gap between the mean of the visual tokens and the caption's last
    token (pool "eos"), a visual-vs-text probe, and `fh_pairwise` (is the scene's own caption's last
    token closer in cosine to the image's tokens than its hallucination's?). Captions pass through the
    model together with the image (a causal VLM's image tokens do not see the caption, so the visual
    side is the same in both runs). Returns rows layer, metric, value (as `measure`'s hidden rows).
    """
    from studio.capture.activations import run_with_cache

    bank = S.scene_bank(n, seed=seed + 1, split="test")
    images = [[np.ascontiguousarray(f[0].transpose(1, 2, 0))] for f in bank["frames"]]
    per_layer: dict[str, dict[str, list]] = {}
    for i in range(0, n, batch):
        for which, key in (("faithful", "captions"), ("hallucinated", "hallucinated")):
            texts = [template.format(caption=c) for c in bank[key][i:i + batch]]
            inputs = vlm.build_inputs(images[i:i + batch], texts)
            _, cache = run_with_cache(vlm, inputs, names_filter=layers, stop_early=True)
            for name in cache.layers:
                d = per_layer.setdefault(name, {"visual": [], "faithful": [], "hallucinated": []})
                if which == "faithful":
                    d["visual"].append(cache.pooled(name, "visual", "mean"))
                d[which].append(cache.pooled(name, "text", "last"))
    rows = []
    for depth, (name, d) in enumerate(per_layer.items()):
        v, t, h = (np.concatenate(d[k]) for k in ("visual", "faithful", "hallucinated"))
        for metric, value in (("gap", gap.modality_gap(v, t)),
                              ("vt_probe", gap.probe_separability(v, t, seed=seed)["accuracy"]),
                              ("fh_pairwise", pairwise_separation(v, t, h)),
                              ("fh_probe", gap.probe_separability(t, h, seed=seed, paired=True)["accuracy"])):
            rows.append({"layer": depth, "module": name, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)
