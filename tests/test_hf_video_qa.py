"""A pretrained video VLM across frames T and tokens per frame M (studio.capture.hf.video_qa), on tiny models."""

from __future__ import annotations

import pytest
import torch

from studio import hf
from studio.capture.hf import video_qa as Q
from studio.errors import ParameterError


@pytest.fixture(scope="module")
def items():
    return Q.needle_items(3, seed=0, tasks=("retrieval", "counting"))


def test_uniform_frames_spread_over_the_video():
    assert Q.uniform_frames(32, 4).tolist() == [4, 12, 20, 28] and Q.uniform_frames(8, 8).tolist() == list(range(8))
    with pytest.raises(ParameterError, match="frames"):
        Q.uniform_frames(8, 9)


def test_needle_items_are_questions_with_their_answer_among_the_candidates(items):
    assert len(items) == 3 and all(it.answer in it.candidates for it in items)
    assert all(it.video.shape == (32, 32, 32) for it in items) and {it.task for it in items} <= {
        "retrieval",
        "counting",
    }


@pytest.mark.slow
def test_frames_by_tokens_on_qwen_sets_t_and_m_through_the_family(items):
    vlm = hf.tiny_vlm("qwen2_vl")
    table = Q.frames_by_tokens(vlm, items, frames=[1, 2, 4], tokens=[1, 4])
    assert len(table) == 6 and {"frames", "tokens_per_frame", "seed", "val_loss", "val_acc", "visual_tokens"} <= set(
        table.columns
    )
    assert all(f"val_acc_{it.task}" in table.columns for it in items)
    # two frames share one temporal patch: T frames of M tokens are ceil(T / 2) * M visual tokens
    expected = [-(-t // 2) * m for t, m in zip(table.frames, table.tokens_per_frame)]
    assert table.visual_tokens.tolist() == expected and table.tokens_per_frame.tolist() == [1, 4] * 3
    assert (table.val_loss > 0).all() and table.val_acc.between(0, 1).all() and (table.n == 3).all()
    # the loss is the answer's mean token NLL after the prompt, as a forward by hand gives it
    item = items[0]
    one = Q.score_item(vlm, item, 2, vlm.spec.frame_side(4))
    clip = item.video[Q.uniform_frames(32, 2)]
    text = Q.TEMPLATE.format(question=item.question) + " " + item.answer
    inputs = vlm.build_inputs([[]], [text], videos=[[clip]], image_size=(32, 32))
    with torch.no_grad():
        logp = torch.log_softmax(vlm.model(**inputs).logits[0, :-1].float(), -1)
    ids = inputs["input_ids"][0, 1:]
    k = len(vlm.tokenizer(" " + item.answer, add_special_tokens=False)["input_ids"])
    assert one["loss"] == pytest.approx(-logp[torch.arange(len(ids)), ids][-k:].mean().item(), abs=1e-5)
    again = Q.frames_by_tokens(vlm, items, frames=[4], tokens=[4]).drop(columns="seconds")
    assert again.equals(table.drop(columns="seconds").iloc[[5]].reset_index(drop=True))  # inference: same numbers


def test_fixed_resolution_families_take_only_their_own_tokens(items):
    vlm = hf.tiny_vlm("llava_onevision")
    table = Q.frames_by_tokens(vlm, items[:1], frames=[2], tokens=[None])
    own = int(table.tokens_per_frame[0])
    assert table.visual_tokens.tolist() == [2 * own + 1]  # pooled frames, then one newline per video
    with pytest.raises(ParameterError, match="fixed resolution"):
        Q.frames_by_tokens(vlm, items[:1], frames=[2], tokens=[own + 1])
    with pytest.raises(ParameterError, match="square"):
        Q.frames_by_tokens(hf.tiny_vlm("qwen2_vl"), items[:1], frames=[2], tokens=[3])
    with pytest.raises(ParameterError, match="takes no video"):
        Q.frames_by_tokens(hf.tiny_vlm("llava"), items[:1], frames=[2])


def test_your_own_video_questions_from_a_json_lines_file(tmp_path):
    import json

    import numpy as np

    np.save(tmp_path / "a.npy", np.zeros((6, 16, 16), dtype=np.uint8) + 255)
    rows = [{"video": "a.npy", "question": "what colour?", "answer": "white", "candidates": ["black", "white"]}]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (item,) = Q.load_items(tmp_path / "qa.jsonl")
    assert item.video.shape == (6, 16, 16) and item.video.max() == 1.0 and item.task == "qa"
    table = Q.frames_by_tokens(hf.tiny_vlm("qwen2_vl"), [item], frames=[2, 6], tokens=[4])
    assert table.visual_tokens.tolist() == [4, 12] and "val_acc_qa" in table.columns
    (tmp_path / "bad.jsonl").write_text(json.dumps({**rows[0], "answer": "grey"}))
    with pytest.raises(ParameterError, match="not among"):
        Q.load_items(tmp_path / "bad.jsonl")
