"""The hallucination study: four-type statements and narratives, refusals that name the first bad row, the
POPE / CHAIR-style metrics on planted answers and captions, the AITQE policies and rewriter, the verdicts on
planted tables (each can come out every way), the HF path on a tiny saved model, and (slow) the whole study
at a toy size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from studio.analysis import hal_eval as A
from studio.data import hallucination as D
from studio.data import scenes as S
from studio.models import quality_scorer as Q
from studio.studies import hallucination as hal
from studio.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, UNTESTABLE

SLOTS = {
    "colour1": "red",
    "object1": "three",
    "relation": "left-of",
    "colour2": "blue",
    "object2": "square",
    "event": "up",
}
TRUE = "a red three left-of a blue square then it moves up"


# ---------------------------------------------------------------- statements and narratives
def test_statements_are_balanced_deterministic_and_differ_as_their_type_says():
    st = D.statements(12, seed=3)
    again = D.statements(12, seed=3)
    assert (st["statement"] == again["statement"]).all() and len(st["statement"]) == 12 * 8
    for kind in D.TYPES:
        m = st["type"] == kind
        assert st["label"][m].sum() == 12 and (~st["label"][m].astype(bool)).sum() == 12
    slots = [S.make_scene(i, seed=3, split="test").slots for i in range(12)]
    for row in range(len(st["scene"])):
        sl, text, kind = slots[st["scene"][row]], st["statement"][row], st["type"][row]
        if st["label"][row]:
            assert text in (S.render(sl), D.true_narrative(sl))
            assert all(bad == 0 for bad, _ in A.judge(text, sl).values())  # a true statement is judged true
        else:
            judged = A.judge(text, sl)
            assert judged[kind][0] >= 1, (text, kind)  # the hallucination is of its own type
            if kind == "event":  # a narrative: an entity absent from the scene, doing something
                words = text.split()
                assert len(words) == D.NARRATIVE_LENGTH and words[-2] == "moves"
                assert words[-3] not in (sl["object1"], sl["object2"])


def test_a_caption_that_does_not_fit_is_refused_naming_the_first_bad_row(tmp_path):
    narrative = D.narrative(SLOTS, "green", "circle", "down")
    assert D.check_captions([TRUE, narrative]) == [TRUE, narrative]
    with pytest.raises(ValueError, match=r"row 2 .*unknown word 'dog'"):
        D.check_captions([TRUE, TRUE, "a red dog left-of a blue square then it moves up", "a red"])
    with pytest.raises(ValueError, match=r"row 1 .*5 words; a caption here has 11 or 13"):
        D.check_captions([TRUE, "a red three left-of a", "a red dog"])
    csv = tmp_path / "caps.csv"
    csv.write_text(f"caption\n{TRUE}\n{TRUE} again\n")
    with pytest.raises(ValueError, match=r"caps.csv: row 1 .*unknown word 'again'"):
        D.read_captions(csv)
    txt = tmp_path / "caps.txt"
    txt.write_text(f"{TRUE}\n\n{narrative}\n")
    assert D.read_captions(txt) == [TRUE, narrative]


def test_a_model_that_does_not_fit_is_refused_naming_the_first_bad_row():
    small = SimpleNamespace(lm=SimpleNamespace(config=SimpleNamespace(vocab_size=10, max_position_embeddings=64)))
    with pytest.raises(ValueError, match=r"statement row 0 .*past its vocabulary of 10"):
        hal.check_captioner_fits(small, [TRUE])
    short = SimpleNamespace(lm=SimpleNamespace(config=SimpleNamespace(vocab_size=100, max_position_embeddings=31)))
    hal.check_captioner_fits(short, [TRUE])  # 18 + 11 + 2 = 31 positions: fits
    with pytest.raises(ValueError, match=r"statement row 1 .*33 positions, it has 31"):
        hal.check_captioner_fits(short, [TRUE, D.narrative(SLOTS, "red", "three", "up")])


def test_corpus_corruptions_and_truncations_encode_to_template_length():
    slots = [S.make_scene(i, seed=0).slots for i in range(60)]
    corpus = D.noisy_corpus(slots, 0.5, seed=1)
    kinds = pd.Series(corpus["kind"]).value_counts()
    assert kinds["clean"] == 30 and set(kinds.index) == {"clean", *D.CORRUPTIONS} and kinds.drop("clean").max() == 5
    assert (corpus["captions"][corpus["kind"] == "clean"] == corpus["original"][corpus["kind"] == "clean"]).all()
    assert (corpus["captions"][corpus["kind"] != "clean"] != corpus["original"][corpus["kind"] != "clean"]).all()
    ids = hal.corpus_ids(corpus["captions"])
    tok = S.scene_tokenizer()
    assert ids.shape == (60, S.CAPTION_LENGTH)
    for row in np.flatnonzero(corpus["kind"] == "truncation"):
        n = len(corpus["captions"][row].split())
        assert ids[row, n] == tok.eos_token_id and (ids[row, n + 1 :] == tok.pad_token_id).all()
    assert D.word_edit_distance(TRUE, "a red three") == 8 and D.word_edit_distance(TRUE, TRUE) == 0


# ---------------------------------------------------------------- metrics on planted answers and captions
def test_pope_metrics_and_bootstrap_table():
    m = A.pope([1, 1, 0, 0], [1, 0, 1, 0])
    assert m == pytest.approx({"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5})
    all_yes = A.pope([1, 0, 1, 0], [1, 1, 1, 1])
    assert all_yes["yes_ratio"] == 1 and all_yes["recall"] == 1 and all_yes["accuracy"] == 0.5
    rng = np.random.default_rng(0)
    types = np.repeat(["object", "event"], 200)
    labels = np.tile([1, 0], 200)
    yes = np.where(types == "object", labels, rng.random(400) < 0.5)
    t = A.pope_table(types, labels, yes, scenes=np.arange(400) // 2, n_bootstrap=100)
    acc = t[t.metric == "accuracy"].set_index("type")
    assert acc.loc["object", "value"] == 1 and acc.loc["object", "ci_low"] == 1
    assert acc.loc["event", "ci_low"] < acc.loc["event", "value"] < acc.loc["event", "ci_high"]
    assert A.roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1 and A.roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert A.best_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(0.5)


def test_generative_rates_catch_each_type():
    caps = [
        TRUE,
        "a red three left-of a blue circle then it moves up",  # object
        "a green three left-of a blue square then it moves up",  # attribute
        "a red three above a blue square then it moves up",  # relation
        "a red three left-of a blue square then it moves down",  # event: wrong move
        "a red three left-of a blue square then a green circle moves up",  # event: an invented actor
        "a blue square right-of a red three then it moves up",  # true relation read the other way; event: wrong actor
        "a red three left-of a",  # a truncation: nothing false, nothing complete
    ]
    j = [A.judge(c, SLOTS) for c in caps]
    assert all(b == 0 for b, _ in j[0].values()) and j[0]["relation"] == (0, 1) and j[0]["event"] == (0, 1)
    assert [j[k][t][0] for k, t in ((1, "object"), (2, "attribute"), (3, "relation"), (4, "event"), (5, "event"))] == [
        1
    ] * 5
    assert j[5]["object"] == (1, 3) and j[6]["relation"] == (0, 1) and j[6]["event"] == (1, 1)
    assert all(b == 0 for b, _ in j[7].values())
    r = A.generative_rates(caps, [SLOTS] * len(caps))
    assert r["caption_accuracy"] == pytest.approx(1 / 8) and r["event_sentence"] == pytest.approx(3 / 8)
    table = A.generative_table(caps, [SLOTS] * len(caps), n_bootstrap=50)
    row = table[(table.type == "event") & (table.metric == "sentence")].iloc[0]
    assert row["value"] == pytest.approx(3 / 8) and row["ci_low"] <= row["value"] <= row["ci_high"]


# ---------------------------------------------------------------- AITQE: policies and the rewriter
def test_policies_keep_filter_rewrite():
    caps = np.array([TRUE, "a green three left-of a blue square then it moves up", "a red three"])
    orig = np.array([TRUE] * 3)
    p = np.array([0.9, 0.2, 0.1])
    keep = hal.apply_policy("keep", caps, orig, p, 0.5)
    filt = hal.apply_policy("filter", caps, orig, p, 0.5)
    rew = hal.apply_policy("rewrite", caps, orig, p, 0.5, rewritten=np.array([TRUE, TRUE, TRUE]))
    assert keep["volume"] == 1 and keep["text_shift"] == 0 and keep["dirty"] == pytest.approx(2 / 3)
    assert filt["volume"] == pytest.approx(1 / 3) and filt["dirty"] == 0 and list(filt["rows"]) == [0]
    assert rew["volume"] == 1 and rew["dirty"] == 0 and rew["text_shift"] == pytest.approx((0 + 1 + 8) / 3)
    short = np.array(["a red three", "a red three left-of"])  # the rewrite is longer than every original
    assert list(hal.apply_policy("rewrite", short, orig[:2], p[1:], 0.5, [TRUE, TRUE])["captions"]) == [TRUE, TRUE]
    with pytest.raises(ValueError, match="unknown policy"):
        hal.apply_policy("resample", caps, orig, p, 0.5)


class _FixedRewriter(torch.nn.Module):
    """Reads the true slots of SLOTS with probability `p` (the rest spread evenly)."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, feats):
        out = {}
        for s, words in Q.SLOT_WORDS.items():
            probs = torch.full((len(feats), len(words)), (1 - self.p) / (len(words) - 1))
            probs[:, words.index(SLOTS[s])] = self.p
            out[s] = probs.log()
        return out


def test_rewrite_changes_only_confident_slots_and_completes_truncations():
    feats = torch.zeros(3, 18, 4)
    caps = ["a green three left-of a blue square then it moves up", "a red three left-of", TRUE]
    assert Q.rewrite(_FixedRewriter(0.9), feats, caps, 0.5) == [TRUE] * 3
    unsure = Q.rewrite(_FixedRewriter(0.4), feats, caps, 0.5)  # not confident: the words stay, gaps are filled
    assert unsure == [caps[0], TRUE, TRUE]


# ---------------------------------------------------------------- verdicts on planted tables
HARD = {"object": 0.9, "attribute": 0.85, "relation": 0.8, "event": 0.65}  # every type answered, event lowest


def _pope(acc: dict, seeds=(0, 1, 2), models=("lm", "hacl"), jitter=0.01):
    return pd.DataFrame(
        [
            {"model": m, "seed": s, "type": t, "metric": metric, "value": value}
            for m in models
            for s in seeds
            for t, a in acc.items()
            for metric, value in (("accuracy", a + jitter * s), ("yes_ratio", 0.92 if a == 0.5 else 0.5))
        ]
    )


def test_event_verdict_each_way():
    v = hal.verdict_event_hardest(_pope(HARD))
    assert v.outcome == REPRODUCED and v.statistic == pytest.approx(0.15) and v.n_seeds == 6
    assert v.gates[0].passed and v.gates[0].value == pytest.approx(0.66)  # the lowest seed-mean type: event
    easy = {**HARD, "event": 0.95}  # every type answered, event the easiest: not reproduced
    v = hal.verdict_event_hardest(_pope(easy))
    assert v.outcome == NOT_REPRODUCED and v.statistic == pytest.approx(-0.15) and "lm relation" in v.evidence
    noisy = _pope({**HARD, "event": 0.79}, jitter=0.0)
    noisy.loc[(noisy.type == "event") & (noisy.metric == "accuracy"), "value"] += np.tile([-0.05, 0.05, 0.0], 2)
    assert hal.verdict_event_hardest(noisy).outcome == INCONCLUSIVE
    one = hal.verdict_event_hardest(_pope(HARD, seeds=(0,), models=("lm",)))
    assert one.outcome == INCONCLUSIVE and "too few seeds" in one.evidence


def test_a_type_at_chance_makes_the_event_verdict_untestable():
    # the committed captioners: relation statements at exactly 0.500 with a yes-ratio of 0.92
    blind = hal.verdict_event_hardest(_pope({**HARD, "relation": 0.5}, jitter=0.0))
    assert blind.outcome == UNTESTABLE and not blind.gates[0].passed
    assert "on relation, yes-ratio 0.92" in blind.evidence and blind.gates[0].value == pytest.approx(0.5)
    # relation above chance + ANSWERED_MARGIN (and above event): the gate passes and the claim is judged
    answered = hal.verdict_event_hardest(_pope({**HARD, "relation": 0.5 + hal.ANSWERED_MARGIN + 0.1}))
    assert answered.gates[0].passed and answered.outcome == REPRODUCED


def test_a_model_seed_at_chance_is_named_and_set_aside():
    pope = _pope(HARD)
    stuck = (pope.model == "hacl") & (pope.seed == 1) & (pope.metric == "accuracy")
    pope.loc[stuck, "value"] = 0.5
    pope = pd.concat([pope, _pope(HARD, models=("contrastive",))], ignore_index=True)
    v = hal.verdict_event_hardest(pope)
    assert v.failed_seeds == ("hacl seed 1",) and v.n_seeds == 8 and v.outcome == REPRODUCED
    assert "failed seeds set aside: ['hacl seed 1']" in v.evidence


def _policies(rates: dict, seeds=(0, 1, 2), jitter=0.005, acc=0.65):
    """Planted policy runs: rates {rate: {policy: mean_instance}}; dirty: keep the rate, the others half of it."""
    rows = []
    for r, by in rates.items():
        for s in seeds:
            for p, v in by.items():
                rows.append(
                    {
                        "rate": r,
                        "seed": s,
                        "policy": p,
                        "mean_instance": v + jitter * s,
                        "dirty": (r if p == "keep" else r / 2) + 0.01 * s,
                        "val_caption_acc": acc,
                    }
                )
    return pd.DataFrame(rows)


WINS = {0.3: {"keep": 0.5, "filter": 0.4, "rewrite": 0.3}, 0.6: {"keep": 0.8, "filter": 0.6, "rewrite": 0.4}}


def test_rewrite_verdict_each_way():
    v = hal.verdict_rewrite(_policies(WINS))
    assert v.outcome == REPRODUCED and v.statistic == pytest.approx(0.15) and v.n_seeds == 6
    assert [g.passed for g in v.gates] == [True, True, True]  # control, repair, downstream slot accuracy
    loses = {r: {**x, "rewrite": x["filter"] + 0.1} for r, x in WINS.items()}
    assert hal.verdict_rewrite(_policies(loses)).outcome == NOT_REPRODUCED
    tied = _policies({r: {**x, "rewrite": x["filter"]} for r, x in WINS.items()}, jitter=0.0)
    tied.loc[tied.policy == "rewrite", "mean_instance"] += [0.05, -0.06, 0.02, 0.03, -0.05, 0.04]
    assert hal.verdict_rewrite(tied).outcome == INCONCLUSIVE


def test_rewrite_verdict_gates():
    # the committed runs: keep's rate 0.419 at 30 % bad captions, 0.411 at 60 %: the metric does not respond
    flat = {
        0.3: {"keep": 0.419, "filter": 0.415, "rewrite": 0.30},
        0.6: {"keep": 0.411, "filter": 0.417, "rewrite": 0.30},
    }
    v = hal.verdict_rewrite(_policies(flat))
    assert v.outcome == UNTESTABLE and not v.gates[0].passed and "rate 0.6 vs 0.3" in v.evidence
    assert "positive control" in v.evidence
    one_rate = hal.verdict_rewrite(_policies({0.3: WINS[0.3]}))
    assert one_rate.outcome == UNTESTABLE and "one rate only" in one_rate.evidence
    # a rewriter that leaves as many captions wrong as keeping them all: untestable
    unrepaired = _policies(WINS)
    rewrite, keep = unrepaired.policy == "rewrite", unrepaired.policy == "keep"
    unrepaired.loc[rewrite, "dirty"] = unrepaired.loc[keep, "dirty"].to_numpy()
    v = hal.verdict_rewrite(unrepaired)
    assert v.outcome == UNTESTABLE and "the rewriter repairs" in v.evidence and v.gates[0].passed
    # downstream captioners that cannot caption: untestable
    v = hal.verdict_rewrite(_policies(WINS, acc=0.2))
    assert v.outcome == UNTESTABLE and "slot accuracy of the downstream captioners" in v.evidence
    # no filter or rewrite runs at all
    keep_only = _policies({r: {"keep": x["keep"]} for r, x in WINS.items()})
    assert hal.verdict_rewrite(keep_only).outcome == UNTESTABLE


def _auc(hard, random, seeds=(0, 1, 2)):
    return pd.DataFrame(
        [
            {"seed": s, "scorer": arm, "corruption": c, "auc": v + 0.01 * s}
            for s in seeds
            for arm, v in (("hard", hard), ("random", random))
            for c in D.CORRUPTIONS
        ]
    )


def test_negatives_verdict_each_way():
    v = hal.verdict_negatives(_auc(0.9, 0.7))
    assert v.outcome == REPRODUCED and v.statistic == pytest.approx(0.2) and v.gates[0].passed
    assert hal.verdict_negatives(_auc(0.65, 0.75)).outcome == NOT_REPRODUCED
    one = hal.verdict_negatives(_auc(0.9, 0.7, seeds=(0,)))
    assert one.outcome == INCONCLUSIVE and "too few seeds" in one.evidence
    noisy = _auc(0.8, 0.8)
    noisy.loc[noisy.scorer == "hard", "auc"] += np.repeat([0.1, -0.08, 0.06], len(D.CORRUPTIONS))
    assert hal.verdict_negatives(noisy).outcome == INCONCLUSIVE
    # scorers at chance: untestable, whatever the difference
    blind = hal.verdict_negatives(_auc(0.58, 0.52))
    assert blind.outcome == UNTESTABLE and "worst scorer" in blind.evidence
    # one seed's scorers at chance while the others are not: named and set aside
    stuck = _auc(0.9, 0.7, seeds=(0, 1, 2, 3))
    stuck.loc[stuck.seed == 3, "auc"] = 0.5
    v = hal.verdict_negatives(stuck)
    assert v.failed_seeds == (3,) and v.n_seeds == 3 and v.outcome == REPRODUCED
    t = hal.auc_table(_auc(0.9, 0.7))
    assert set(t.corruption) == {*D.CORRUPTIONS, "mean"} and t["n_seeds"].eq(3).all()


def test_auc_intervals_are_clipped_to_auc_range():
    auc = _auc(0.9, 0.7)
    auc.loc[(auc.scorer == "hard") & (auc.corruption == "relation"), "auc"] = [0.69, 0.60, 0.99]
    t = hal.auc_table(auc).set_index(["scorer", "corruption"])
    row = t.loc[("hard", "relation")]
    assert row.ci_high == 1.0 and row.ci_low < row["mean"] < 1.0  # the raw t interval reaches 1.2
    assert (t.ci_low >= 0).all() and (t.ci_high <= 1).all()


def test_config_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="n_statements \\+ n_calibration = 500 > representation_gap's n_eval = 400"):
        hal.HallucinationConfig.from_dict({"n_statements": 400})
    with pytest.raises(ValueError, match="unknown arm"):
        hal.HallucinationConfig.from_dict({"arms": ["dpo"]})
    with pytest.raises(ValueError, match="set by the study"):
        hal.HallucinationConfig.from_dict({"downstream": {"arm": "hacl"}})


# ---------------------------------------------------------------- the HF path on a tiny saved model
def _tiny_data(n=4):
    bank = S.scene_bank(n, seed=1, split="test")
    return {
        "eval_bank": bank,
        "bench": {"slots": bank["slots"], "statements": D.statements(n, seed=1, slots=bank["slots"])},
    }


def test_hf_evaluation_on_a_tiny_saved_llava(tmp_path):
    from studio import hf

    hf.tiny_vlm("llava", tmp_path / "llava")
    vlm = hf.load_vlm(tmp_path / "llava")
    out = hal.evaluate_hf(vlm, _tiny_data(3), n=3, n_bootstrap=10, batch=12)
    assert len(out["answers"]) == 24 and set(out["pope"].type) == set(D.TYPES)
    yes_ratio = out["pope"][out["pope"].metric == "yes_ratio"]["value"]
    assert yes_ratio.between(0, 1).all() and len(out["captions"]) == 3
    assert set(out["generative"].metric) == {"instance", "sentence", "any_sentence", "caption_accuracy"}
    from studio.capture.hf.hal_eval import check_statements_fit

    vlm.tokenizer.unk_token_id  # noqa: B018  (the tiny tokenizer spells lower-case words; 'É' it cannot)
    with pytest.raises(ValueError, match=r"statement row 1 .*does not fit llava"):
        check_statements_fit(vlm, [TRUE, "a red three \u00c9"])


# ---------------------------------------------------------------- the whole study, toy size
@pytest.mark.slow
def test_the_whole_study_at_toy_size_runs_and_reruns_identically(tmp_path, monkeypatch):
    from studio import paths

    cfg = {
        "seeds": [0],
        "arms": ["lm"],
        "gap": {
            "n_train": 96,
            "n_eval": 32,
            "encoder": {"steps": 5, "n_scenes": 20},
            "captioner": {"steps": 4, "batch_size": 16, "layers": 1},
        },
        "n_statements": 16,
        "n_calibration": 16,
        "n_generate": 8,
        "n_bootstrap": 10,
        "rates": [0.5],
        "n_label": 40,
        "scorer": {"steps": 3},
        "rewriter": {"steps": 3},
        "downstream": {"steps": 3, "layers": 1, "batch_size": 16},
    }
    log = []
    data = hal.prepare(cfg, log=log.append)
    bench = hal.run_benchmark(cfg, data, log=log.append)
    aitqe = hal.run_aitqe(cfg, data, log=log.append)
    table = hal.benchmark_table(bench, data, n_bootstrap=10)
    assert set(table.kind) == {"discriminative", "generative"} and set(table.model) == {"lm"}
    assert set(aitqe["policies"].policy) == set(hal.POLICIES) and aitqe["auc"]["auc"].between(0, 1).all()
    vs = hal.verdicts(bench, aitqe)
    assert len(vs) == 3 and all(v.outcome in (INCONCLUSIVE, UNTESTABLE) for v in vs)  # one seed: never judged
    again = hal.run_aitqe(cfg, data, log=log.append)  # every model now loads from the cache
    pd.testing.assert_frame_equal(aitqe["policies"], again["policies"])
    assert sum("trained" in line for line in log) == 1 + 3 + 2  # the arm, three downstream, ... trained once
    assert sum(line.startswith("[3/3]") for line in log) == 2  # each pass reports the downstream models' progress

    # The downstream captioners trained two at a time in spawned workers (workers=2, the default) equal
    # those trained one after another in this process, bit for bit: retrain them all in an empty cache.
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    serial = hal.run_aitqe({**cfg, "workers": 1}, data, log=log.append)
    assert sum("trained" in line for line in log) == 1 + 3 + 2 + 3  # the three downstream models anew
    pd.testing.assert_frame_equal(aitqe["policies"], serial["policies"])
    pd.testing.assert_frame_equal(aitqe["generative"], serial["generative"])


def test_the_benchmark_arms_are_representation_gaps_default_models():
    """GAP_DEFAULT copies the representation_gap notebook's defaults so its cached captioners load here:
    if that notebook's parameters change, this fails instead of the benchmark silently training new arms."""
    from studio import paths
    from studio.workbench.params import read_notebook

    gap = read_notebook(paths.NOTEBOOKS / "representation_gap.ipynb").defaults
    want = {
        "n_train": gap["n_train"],
        "n_eval": gap["n_eval"],
        "encoder": {"steps": gap["encoder_steps"], "n_scenes": gap["encoder_scenes"]},
        "captioner": {k: gap[k] for k in ("steps", "batch_size", "hidden", "layers")},
    }
    assert hal.GAP_DEFAULT == want
