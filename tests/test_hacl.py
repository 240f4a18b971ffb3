"""HACL's loss, the captioner's training and caching, the ablation's measurements and its verdicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from studio.analysis import hallucination as H
from studio.data import scenes as S
from studio.models import captioner as C
from studio.models.losses import hacl_loss
from studio.studies import representation_gap as hacl
from studio.training import OptimConfig, curves
from studio.verdicts import CLAIM, COLUMNS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SANITY, UNTESTABLE, verdict_table


def _direct_loss(v, t, h, tau):
    """HACL's symmetric InfoNCE written out term by term, without cross_entropy or matrix products."""
    b = len(v)
    cands = list(t) + (list(h) if h is not None else [])
    i2t = t2i = 0.0
    for i in range(b):
        s = [float(v[i] @ c) / tau for c in cands]
        i2t += -(s[i] - math.log(sum(math.exp(x) for x in s)))
        s = [float(t[i] @ v[j]) / tau for j in range(b)]
        t2i += -(s[i] - math.log(sum(math.exp(x) for x in s)))
    return 0.5 * (i2t / b + t2i / b)


def test_hacl_loss_matches_direct_computation_and_negatives_matter():
    g = torch.Generator().manual_seed(0)
    v, t, h = (F.normalize(torch.randn(5, 8, generator=g), dim=-1) for _ in range(3))
    tau = 0.07
    got = float(hacl_loss(v, t, h, tau))
    assert got == pytest.approx(_direct_loss(v, t, h, tau), rel=1e-5)
    without = float(hacl_loss(v, t, None, tau))
    assert without == pytest.approx(_direct_loss(v, t, None, tau), rel=1e-5)
    # extra negatives can only add mass to the image-to-text denominators
    assert got > without
    # hallucinated captions identical to the true ones double every image-to-text denominator's
    # terms: that direction gains exactly log 2, the average of both directions log(2) / 2
    assert float(hacl_loss(v, t, t.clone(), tau)) == pytest.approx(without + 0.5 * math.log(2), rel=1e-5)


def test_temperature_starts_at_007_and_is_clamped():
    m = C.Captioner(
        {"arm": "hacl", "hidden": 16, "layers": 1, "heads": 2, "intermediate": 16},
        feature_dim=4,
        optim=OptimConfig(steps=10),
    )
    assert float(m.temperature.detach()) == pytest.approx(0.07)
    with torch.no_grad():
        m.temperature.fill_(3.0)
    assert float(m.clamped_temperature().detach()) == pytest.approx(0.5)
    assert m.visual_head.out_features == 16 // 4
    assert any(name.endswith("layers.0") for name, _ in m.named_modules())


def _tiny_data(n=96, seed=0):
    bank = S.scene_bank(n, seed=seed, split="train")
    feats = torch.from_numpy(bank["frames"]).reshape(n, -1)[:, : C.N_VISUAL * 8].reshape(n, C.N_VISUAL, 8)
    return (feats.float(), torch.from_numpy(bank["caption_ids"]), torch.from_numpy(bank["hallucinated_ids"]))


def test_hallucinated_negatives_change_the_loss():
    data = _tiny_data(16)
    torch.manual_seed(0)
    cfg = {"arm": "hacl", "hidden": 16, "layers": 1, "heads": 2, "intermediate": 16}
    m = C.Captioner(cfg, feature_dim=8, optim=OptimConfig(steps=10))
    batch = tuple(x[:16] for x in data)
    with_h = float(m.losses(batch)["contrastive_loss"].detach())
    m.cfg.arm = "contrastive"
    without = float(m.losses(batch)["contrastive_loss"].detach())
    assert with_h != pytest.approx(without, rel=1e-4)
    m.cfg.arm = "lm"
    assert float(m.losses(batch)["contrastive_loss"].detach()) == 0.0


@pytest.mark.slow
def test_training_runs_and_same_seed_same_numbers():
    train, val = _tiny_data(96, seed=0), _tiny_data(32, seed=1)
    cfg = {"arm": "hacl", "hidden": 16, "layers": 1, "heads": 2, "intermediate": 16, "steps": 6, "batch_size": 16}
    m1, r1 = C.fit_captioner(cfg, train, val, seed=3)
    m2, r2 = C.fit_captioner(cfg, train, val, seed=3)
    _, r3 = C.fit_captioner(cfg, train, val, seed=4)
    for k in ("train/loss", "train/contrastive_loss", "val/loss", "val/caption_acc"):
        assert k in r1 and math.isfinite(r1[k])
        assert r1[k] == r2[k], k
    assert r1["val/loss"] != r3["val/loss"]
    assert m1.history[0]["loss"] > 0 and len(m1.history) == 6
    rep = m1.representations(val[0], val[1])
    assert rep["visual_eos"].shape == (32, 2, 16) and rep["text_mean"].shape == (32, 2, 16)
    gen = m1.generate(val[0][:3])
    assert len(gen) == 3 and all(isinstance(g, str) for g in gen)


def test_pairwise_separation_and_chair():
    v = np.eye(4)
    assert H.pairwise_separation(v, v, np.roll(v, 1, axis=0)) == 1.0
    assert H.pairwise_separation(v, np.roll(v, 1, axis=0), v) == 0.0
    assert H.pairwise_separation(v, v, v) == 0.5  # ties count one half
    slots = [S.make_scene(0).slots]
    true = S.render(slots[0])
    assert H.chair([true], slots)["chair"] == 0.0
    wrong_obj = S.render({**slots[0], "object1": next(o for o in S.OBJECTS if o not in S.make_scene(0).objects)})
    r = H.chair([wrong_obj], slots)
    assert r["chair_object"] == 0.5 and r["chair_attribute"] == 0.5 and r["chair"] == 0.5
    scores = H.caption_scores([true, wrong_obj], [true, true], slots * 2)
    assert scores["gen_exact"] == 0.5 and scores["gen_object1"] == 0.5 and scores["gen_colour1"] == 1.0
    assert scores["chair"] == pytest.approx(0.25)


def test_separation_by_type():
    v = np.eye(4)
    f, h = v, np.roll(v, 1, axis=0)
    by = H.separation_by_type(
        v,
        np.where([[1], [1], [0], [0]], f, h),
        np.where([[1], [1], [0], [0]], h, f),
        np.array(["object", "object", "event", "event"]),
        kinds=("object", "event"),
    )
    assert by == {"fh_pairwise_object": 1.0, "fh_pairwise_event": 0.0}


def test_config_refuses_unknown_keys():
    with pytest.raises(ValueError, match="unknown AblationConfig"):
        hacl.AblationConfig.from_dict({"n_trian": 3})
    with pytest.raises(ValueError, match="unknown CaptionerConfig"):
        hacl.AblationConfig.from_dict({"captioner": {"hiden": 3}})
    with pytest.raises(ValueError, match="unknown CellEncoderConfig"):
        hacl.AblationConfig.from_dict({"encoder": {"step": 3}})
    with pytest.raises(ValueError, match="captioner.arm"):
        hacl.AblationConfig.from_dict({"captioner": {"arm": "lm"}})
    with pytest.raises(ValueError, match="unknown arm"):
        C.CaptionerConfig(arm="dpo")


@pytest.mark.slow
def test_ablation_measures_every_arm_is_cached_and_reloads_identically(tmp_path, monkeypatch):
    from studio.studies.representation_gap import measures

    n_eval = 40
    bank = S.scene_bank(n_eval, seed=1, split="test")
    train, (vf, _, _) = _tiny_data(64, seed=0), _tiny_data(n_eval, seed=1)
    data = {
        "train": train,
        "val": (vf, torch.from_numpy(bank["caption_ids"]), torch.from_numpy(bank["hallucinated_ids"])),
        "eval_bank": bank,
        "encoder_info": {},
    }
    cfg = hacl.AblationConfig.from_dict(
        {
            "n_generate": 8,
            "probe_pools": ("eos",),
            "captioner": {"hidden": 16, "layers": 1, "heads": 2, "intermediate": 16, "steps": 3, "batch_size": 16},
        }
    )
    lines = []
    df, models = hacl.run_ablation(
        ("lm", "hacl"), seeds=[0], config=cfg, data=data, log=lines.append, return_models=True
    )
    assert sum("trained in" in x and "captioner" in x for x in lines) == 2  # both arms trained
    lines.clear()
    measure = measures.measure

    def refuse(*args, **kwargs):
        raise AssertionError("measured again: the rows should come from the cache")

    monkeypatch.setattr(measures, "measure", refuse)  # a warm rerun neither trains nor measures
    again, models_again = hacl.run_ablation(
        ("lm", "hacl"), seeds=[0], config=cfg, data=data, log=lines.append, return_models=True
    )
    assert not any(x.startswith("captioner") for x in lines)  # both loaded from the cache
    pd.testing.assert_frame_equal(df, again)  # wall time included: it comes from the cache
    monkeypatch.setattr(measures, "measure", measure)
    fresh = pd.DataFrame(measure(models[("hacl", 0)], data, cfg, seed=0))  # the cached rows, to the last bit
    kept = df[(df.arm == "hacl") & (df.space != "train")].drop(columns=["arm", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, fresh, check_exact=True)
    assert set(models) == {("lm", 0), ("hacl", 0)}
    w, w2 = models[("hacl", 0)].state_dict(), models_again[("hacl", 0)].state_dict()
    assert all(torch.equal(w[k], w2[k]) for k in w)
    _, _, folder = C.cached_captioner(
        {**cfg.captioner, "arm": "hacl"}, data["train"], data["val"], seed=0, log=lines.append
    )
    assert (folder / "model.safetensors").is_file() and "val/loss" in curves(folder).columns  # the curves
    assert set(df[df.space == "head"].arm) == {"hacl"}  # only arms with heads have a head space
    layers = sorted(df[df.space == "hidden"].layer.unique())
    assert layers == [0, 1]
    embed = df[(df.space == "hidden") & (df.layer == 0) & (df.metric == "fh_pairwise")]
    assert (embed.value == 0.5).all()  # the embedding layer's EOS cannot see the caption: a tie
    table = hacl.summary(df)
    assert {"lm", "hacl"} == set(table.arm) and (table.n_seeds == 1).all()
    first = df[df.metric == "train_loss_first"].set_index("arm")["value"]  # read off the training history
    assert set(first.index) == {"lm", "hacl"} and (first > 0).all()
    assert set(df[df.metric == "train_contrastive_loss_first"].arm) == {"hacl"}
    claims = [v for v in hacl.verdicts(df) if v.kind == CLAIM]
    assert len(claims) == 3  # gap (HACL vs LM), only HACL (heads), only HACL (hidden)
    # one seed never resolves: inconclusive (too few seeds), or untestable where 3 steps left a blind captioner
    assert {v.outcome for v in claims} <= {INCONCLUSIVE, UNTESTABLE}
    assert all(math.isfinite(v.gates[0].value) for v in claims)  # the slot-accuracy gate read the table


@pytest.mark.slow
def test_hf_gap_profile_on_a_tiny_llava():
    from studio import hf

    vlm = hf.tiny_vlm("llava")
    rows = hacl.hf_gap_profile(vlm, n=8, batch=8)
    assert set(rows.metric) == {"gap", "vt_probe", "fh_pairwise", "fh_probe"}
    assert sorted(rows.layer.unique()) == list(range(vlm.num_layers))
    gaps = rows[rows.metric == "gap"].value
    assert ((gaps >= 0) & (gaps <= 2)).all()


def _verdict_frame(
    hacl_heads,
    contrastive_heads,
    lm_gap=(0.9, 0.92, 0.88),
    contrastive_gap=(0.4, 0.42, 0.38),
    hacl_gap=(0.3, 0.31, 0.29),
    caption_acc=0.65,
    hidden_share=0.46,
    probe=0.5,
):
    """A planted run_ablation table: three arms, three seeds, last layer 2."""
    rows = []

    def add(arm, seed, space, layer, pool, metric, value):
        rows.append(dict(arm=arm, seed=seed, space=space, layer=layer, pool=pool, metric=metric, value=value))

    for arm, gaps in (("lm", lm_gap), ("contrastive", contrastive_gap), ("hacl", hacl_gap)):
        for seed, gap_value in enumerate(gaps):
            add(arm, seed, "hidden", 2, "eos", "gap", gap_value)
            add(arm, seed, "hidden", 2, "eos", "fh_pairwise", hidden_share)
            add(arm, seed, "hidden", 2, "eos", "fh_probe", probe)
            add(arm, seed, "hidden", 0, "eos", "fh_pairwise", 0.5)
            add(arm, seed, "train", -1, "-", "val_caption_acc", caption_acc)
    for arm, values in (("contrastive", contrastive_heads), ("hacl", hacl_heads)):
        for seed, v in enumerate(values):
            add(arm, seed, "head", -1, "eos", "fh_pairwise", v)
    return pd.DataFrame(rows)


def _outcomes(df):
    return [v.outcome for v in hacl.verdicts(df) if v.kind == CLAIM]


AHEAD = ([0.80, 0.78, 0.79], [0.70, 0.72, 0.71])  # HACL's heads separate, ahead of contrastive on every seed


def test_verdicts_on_planted_tables_each_way():
    ahead = hacl.verdicts(_verdict_frame(*AHEAD))
    claims = [v for v in ahead if v.kind == CLAIM]
    # both gaps shrink, HACL's heads separate; on the hidden states every arm sits at 0.46, below chance:
    # HACL's margin over chance is -0.04 on every seed, below min_effect: not reproduced
    assert [v.outcome for v in claims] == [REPRODUCED, REPRODUCED, REPRODUCED, NOT_REPRODUCED]
    assert "contrastive vs no contrastive" in claims[0].claim and "HACL vs no contrastive" in claims[1].claim
    assert claims[1].statistic == pytest.approx(0.6) and claims[1].n_seeds == 3
    assert claims[2].statistic == pytest.approx(0.08)  # min(HACL - contrastive, HACL - 0.5) per seed
    assert claims[3].statistic == pytest.approx(-0.04) and claims[3].ci_high < claims[3].min_effect
    assert all(v.failed_seeds == () for v in ahead)
    table = verdict_table(ahead)
    assert list(table.columns) == list(COLUMNS) and set(table.kind) == {CLAIM, SANITY}
    assert json.loads(table.gates[0])[0]["passed"] is True and "HACL 0.800 0.780 0.790" in claims[2].evidence
    # behind contrastive on one seed, ahead on two: the interval spans 0 and reaches min_effect
    assert _outcomes(_verdict_frame([0.70, 0.80, 0.80], [0.74, 0.72, 0.71]))[2] == INCONCLUSIVE
    # the contrastive arm separates as well as HACL, or better: not reproduced
    assert _outcomes(_verdict_frame([0.70, 0.72, 0.71], [0.80, 0.81, 0.82]))[2] == NOT_REPRODUCED
    # the LM-only gap no larger than the contrastive one: not reproduced; noisy: inconclusive
    assert _outcomes(_verdict_frame(*AHEAD, lm_gap=(0.4, 0.42, 0.38)))[0] == NOT_REPRODUCED
    assert _outcomes(_verdict_frame(*AHEAD, lm_gap=(0.1, 0.9, 0.5)))[:2] == [INCONCLUSIVE, INCONCLUSIVE]
    # without the lm or hacl arm there is nothing to judge
    assert hacl.verdicts(_verdict_frame(*AHEAD).query("arm != 'hacl'")) == []


def test_a_captioner_at_chance_makes_every_claim_untestable():
    chance = hacl.SLOT_CHANCE
    assert chance == pytest.approx((4 * 1 / 4 + 2 * 1 / 14) / 6)
    blind = hacl.verdicts(_verdict_frame(*AHEAD, caption_acc=chance + 0.05))  # below chance + CAPTION_MARGIN
    claims = [v for v in blind if v.kind == CLAIM]
    assert [v.outcome for v in claims] == [UNTESTABLE] * 4
    assert all("slot accuracy" in v.evidence and not v.gates[0].passed for v in claims)
    assert _outcomes(_verdict_frame(*AHEAD, caption_acc=chance + 0.15)) == [REPRODUCED] * 3 + [NOT_REPRODUCED]


def test_a_diverged_seed_is_named_and_set_aside():
    # contrastive seed 2's gap is far outside its arm's other seeds (the committed run: 1.467 vs 0.19, 0.28)
    df = _verdict_frame(
        [0.75, 0.72, 0.75],
        [0.755, 0.752, 0.585],
        lm_gap=(0.99, 0.81, 1.24),
        contrastive_gap=(0.19, 0.28, 1.47),
        hacl_gap=(0.25, 0.38, 0.53),
    )
    failed = hacl.failed_seeds(df)
    assert set(failed) == {"contrastive"} and set(failed["contrastive"]) == {2}
    assert "diverged" in failed["contrastive"][2]
    vs = {v.claim: v for v in hacl.verdicts(df)}
    contrastive = next(v for c, v in vs.items() if "contrastive vs" in c)
    assert contrastive.failed_seeds == ("contrastive seed 2",) and contrastive.n_seeds == 2
    assert contrastive.outcome == INCONCLUSIVE and "too few seeds" in contrastive.evidence
    assert "1.470" in contrastive.evidence  # the evidence says which seed and why
    heads = vs["Only HACL separates hallucinated from faithful captions"]
    assert heads.failed_seeds == ("contrastive seed 2",) and heads.n_seeds == 2  # every claim reading the arm
    hacl_gap = next(v for c, v in vs.items() if "HACL vs" in c)
    assert hacl_gap.failed_seeds == () and hacl_gap.outcome == REPRODUCED  # the other arm keeps its seeds
    # the same seed within the seed noise of the other arms (lm 0.81-1.24, HACL 0.25-0.53) is not flagged
    noisy = dict(lm_gap=(0.99, 0.81, 1.24), hacl_gap=(0.25, 0.38, 0.53))
    assert hacl.failed_seeds(_verdict_frame(*AHEAD, contrastive_gap=(0.19, 0.28, 0.45), **noisy)) == {}


def test_diverged_seeds_rule():
    rng = np.random.default_rng(0)
    # seeds that all trained alike (Gaussian noise): a study names a seed in at most about 5 % of reruns
    for n_seeds in (3, 5):
        named = sum(
            bool(
                hacl.diverged_seeds(
                    {a: dict(enumerate(rng.normal(m, 0.1, n_seeds))) for a, m in zip("abc", (1, 0.5, 0.3))}
                )
            )
            for _ in range(400)
        )
        assert named / 400 < 0.08, n_seeds
    # the committed run: contrastive seed 2 (t = 6.1, p = 0.0018 < 0.05 / 9), and no other seed
    gaps = {"lm": {0: 0.989, 1: 0.810, 2: 1.243}, "contrastive": {0: 0.194, 1: 0.276, 2: 1.467}}
    gaps["hacl"] = {0: 0.247, 1: 0.375, 2: 0.529}
    flagged = hacl.diverged_seeds(gaps)
    assert list(flagged) == ["contrastive"] and list(flagged["contrastive"]) == [2]
    t, p, n_tested = flagged["contrastive"][2]
    assert t == pytest.approx(6.06, abs=0.01) and p == pytest.approx(0.00177, rel=0.01) and n_tested == 9
    # two outliers in two arms: the second is named once the first no longer widens the noise
    values = {
        "a": {0: 1.0, 1: 1.1, 2: 0.9, 3: 9.0},
        "b": {0: 0.5, 1: 0.6, 2: 0.4, 3: 1.5},
        "c": {0: 0.3, 1: 0.4, 2: 0.2},
    }
    flagged = hacl.diverged_seeds(values)
    assert set(flagged) == {"a", "b"} and set(flagged["a"]) == {3} and set(flagged["b"]) == {3}
    assert flagged["b"][3][2] == 10  # tested after a's seed 3 was set aside
    # two of the same size widen each other's noise (the limit the docstring states)
    assert hacl.diverged_seeds({**values, "b": {0: 0.5, 1: 0.6, 2: 0.4, 3: -7.5}}) == {}
    assert hacl.diverged_seeds({"a": {0: 1.0, 1: 5.0}}) == {}  # two seeds: no other seeds to compare with
    assert hacl.diverged_seeds({"a": {0: 1.0, 1: 1.0, 2: 1.0}}) == {}  # no noise, no distance


def test_a_seed_whose_loss_did_not_fall_is_named():
    df = _verdict_frame(*AHEAD)
    rows = []
    for arm in ("lm", "contrastive", "hacl"):
        for seed in range(3):
            stuck = arm == "hacl" and seed == 1
            rows += [
                dict(arm=arm, seed=seed, space="train", layer=-1, pool="-", metric=m, value=v)
                for m, v in (
                    ("train_loss_first", 8.0),
                    ("train_loss", 7.9 if stuck else 2.0),
                    ("train_contrastive_loss_first", 4.2),
                    ("train_contrastive_loss", 1.0),
                )
                if not (arm == "lm" and "contrastive" in m)
            ]
    failed = hacl.failed_seeds(pd.concat([df, pd.DataFrame(rows)], ignore_index=True))
    assert list(failed) == ["hacl"] and "loss 7.9 not below 0.9 x its first 8" in failed["hacl"][1]
    vs = hacl.verdicts(pd.concat([df, pd.DataFrame(rows)], ignore_index=True))
    assert all(v.failed_seeds == ("hacl seed 1",) for v in vs if v.kind == CLAIM and "contrastive vs" not in v.claim)
    # a contrastive term that stayed at its start
    rows = [
        dict(r, value=4.1) if r["metric"] == "train_contrastive_loss" and r["arm"] == "contrastive" else r for r in rows
    ]
    failed = hacl.failed_seeds(pd.concat([df, pd.DataFrame(rows)], ignore_index=True))
    assert set(failed["contrastive"]) == {0, 1, 2} and "contrastive loss" in failed["contrastive"][0]
    v = hacl.verdict_gap(pd.concat([df, pd.DataFrame(rows)], ignore_index=True), "contrastive")
    assert v.outcome == UNTESTABLE and "share of seeds that failed = 1" in v.evidence
    assert v.gates[0].value == pytest.approx(0.65)  # every seed set aside: the accuracy gate reads them all


def test_sanity_rows_check_what_holds_by_construction():
    rows = [v for v in hacl.verdicts(_verdict_frame(*AHEAD)) if v.kind == SANITY]
    assert len(rows) == 2 and all(v.outcome == REPRODUCED for v in rows)
    broken = [v for v in hacl.verdicts(_verdict_frame(*AHEAD, probe=0.7)) if v.kind == SANITY]
    assert broken[0].outcome == NOT_REPRODUCED and "text-only probe" in broken[0].evidence
    assert broken[1].outcome == REPRODUCED


def test_summary_columns_and_t_interval():
    df = _verdict_frame([0.80, 0.78, 0.79], [0.70, 0.72, 0.71])
    table = hacl.summary(df)
    assert list(table.columns) == ["quantity", "arm", "mean", "ci_low", "ci_high", "n_seeds", "per_seed"]
    row = table[(table.quantity == "faithful>hallucinated (heads)") & (table.arm == "hacl")].iloc[0]
    assert row["mean"] == pytest.approx(0.79) and row.n_seeds == 3 and row.per_seed == "0.800 0.780 0.790"
    half = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (row.ci_low, row.ci_high) == (pytest.approx(0.79 - half), pytest.approx(0.79 + half))


def test_seed_spread_and_summary_tolerance_are_the_widest_range_over_seeds():
    df = _verdict_frame([0.80, 0.78, 0.79], [0.70, 0.72, 0.71])
    spread = hacl.seed_spread(df)
    by_arm = df[(df.space == "head") & (df.metric == "fh_pairwise")].groupby("arm")["value"]
    assert spread["fh_pairwise"] >= float((by_arm.max() - by_arm.min()).max()) == pytest.approx(0.02)
    tol = hacl.summary_tolerance(df)
    assert tol["mean"]["by"] == "quantity" and tol["mean"] is tol["per_seed"]
    assert tol["mean"]["spread"]["faithful>hallucinated (heads)"] == pytest.approx(0.02)
    assert hacl.by_metric(spread, "value") == {"value": {"by": "metric", "spread": spread}}


def test_summary_intervals_stay_in_the_metrics_range():
    df = _verdict_frame([0.99, 0.80, 0.999], [0.70, 0.72, 0.71], contrastive_gap=(0.02, 0.9, 0.05))
    table = hacl.summary(df).set_index(["quantity", "arm"])
    heads = table.loc[("faithful>hallucinated (heads)", "hacl")]
    assert heads.ci_high == 1.0 and heads.ci_low < heads["mean"]  # the raw t interval reaches past 1
    gap = table.loc[("gap (last layer, EOS)", "contrastive")]
    assert gap.ci_low == 0.0 and 0 < gap["mean"] < gap.ci_high < 2
    out_rows, _ = hacl.hallucination_rows(df)
    quality = hacl.caption_quality(out_rows).set_index(["arm", "metric"])
    assert quality.loc[("hacl", "val_caption_acc")].tolist() == pytest.approx([0.65, 0.65, 0.65])
