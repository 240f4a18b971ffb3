"""The four-type hallucination evaluation on a Hugging Face VLM (studio.studies.hallucination's HF path).

    yes, margin = hf_yes_no(vlm, images, statements)    # Hal-Eval's discriminative prompt, yes/no logits
    captions = hf_captions(vlm, images)                  # greedy captions, lower case, one line

Images: a clip's two frames side by side ("before | after", `clip_image`), one image per prompt, so
families that take one image per text read it too. The answer is "yes" when the logit of the first token
of " yes" beats that of " no" at the next position (left padding), the scoring Hal-Eval's parser
approximates for short answers.
"""

from __future__ import annotations

import numpy as np
import torch

from studio.capture.hf.adapter import VLMAdapter
from studio.capture.hf.family import IMAGE

YES_NO_PROMPT = (
    IMAGE + " ```{statement}```. does the caption delimited by triple backticks match the image exactly? "
    'if so, return "yes". if not, return "no". answer:'
)
CAPTION_PROMPT = IMAGE + " a short caption of the image:"
GAP = 2  # pixels of black between the two frames


def clip_image(frames: np.ndarray) -> np.ndarray:
    """(FRAMES, 3, H, W) in [0, 1] -> (H, FRAMES * W + GAP, 3): the frames side by side, in order."""
    f = [np.ascontiguousarray(x.transpose(1, 2, 0)) for x in frames]
    gap = np.zeros((f[0].shape[0], GAP, 3), np.float32)
    parts = []
    for i, x in enumerate(f):
        parts += ([gap] if i else []) + [x]
    return np.concatenate(parts, axis=1)


def _first_id(vlm: VLMAdapter, word: str) -> int:
    return int(vlm.tokenizer(" " + word, add_special_tokens=False)["input_ids"][0])


def check_statements_fit(vlm: VLMAdapter, statements) -> None:
    """Refuse statements the model's tokenizer cannot spell (an <unk> in their ids), naming the first."""
    unk = vlm.tokenizer.unk_token_id
    if unk is None:
        return
    for i, s in enumerate(statements):
        ids = vlm.tokenizer(s, add_special_tokens=False)["input_ids"]
        if unk in ids:
            raise ValueError(
                f"statement row {i} ({s!r}) does not fit {vlm.family}: its tokenizer spells part of it as "
                f"{vlm.tokenizer.unk_token}; the yes/no answers would be about another text"
            )


@torch.inference_mode()
def hf_yes_no(vlm: VLMAdapter, images, statements, *, batch: int = 8, template: str = YES_NO_PROMPT):
    """Per statement: (yes (n,) bool, margin (n,) float = logit(yes) - logit(no)). images: one HxWx3 each."""
    statements = list(statements)
    if len(images) != len(statements):
        raise ValueError(f"{len(images)} images for {len(statements)} statements")
    check_statements_fit(vlm, statements)
    yes_id, no_id = _first_id(vlm, "yes"), _first_id(vlm, "no")
    margins = []
    for i in range(0, len(statements), batch):
        texts = [template.format(statement=s) for s in statements[i : i + batch]]
        inputs = vlm.build_inputs([[im] for im in images[i : i + batch]], texts, padding_side="left")
        logits = vlm.model(**inputs).logits[:, -1].float()
        margins.append((logits[:, yes_id] - logits[:, no_id]).cpu().numpy())
    margin = np.concatenate(margins) if margins else np.zeros(0)
    return margin > 0, margin


@torch.inference_mode()
def hf_captions(
    vlm: VLMAdapter, images, *, batch: int = 8, max_new_tokens: int = 16, template: str = CAPTION_PROMPT
) -> list[str]:
    """Greedy captions, lower-cased, cut at the first newline."""
    tok = vlm.tokenizer
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        inputs = vlm.build_inputs([[im] for im in chunk], [template] * len(chunk), padding_side="left")
        gen = vlm.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        for row in gen[:, inputs["input_ids"].shape[1] :]:
            out.append(tok.decode(row, skip_special_tokens=True).strip().split("\n")[0].strip().lower())
    return out
