"""studio.scaling: per-point weights, the pure power law, tied parameters, inputs with no spread."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from studio import scaling as sc


def porian_like(seed=0):
    """15 compute budgets, N* = 0.3 C^0.5 with a per-point std (weights 1/std^2), as Porian et al. fit."""
    rng = np.random.default_rng(seed)
    C = np.geomspace(1e17, 1e21, 15)
    std = rng.uniform(0.02, 0.2, len(C))  # std of log N* per configuration
    N = 0.3 * C**0.5 * np.exp(std * rng.standard_normal(len(C)))
    return pd.DataFrame({"C": C, "N": N, "w": 1.0 / std**2})


def numpy_weighted_loglog(x, y, w):
    """Closed-form weighted least squares of log y on log x: (A, alpha) of y = A x^alpha."""
    X = np.column_stack([np.ones(len(x)), np.log(x)])
    coef = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * np.log(y)))
    return float(np.exp(coef[0])), float(coef[1])


# ---------------------------------------------------------------- weights and the pure power law
def test_weighted_pure_power_equals_numpys_weighted_loglog_regression():
    d = porian_like()
    A, alpha = numpy_weighted_loglog(d["C"].to_numpy(), d["N"].to_numpy(), d["w"].to_numpy())
    f = sc.fit(d, "pure_power", x="C", y="N", loss="mse", weights="w")
    assert f.k == 2 and set(f.params) == {"A", "alpha"}
    assert np.log(f.params["A"]) == pytest.approx(np.log(A), abs=1e-6)
    assert f.params["alpha"] == pytest.approx(alpha, abs=1e-6)
    # an array gives the same fit as the column; unweighted is a different (ordinary) regression
    g = sc.fit(d, "pure_power", x="C", y="N", loss="mse", weights=d["w"].to_numpy())
    assert g.params == pytest.approx(f.params, rel=1e-12)
    ols = sc.fit(d, "pure_power", x="C", y="N", loss="mse")
    assert ols.params["alpha"] == pytest.approx(numpy_weighted_loglog(d["C"], d["N"], np.ones(len(d)))[1], abs=1e-6)
    assert abs(ols.params["alpha"] - f.params["alpha"]) > 1e-4


def test_weighted_diagnostics_are_weighted_means_of_squared_log_residuals():
    d = porian_like(1)
    w = d["w"].to_numpy()
    f = sc.fit(d, "pure_power", x="C", y="N", loss="mse", weights="w")
    r, ly = f.residuals, np.log(d["N"].to_numpy())
    mse = np.sum(w * r**2) / w.sum()
    assert f.rmse_log == pytest.approx(np.sqrt(mse), rel=1e-12)
    lbar = np.sum(w * ly) / w.sum()
    assert f.r2_log == pytest.approx(1 - np.sum(w * r**2) / np.sum(w * (ly - lbar) ** 2), rel=1e-12)
    assert f.aic == pytest.approx(len(d) * np.log(mse) + 2 * 2, rel=1e-12)
    assert f.bic == pytest.approx(len(d) * np.log(mse) + 2 * np.log(len(d)), rel=1e-12)


def test_zero_weights_equal_dropping_those_points():
    rng = np.random.default_rng(3)
    x = np.tile([1.0, 2, 4, 8, 16, 32, 64], 3)
    d = pd.DataFrame({"x": x, "loss": (1.2 + 3.0 / x**0.6) * np.exp(0.01 * rng.standard_normal(len(x)))})
    w = np.ones(len(d))
    w[[0, 5, 9, 20]] = 0.0
    weighted = sc.fit(d, "power", x="x", weights=w)
    dropped = sc.fit(d[w > 0], "power", x="x")
    assert weighted.params == pytest.approx(dropped.params, rel=1e-6)
    for attr in ("objective", "rmse_log", "r2_log", "aic", "bic"):
        assert getattr(weighted, attr) == pytest.approx(getattr(dropped, attr), rel=1e-6), attr
    assert sc.loo_rmse(weighted) == pytest.approx(sc.loo_rmse(dropped), rel=1e-5)


def test_bootstrap_resamples_weights_with_their_points():
    # One wild point with weight 0: every resample that draws it must still ignore it.
    x = np.geomspace(1, 1000, 12)
    y = 2.0 * x**-0.3 * np.exp(0.002 * np.random.default_rng(0).standard_normal(len(x)))
    y[-1] *= 5.0
    d = pd.DataFrame({"x": x, "loss": y, "w": [1.0] * 11 + [0.0]})
    f = sc.fit(d, "pure_power", x="x", loss="mse", weights="w")
    boot = f.bootstrap(200, seed=0)
    assert boot["converged"].all()
    drew_it = sc.fit(d, "pure_power", x="x", loss="mse").bootstrap(200, seed=0)
    assert (drew_it["alpha"] + 0.3).abs().max() > 0.02  # unweighted resamples are pulled
    assert boot["alpha"].between(-0.3 - 0.01, -0.3 + 0.01).all()


@pytest.mark.parametrize(
    "weights, match",
    [
        ([1.0, 2.0], r"weights.*length 2.*15 rows"),
        ([1.0] * 14 + [np.nan], r"weights.*finite"),
        ([1.0] * 14 + [-1.0], r"weights.*>= 0"),
        ([0.0] * 15, r"weights.*all zero"),
        ([1.0] + [0.0] * 14, r"weights.*1 point.*2 free parameters"),
        ("std", r"weights.*column 'std'"),
    ],
)
def test_bad_weights_are_refused_naming_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        sc.fit(porian_like(), "pure_power", x="C", y="N", weights=weights)


# ---------------------------------------------------------------- tied parameters
def muennighoff_like(seed=0):
    """E + A/N^a + B/D^a, one exponent for both terms (Muennighoff et al. 2023)."""
    N, D = (g.ravel() for g in np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 8)))
    y = 1.7 + 400.0 / N**0.35 + 1500.0 / D**0.35
    return pd.DataFrame(
        {"N": N, "D": D, "loss": y * np.exp(0.003 * np.random.default_rng(seed).standard_normal(len(N)))}
    )


def test_tied_exponent_recovers_muennighoffs_law_and_counts_free_parameters():
    d = muennighoff_like()
    f = sc.fit(d, "additive", x=("N", "D"), tie={"beta": "alpha"})
    free = sc.fit(d, "additive", x=("N", "D"))
    assert f.params["beta"] == f.params["alpha"]  # both shown, one value
    assert f.params["alpha"] == pytest.approx(0.35, abs=0.01)
    assert f.params["E"] == pytest.approx(1.7, rel=0.02)
    assert f.k == 4 and free.k == 5
    mse = np.mean(f.residuals**2)
    assert f.aic == pytest.approx(f.n * np.log(mse) + 2 * 4, rel=1e-12)
    assert f.bic == pytest.approx(f.n * np.log(mse) + 4 * np.log(f.n), rel=1e-12)
    np.testing.assert_allclose(f.predict(d), sc.get_law("additive")(d["N"], d["D"], **f.params), rtol=1e-12)
    boot = f.bootstrap(30, seed=0)
    assert (boot["beta"] == boot["alpha"]).all() and boot["converged"].all()
    band = f.predict_band(d.head(3), n=30)
    assert (band["ci_low"] <= band["pred"] * 1.0001).all()
    assert "beta=alpha" in f.summary()


def test_tie_with_compare_and_weights_together():
    d = muennighoff_like(1)
    t = sc.compare(d, ["additive"], x=("N", "D"), tie={"beta": "alpha"}, weights=np.ones(len(d)), loo=False)
    assert t.loc[0, "k"] == 4


@pytest.mark.parametrize(
    "tie, match",
    [
        ({"gamma": "alpha"}, r"tie.*unknown.*'gamma'"),
        ({"beta": "delta"}, r"tie.*unknown.*'delta'"),
        ({"alpha": "alpha"}, r"tie.*'alpha'.*itself"),
        ({"beta": "alpha", "alpha": "E"}, r"tie.*chain.*'beta'.*'alpha'.*'E'"),
        ({"B": "alpha"}, r"tie.*'B'.*'alpha'"),
    ],
)
def test_bad_ties_are_refused_naming_them(tie, match):
    with pytest.raises(ValueError, match=match):
        sc.fit(muennighoff_like(), "additive", x=("N", "D"), tie=tie)


# ---------------------------------------------------------------- inputs with no spread
@pytest.mark.parametrize(
    "law, x", [("power", "M"), ("multiplicative", ("T", "M")), ("additive", ("T", "M")), ("pure_power", "M")]
)
def test_an_input_without_spread_is_flagged(law, x):
    T = np.tile([1.0, 2, 4, 8, 16, 32, 64], 3)
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"T": T, "M": 16.0, "loss": (0.5 + 2 / T**0.7) * np.exp(0.005 * rng.standard_normal(len(T)))})
    with pytest.warns(sc.ScalingWarning, match=r"M.*no spread"):
        f = sc.fit(d, law, x=x)
    assert f.degenerate and any("no spread" in r for r in f.degenerate_reasons)


def test_inputs_with_spread_raise_no_spread_warning():
    T = np.tile([1.0, 2, 4, 8, 16, 32, 64], 3)
    d = pd.DataFrame({"T": T, "loss": 0.5 + 2 / T**0.7})
    with warnings.catch_warnings():
        warnings.simplefilter("error", sc.ScalingWarning)
        sc.fit(d, "power", x="T")


def test_a_confidence_level_outside_0_1_is_refused_naming_level():
    df = sc.synthetic_measurements(seed=0)
    f = sc.fit(df, "additive", x=("frames", "tokens_per_frame"), y="loss")
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 1.5"):
        f.ci(1.5)
