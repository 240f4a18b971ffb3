"""Tiny random HF VLMs built from configs, saved and loaded back: capture, masks, the ICL predictor."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from studio import hf  # noqa: E402
from studio.capture import activations  # noqa: E402

FAMILIES = hf.FAMILIES


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{family: (folder, in-memory adapter)}: each tiny model saved with save_pretrained."""
    out = {}
    for fam in FAMILIES:
        folder = tmp_path_factory.mktemp(fam)
        out[fam] = (folder, hf.tiny_vlm(fam, folder, seed=0))
    return out


def _batch(vlm, seed=0):
    rng = np.random.default_rng(seed)
    images = [[rng.random((8, 8))], [rng.random((20, 20, 3)), rng.random((8, 8))]]
    texts = ["<image> a red circle", "<image> digit two <image> is left of seven"]
    return images, texts, vlm.build_inputs(images, texts)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_roundtrip_capture_equals_hidden_states(saved, family):
    folder, original = saved[family]
    vlm = hf.load_vlm(folder)  # from_pretrained from the local folder, no download
    assert vlm.family == family and vlm.processor is None and vlm.num_layers == 2
    for (k, a), b in zip(original.model.state_dict().items(), vlm.model.state_dict().values()):
        assert torch.equal(a, b), k
    images, texts, inputs = _batch(vlm)
    n_img = vlm.tokens_per_image
    # the modality mask marks exactly the image tokens: one block per image
    mask = vlm.modality_mask(inputs)
    assert mask.sum(1).tolist() == [n_img * len(im) for im in images]
    assert int(mask.sum()) == int((inputs["input_ids"] == vlm.image_token_id).sum())

    out, cache = hf.run_with_cache(vlm.model, inputs, names_filter=[0])  # a raw HF model: wrapped on the hf side
    name = vlm.layer_name(0)
    assert cache.layers == [name] and name == f"{vlm.layers_path}.0"
    ref = vlm.model(**inputs, output_hidden_states=True)
    h = cache[name]
    batch, seq = inputs["input_ids"].shape
    assert h.shape == (batch, seq, 64) and h.device.type == "cpu"
    torch.testing.assert_close(h, ref.hidden_states[1].float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, ref.logits)
    # modality split: per token and pooled
    assert cache.tokens(name, "visual").shape == (int(mask.sum()), 64)
    n_text = int((inputs["attention_mask"].bool() & ~mask).sum())
    assert cache.tokens(name, "text").shape == (n_text, 64)
    last = cache.pooled(name, "text", "last")
    assert last.shape == (batch, 64)
    ends = inputs["attention_mask"].sum(1) - 1  # right padding: the last real token is text here
    np.testing.assert_allclose(last, h[torch.arange(batch), ends].numpy())
    mean_v = cache.pooled(name, "visual", "mean")
    np.testing.assert_allclose(mean_v[0], h[0][mask[0]].mean(0).numpy(), rtol=1e-5, atol=1e-6)
    pairs = cache.pairs()
    assert set(pairs) == {name} and pairs[name][0].shape == (batch, 64)


def test_capture_only_asked_layers_and_stop_early(saved):
    vlm = saved["llava"][1]
    _, _, inputs = _batch(vlm)
    out, cache = vlm.run_with_cache(inputs, layers=[0], stop_early=True)
    assert out is None and cache.layers == [vlm.layer_name(0)]
    _, full = vlm.run_with_cache(inputs)  # None: every decoder layer
    assert full.layers == vlm.layer_names
    torch.testing.assert_close(full[vlm.layer_name(0)], cache[vlm.layer_name(0)])
    # the per-layer profile of studio.gap reads the cache directly
    from studio import gap

    prof = gap.layer_profile(full.pairs(pool="mean"), {"gap": gap.modality_gap, "cka": gap.linear_cka})
    assert list(prof["layer"].unique()) == vlm.layer_names and prof["value"].between(0, 2).all()
    with pytest.raises(ValueError, match="placeholders"):
        vlm.build_inputs([[np.zeros((8, 8))]], ["no image here"])


def test_run_with_cache_on_a_plain_module():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(2, 5, 4)
    modality = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out, cache = activations.run_with_cache(net, x, names_filter=lambda n: n in {"0", "2"}, modality_mask=modality)
    assert cache.layers == ["0", "2"]
    torch.testing.assert_close(cache["2"], out)
    torch.testing.assert_close(cache["0"], net[0](x))
    assert cache.tokens("0", "visual").shape == (3, 8) and cache.tokens("0", "text").shape == (7, 8)
    np.testing.assert_allclose(cache.pooled("0", "visual", "last")[1], net[0](x)[1, 0].detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown module"):
        activations.run_with_cache(net, x, names_filter=["nope"])


def test_load_vlm_on_a_missing_local_folder_names_it(tmp_path):
    from studio.errors import PathError

    missing = tmp_path / "no-such-model"
    for given in (missing, str(missing), "./no/such/model"):
        with pytest.raises(PathError, match="no such folder") as err:
            hf.load_vlm(given)
        assert str(given) in str(err.value)


def test_run_with_cache_wraps_a_raw_model_on_the_hf_side(saved):
    vlm = saved["llava"][1]
    _, _, inputs = _batch(vlm)
    _, cache = hf.run_with_cache(vlm.model, inputs, [-1], stop_early=True)  # indices and the mask need the adapter
    assert cache.layers == [vlm.layer_name(-1)] and torch.equal(cache.modality, vlm.modality_mask(inputs).cpu())
    with pytest.raises(ValueError, match="studio.hf.run_with_cache"):
        activations.run_with_cache(vlm.model, inputs, names_filter=[0])


def _episodes(seed=0):
    rng = np.random.default_rng(seed)

    def shot(answer):
        return NS(image=rng.random((8, 8)), question="what digit is this?", answer=answer)

    # queries carry no .answer at all: a predictor that reads it fails with AttributeError
    return [
        NS(
            demos=[shot("three"), shot("seven")],
            query=NS(image=rng.random((8, 8)), question="what digit?"),
            candidates=["three", "seven"],
        ),
        NS(demos=[shot("zero"), shot("one"), shot("zero")], query=NS(image=rng.random((8, 8)), question="which?")),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("family", hf.INTERLEAVED)
def test_icl_predictor(saved, family):
    folder, vlm = saved[family]
    predict = hf.hf_icl_predictor(folder, family=family, max_new_tokens=3)
    eps = _episodes()
    answers = predict(eps)
    assert len(answers) == len(eps) and all(isinstance(a, str) for a in answers)
    assert answers[0] in eps[0].candidates
    assert predict(eps) == answers  # greedy and scoring are deterministic
    # the candidate score is the log-likelihood of the candidate's tokens after the prompt
    scores = hf.score_candidates(predict.vlm, eps[0], ["three", "seven"])
    text = hf.episode_prompt(eps[0]) + " seven"
    images = [d.image for d in eps[0].demos] + [eps[0].query.image]
    inp = predict.vlm.build_inputs([images], [text])
    with torch.no_grad():
        logp = torch.log_softmax(predict.vlm.model(**inp).logits[0, :-1].float(), -1)
    ids = inp["input_ids"][0, 1:]
    k = len(predict.vlm.tokenizer(" seven", add_special_tokens=False)["input_ids"])
    manual = logp[torch.arange(len(ids)), ids][-k:].sum().item()
    assert scores[1] == pytest.approx(manual, abs=1e-4)
    assert answers[0] == ["three", "seven"][int(np.argmax(scores))]
    # conditions of studio.icl's probe: a grey "blanked" image (all 0 after normalisation, which
    # Idefics3 would drop as padding) and removed images (image None) still give an answer each
    ep = eps[0]
    grey = NS(
        demos=[NS(image=np.full((8, 8), 0.5), question=d.question, answer=d.answer) for d in ep.demos],
        query=ep.query,
        candidates=ep.candidates,
    )
    removed = NS(
        demos=[NS(image=None, question=d.question, answer=d.answer) for d in ep.demos],
        query=ep.query,
        candidates=ep.candidates,
    )
    assert hf.episode_prompt(removed).count("<image>") == 1
    assert all(a in ep.candidates for a in predict([grey, removed]))


def test_icl_predictor_refuses_a_prefix_only_family(saved):
    with pytest.raises(ValueError, match="interleaved"):
        hf.hf_icl_predictor(saved["paligemma"][1])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_processor_path(tmp_path, family):
    """Real checkpoints bring a processor: the same adapter code must go through it."""
    hf.tiny_vlm(family, tmp_path, processor=True)
    vlm = hf.load_vlm(tmp_path)
    assert vlm.processor is not None
    images, texts, inputs = _batch(vlm)
    assert vlm.modality_mask(inputs).sum(1).tolist() == [vlm.tokens_per_image * len(im) for im in images]
    _, cache = vlm.run_with_cache(inputs, layers=[-1])
    assert cache.tokens(vlm.layer_name(-1), "visual").shape == (vlm.tokens_per_image * 3, 64)
    eps = _episodes()
    answers = hf.hf_icl_predictor(vlm)(eps)
    assert len(answers) == 2 and answers[0] in eps[0].candidates
