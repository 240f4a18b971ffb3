"""A tiny closed vocabulary for the video questions and answers, and a tokenizer built locally.

The tokenizer is a `tokenizers` WordLevel model over every word the generator can say, split on
whitespace, wrapped in transformers' PreTrainedTokenizerFast (so it saves/loads like any HF tokenizer).
No download: the vocabulary is enumerated from studio.data.video.

    tok = build_tokenizer()
    ids = encode_questions(tok, ["retrieval", "spatial"])   # (B, Q) left-padded question ids
    tok.convert_tokens_to_ids(answer_words)                 # answers are single words
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from studio.data.video import DIGIT_WORDS, MOTIONS, QUESTIONS, TASKS

SPECIAL = ("<pad>", "<unk>", "<bos>", "<eos>", "<image>", "answer")  # "answer" cues the answer position


def words() -> list[str]:
    """Every token of the closed vocabulary, specials first, in a fixed order."""
    seen = list(SPECIAL)
    for text in [*QUESTIONS.values(), " ".join(DIGIT_WORDS), " ".join(MOTIONS)]:
        for w in text.split():
            if w not in seen:
                seen.append(w)
    return seen


def wordlevel_tokenizer(vocabulary: list[str]):
    """A transformers PreTrainedTokenizerFast over a closed word list (id = position in the list).

    Built locally with the `tokenizers` library (WordLevel, split on whitespace): nothing to download.
    The list must contain the specials <pad>, <bos>, <eos>, <unk> and <image>.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        additional_special_tokens=["<image>"],
    )


@lru_cache(maxsize=1)
def build_tokenizer():
    """The video-QA tokenizer: WordLevel over `words()`."""
    return wordlevel_tokenizer(words())


def question_length() -> int:
    tok = build_tokenizer()
    return max(len(tok(q, add_special_tokens=False)["input_ids"]) for q in QUESTIONS.values())


@lru_cache(maxsize=1)
def question_table() -> np.ndarray:
    """(n_tasks, Q) int64: each task's question ids, left-padded with <pad> to the longest question."""
    tok = build_tokenizer()
    Q = question_length()
    table = np.full((len(TASKS), Q), tok.pad_token_id, np.int64)
    for i, task in enumerate(TASKS):
        ids = tok(QUESTIONS[task], add_special_tokens=False)["input_ids"]
        table[i, Q - len(ids) :] = ids
    return table


@lru_cache(maxsize=1)
def answer_table() -> dict[str, np.ndarray]:
    """Per task, the token id of each answer class (digits/counts: number words; motion: its names)."""
    tok = build_tokenizer()
    out = {}
    for task in TASKS:
        names = MOTIONS if task == "motion" else DIGIT_WORDS
        out[task] = np.asarray(tok.convert_tokens_to_ids(list(names)), np.int64)
    return out


def answer_ids(task: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """(B,) token ids of the answers of samples with task ids `task` and class ids `answer`."""
    table = answer_table()
    return np.array([table[TASKS[t]][a] for t, a in zip(task, answer)], np.int64)
