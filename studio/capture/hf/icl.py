"""In-context learning with interleaved images on a Hugging Face VLM: prompts, candidate scores, a predictor.

predict = hf_icl_predictor(vlm)     # episodes -> answer strings, the predictor studio.icl takes
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from studio.capture.hf.adapter import VLMAdapter, load_vlm
from studio.capture.hf.family import IMAGE


def _shot_text(shot, template: str) -> str:
    # a shot whose image is None (an "images removed" condition) gets no image placeholder
    return " ".join(
        template.format(image=IMAGE if getattr(shot, "image", None) is not None else "", question=shot.question).split()
    )


def episode_prompt(episode, *, template: str = "{image} question: {question} answer:", sep: str = "\n") -> str:
    """Text of an episode: every demonstration as "template + ' ' + answer", then the query's prompt.

    Reads demo.image/.question/.answer and query.image/.question only (never query.answer); a shot
    with image None is written without an image.
    """
    demos = [_shot_text(d, template) + " " + d.answer for d in episode.demos]
    return sep.join(demos + [_shot_text(episode.query, template)])


def _episode_images(episode) -> list:
    shots = list(episode.demos) + [episode.query]
    return [s.image for s in shots if getattr(s, "image", None) is not None]


@torch.inference_mode()
def score_candidates(vlm: VLMAdapter, episode, candidates: Sequence[str], **prompt_kw) -> np.ndarray:
    """Summed log-likelihood of " " + candidate after the episode's prompt, one per candidate: (k,)."""
    prompt = episode_prompt(episode, **prompt_kw)
    images = _episode_images(episode)
    texts = [f"{prompt} {c}" for c in candidates]
    inputs = vlm.build_inputs([images] * len(texts), texts, padding_side="right")
    logits = vlm.model(**inputs).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1)
    target = inputs["input_ids"][:, 1:]
    token_logp = logp.gather(-1, target[..., None])[..., 0]
    ends = inputs["attention_mask"].sum(1)  # right padding: real tokens are 0 .. end-1
    scores = []
    for i, c in enumerate(candidates):
        k = len(vlm.tokenizer(" " + c, add_special_tokens=False)["input_ids"])
        end = int(ends[i]) - 1  # token_logp[j] scores token j+1
        scores.append(float(token_logp[i, end - k : end].sum()))
    return np.asarray(scores)


@torch.inference_mode()
def generate_answer(vlm: VLMAdapter, episode, max_new_tokens: int = 5, **prompt_kw) -> str:
    """Greedy continuation of the episode's prompt, cut at the first newline, stripped."""
    inputs = vlm.build_inputs([_episode_images(episode)], [episode_prompt(episode, **prompt_kw)], padding_side="left")
    tok = vlm.tokenizer
    out = vlm.model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    text = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return text.strip().split("\n")[0].strip()


def hf_icl_predictor(
    model_or_path,
    family: str | None = None,
    *,
    max_new_tokens: int = 5,
    template: str = "{image} question: {question} answer:",
    sep: str = "\n",
    progress: bool = False,
    **load_kw,
) -> Callable[[Sequence[Any]], list[str]]:
    """A predictor for studio.icl: a callable taking a list of episodes, returning one answer each.

    model_or_path: a hub id, a local folder, a loaded HF model or a VLMAdapter; family (one of
    studio.hf.INTERLEAVED) is read from the config when None, and checked against it when given. Episodes are
    duck-typed: `.demos` (shots with `.image`, `.question`, `.answer`), `.query` (its answer is never
    read) and optionally `.candidates`. With candidates, the answer is the candidate of highest
    summed log-likelihood; without, greedy generation of up to `max_new_tokens` tokens.
    """
    vlm = load_vlm(model_or_path, family=family if not isinstance(model_or_path, VLMAdapter) else None, **load_kw)
    if not vlm.spec.interleaved:
        from studio.capture.hf.registry import _load

        ok = tuple(n for n, cls in sorted(_load().items()) if cls.interleaved)
        raise ValueError(f"{vlm.family} puts every image before the text: no interleaved ICL; use one of {ok}")
    prompt_kw = {"template": template, "sep": sep}

    def predict(episodes) -> list[str]:
        answers = []
        it = episodes
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(episodes, desc="hf icl")
        for ep in it:
            cands = list(getattr(ep, "candidates", None) or [])
            if cands:
                answers.append(cands[int(np.argmax(score_candidates(vlm, ep, cands, **prompt_kw)))])
            else:
                answers.append(generate_answer(vlm, ep, max_new_tokens, **prompt_kw))
        return answers

    predict.vlm = vlm
    return predict
