"""The tiny ICL model learns real in-context learning; the DPO loss is the DPO loss; runs repeat by seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from studio.models.episode_sampler import EpisodeConfig, EpisodeSampler, EpisodeStream, eval_batch, icl_eval_config
from studio.models.icl_module import DPOModule, dpo_loss, fit, train_icl
from studio.models.icl_net import ICLNetConfig, build_net, tensor_reliance
from studio.models.icl_predictor import as_predictor
from studio.models.icl_vocab import VOCAB


def test_dpo_loss_matches_hand_computation():
    pc, pr = torch.tensor([-0.2, -1.5]), torch.tensor([-1.0, -0.1])
    rc, rr = torch.tensor([-0.5, -1.0]), torch.tensor([-0.7, -0.4])
    beta = 0.1
    got = dpo_loss(pc, pr, rc, rr, beta)
    for i in range(2):
        z = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])).item()
        assert got[i].item() == pytest.approx(-math.log(1 / (1 + math.exp(-z))), rel=1e-6)
    # policy == reference: log 2 whatever the log-probabilities and beta
    assert torch.allclose(dpo_loss(pc, pr, pc, pr, 3.0), torch.full((2,), math.log(2)))
    # preferring the chosen answer more than the reference does lowers the loss
    assert dpo_loss(pc + 1, pr, pc, pr).mean() < math.log(2) < dpo_loss(pc - 1, pr, pc, pr).mean()


def test_config_refuses_unknown_keys_and_sampler_is_seeded():
    with pytest.raises(ValueError, match="burstyness"):
        EpisodeSampler({"burstyness": 0.5})
    a, b = EpisodeSampler(EpisodeConfig(), seed=3).sample(16), EpisodeSampler(EpisodeConfig(), seed=3).sample(16)
    c = EpisodeSampler(EpisodeConfig(), seed=4).sample(16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["images"], c["images"])
    # symbol episodes: the target is one of the demonstration answers, all of them symbols
    assert bool(a["candidates"][torch.arange(16), a["target"]].all())
    assert bool((a["answers"] >= VOCAB.n_words).all())


def test_predictor_answers_studio_icl_episodes_with_removed_images():
    from studio import icl

    net = build_net(0, ICLNetConfig(layers=1), log=lambda s: None)
    eps = icl.digit_episodes(12, shots=4, ways=2, symbols=True, seed=1)
    removed = icl.apply_condition("demo_images_removed", eps, seed=0)[0]
    for batch in (eps, removed):
        out = as_predictor(net)(icl.blind(batch))
        assert len(out) == len(batch)
        assert all(o in e.candidates for o, e in zip(out, batch))


@pytest.mark.slow
def test_dpo_module_reference_frozen_and_log2_at_init():
    net = build_net(0, ICLNetConfig(layers=1), log=lambda s: None)
    module = DPOModule(net, {"lr": 1e-2}, beta=0.1, sft_weight=0.0)
    batch = EpisodeSampler(EpisodeConfig(majority_share=0.5), seed=0).sample(64)
    out = module.losses(batch)
    assert out["dpo"].item() == pytest.approx(math.log(2), abs=1e-6)
    ref0 = {k: v.clone() for k, v in module.reference.state_dict().items()}
    pol0 = [p.clone() for p in module.net.parameters() if p.requires_grad]
    assert not any(p.requires_grad for p in module.reference.parameters())
    fit(module, EpisodeStream([EpisodeSampler(EpisodeConfig(majority_share=0.5), seed=1)]), steps=5, seed=0)
    assert all(torch.equal(v, module.reference.state_dict()[k]) for k, v in ref0.items())
    assert any(not torch.equal(a, b) for a, b in zip(pol0, [p for p in module.net.parameters() if p.requires_grad]))
    assert module.losses(batch)["dpo"].item() != pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.slow
def test_same_seed_same_weights():
    def run(seed):
        m, _ = train_icl(
            EpisodeConfig(batch_size=32),
            steps=5,
            seed=seed,
            net=build_net(seed, ICLNetConfig(layers=1), log=lambda s: None),
        )
        return torch.cat([p.detach().flatten() for p in m.net.parameters()])

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.slow
def test_learns_real_in_context_learning():
    """Short but genuine: held-out images, symbols re-drawn per episode (2-way: chance 0.5)."""
    module, _ = train_icl(EpisodeConfig(symbol_share=1.0), steps=400, seed=0)
    held_out = eval_batch(icl_eval_config(), n=800, seed=99)
    r = tensor_reliance(module.net, held_out)
    assert r["accuracy"] > 0.7, r
    assert r["reliance"] > 0.15, r  # blanking the demonstration images must hurt
    from studio import icl

    eps = icl.digit_episodes(400, shots=4, ways=2, symbols=True, seed=5)
    pred = as_predictor(module)(icl.blind(eps))
    assert np.mean([p == e.answer for p, e in zip(pred, eps)]) > 0.7
