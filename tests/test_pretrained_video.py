"""The frames-vs-tokens evaluation of a pretrained video VLM (studio.studies.pretrained_video), on tiny models."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from studio import hf
from studio.errors import ParameterError
from studio.studies import pretrained_video as pv


def test_bad_requests_are_refused_before_any_model_is_built():
    assert pv.check_request("qwen2_vl", "tiny", [1, 2], [4]) == "qwen2_vl"
    with pytest.raises(ParameterError, match="takes no video; video families: .*qwen2_vl"):
        pv.check_request("llava", "tiny", [1], [4])
    with pytest.raises(ParameterError, match="random_size '13b' is not one of tiny, 7b"):
        pv.check_request("qwen2_vl", "13b", [1], [4])
    with pytest.raises(ParameterError, match="qwen2_vl' only"):
        pv.check_request("llava_onevision", "7b", [1], [None])
    with pytest.raises(ParameterError, match="frames"):
        pv.check_request("qwen2_vl", "tiny", [0, 2], [4])
    with pytest.raises(ParameterError, match="unknown family|not a supported|supported"):
        pv.check_request("qwen9", "tiny", [1], [4])
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="needs a GPU"):
            pv.open_model(None, "qwen2_vl", random_size="7b")


def test_the_memory_estimate_counts_the_weights_exactly():
    config = pv.real_size_config("qwen2_vl", "tiny")
    model = hf.tiny_vlm("qwen2_vl").model
    assert pv.count_parameters("qwen2_vl", config) == sum(p.numel() for p in model.parameters())
    small = pv.memory_estimate("qwen2_vl", config, [1, 2], [1], dtype=torch.float32)
    large = pv.memory_estimate("qwen2_vl", config, [1, 8], [1, 16], dtype=torch.float32)
    assert small["weights_gib"] == large["weights_gib"] == small["parameters"] * 4 / pv.GIB
    # 8 frames merge into 4 temporal patches of 16 tokens, plus the text around them
    assert large["sequence_tokens"] == 4 * 16 + pv.TEXT_TOKENS and small["sequence_tokens"] == 1 + pv.TEXT_TOKENS
    assert large["activations_gib"] > small["activations_gib"]
    half = pv.memory_estimate("qwen2_vl", config, [1, 2], [1], dtype=torch.bfloat16)
    assert half["weights_gib"] == pytest.approx(small["weights_gib"] / 2)


@pytest.mark.slow
def test_the_7b_shape_has_qwen2_vl_7bs_parameter_count():
    estimate = pv.memory_estimate("qwen2_vl", pv.real_size_config("qwen2_vl", "7b"), [32], [256])
    assert 8.2e9 < estimate["parameters"] < 8.4e9  # Qwen2-VL-7B-Instruct: 8.29 B
    assert 15 < estimate["weights_gib"] < 16 and estimate["total_gib"] > estimate["weights_gib"]


def test_a_tiny_model_saved_and_loaded_back_gives_the_sweeps_table(tmp_path):
    vlm = pv.open_model(None, "qwen2_vl", folder=tmp_path / "tiny")
    assert (tmp_path / "tiny" / "config.json").is_file()  # went through save_pretrained / from_pretrained
    items = pv.video_items(2, seed=0, tasks=["retrieval"])
    table = pv.evaluate(vlm, items, [1, 2, 4], [1, 4], progress=False)
    assert {"model", "frames", "tokens_per_frame", "seed", "val_loss", "val_acc", "visual_tokens", "budget"} <= set(
        table.columns
    )
    assert (table["budget"] == table["frames"] * table["tokens_per_frame"]).all() and len(table) == 6
    again = pv.evaluate(pv.open_model(None, "qwen2_vl", folder=tmp_path / "tiny"), items, [1, 2, 4], [1, 4])
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.drop(columns="seconds"))
    with pytest.raises(ParameterError, match="shortest video has 32"):
        pv.evaluate(vlm, items, [64], [1])
    fitted = pv.fit_law(table.iloc[:2], "additive")
    assert isinstance(fitted, str) and "at least two values" in fitted


def test_equal_budget_splits_mark_the_lowest_loss():
    table = pd.DataFrame(
        dict(
            frames=[1, 4, 2, 1],
            tokens_per_frame=[4, 1, 2, 1],
            visual_tokens=[4, 4, 4, 1],
            val_loss=[2.0, 1.5, 1.7, 3.0],
            val_acc=[0.1, 0.3, 0.2, 0.0],
        )
    ).assign(budget=lambda d: d.frames * d.tokens_per_frame)
    splits = pv.equal_budget_splits(table)
    assert splits["budget"].unique().tolist() == [4]  # budget 1 has one split only
    assert splits.loc[splits["best"], "frames"].tolist() == [4]
