"""The VLM family registry: every family's tiny random model lays out, masks and generates as its class says.

tests/test_hf.py runs the save_pretrained -> load_vlm -> capture == output_hidden_states round trip and
the ICL predictor (generation) over the same registry; here each family's own claims are checked against
what its transformers model does: the mask marks exactly the positions where image features replace token
embeddings, left-padded generation runs, and errors name the supported families.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio import hf
from studio.errors import ParameterError

# the families the issue asks for: all must be registered (a family is only listed if its tests pass)
TWELVE = {
    "llava",
    "llava_onevision",
    "llava_next_video",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "idefics3",
    "smolvlm",
    "paligemma",
    "gemma3",
    "internvl",
    "mistral3",
}


def test_registry_lists_the_twelve_families():
    assert set(hf.families()) == TWELVE and hf.FAMILIES == hf.families()
    assert hf.INTERLEAVED == tuple(f for f in hf.families() if f != "paligemma")
    for name in hf.families():
        cls = hf.family_class(name)
        assert cls.name == name and hf.model_class(name).__name__ == cls.model_class
    # every family's extra tokens are single tokens of the tiny tokenizer
    tok = hf.tiny_tokenizer()
    for name in hf.families():
        for t in hf.family_class(name).specials:
            assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, (name, t)


def _injected(vlm, inputs) -> torch.Tensor:
    """(batch, seq) bool: where the embeddings the text decoder receives differ from the token embeddings,
    i.e. where the model put visual features. Read with a pre-hook on the decoder."""
    decoder = vlm.model.get_submodule(vlm.layers_path.rsplit(".", 1)[0])
    seen = {}

    def grab(module, args, kwargs):
        seen["embeds"] = kwargs["inputs_embeds"].detach()

    handle = decoder.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            vlm.model(**inputs)
            tokens = vlm.model.get_input_embeddings()(inputs["input_ids"])
    finally:
        handle.remove()
    return (seen["embeds"] != tokens).any(-1)


@pytest.mark.parametrize("family", sorted(TWELVE))
def test_family_masks_exactly_its_visual_tokens_and_generates(family):
    vlm = hf.tiny_vlm(family, seed=0)
    assert vlm.family == family and vlm.spec.name == family and hf.family_of(vlm.model) == family
    rng = np.random.default_rng(0)
    images = [[rng.random((8, 8))], [rng.random((20, 20, 3)), rng.random((8, 8))]]
    texts = ["<image> a red circle", "<image> digit two <image> is left of seven"]
    inputs = vlm.build_inputs(images, texts)
    mask = vlm.modality_mask(inputs)
    assert mask.sum(1).tolist() == [vlm.tokens_per_image, 2 * vlm.tokens_per_image]
    # the family's mask is where the model injects image features: no more, no fewer
    assert torch.equal(_injected(vlm, inputs) & inputs["attention_mask"].bool(), mask)
    # left-padded greedy generation (what the ICL predictor does) continues every row
    left = vlm.build_inputs(images, texts, padding_side="left")
    assert torch.equal(vlm.modality_mask(left).sum(1), mask.sum(1))
    tok = vlm.tokenizer
    with torch.no_grad():
        out = vlm.model.generate(
            **left, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
        )
    assert out.shape[0] == 2 and left["input_ids"].shape[1] < out.shape[1] <= left["input_ids"].shape[1] + 3


@pytest.mark.parametrize("family", hf.processor_families())
def test_family_through_its_real_processor(tmp_path, family):
    """Saved with the family's real processor, loaded back: the processor lays out the tokens the family says."""
    hf.tiny_vlm(family, tmp_path, processor=True)
    vlm = hf.load_vlm(tmp_path)
    assert vlm.processor is not None and vlm.family == family
    rng = np.random.default_rng(1)
    images = [[rng.random((20, 30, 3))], [rng.random((8, 8)), rng.random((40, 40))]]
    inputs = vlm.build_inputs(images, ["<image> a red circle", "two <image> and <image> left"])
    mask = vlm.modality_mask(inputs)
    assert mask.sum(1).tolist() == [vlm.tokens_per_image, 2 * vlm.tokens_per_image]
    assert torch.equal(_injected(vlm, inputs) & inputs["attention_mask"].bool(), mask)


VIDEO_FAMILIES = ("llava_next_video", "llava_onevision", "qwen2_5_vl", "qwen2_vl", "qwen3_vl")


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_video_family_masks_image_and_video_tokens(family):
    assert hf.video_families() == VIDEO_FAMILIES
    vlm = hf.tiny_vlm(family)
    spec = vlm.spec
    assert spec.video_token_id not in (None, spec.image_token_id)
    rng = np.random.default_rng(0)
    frames = 4  # Qwen: two temporal tokens of two frames each
    texts = ["<image> a <video> red", "the <video> circle"]
    videos = [[rng.random((frames, 20, 20))], [rng.random((frames, 32, 32, 3))]]
    inputs = vlm.build_inputs([[rng.random((8, 8))], []], texts, videos=videos)
    mask = vlm.modality_mask(inputs)
    per_video = spec.tokens_per_video(frames, vlm.image_size)
    assert mask.sum(1).tolist() == [vlm.tokens_per_image + per_video, per_video]
    assert int((inputs["input_ids"] == spec.video_token_id).sum()) == 2 * per_video
    assert torch.equal(_injected(vlm, inputs) & inputs["attention_mask"].bool(), mask)
    with pytest.raises(ValueError, match="placeholders"):
        vlm.build_inputs([[], []], texts, videos=[[], []])


def test_an_image_only_family_refuses_a_video():
    vlm = hf.tiny_vlm("llava")
    with pytest.raises(ParameterError, match="takes no video") as err:
        vlm.build_inputs([[]], ["a <video>"], videos=[[np.zeros((2, 8, 8))]])
    assert "qwen2_vl" in str(err.value)


def test_qwen_resolution_control_sets_tokens_per_image():
    """Qwen's min/max pixels give the visual-token count asked for, through its real image processor."""
    import warnings

    from transformers import Qwen2VLImageProcessor

    vlm = hf.tiny_vlm("qwen2_vl")
    v = vlm.model.config.vision_config
    rng = np.random.default_rng(0)
    square, wide = (rng.integers(0, 255, shape).astype(np.uint8) for shape in ((50, 50, 3), (50, 70, 3)))
    for tokens in (4, 16, 64):
        kw = vlm.spec.resolution_kwargs(tokens)
        with warnings.catch_warnings():  # "requires torchvision ... falling back to the PIL processor"
            warnings.simplefilter("ignore")
            ip = Qwen2VLImageProcessor(patch_size=v.patch_size, merge_size=v.spatial_merge_size, **kw)
            grids = ip(images=[square, wide], return_tensors="pt")["image_grid_thw"]
        made = (grids.prod(1) // v.spatial_merge_size**2).tolist()
        assert made[0] == tokens and abs(made[1] - tokens) <= tokens / 2  # exact for a square image only
    with pytest.raises(NotImplementedError, match="fixed"):
        hf.tiny_vlm("llava").spec.resolution_kwargs(16)


def test_unknown_family_names_the_supported_ones_and_the_file():
    for call in (lambda: hf.tiny_vlm("blip2"), lambda: hf.family_class("blip2")):
        with pytest.raises(ParameterError, match="blip2") as err:
            call()
        message = str(err.value)
        assert all(f in message for f in TWELVE) and hf.NEW_FAMILY_FILE in message


def test_a_checkpoint_of_another_class_gets_one_clear_error(tmp_path):
    import transformers as tf

    llava = hf.tiny_vlm("llava", tmp_path / "llava")
    with pytest.raises(ParameterError, match="not 'gemma3'"):
        hf.adapter_for(llava.model, family="gemma3")  # an in-memory model is checked the same way
    with pytest.raises(ParameterError, match="'llava' model") as err:
        hf.load_vlm(tmp_path / "llava", family="qwen2_vl")
    assert hf.NEW_FAMILY_FILE in str(err.value)
    # a text-only model (no VLM family): refused from its config, before any weights are read
    tf.LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "llama")
    with pytest.raises(ParameterError, match="model_type 'llama'") as err:
        hf.load_vlm(tmp_path / "llama")
    assert "qwen3_vl" in str(err.value) and hf.NEW_FAMILY_FILE in str(err.value)
