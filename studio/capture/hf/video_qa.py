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

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


# The largest video load_items reads, in bytes: of the array as saved and of the float32 copy every item
# keeps for the whole sweep, whichever is larger. A frames x tokens grid samples at most a few dozen frames
# of a few hundred pixels a side, and 512 MiB holds 128 frames of 448 x 448 RGB as float32 (294 MiB) with
# room to spare; a header that claims more is a raw decode to subsample first, or a corrupt file, and is
# refused from its header before anything is allocated (a claimed (1e5, 1e3, 1e3) float32 is 373 GiB).
MAX_VIDEO_BYTES = 512 * 2**20
ITEM_FIELDS = ("video", "question", "answer", "candidates", "task")  # "task" is optional
REQUIRED_FIELDS = ITEM_FIELDS[:4]
FLOAT_DTYPES = (np.float16, np.float32, np.float64)  # values in [0, 1], either byte order; uint8 is 0..255
CHANNELS = (1, 3, 4)  # grey, RGB, RGBA (alpha is dropped)
EXAMPLE_LINE = '{"video": "clips/a.npy", "question": "what moved?", "answer": "cat", "candidates": ["cat", "dog"]}'


def load_items(path) -> list[VideoQA]:
    """Your own video questions: a UTF-8 JSON-lines file, one item a line, e.g.
    {"video": "clips/a.npy", "question": "what moved?", "answer": "cat", "candidates": ["cat", "dog"], "task": "qa"}
    where video is a .npy array (F, H, W) or (F, H, W, C) with C 1, 3 or 4 and at least one frame, either
    uint8 (0..255) or float16/32/64 with finite values in [0, 1] (nothing is clipped), of at most
    MAX_VIDEO_BYTES, relative to the file's folder; candidates is a list of distinct non-empty strings that
    holds the answer; "task" is optional. Decode your videos to .npy first (no video codec is assumed here).
    Anything else is refused with a ParameterError naming the file, the line and the field."""
    from studio.paths import input_path

    source = input_path(path)
    items = [_item(_Where(source, number), row) for number, row in _rows(source)]
    if not items:
        raise ParameterError(
            f"{_Where(source).name}: holds no items (the file is empty or blank); "
            f"give one JSON object a line, e.g. {EXAMPLE_LINE}"
        )
    return items


@dataclass(frozen=True)
class _Where:
    """A place in an items file, to start every error message with: 'items.jsonl line 3, field ...'."""

    source: object
    number: int = 0

    @property
    def name(self) -> str:
        from studio.paths import relative

        return relative(self.source)

    def error(self, message: str, field: str | None = None) -> ParameterError:
        place = f"{self.name} line {self.number}" + (f", field {field!r}" if field else "")
        return ParameterError(f"{place}: {message}")


def _rows(source):
    """(line number, JSON object) for every non-blank line; a line that is not UTF-8 or not one object is refused."""
    import json

    for number, raw in enumerate(source.read_bytes().splitlines(), 1):  # bytes: only \n, \r and \r\n end a line
        where = _Where(source, number)
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a leading byte-order mark is allowed
        except UnicodeDecodeError as e:
            raise where.error(f"is not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
        if not text.strip():
            continue
        try:
            row = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as e:
            raise where.error(
                f"is not valid JSON ({e.msg} at column {e.colno}); expected e.g. {EXAMPLE_LINE}"
            ) from None
        except _DuplicateKey as e:
            raise where.error("is given twice on the line", str(e)) from None
        if not isinstance(row, dict):
            raise where.error(f"expected a JSON object such as {EXAMPLE_LINE}, got {_describe(row)}")
        yield number, row


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _describe(value) -> str:
    """A value as error messages show it: its JSON type and a short repr, e.g. "str 'cat dog'"."""
    kind = {dict: "object", list: "list", str: "str", bool: "bool", int: "int", float: "float"}
    if value is None:
        return "null"
    text = repr(value)
    return f"{kind.get(type(value), type(value).__name__)} {text if len(text) <= 60 else text[:57] + '...'}"


def _item(where: _Where, row: dict) -> VideoQA:
    """One line's item, every field checked: the text fields first (cheap), then the video."""
    for field in REQUIRED_FIELDS:
        if field not in row:
            raise where.error(f"is missing (each line needs {', '.join(REQUIRED_FIELDS)}; task is optional)", field)
    for field in row:
        if field not in ITEM_FIELDS:
            raise where.error(f"is not a field of an item (fields: {', '.join(ITEM_FIELDS)})", field)
    question = _text(where, row, "question")
    answer = _text(where, row, "answer")
    candidates = _candidates(where, row, answer)
    task = _text(where, row, "task") if "task" in row else "qa"
    video = _video(where, where.source.parent, _text(where, row, "video"))
    return VideoQA(video, question, answer, candidates, task)


def _text(where: _Where, row: dict, field: str) -> str:
    value = row[field]
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"expected a non-empty string, got {_describe(value)}", field)
    return value


def _candidates(where: _Where, row: dict, answer: str) -> tuple[str, ...]:
    value = row["candidates"]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c.strip() for c in value):
        raise where.error(f"expected a list of non-empty strings, got {_describe(value)}", "candidates")
    repeated = sorted({c for c in value if value.count(c) > 1})
    if repeated:
        raise where.error(f"lists {', '.join(map(repr, repeated))} more than once", "candidates")
    if answer not in value:
        raise where.error(f"answer {answer!r} is not among its candidates {value!r}", "candidates")
    return tuple(value)


def _video(where: _Where, folder, name: str) -> np.ndarray:
    """The .npy at folder/name as float32 in [0, 1]: its header checked before its data is read."""
    path = folder / Path(name).expanduser()
    if not path.is_file():
        raise where.error(f"{name!r} is not a file (resolved to {path}); paths are relative to the items file", "video")
    with open(path, "rb") as fp:
        shape, dtype, data_at = _npy_header(where, name, fp)
        _check_layout(where, name, shape, dtype)
        held = path.stat().st_size - data_at
        needed = math.prod(shape) * dtype.itemsize
        if held < needed:
            raise where.error(
                f"{name!r} is truncated: shape {shape} {dtype} needs {needed} bytes, holds {held}", "video"
            )
        fp.seek(0)
        try:
            array = np.lib.format.read_array(fp, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise where.error(f"{name!r} cannot be read as a .npy array: {e}", "video") from None
    return _check_values(where, name, array)


def _npy_header(where: _Where, name: str, fp) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, offset of the data) from a .npy header alone; nothing of the array is read."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version[0]}.{version[1]} (save a plain array with numpy.save)")
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _fortran, dtype = read(fp)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise where.error(f"{name!r} is not a .npy array ({e}); save each video with numpy.save", "video") from None
    return tuple(int(n) for n in shape), np.dtype(dtype), fp.tell()


def _check_layout(where: _Where, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, from the header, a dtype other than uint8 or float, a shape that is not a video, or too many bytes."""
    native = dtype.newbyteorder("=") if dtype.byteorder in "<>" else dtype
    if native != np.uint8 and native not in FLOAT_DTYPES:  # refuses object, complex, int, bool, structured
        raise where.error(f"{name!r} has dtype {dtype}; expected uint8 (0..255) or float16/32/64 (0..1)", "video")
    if len(shape) not in (3, 4):
        raise where.error(f"{name!r} has shape {shape}; expected (frames, H, W) or (frames, H, W, C)", "video")
    if min(shape[:3]) < 1:
        raise where.error(f"{name!r} has shape {shape}; expected at least one frame of at least 1 x 1 pixel", "video")
    if len(shape) == 4 and shape[3] not in CHANNELS:
        raise where.error(
            f"{name!r} has {shape[3]} channels (shape {shape}); expected 1, 3 or 4 channels last", "video"
        )
    size = math.prod(shape) * max(dtype.itemsize, 4)  # as loaded, or its float32 copy (Python ints: no overflow)
    if size > MAX_VIDEO_BYTES:
        raise where.error(
            f"{name!r} has shape {shape} {dtype}, {size / 2**20:,.1f} MiB; at most {MAX_VIDEO_BYTES / 2**20:g} MiB"
            " (subsample its frames or pixels first)",
            "video",
        )


def _check_values(where: _Where, name: str, array: np.ndarray) -> np.ndarray:
    """uint8 to [0, 1]; floats must already be finite and in [0, 1] (nothing is clipped). Returns float32."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - finite.sum())
        raise where.error(f"{name!r} holds {bad} NaN or infinite values; expected finite values in [0, 1]", "video")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise where.error(
            f"{name!r} holds values in [{low:g}, {high:g}]; float videos must lie in [0, 1]"
            " (save 0..255 pixels as uint8)",
            "video",
        )
    return array.astype(np.float32)


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
