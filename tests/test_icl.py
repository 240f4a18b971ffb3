"""studio.icl: episodes, conditions, planted predictors, probe table and visual-reliance score."""

from __future__ import annotations

import numpy as np
import pytest

from studio import icl
from studio.data.digits import load_digits_images


@pytest.fixture(scope="module")
def eps():
    return icl.digit_episodes(1500, shots=4, ways=2, seed=0)


@pytest.fixture(scope="module")
def shortcut_eps():
    # 3 + 1 demonstrations, the query is of the majority class 80 % of the time: a text shortcut works
    return icl.digit_episodes(1500, shots=4, ways=2, balanced=False, majority=0.8, seed=3)


def lookup_predictor(episodes):
    """An in-weights oracle: recognises the query digit by looking its image up in the dataset."""
    images, labels = load_digits_images()
    table = {im.tobytes(): int(c) for im, c in zip(images, labels)}
    return [
        icl.DIGIT_WORDS[table[e.query.image.tobytes()]]
        if e.query.image is not None and e.query.image.tobytes() in table
        else ""
        for e in episodes
    ]


# ---------------------------------------------------------------- builders
def test_episode_structure(eps):
    for e in eps[:50]:
        assert len(e.demos) == 4 and e.query.image.shape == (8, 8)
        assert e.answer == e.query.answer == icl.DIGIT_WORDS[e.meta["query_label"]]  # fixed word mapping
        assert sorted(e.candidates) == e.candidates and e.answer in e.candidates and len(e.candidates) == 2
        assert sorted(d.answer for d in e.demos) == sorted(e.candidates * 2)  # balanced 2 + 2
        assert all(d.answer == icl.DIGIT_WORDS[d.label] for d in e.demos)
        ids = {d.image.tobytes() for d in e.demos} | {e.query.image.tobytes()}
        assert len(ids) == 5  # demonstrations and query are distinct images
    assert {e.meta["mapping"] for e in eps} == {"fixed"}


def test_mappings():
    fixed = icl.digit_episodes(200, symbols=True, mapping="fixed", seed=1)
    assert all(d.answer == icl.SYMBOLS[d.label] for e in fixed for d in e.demos)
    rand = icl.digit_episodes(300, symbols=True, seed=1)  # symbols default to a re-drawn mapping
    assert rand[0].meta["mapping"] == "random"
    by_class = {}
    for e in rand:
        assert len({d.answer for d in e.demos}) == 2 and all(a in icl.SYMBOLS for a in e.candidates)
        for d in e.demos:
            by_class.setdefault(d.label, set()).add(d.answer)
    assert all(len(s) > 5 for s in by_class.values())  # the same class gets many different symbols
    words = icl.digit_episodes(300, mapping="random", seed=1)
    assert np.mean([e.answer != icl.DIGIT_WORDS[e.meta["query_label"]] for e in words]) > 0.7
    assert all(a in icl.DIGIT_WORDS for e in words for a in e.candidates)


def test_majority_and_counts(shortcut_eps):
    counts = [sorted([sum(d.answer == a for d in e.demos) for a in e.candidates]) for e in shortcut_eps[:100]]
    assert all(c == [1, 3] for c in counts)
    share = np.mean([e.meta["query_is_majority"] for e in shortcut_eps])
    assert 0.76 < share < 0.84
    few = icl.digit_episodes(400, shots=1, ways=2, seed=0)
    assert 0.4 < icl.in_demo_labels(few).mean() < 0.6  # one demonstration, two classes


def test_determinism_and_prefix_stability():
    a, b = icl.digit_episodes(30, seed=5), icl.digit_episodes(60, seed=5)
    c = icl.digit_episodes(30, seed=6)
    same = lambda x, y: (
        x.answer == y.answer
        and np.array_equal(x.query.image, y.query.image)
        and all(np.array_equal(p.image, q.image) and p.answer == q.answer for p, q in zip(x.demos, y.demos))
    )
    assert all(same(x, y) for x, y in zip(a, b))
    assert not all(same(x, y) for x, y in zip(a, c))
    t1 = icl.probe(icl.random_demo_label_predictor(1), a, seed=2)
    t2 = icl.probe(icl.random_demo_label_predictor(1), a, seed=2)
    assert t1.equals(t2)


def test_train_test_images_disjoint():
    tr = icl.digit_episodes(300, split="train", seed=0)
    te = icl.digit_episodes(300, split="test", seed=0)
    ids = lambda es: {im.tobytes() for e in es for im in [e.query.image] + [d.image for d in e.demos]}
    assert not ids(tr) & ids(te)


def test_scenes():
    sc = icl.scene_episodes(300, ways=3, shots=6, seed=0, attribute="colour")
    e = sc[0]
    assert e.query.image.shape == (16, 16, 3) and e.query.image.dtype == np.float32
    assert 0 <= e.query.image.min() and e.query.image.max() <= 1
    assert all(a in icl.EPISODE_COLOURS for a in e.candidates) and len(e.candidates) == 3
    acc = np.mean([p == e.answer for p, e in zip(icl.nearest_image_predictor(sc), sc)])
    assert acc > 0.6  # colour is visible to a pixel-space nearest neighbour


# ---------------------------------------------------------------- conditions
def test_conditions_do_what_they_say(eps):
    few = eps[:40]
    blank, t = icl.apply_condition("demo_images_blank", few)
    assert t == [e.answer for e in few]
    assert all(d.image.shape == (8, 8) and not d.image.any() for e in blank for d in e.demos)
    assert all(np.array_equal(e.query.image, o.query.image) for e, o in zip(blank, few))
    removed, _ = icl.apply_condition("demo_images_removed", few)
    assert all(
        d.image is None and d.answer == o.answer for e, oe in zip(removed, few) for d, o in zip(e.demos, oe.demos)
    )
    noise, _ = icl.apply_condition("demo_images_noise", few)
    assert all(0 <= d.image.min() and d.image.max() < 1 and d.image.std() > 0.2 for e in noise for d in e.demos)
    shuf, _ = icl.apply_condition("demo_images_shuffled", few)
    for e, o in zip(shuf, few):
        new, old = [d.image.tobytes() for d in e.demos], [d.image.tobytes() for d in o.demos]
        assert sorted(new) == sorted(old) and all(x != y for x, y in zip(new, old))  # a derangement
        assert [d.answer for d in e.demos] == [d.answer for d in o.demos]
    qb, _ = icl.apply_condition("query_image_blank", few)
    assert all(not e.query.image.any() and np.array_equal(e.demos[0].image, o.demos[0].image) for e, o in zip(qb, few))
    ls, t = icl.apply_condition("labels_shuffled", few)
    assert t == [e.answer for e in few]
    for e, o in zip(ls, few):
        assert sorted(d.answer for d in e.demos) == sorted(d.answer for d in o.demos)
        assert [d.answer for d in e.demos] != [d.answer for d in o.demos]
    sym, t = icl.apply_condition("symbols", few)
    for e, o, target in zip(sym, few, t):
        assert target in icl.SYMBOLS and target == e.answer
        pairs = {(d.answer, od.answer) for d, od in zip(e.demos, o.demos)}
        assert len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})  # a bijection
        assert (target, o.answer) in pairs
    # the inputs were not touched
    assert all(d.image.any() and d.answer in icl.DIGIT_WORDS for e in few for d in e.demos)
    with pytest.raises(ValueError, match="unknown condition"):
        icl.apply_condition("demo_images_upside_down", few)


def test_labels_permuted_scoring(eps):
    perm, targets = icl.apply_condition("labels_permuted", eps[:200])
    pi = {}
    for e, o in zip(perm, eps[:200]):
        for d, od in zip(e.demos, o.demos):
            assert pi.setdefault(od.answer, d.answer) == d.answer  # one fixed map for all episodes
    assert all(k != v for k, v in pi.items()) and len(set(pi.values())) == len(pi)
    assert targets == [pi[o.answer] for o in eps[:200]]
    # a predictor that follows the demonstrations is unaffected; one answering from its weights scores 0
    t = icl.probe(
        icl.nearest_image_predictor, eps[:400], conditions=["original", "labels_permuted", "symbols", "labels_shuffled"]
    )
    acc = dict(zip(t.condition, t.accuracy))
    assert acc["labels_permuted"] == acc["original"] == acc["symbols"]
    t = icl.probe(
        lookup_predictor,
        eps[:400],
        conditions=[
            "original",
            "labels_permuted",
            "symbols",
            "labels_shuffled",
            "demo_images_blank",
            "query_image_blank",
        ],
    )
    acc = dict(zip(t.condition, t.accuracy))
    assert acc["original"] == acc["labels_shuffled"] == acc["demo_images_blank"] == 1.0
    assert acc["labels_permuted"] == acc["symbols"] == acc["query_image_blank"] == 0.0


def test_predictors_never_see_the_answer(eps):
    seen = []

    def spy(episodes):
        seen.extend(episodes)
        return [e.candidates[0] for e in episodes]

    icl.probe(spy, eps[:50])
    assert len(seen) == 50 * len(icl.CONDITIONS)
    for e in seen:
        assert e.answer == "" and e.query.answer == "" and e.query.label is None
        assert all(d.label is None for d in e.demos)
        assert not set(icl.PRIVATE_META) & set(e.meta)
    assert eps[0].answer != ""  # the originals keep theirs


# ---------------------------------------------------------------- planted predictors and the score
def test_majority_vote_ignores_images(shortcut_eps):
    r = icl.visual_reliance(icl.majority_predictor, shortcut_eps)
    assert abs(r["reliance"]) < 0.05 and abs(r["text_only_ratio"] - 1) < 0.05
    assert 0.75 < r["acc_original"] < 0.85  # it rides the 80 % majority shortcut
    rr = icl.visual_reliance(icl.random_demo_label_predictor(0), shortcut_eps)
    assert abs(rr["reliance"]) < 0.05


def test_nearest_image_relies_on_images(eps):
    r = icl.visual_reliance(icl.nearest_image_predictor, eps)
    assert r["acc_original"] > 0.85 and r["reliance"] > 0.3 and r["reliance_ci_low"] > 0.3
    assert r["text_only_ratio"] < 0.65
    assert all(r[f"reliance_{a}"] > 0.3 for a in icl.IMAGE_ABLATIONS)
    eight = icl.digit_episodes(500, shots=8, ways=2, seed=4)
    assert icl.visual_reliance(icl.nearest_image_predictor, eight)["acc_original"] > 0.92


def test_probe_table(shortcut_eps):
    t = icl.probe(icl.last_label_predictor, shortcut_eps, seed=0)
    assert list(t.condition[t.kind == "condition"]) == list(icl.CONDITIONS)
    assert {"baseline_majority", "baseline_last", "baseline_in_demo_labels", "baseline_chance"} <= set(t.condition)
    assert {"kind", "condition", "accuracy", "ci_low", "ci_high", "n", "delta"} <= set(t.columns)
    assert (t.n == len(shortcut_eps)).all()
    assert ((t.ci_low <= t.accuracy) & (t.accuracy <= t.ci_high)).all()
    assert (t.ci_high - t.ci_low)[t.kind == "condition"].between(0.01, 0.1).all()
    acc = dict(zip(t.condition, t.accuracy))
    assert acc["original"] == acc["baseline_last"]  # the planted predictor is the baseline
    assert acc["baseline_in_demo_labels"] == 1.0 and acc["baseline_chance"] == 0.5
    q = np.mean([e.meta["query_is_majority"] for e in shortcut_eps])
    assert acc["baseline_majority"] == pytest.approx(q)


def test_cis_contain_estimates(eps):
    r = icl.visual_reliance(icl.random_demo_label_predictor(3), eps[:300], seed=1, n_boot=500)
    for k in ["reliance"] + [f"reliance_{a}" for a in icl.IMAGE_ABLATIONS] + ["text_only_ratio"]:
        assert r[f"{k}_ci_low"] <= r[k] <= r[f"{k}_ci_high"], k
    a = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1] * 10, bool)
    b = np.array([1, 0, 0, 1, 0, 0, 1, 1, 0, 0] * 10, bool)
    p = icl.paired_bootstrap(a, b, n_boot=2000)
    assert p["diff"] == pytest.approx(0.3) and p["diff_ci_low"] < 0.3 < p["diff_ci_high"]
    assert p["ratio"] == pytest.approx(4 / 7)
    acc, lo, hi = icl.bootstrap_accuracy(a, n_boot=2000)
    assert lo < acc == 0.7 < hi and hi - lo < 0.25


def test_bad_arguments(eps):
    with pytest.raises(ValueError, match="shots"):
        icl.digit_episodes(5, shots=0)
    with pytest.raises(ValueError, match="ways"):
        icl.digit_episodes(5, ways=11)
    with pytest.raises(ValueError, match="ways"):
        icl.digit_episodes(5, ways=11, symbols=True)
    with pytest.raises(ValueError, match="ways"):
        icl.scene_episodes(5, ways=7)
    with pytest.raises(ValueError, match="mapping"):
        icl.digit_episodes(5, mapping="sometimes")
    with pytest.raises(ValueError, match="split"):
        icl.digit_episodes(5, split="val")
    with pytest.raises(ValueError, match="majority"):
        icl.digit_episodes(5, majority=0.8)  # balanced demonstrations have no majority
    with pytest.raises(ValueError, match="balanced"):
        icl.digit_episodes(5, shots=2, ways=2, balanced=False)
    with pytest.raises(ValueError, match="unknown condition"):
        icl.probe(icl.majority_predictor, eps[:5], conditions=["original", "labels_flipped"])
    with pytest.raises(ValueError, match="ablation"):
        icl.visual_reliance(icl.majority_predictor, eps[:5], ablation="demo_images_sepia")
    with pytest.raises(ValueError, match="answers for"):
        icl.probe(lambda es: ["one"], eps[:5])
    with pytest.raises(ValueError, match="n_boot"):
        icl.probe(icl.majority_predictor, eps[:5], n_boot=0)


# ---------------------------------------------------------------- arrays for models
def nearest_scores(arrays):
    """nearest_image_predictor in array form: a score of 1 on the nearest demonstration's answer."""
    im = arrays["images"].reshape(*arrays["images"].shape[:2], -1)
    d = ((im[:, :-1] - im[:, -1:]) ** 2).sum(-1)
    best = arrays["demo_answers"][np.arange(len(d)), d.argmin(1)]
    scores = np.zeros((len(d), len(icl.answer_vocabulary())))
    scores[np.arange(len(d)), best] = 1.0
    return scores


def test_arrays_and_scores_predictor(eps):
    blinded = icl.blind(eps[:300])
    a = icl.episodes_to_arrays(blinded)
    assert a["images"].shape == (300, 5, 8, 8) and a["image_mask"].all()
    assert (a["target"] == -1).all() and a["demo_answers"].shape == (300, 4) and a["candidates"].shape == (300, 2)
    vocab = icl.answer_vocabulary()
    assert [vocab[j] for j in a["demo_answers"][0]] == [d.answer for d in eps[0].demos]
    assert vocab[icl.episodes_to_arrays(eps[:1])["target"][0]] == eps[0].answer
    removed, _ = icl.apply_condition("demo_images_removed", eps[:10])
    m = icl.episodes_to_arrays(removed)["image_mask"]
    assert not m[:, :-1].any() and m[:, -1].all()
    pred = icl.scores_predictor(nearest_scores, batch_size=64)
    assert pred(blinded) == icl.nearest_image_predictor(blinded)
    first = icl.scores_predictor(lambda arr: np.tile(np.arange(len(vocab))[::-1], (len(arr["target"]), 1)))
    assert set(first(blinded)) == {vocab[0]}  # argmax over the whole vocabulary: the first word
    multi = icl.scores_predictor(
        lambda arr: np.tile(np.arange(len(vocab))[::-1], (len(arr["target"]), 1)), candidates_only=True
    )
    assert all(p in e.candidates for p, e in zip(multi(blinded), blinded))
    with pytest.raises(ValueError, match="differ"):
        icl.episodes_to_arrays(eps[:2] + icl.digit_episodes(2, shots=6))


def test_probe_many(eps):
    t = icl.probe_many(
        {"nearest": icl.nearest_image_predictor, "majority": icl.majority_predictor},
        eps[:200],
        conditions=["original", "demo_images_blank"],
    )
    assert len(t) == 2 + 2 + 4 and set(t.model) == {"nearest", "majority", "baseline"}
    assert (t.model == "baseline").sum() == 4


def test_reuse_correctness(eps):
    calls = []

    def counting(episodes):
        calls.append(1)
        return icl.nearest_image_predictor(episodes)

    correct = icl.evaluate(counting, eps[:300], seed=4)
    n = len(calls)
    t = icl.probe(counting, eps[:300], seed=4, correct=correct)
    r = icl.visual_reliance(counting, eps[:300], seed=4, correct=correct)
    assert len(calls) == n  # nothing evaluated twice
    assert t.equals(icl.probe(icl.nearest_image_predictor, eps[:300], seed=4))
    assert r == icl.visual_reliance(icl.nearest_image_predictor, eps[:300], seed=4)
