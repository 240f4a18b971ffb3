"""The multi-image study: pairs with planted changes (deterministic, what they say is what changed),
dialogues whose clues are true, refusals that name the bad value, grounding and recall metrics on planted
masks and scores, equal visual tokens in both difference arms, the verdicts on planted tables (each can
come out every way), and (slow) a tiny end-to-end training that gives the same numbers twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from studio.analysis.grounding import grounding_scores, recall_at_k
from studio.data import dialogues as Dg
from studio.data import pairs as P
from studio.data import scenes as S
from studio.studies import multi_image as mi
from studio.verdicts import NOT_REPRODUCED, REPRODUCED, TIE

# ---------------------------------------------------------------- pairs


def test_pairs_are_deterministic_and_differ_exactly_where_their_changes_say():
    for i in range(40):
        p, q = P.make_pair(i, seed=3), P.make_pair(i, seed=3)
        assert np.array_equal(p.before, q.before) and np.array_equal(p.after, q.after) and p.changes == q.changes
        kinds = [c.kind for c in p.changes]
        assert len(set(kinds)) == len(kinds) <= P.MAX_CHANGES
        touched = sorted(x for c in p.changes for x in c.cells)
        differs = np.flatnonzero(
            ((p.cell_object[0] != p.cell_object[1]) | (p.cell_colour[0] != p.cell_colour[1])).ravel()
        )
        assert sorted(differs) == touched  # every planted cell changed, nothing else
        for c in p.changes:
            words = c.description.split()
            assert len(words) == P.DESCRIPTION_LENGTH and words[0] == c.kind
            assert (len(c.cells) == 2) == (c.kind == "moved")
        ans = p.answer
        assert ans.kind == p.asked if p.changes else ans.kind == P.NONE and ans.cells == ()
    assert not np.array_equal(P.make_pair(0, seed=3).after, P.make_pair(0, seed=4).after)


def test_a_colour_change_keeps_the_object_and_a_move_goes_one_step():
    p = P.make_pair(0, seed=1, n_changes=1, kinds=("colour",))
    (c,) = p.changes
    r, col = divmod(c.cells[0], S.GRID)
    assert p.cell_object[0, r, col] == p.cell_object[1, r, col] and p.cell_colour[0, r, col] != p.cell_colour[1, r, col]
    assert c.description.split()[3] == S.COLOURS[p.cell_colour[1, r, col] - 1]
    m = P.make_pair(0, seed=1, n_changes=1, kinds=("moved",)).changes[0]
    (r0, c0), (r1, c1) = divmod(m.cells[0], 3), divmod(m.cells[1], 3)
    assert S.STEP[m.description.split()[3]] == (r1 - r0, c1 - c0)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_changes": 4}, "n_changes=4: a 3 x 3 scene .* holds 0..3 planted changes"),
        ({"n_changes": 1, "kinds": ("teleported",)}, r"unknown change type\(s\) \['teleported'\]"),
        ({"n_changes": 2, "kinds": ("moved",)}, "n_changes=2 needs 2 distinct change types"),
    ],
)
def test_an_impossible_pair_is_refused_naming_what(kw, match):
    with pytest.raises(ValueError, match=match):
        P.make_pair(0, **kw)


def test_pair_bank_holds_the_asked_change():
    b = P.pair_bank(30, seed=2)
    assert b["images"].shape == (30, 2, 3, S.SIZE, S.SIZE) and b["description_ids"].shape == (30, 4)
    for i in range(30):
        assert (b["changed"][i].sum() == 0) == (b["asked"][i] == P.NONE)
        assert P.decode_words(b["description_ids"][i]) == b["descriptions"][i]


# ---------------------------------------------------------------- dialogues


def test_dialogue_clues_are_true_of_the_target_and_interleave_puts_tokens_where_it_says():
    layouts = Dg.gallery_layouts(20, seed=5)
    bank = Dg.dialogue_bank(layouts, seed=5, rounds=6, p_nothing=0.3)
    words = Dg.vocabulary()
    for i, items in enumerate(layouts):
        objs = {S.OBJECTS[it.obj]: it for it in items}
        for r in range(6):
            w = [words[j] for j in bank["round_ids"][i, r]]
            if w[0] == "object":
                assert w[1] in objs
            elif w[0] == "colour":
                assert w[1] in {S.COLOURS[it.colour] for it in items}
            elif w[0] == "position":
                cell = objs[w[1]].cell
                assert (Dg.ROW_WORDS[cell // 3], Dg.COL_WORDS[cell % 3]) == (w[2], w[3])
            elif w[0] == "relation":
                a, b = objs[w[1]].cell, objs[w[3]].cell
                assert {"above": a // 3 < b // 3, "below": a // 3 > b // 3}.get(w[2], a % 3 != b % 3)
        assert bank["has_reference"][i].sum() <= 1
    inter = Dg.interleave(bank["round_ids"], bank["has_reference"])
    ids = Dg.word_ids()
    assert (np.take_along_axis(inter["ids"], inter["query"], 1) == ids[Dg.QUERY]).all()
    assert ((inter["slot"] >= 0).sum(1) == P.CELLS * bank["has_reference"].sum(1)).all()


# ---------------------------------------------------------------- metrics


def test_grounding_scores_on_planted_masks():
    true = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    pred = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    g = grounding_scores(pred, true)
    assert (
        g["precision"][0] == 0.5 and g["recall"][0] == 0.5 and g["f1"][0] == 0.5 and g["iou"][0] == pytest.approx(1 / 3)
    )
    assert g["f1"][1] == 1.0 and g["iou"][1] == 1.0  # nothing changed, nothing predicted: right
    assert g["f1"][2] == 0.0 and g["precision"][2] == 0.0  # a change invented
    assert g["f1"][3] == 1.0


def test_recall_at_k_and_a_gallery_smaller_than_k_is_refused():
    s = np.array([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8], [0.5, 0.5, 0.1]])
    assert recall_at_k(s, [0, 0, 1], 1).tolist() == [1.0, 0.0, 0.0]  # a tie counts against the target
    assert recall_at_k(s, [0, 0, 1], 2).tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="gallery of 3 scenes is smaller than k=5"):
        recall_at_k(s, [0, 0, 1], 5)
    with pytest.raises(ValueError, match="gallery of 3 scenes is smaller than k=5"):
        mi.retrieval_data(None, n_train=4, galleries=[3, 50])


# ---------------------------------------------------------------- models


def test_both_difference_arms_give_the_lm_eighteen_visual_tokens_and_the_delta_suppresses_shared_cells():
    from studio.models.delta import DeltaConfig, DiffNet

    torch.manual_seed(0)
    feats = torch.randn(3, 2, 9, 16)
    feats[:, 1, :4] = feats[:, 0, :4]  # cells 0-3 identical in both images
    for arm in ("concat", "delta"):
        net = DiffNet(DeltaConfig(arm=arm, width=32, layers=1), feature_dim=16)
        assert net.visual_tokens(feats).shape == (3, 18, 32)
        cap, ground = net(feats, torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long))
        assert cap.shape == (3, 4, len(P.vocabulary())) and ground.shape == (3, 9)
    gate = 2 * torch.sigmoid(net.gate((feats[:, 1] - feats[:, 0]).abs()))  # the delta arm's per-cell scale
    assert torch.allclose(gate[:, :4], gate[:1, :1].expand(3, 4, 1))  # shared cells: one common scale
    with pytest.raises(ValueError, match="unknown arm 'sum'"):
        DeltaConfig(arm="sum")
    with pytest.raises(ValueError, match=r"unknown arm\(s\) \['sum'\]"):
        mi.models_to_train(["sum"])


# ---------------------------------------------------------------- verdicts on planted tables


def _diff_rows(f1: dict, words: dict | None = None, jitter: float = 0.01) -> pd.DataFrame:
    rows = []
    for (arm, task), v in f1.items():
        for s in (0, 1):
            w = (words or {}).get((arm, task), 0.5)
            rows.append(
                {
                    "arm": arm,
                    "task": task,
                    "seed": s,
                    "change": "all",
                    "f1": v + jitter * s,
                    "caption_words": w + jitter * s,
                }
            )
    return pd.DataFrame(rows)


def test_delta_verdict_each_way():
    assert mi.verdict_delta(_diff_rows({("delta", "multi"): 0.8, ("concat", "multi"): 0.6})).verdict == REPRODUCED
    assert mi.verdict_delta(_diff_rows({("delta", "multi"): 0.5, ("concat", "multi"): 0.6})).verdict == NOT_REPRODUCED
    noisy = _diff_rows({("delta", "multi"): 0.62, ("concat", "multi"): 0.6}, jitter=0.1)
    assert mi.verdict_delta(noisy).verdict == TIE
    one_seed = _diff_rows({("delta", "multi"): 0.8, ("concat", "multi"): 0.6})
    assert mi.verdict_delta(one_seed[one_seed["seed"] == 0]).verdict == TIE


def test_multitask_verdict_each_way():
    f1 = {("delta", "multi"): 0.8, ("delta", "ground"): 0.7, ("concat", "multi"): 0.6}
    words = {("delta", "multi"): 0.6, ("delta", "caption"): 0.5}
    f1[("delta", "caption")] = np.nan
    assert mi.verdict_multitask(_diff_rows(f1, words)).verdict == REPRODUCED
    worse = {**f1, ("delta", "ground"): 0.95}
    assert mi.verdict_multitask(_diff_rows(worse, {**words, ("delta", "caption"): 0.7})).verdict == NOT_REPRODUCED
    assert mi.verdict_multitask(_diff_rows(f1, words, jitter=0.3)).verdict == TIE
    only_multi = _diff_rows({("delta", "multi"): 0.8, ("concat", "multi"): 0.6})
    assert mi.verdict_multitask(only_multi).verdict == TIE


def _hits(recall: dict, queries: int = 40, seeds=(0, 1)) -> pd.DataFrame:
    """recall: {(retriever, round): share of queries hit}; the same queries hit for both k."""
    rows = []
    for (ret, r), share in recall.items():
        for s in seeds:
            hit = (np.arange(queries) < round(share * queries)).astype(float)
            rows.append(
                pd.DataFrame(
                    {
                        "retriever": ret,
                        "gallery": 50,
                        "seed": s,
                        "round": r,
                        "query": np.arange(queries),
                        "recall_at_1": hit,
                        "recall_at_5": hit,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_retrieval_verdicts_each_way():
    rising = {
        ("dual", 1): 0.1,
        ("dual", 3): 0.4,
        ("generative", 1): 0.2,
        ("generative", 3): 0.8,
        (mi.GENERATIVE_NO_IMAGES, 1): 0.1,
        (mi.GENERATIVE_NO_IMAGES, 3): 0.5,
    }
    h = _hits(rising)
    assert mi.verdict_rounds(h).verdict == REPRODUCED
    assert mi.verdict_generative(h).verdict == REPRODUCED and mi.verdict_images(h).verdict == REPRODUCED
    falling = {**rising, ("dual", 3): 0.05, ("generative", 3): 0.1, (mi.GENERATIVE_NO_IMAGES, 3): 0.1}
    assert mi.verdict_rounds(_hits(falling)).verdict == NOT_REPRODUCED
    assert mi.verdict_generative(_hits({**rising, ("dual", 3): 0.95})).verdict == NOT_REPRODUCED
    # one query of forty apart, the same on both seeds: no seed spread, but inside the query bootstrap
    close = _hits({**rising, ("dual", 3): 0.775})
    assert mi.verdict_generative(close).verdict == TIE
    assert mi.verdict_generative(_hits(rising, seeds=(0,))).verdict == TIE


def test_recall_table_intervals_hold_the_mean_and_chance_is_k_over_n():
    t = mi.recall_table(_hits({("dual", 1): 0.3, ("dual", 2): 0.6}), n_bootstrap=50)
    assert (t["ci_low"] <= t["mean"]).all() and (t["mean"] <= t["ci_high"]).all()
    assert t.loc[t["k"] == 5, "chance"].eq(0.1).all() and t["n_seeds"].eq(2).all()
    assert t.loc[(t["round"] == 2) & (t["k"] == 1), "mean"].item() == pytest.approx(0.6)


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_training_end_to_end_is_deterministic(tmp_path):
    enc = mi.encoder({"steps": 20, "n_scenes": 50}, log=lambda *_: None)
    diff = mi.difference_data(enc, n_train=32, n_eval=16)
    rows = [
        mi.run_difference(
            diff,
            [("delta", "multi")],
            [0],
            steps=2,
            batch_size=8,
            model={"width": 16, "layers": 1},
            log=lambda *_: None,
        )
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(rows[0].drop(columns="seconds"), rows[1].drop(columns="seconds"))
    assert set(rows[0]["change"]) >= {"all"} and rows[0]["f1"].between(0, 1).all()
    ret = mi.retrieval_data(enc, n_train=16, galleries=[8], n_queries=4, rounds=2)
    hits = mi.run_retrieval(ret, [0], steps=2, batch_size=8, model={"width": 16, "layers": 1}, log=lambda *_: None)
    assert set(hits["retriever"]) == set(mi.RETRIEVER_LABELS) and len(hits) == 3 * 2 * 4
