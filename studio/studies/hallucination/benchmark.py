"""The four-type evaluation of one captioner: yes/no answers to statements and greedy captions, scored.

A tiny captioner (`studio.models.captioner.Captioner`) answers a statement by how well the clip explains
its least supported word: for every word, log p(word | clip, words before) minus log of its mean
probability given `other` other clips (a pointwise mutual information with the clip); the statement's
score is the minimum over its words, and the answer is "yes" above a threshold set, once per model, on
the statements of separate calibration scenes (the accuracy-maximising cut over all four types pooled).
A Hugging Face VLM answers Hal-Eval's prompt (`studio.capture.hf.hal_eval`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from studio.analysis import hal_eval as A
from studio.data import hallucination as D
from studio.data import scenes as S
from studio.models import captioner as C


def statement_ids(texts) -> list[np.ndarray]:
    """Token ids of each statement (checked: scene words, 11 or 13 of them), without specials."""
    texts = D.check_captions(texts, what="statement")
    ids = S.scene_tokenizer()(texts, add_special_tokens=False)["input_ids"]
    return [np.asarray(i, dtype=np.int64) for i in ids]


def corpus_ids(captions) -> np.ndarray:
    """(n, 11) ids of corpus captions of up to 11 words: a shorter one ends in <eos> then <pad>."""
    captions = D.check_captions(captions, lengths=range(1, S.CAPTION_LENGTH + 1), what="corpus caption")
    tok = S.scene_tokenizer()
    out = np.full((len(captions), S.CAPTION_LENGTH), tok.pad_token_id, dtype=np.int64)
    for r, ids in enumerate(tok(captions, add_special_tokens=False)["input_ids"]):
        out[r, : len(ids)] = ids
        if len(ids) < S.CAPTION_LENGTH:
            out[r, len(ids)] = tok.eos_token_id
    return out


def check_captioner_fits(model: C.Captioner, texts) -> None:
    """Refuse a captioner that cannot read the statements: ids past its vocabulary, or a sequence longer
    than its positions. Names the first statement row that does not fit."""
    cfg = model.lm.config
    for i, ids in enumerate(statement_ids(texts)):
        if len(ids) and int(ids.max()) >= cfg.vocab_size:
            raise ValueError(
                f"statement row {i} ({texts[i]!r}) does not fit the captioner: token id {int(ids.max())} is past "
                f"its vocabulary of {cfg.vocab_size} (a model of another tokenizer?)"
            )
        need = C.N_VISUAL + len(ids) + 2
        if need > cfg.max_position_embeddings:
            raise ValueError(
                f"statement row {i} ({texts[i]!r}) does not fit the captioner: {need} positions, "
                f"it has {cfg.max_position_embeddings}"
            )


@torch.no_grad()
def token_logprobs(model: C.Captioner, feats: torch.Tensor, ids: torch.Tensor, batch: int = 512) -> np.ndarray:
    """(B, L) log p(word_t | clip, <bos>, words before t) for feats (B, N_VISUAL, C) and ids (B, L)."""
    out = []
    for i in range(0, len(ids), batch):
        f, t = feats[i : i + batch], ids[i : i + batch]
        logits = model.lm(inputs_embeds=model.joint_embeds(f, t)).logits[:, C.N_VISUAL : C.N_VISUAL + t.shape[1]]
        out.append(torch.log_softmax(logits.float(), -1).gather(-1, t[..., None])[..., 0])
    return torch.cat(out).numpy() if out else np.zeros((0, ids.shape[1]))


def statement_scores(model: C.Captioner, feats: torch.Tensor, texts, scene, other: int = 3) -> np.ndarray:
    """(n,) min over words of log p(word | own clip) - log mean_k p(word | clip k) over `other` other clips
    (scenes scene+1 .. scene+other, cyclically, among feats' clips). feats (N, N_VISUAL, C); scene (n,).
    A (scene, statement) pair that repeats (the true caption is the positive of three types) is scored once."""
    texts, scene = np.asarray(list(texts)), np.asarray(scene)
    keys = np.char.add(scene.astype(str), np.char.add("|", texts.astype(str))) if len(texts) else texts
    _, first, back = np.unique(keys, return_index=True, return_inverse=True)
    ids = statement_ids(texts[first])
    scene_u = scene[first]
    n_clips = len(feats)
    scores = np.zeros(len(ids))
    for length in sorted({len(i) for i in ids}):
        rows = np.flatnonzero([len(i) == length for i in ids])
        t = torch.from_numpy(np.stack([ids[r] for r in rows]))
        own = token_logprobs(model, feats[scene_u[rows]], t)
        others = np.stack([token_logprobs(model, feats[(scene_u[rows] + k) % n_clips], t) for k in range(1, other + 1)])
        marginal = np.logaddexp.reduce(others, axis=0) - np.log(other)
        scores[rows] = (own - marginal).min(1)
    return scores[back]


def evaluate_captioner(
    model: C.Captioner, bench: dict, *, n_bootstrap: int = 200, seed: int = 0, discriminative: bool = True
) -> dict:
    """Discriminative and generative evaluation of one captioner on `bench` (`prepare_benchmark`).

    Returns pope: rows type, metric, value, ci_low, ci_high; answers: the statements with score and yes;
    captions: greedy captions of the generation clips; generative: `hal_eval.generative_rates`; threshold.
    discriminative False skips the statements (pope, answers None; threshold NaN): captions only.
    """
    captions = model.generate(bench["feats"][: bench["n_generate"]])
    out = {"captions": captions, "generative": A.generative_rates(captions, bench["slots"][: bench["n_generate"]])}
    if not discriminative:
        return {**out, "pope": None, "answers": None, "threshold": float("nan")}
    st, cal = bench["statements"], bench["calibration"]
    check_captioner_fits(model, st["statement"][:1].tolist() + [bench["longest"]])
    cal_scores = statement_scores(model, bench["calibration_feats"], cal["statement"], cal["scene"], bench["other"])
    threshold = A.best_threshold(cal_scores, cal["label"])
    scores = statement_scores(model, bench["feats"], st["statement"], st["scene"], bench["other"])
    yes = scores > threshold
    pope = A.pope_table(st["type"], st["label"], yes, scenes=st["scene"], n_bootstrap=n_bootstrap, seed=seed)
    answers = pd.DataFrame({**{k: st[k] for k in ("scene", "type", "label")}, "score": scores, "yes": yes})
    return {**out, "pope": pope, "answers": answers, "threshold": threshold}


def bench_rows(model_name: str, seed: int, out: dict) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """One evaluation's rows: its POPE table (or None) and its generative metrics, tagged with model and seed."""
    pope = None if out["pope"] is None else out["pope"].assign(model=model_name, seed=seed, kind="discriminative")
    gen = pd.DataFrame(
        [{"model": model_name, "seed": seed, "metric": k, "value": v} for k, v in out["generative"].items()]
        + [{"model": model_name, "seed": seed, "metric": "threshold", "value": out["threshold"]}]
    )
    return pope, gen
