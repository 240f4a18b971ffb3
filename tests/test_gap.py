"""The gap metrics on constructed data whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studio import gap


def _cloud(n=200, d=16, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 0] += offset
    return x


def test_identical_modalities_have_no_gap():
    x = _cloud()
    assert gap.modality_gap(x, x) == pytest.approx(0.0, abs=1e-12)
    assert gap.modality_gap(x, 3.0 * x) == pytest.approx(0.0, abs=1e-12)  # scale is normalised away


def test_gap_is_the_centroid_distance_of_normalised_rows():
    v = np.tile([1.0, 0.0], (5, 1))
    t = np.tile([0.0, 2.0], (7, 1))  # unpaired sets of different sizes are allowed
    np.testing.assert_allclose(gap.gap_vector(v, t), [1.0, -1.0])
    assert gap.modality_gap(v, t) == pytest.approx(np.sqrt(2))
    # two cones pointing apart have a large gap
    assert gap.modality_gap(_cloud(offset=5), _cloud(seed=1, offset=-5)) > 1.5


def test_embedding_shift_closes_the_gap():
    v, t = _cloud(offset=3.0), _cloud(seed=1, offset=-3.0)
    g0 = gap.modality_gap(v, t)
    shift = gap.embedding_shift(v, t, lambdas=np.arange(0, g0 / 2, 0.125))
    assert shift["distance"].iloc[0] == pytest.approx(g0)
    assert np.all(np.diff(shift["distance"]) < 0)
    assert shift["distance"].iloc[-1] < 0.3 * g0
    assert {"lam", "distance", "matched_cosine", "visual_cone", "text_cone"} <= set(shift.columns)


def test_cosine_structure_and_cone():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(100, 32))
    v = base + 0.1 * rng.normal(size=base.shape)
    t = base + 0.1 * rng.normal(size=base.shape)
    s = gap.cosine_structure(v, t)
    assert s["matched"] > 0.95 and abs(s["unmatched"]) < 0.1 and s["margin"] > 0.85
    assert gap.matched_cosine(v, t) == pytest.approx(s["matched"])
    # a narrow cone (shared offset) has a high mean pairwise cosine; isotropic noise has ~0
    assert gap.cone_effect(_cloud(offset=20)) > 0.8
    assert abs(gap.cone_effect(_cloud())) < 0.05
    z = gap.normalize(v)
    brute = (z @ z.T)[~np.eye(len(z), dtype=bool)].mean()
    assert gap.cone_effect(v) == pytest.approx(brute)


@pytest.mark.parametrize("n,d", [(100, 8), (20, 50)])  # both the feature and the Gram route
def test_linear_cka(n, d):
    x = _cloud(n, d)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(d, d)))
    assert gap.linear_cka(x, x @ q) == pytest.approx(1.0)
    assert gap.linear_cka(x, 5 * x + 2) == pytest.approx(1.0)
    # independent data: low when n >> d; CKA is biased upwards when d > n (Kornblith et al.)
    assert gap.linear_cka(x, _cloud(n, d, seed=9)) < (0.3 if n > d else 0.9)
    # agrees with the definition written out
    y = _cloud(n, d + 3, seed=4)
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert gap.linear_cka(x, y) == pytest.approx(ref)


def test_mutual_knn():
    x = _cloud(150, 8)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(8, 8)))
    assert gap.mutual_knn(x, x) == 1.0
    assert gap.mutual_knn(x, 2 * x @ q) == 1.0  # rotations and scale keep neighbours
    chance = gap.mutual_knn(x, _cloud(150, 8, seed=5))
    assert chance < 0.2  # ~ k/(n-1) = 0.067
    with pytest.raises(ValueError):
        gap.mutual_knn(x[:5], x[:5], k=10)


def test_probe_separability():
    a, b = _cloud(100, 8, offset=6), _cloud(100, 8, seed=1, offset=-6)
    sep = gap.probe_separability(a, b, seed=0)
    assert sep["accuracy"] > 0.97 and sep["auc"] > 0.99
    same = gap.probe_separability(_cloud(100, 8), _cloud(100, 8, seed=1), seed=0)
    assert 0.3 < same["accuracy"] < 0.7 and 0.3 < same["auc"] < 0.7
    assert gap.probe_separability(a, b, seed=0) == sep  # same seed, same numbers


def test_paired_probe_keeps_twins_in_one_fold():
    # Twins (a caption and its near-copy) with no systematic difference: a probe whose folds split
    # the twins learns "the opposite label of my near-duplicate" and lands far below chance.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(150, 32))
    a, b = base + 0.05 * rng.normal(size=base.shape), base + 0.05 * rng.normal(size=base.shape)
    assert gap.probe_separability(a, b, seed=0)["accuracy"] < 0.4
    assert 0.4 < gap.probe_separability(a, b, seed=0, paired=True)["accuracy"] < 0.6
    with pytest.raises(ValueError, match="paired=True"):
        gap.probe_separability(a, b[:-1], paired=True)


def test_bootstrap_interval():
    v, t = _cloud(80, 8, offset=1), _cloud(80, 8, seed=1, offset=-1)
    est, lo, hi = gap.bootstrap(gap.modality_gap, v, t, n=200, seed=0)
    assert est == pytest.approx(gap.modality_gap(v, t))
    assert lo < est < hi and hi - lo < 0.5
    assert gap.bootstrap(gap.modality_gap, v, t, n=200, seed=0) == (est, lo, hi)
    # unpaired: sets of different sizes
    est2, lo2, hi2 = gap.bootstrap(gap.modality_gap, v, t[:50], n=100, paired=False)
    assert lo2 < est2 < hi2
    with pytest.raises(ValueError):
        gap.bootstrap(gap.modality_gap, v, t[:50], n=10)  # paired needs equal lengths
    est3, lo3, hi3 = gap.bootstrap(gap.mutual_knn, v, v, n=20, replace=False, fraction=0.8)
    assert est3 == lo3 == hi3 == 1.0


def test_bootstrap_half_samples_duplicate_sensitive_metrics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8))
    y = x + 1.0 * rng.normal(size=x.shape)  # partly aligned neighbourhoods
    est, lo, hi = gap.bootstrap(gap.mutual_knn, x, y, n=100, seed=0)  # auto: half-sampling
    assert lo < est < hi
    # with replacement, copies of a row are each other's neighbours in both spaces: biased upwards
    _, lo_r, hi_r = gap.bootstrap(gap.mutual_knn, x, y, n=100, seed=0, replace=True)
    assert lo_r > est
    # half-sampling's spread matches the bootstrap's for a smooth statistic
    a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    _, l1, h1 = gap.bootstrap(gap.matched_cosine, a, b, n=400, seed=1)
    _, l2, h2 = gap.bootstrap(gap.matched_cosine, a, b, n=400, seed=1, replace=False)
    assert 0.7 < (h2 - l2) / (h1 - l1) < 1.4


def test_layer_profile_and_similarity():
    base = _cloud(60, 8)
    captures = {f"layer{i}": (base + i, _cloud(60, 8, seed=i, offset=-i)) for i in range(3)}
    prof = gap.layer_profile(captures, {"gap": gap.modality_gap, "cka": gap.linear_cka}, n_boot=20)
    assert list(prof.columns) == ["layer", "depth", "metric", "value", "ci_low", "ci_high"]
    assert len(prof) == 6 and prof["depth"].max() == 2
    gaps = prof[prof.metric == "gap"]["value"].to_numpy()
    assert gaps[0] < gaps[1] < gaps[2]  # the offsets grow with depth
    sim = gap.layer_similarity({"a": base, "b": base @ np.eye(8)[::-1], "c": _cloud(60, 8, seed=7)})
    assert isinstance(sim, pd.DataFrame) and sim.loc["a", "b"] == pytest.approx(1.0)
    np.testing.assert_allclose(np.diag(sim), 1.0)
    assert sim.loc["a", "c"] < 0.6


def test_debiased_cka_is_near_zero_on_independent_data_where_the_biased_one_is_not():
    rng = np.random.default_rng(0)
    pairs = [(rng.normal(size=(50, 100)), rng.normal(size=(50, 100))) for _ in range(10)]
    biased = np.mean([gap.linear_cka(x, y) for x, y in pairs])
    debiased = np.mean([gap.linear_cka(x, y, debiased=True) for x, y in pairs])
    assert biased > 0.3  # the plug-in estimator's small-sample bias (issue: 0.385 on such data)
    assert abs(debiased) < 0.02  # unbiased: one draw's spread is ~0.05 at n = 50, ten draws average it out
    x = pairs[0][0]
    q, _ = np.linalg.qr(rng.normal(size=(100, 100)))
    assert gap.linear_cka(x, 3 * x @ q, debiased=True) == pytest.approx(1.0)


def test_debiased_cka_matches_the_reference_formula():
    # Kornblith et al.'s reference code (cka.ipynb): feature-space form of the debiased estimator.
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 7)) + 0.5 * rng.normal(size=(30, 1))

    def ref_debiased_dot(xty_sq, sum_x, sum_y, sq_norm_x, sq_norm_y, n):
        return xty_sq - n / (n - 2.0) * np.dot(sum_x, sum_y) + sq_norm_x * sq_norm_y / ((n - 1) * (n - 2))

    def ref_feature_cka(a, b):
        a, b = a - a.mean(0), b - b.mean(0)
        n = a.shape[0]
        dot = lambda p, q: np.linalg.norm(p.T @ q) ** 2  # noqa: E731
        sa, sb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        ab = ref_debiased_dot(dot(a, b), sa, sb, sa.sum(), sb.sum(), n)
        aa = ref_debiased_dot(dot(a, a), sa, sa, sa.sum(), sa.sum(), n)
        bb = ref_debiased_dot(dot(b, b), sb, sb, sb.sum(), sb.sum(), n)
        return ab / np.sqrt(aa * bb)

    assert gap.linear_cka(x, y, debiased=True) == pytest.approx(ref_feature_cka(x, y), rel=1e-9)
    with pytest.raises(ValueError, match="at least 4"):
        gap.linear_cka(x[:3], y[:3], debiased=True)
