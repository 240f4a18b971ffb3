"""Synthetic videos: exact regeneration, answers true by construction, vocabulary, selection strategies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.data.digits import split_digits
from studio.data.video import MOTIONS, NONE_LABEL, TASKS, VideoConfig, _digit_pool, make_batch, sample_specs
from studio.data.vocab import answer_ids, build_tokenizer, question_table
from studio.models.selection import FrameSelector, TokenSelector

ALL = VideoConfig(tasks=TASKS)


def test_sample_is_a_function_of_seed_and_index():
    a = make_batch(ALL, [5, 17, 3], seed=3)
    b = make_batch(ALL, [17], seed=3)  # same index inside another batch
    assert np.array_equal(a["video"][1], b["video"][0])
    assert a["answer"][1] == b["answer"][0] and a["task"][1] == b["task"][0]
    c = make_batch(ALL, [5, 17, 3], seed=4)
    assert not np.allclose(a["video"], c["video"])


def test_rendering_a_subset_of_frames_matches_the_full_video():
    full = make_batch(ALL, range(12), labels=True)
    fr = [0, 7, 30]
    part = make_batch(ALL, range(12), frames=fr, labels=True)
    assert part["video"].shape == (12, 3, 32, 32)
    np.testing.assert_array_equal(full["video"][:, fr], part["video"])
    np.testing.assert_array_equal(full["cell_labels"][:, fr], part["cell_labels"])


def test_config_refuses_unknown_keys_and_tasks():
    with pytest.raises(ValueError, match="nope"):
        VideoConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="unknown tasks"):
        VideoConfig(tasks=("retrieval", "dancing"))


def test_task_mix_follows_weights():
    cfg = VideoConfig(tasks=("retrieval", "motion"), task_weights=(1.0, 0.0))
    assert set(sample_specs(cfg, range(50))["task"]) == {TASKS.index("retrieval")}


def test_answers_are_true_by_construction():
    cfg = VideoConfig(tasks=TASKS, distractors=0)
    s = sample_specs(cfg, range(300), seed=1)
    for b in range(300):
        task, ans = TASKS[s["task"][b]], s["answer"][b]
        on, xy, dig = s["sprite_on"][b], s["sprite_xy"][b], s["sprite_digit"][b]
        used = dig >= 0
        if task == "retrieval":
            assert used.sum() == 1 and dig[0] == ans and on[0].sum() == cfg.needle_frames
        elif task == "spatial":
            first = on[0].argmax()
            left = 0 if xy[0, first, 0] < xy[1, first, 0] else 1
            assert dig[left] == ans and dig[0] != dig[1] and (on[0] == on[1]).all()
        elif task == "ordering":
            starts = [on[i].argmax() for i in range(2)]
            assert dig[int(np.argmin(starts))] == ans and not (on[0] & on[1]).any()
        elif task == "counting":
            frames_on = on[used].any(0).astype(int)
            runs = int((np.diff(np.concatenate([[0], frames_on])) == 1).sum())  # separate flashes
            assert runs == ans == used.sum() and len(set(dig[used])) == 1
        else:
            assert on[0].all() and 0 <= ans < len(MOTIONS)
            path = xy[0]
            assert path.min() >= 0 and path.max() <= cfg.size - cfg.digit_size


def test_needle_pixels_and_cell_labels_come_from_the_named_digit():
    cfg = VideoConfig(tasks=("retrieval",), distractors=0, noise=0.0, background=0.0)
    b = make_batch(cfg, range(20), labels=True)
    for i in range(20):
        shown = b["cell_labels"][i][b["cell_labels"][i] != NONE_LABEL]
        assert len(shown) and set(shown) == {b["answer"][i]}
        visible = (b["cell_labels"][i] != NONE_LABEL).any((1, 2))
        assert visible.sum() == cfg.needle_frames
        assert b["video"][i][~visible].max() == 0.0  # nothing drawn outside the needle's frames


def test_train_and_test_videos_use_disjoint_digit_images():
    split = split_digits(test_fraction=0.3, seed=0)
    tr, te = _digit_pool("train", 8)[0], _digit_pool("test", 8)[0]
    assert len(tr) == len(split["train"][0]) and len(te) == len(split["test"][0])
    flat_tr = {x.tobytes() for x in tr}
    assert sum(x.tobytes() in flat_tr for x in te) < 5  # only accidental duplicates among real scans


def test_vocabulary_covers_questions_and_answers():
    tok = build_tokenizer()
    q = question_table()
    assert q.shape[0] == len(TASKS) and (q != tok.unk_token_id).all()
    s = sample_specs(ALL, range(60))
    ids = answer_ids(s["task"], s["answer"])
    words = tok.convert_ids_to_tokens(ids.tolist())
    assert tok.unk_token not in words
    assert tok.decode(q[TASKS.index("spatial")], skip_special_tokens=True) == "which digit is on the left ?"


def test_frame_selection_strategies():
    x = torch.arange(8, dtype=torch.float32).reshape(1, 8, 1, 1).expand(2, 8, 4, 3).clone()
    assert FrameSelector("uniform", 4, 8)(x)[0, :, 0, 0].tolist() == [1, 3, 5, 7]
    assert FrameSelector("mean", 2, 8)(x)[0, :, 0, 0].tolist() == [1.5, 5.5]
    y = torch.zeros(1, 8, 4, 3)
    y[:, 5:] = 1.0  # one change at frame 5; frame 0 always counts
    assert FrameSelector("keyframes", 2, 8)(y)[0, :, 0, 0].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        FrameSelector("mean", 3, 8)
    with pytest.raises(ValueError, match="unknown frame strategy"):
        FrameSelector("random", 2, 8)


def test_token_selection_strategies():
    G, C = 8, 5
    x = torch.randn(2, 3, G * G, C)
    grid = x.reshape(2, 3, G, G, C)
    mean = TokenSelector("mean", 4, G, C)(x)
    assert mean.shape == (2, 3, 4, C)
    torch.testing.assert_close(mean[:, :, 0], grid[:, :, :4, :4].mean((2, 3)))
    samp = TokenSelector("sample", 4, G, C)(x)
    torch.testing.assert_close(samp[:, :, 0], grid[:, :, 2, 2])  # centre patch of the top-left cell
    torch.testing.assert_close(TokenSelector("mean", 64, G, C)(x), x)
    att = TokenSelector("attention", 4, G, C)
    assert att(x).shape == (2, 3, 4, C) and sum(p.numel() for p in att.parameters()) > 0
    with pytest.raises(ValueError):
        TokenSelector("mean", 9, G, C)  # 3 does not divide 8
