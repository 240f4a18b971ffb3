"""A pretrained video VLM answering questions about videos, across frames T and tokens per frame M.

    items = needle_items(64, seed=0)                       # the synthetic needle videos (studio.data.video)
    items = load_items("my_videos.jsonl")                  # or your own: .npy clips, questions, answers
    table = frames_by_tokens(vlm, items, frames=[1, 2, 4, 8], tokens=[4, 16, 64])

Inference only. Each cell keeps T frames of every video (uniformly spaced, as the sweep's "uniform"
selection) and resizes them so that each frame makes M visual tokens through the family's own control
(`Family.frame_side`: Qwen's pixels per frame; fixed-resolution families take only their own M). The
answer loss is the mean negative log-likelihood of the answer's tokens after the prompt; the answer is
right when it has the highest summed log-likelihood among the item's candidates. The table has the
sweep's columns (frames, tokens_per_frame, seed, val_loss, val_acc, val_acc_<task>, visual_tokens), so
`studio.scaling` fits it like the tiny model's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from studio.capture.hf.adapter import VLMAdapter
from studio.capture.hf.family import VIDEO
from studio.capture.hf.images import _to_thwc
from studio.errors import ParameterError

TEMPLATE = "<video> question: {question} answer:"


@dataclass(frozen=True)
class VideoQA:
    """One question about one video. video: (F, H, W) or (F, H, W, C) in [0, 1]; candidates include answer."""

    video: np.ndarray
    question: str
    answer: str
    candidates: tuple[str, ...]
    task: str = "qa"


def needle_items(n: int, *, seed: int = 0, split: str = "test", **video_kw) -> list[VideoQA]:
    """n synthetic needle videos with their questions; candidates are every answer word of the task."""
    from studio.data import video as V
    from studio.data.digits import DIGIT_WORDS

    cfg = V.VideoConfig(**video_kw)
    batch = V.make_batch(cfg, np.arange(n), seed=seed, split=split)
    items = []
    for clip, task, answer in zip(batch["video"], batch["task"], batch["answer"]):
        name = V.TASKS[int(task)]
        words = V.MOTIONS if name == "motion" else DIGIT_WORDS
        items.append(VideoQA(clip, V.question(name), V.answer_word(name, int(answer)), tuple(words), name))
    return items


def load_items(path) -> list[VideoQA]:
    """Your own video questions: a JSON-lines file, one item a line, e.g.
    {"video": "clips/a.npy", "question": "what moved?", "answer": "cat", "candidates": ["cat", "dog"], "task": "qa"}
    where video is a .npy array (F, H, W) or (F, H, W, C) in [0, 1] (or uint8 0..255), relative to the file's
    folder; "task" is optional. Decode your videos to .npy first (no video codec is assumed here)."""
    import json

    from studio.paths import input_path

    source = input_path(path)
    items = []
    for number, line in enumerate(source.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"video", "question", "answer", "candidates"} - set(row)
        unknown = set(row) - {"video", "question", "answer", "candidates", "task"}
        if missing or unknown:
            raise ParameterError(f"{source}:{number}: missing {sorted(missing)}, unknown {sorted(unknown)} keys")
        if row["answer"] not in row["candidates"]:
            raise ParameterError(f"{source}:{number}: answer {row['answer']!r} is not among its candidates")
        video = np.load(input_path(source.parent / row["video"]))
        video = video.astype(np.float32) / 255 if video.dtype == np.uint8 else video.astype(np.float32)
        items.append(VideoQA(video, row["question"], row["answer"], tuple(row["candidates"]), row.get("task", "qa")))
    return items


def uniform_frames(total: int, frames: int) -> np.ndarray:
    """Indices of `frames` frames spread evenly over `total` (each the centre of its share)."""
    if not 1 <= frames <= total:
        raise ParameterError(f"frames must be 1..{total} (the video's frames), not {frames}")
    return ((np.arange(frames) + 0.5) * total / frames).astype(int)


@torch.inference_mode()
def score_item(vlm: VLMAdapter, item: VideoQA, frames: int, side: int, template: str = TEMPLATE) -> dict:
    """One item at T = frames, frames resized to side x side: answer loss, correctness, visual tokens."""
    clip = np.asarray(item.video, dtype=np.float32)
    clip = clip[uniform_frames(len(clip), frames)]
    if vlm.processor is not None:  # a processor resizes by its own settings: hand it frames of the side asked
        chw = torch.as_tensor(_to_thwc(clip)).permute(0, 3, 1, 2)
        chw = torch.nn.functional.interpolate(chw, size=(side, side), mode="bilinear", align_corners=False)
        clip = chw.permute(0, 2, 3, 1).numpy()
    prompt = template.format(question=item.question)
    if VIDEO not in prompt:
        raise ParameterError(f"the template must hold {VIDEO!r} once: {template!r}")
    cands = list(item.candidates)
    texts = [f"{prompt} {c}" for c in cands]
    inputs = vlm.build_inputs(
        [[] for _ in texts], texts, videos=[[clip] for _ in texts], padding_side="left", image_size=(side, side)
    )
    # left padding: every row's answer ends the sequence, so only the last logits are needed (a 7B model's
    # full logits, candidates x thousands of tokens x its vocabulary, would not fit)
    counts = [len(vlm.tokenizer(" " + c, add_special_tokens=False)["input_ids"]) for c in cands]
    keep = max(counts) + 1
    logits = vlm.model(**inputs, logits_to_keep=keep, use_cache=False).logits[:, -keep:-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, inputs["input_ids"][:, -keep + 1 :, None])[..., 0]
    sums = [float(logp[i, -k:].sum()) for i, k in enumerate(counts)]
    means = [float(logp[i, -k:].mean()) for i, k in enumerate(counts)]
    truth = cands.index(item.answer)
    return {
        "loss": -means[truth],
        "correct": float(int(np.argmax(sums)) == truth),
        "visual_tokens": int(vlm.modality_mask(inputs)[truth].sum()),
    }


def frames_by_tokens(
    vlm: VLMAdapter,
    items: Sequence[VideoQA],
    frames: Sequence[int],
    tokens: Sequence[int | None] = (None,),
    *,
    seed: int = 0,
    template: str = TEMPLATE,
    progress: bool = False,
):
    """One row per (frames T, tokens per frame M): the mean answer loss and accuracy over `items`.

    tokens: M per frame as the family counts it (None: the family's own resolution). Columns: frames,
    tokens_per_frame, frame_strategy, token_strategy, seed, val_loss, val_acc, val_acc_<task>,
    visual_tokens (per video, as the model sees them), n, seconds. Returns a pandas DataFrame.
    """
    import pandas as pd

    if not vlm.spec.video:
        from studio.capture.hf.registry import video_families

        raise ParameterError(f"{vlm.family} takes no video; video families: {', '.join(video_families())}")
    cells = [(t, m) for t in frames for m in tokens]
    rows = []
    it = cells
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(cells, desc=f"{vlm.family} frames x tokens")
    for t, m in it:
        side = vlm.spec.frame_side(m)
        start = time.perf_counter()
        scored = [score_item(vlm, item, t, side, template) for item in items]
        row = {
            "frames": int(t),
            "tokens_per_frame": int(vlm.spec.tokens_per_frame(side)),
            "frame_strategy": "uniform",
            "token_strategy": "resolution",
            "seed": seed,
            "val_loss": float(np.mean([s["loss"] for s in scored])),
            "val_acc": float(np.mean([s["correct"] for s in scored])),
        }
        for task in sorted({item.task for item in items}):
            picked = [s["correct"] for s, item in zip(scored, items) if item.task == task]
            row[f"val_acc_{task}"] = float(np.mean(picked))
        row.update(
            visual_tokens=int(np.median([s["visual_tokens"] for s in scored])),
            n=len(items),
            seconds=time.perf_counter() - start,
        )
        rows.append(row)
    return pd.DataFrame(rows)
