"""studio.scaling: Epoch's Chinchilla optimum, recovery of known laws, degenerate fits, bad input."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from studio import scaling as sc

FRAMES = [1, 2, 4, 8, 16, 32, 64]
TOKENS = [1, 4, 9, 16, 64, 196, 400]
TRUTHS = {
    "power": dict(E=1.2, A=3.0, alpha=0.6),
    "additive": dict(E=0.5, A=2.0, alpha=0.7, B=1.0, beta=0.4),
    "multiplicative": dict(E=0.8, A=4.0, alpha=0.5, beta=0.3),
    "kaplan": dict(A=50.0, alpha=0.3, B=30.0, beta=0.2),
}


def grid_data(law_name, params, noise=0.005, seed=0):
    T, M = (a.ravel().astype(float) for a in np.meshgrid(FRAMES, TOKENS))
    law = sc.get_law(law_name)
    xs = (T,) if law.n_inputs == 1 else (T, M)
    y = law(*xs, **params)
    if noise:
        y = y * np.exp(noise * np.random.default_rng(seed).standard_normal(len(T)))
    return pd.DataFrame({"T": T, "M": M, "loss": y})


def x_for(law_name):
    return ("T",) if sc.get_law(law_name).n_inputs == 1 else ("T", "M")


@functools.lru_cache(maxsize=1)
def chinchilla_fit(path):
    return sc.fit(sc.load_chinchilla(path), "additive", x=("N", "D"), y="loss")


# ---------------------------------------------------------------- Chinchilla (Epoch's replication)
@pytest.mark.slow
def test_chinchilla_reaches_epochs_optimum(chinchilla_csv):
    f = chinchilla_fit(chinchilla_csv)
    ref = sc.PUBLISHED["epoch_grid"]
    assert f.n == 240 and f.n_starts == 4500
    assert f.objective == pytest.approx(ref["objective"], rel=1e-3)
    assert f.objective <= ref["objective"] * (1 + 1e-4)  # never worse than their grid search
    for p in ("E", "alpha", "beta"):
        assert f.params[p] == pytest.approx(ref["params"][p], rel=1e-3), p
    for p in ("A", "B"):
        assert f.params[p] == pytest.approx(ref["params"][p], rel=1e-2), p
    assert not f.degenerate
    assert 0.99 < f.r2_log < 1.0


@pytest.mark.slow
def test_chinchilla_bootstrap_matches_epochs_intervals(chinchilla_csv):
    f = chinchilla_fit(chinchilla_csv)
    boot = f.bootstrap(300, seed=0)
    assert len(boot) == 300 and boot["converged"].mean() > 0.95
    ci = f.ci(0.95).set_index("param")
    for p, (lo, hi) in sc.PUBLISHED["epoch"]["ci95"].items():
        assert ci.loc[p, "ci_low"] == pytest.approx(lo, abs=0.012), p
        assert ci.loc[p, "ci_high"] == pytest.approx(hi, abs=0.012), p
        assert ci.loc[p, "ci_low"] < f.params[p] < ci.loc[p, "ci_high"]
    # Hoffmann's published exponents sit outside our intervals, as Epoch found for beta.
    assert not ci.loc["beta", "ci_low"] <= sc.PUBLISHED["hoffmann"]["params"]["beta"] <= ci.loc["beta", "ci_high"]


def test_load_chinchilla_keeps_240_and_derives_tokens(chinchilla_csv):
    df = sc.load_chinchilla(chinchilla_csv)
    assert len(df) == 240
    np.testing.assert_allclose(df["D"] * 6 * df["N"], df["C"], rtol=1e-12)
    assert df["loss"].max() < pd.read_csv(chinchilla_csv)["loss"].max()


# ---------------------------------------------------------------- recovery of known laws
@pytest.mark.parametrize("law_name", list(TRUTHS))
def test_recovers_each_law_family_from_noisy_data(law_name):
    truth = TRUTHS[law_name]
    f = sc.fit(grid_data(law_name, truth), law_name, x=x_for(law_name))
    assert not f.degenerate, f.degenerate_reasons
    for p, v in truth.items():
        if p in ("alpha", "beta"):
            assert f.params[p] == pytest.approx(v, abs=0.03), p
        else:
            assert f.params[p] == pytest.approx(v, rel=0.1), p
    assert f.rmse_log == pytest.approx(0.005, rel=0.4)
    np.testing.assert_allclose(f.residuals, np.log(f.y_obs) - np.log(f.predict(grid_data(law_name, truth))))


@pytest.mark.parametrize("loss", ["mse", "mse_linear"])
def test_other_losses_recover_the_additive_law(loss):
    truth = TRUTHS["additive"]
    f = sc.fit(grid_data("additive", truth), "additive", x=("T", "M"), loss=loss)
    assert f.params["alpha"] == pytest.approx(truth["alpha"], abs=0.03)
    assert f.params["beta"] == pytest.approx(truth["beta"], abs=0.03)


def test_user_registered_law_is_fitted():
    name = "test_loglinear"
    try:
        sc.register_law(
            name,
            lambda x, c0, c1: c0 - c1 * np.log(x),
            params=("c0", "c1"),
            grid={"c0": (1.0, 3.0, 10.0), "c1": (0.1, 1.0)},
            n_inputs=1,
            positive=("c0",),
        )
        T = np.array(FRAMES * 3, dtype=float)
        y = (5 - 0.5 * np.log(T)) * np.exp(0.003 * np.random.default_rng(0).standard_normal(len(T)))
        f = sc.fit(pd.DataFrame({"T": T, "loss": y}), name, x="T")
        assert f.params["c0"] == pytest.approx(5.0, rel=0.02)
        assert f.params["c1"] == pytest.approx(0.5, rel=0.05)
        with pytest.raises(ValueError, match="exists"):
            sc.register_law(name, lambda x, c0, c1: c0, params=("c0", "c1"), grid={"c0": (1,), "c1": (1,)})
    finally:
        sc.LAWS.pop(name, None)


def test_fit_is_deterministic_and_bootstrap_is_seeded():
    d = grid_data("additive", TRUTHS["additive"])
    f1, f2 = sc.fit(d, "additive", x=("T", "M")), sc.fit(d, "additive", x=("T", "M"))
    assert f1.params == f2.params
    pd.testing.assert_frame_equal(f1.bootstrap(20, seed=3), f2.bootstrap(20, seed=3))
    assert not f1.bootstrap(20, seed=4).equals(f1.bootstrap(20, seed=3))


# ---------------------------------------------------------------- degenerate fits
def test_parameter_at_a_bound_is_reported_degenerate():
    # Loss does not depend on M at all: B / M^beta has nothing to fit, so the optimum is on the edge.
    d = grid_data("power", dict(E=2.0, A=3.0, alpha=0.5), noise=0.0)
    with pytest.warns(sc.ScalingWarning, match="degenerate"):
        f = sc.fit(d, "additive", x=("T", "M"))
    assert f.degenerate and f.degenerate_reasons
    assert "DEGENERATE" in f.summary()


def test_missing_floor_is_reported_degenerate():
    # A pure power law (no irreducible loss): the fitted floor E collapses towards 0.
    d = grid_data("power", dict(E=1.0, A=3.0, alpha=0.5))
    T = d["T"].to_numpy()
    d["loss"] = 3.0 / T**0.5 * np.exp(0.003 * np.random.default_rng(1).standard_normal(len(T)))
    f = sc.fit(d, "power", x="T", warn=False)
    assert f.degenerate and any("E" in r for r in f.degenerate_reasons)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.drop(columns="M"), "missing column"),
        (lambda d: d.assign(M=d["M"].astype(object).where(d.index != 3, "many")), "not numeric"),
        (lambda d: d.assign(loss=d["loss"].where(d.index != 5, np.nan)), "NaN"),
        (lambda d: d.assign(T=d["T"].where(d.index != 2, 0.0)), "non-positive"),
        (lambda d: d.assign(loss=d["loss"].where(d.index != 2, -1.0)), "non-positive"),
        (lambda d: d.head(4), "fewer|at least as many"),
    ],
)
def test_bad_data_gets_one_clear_error_before_fitting(mutate, match):
    d = mutate(grid_data("additive", TRUTHS["additive"]))
    with pytest.raises(ValueError, match=match):
        sc.fit(d, "additive", x=("T", "M"))


def test_bad_arguments_are_refused():
    d = grid_data("additive", TRUTHS["additive"])
    with pytest.raises(ValueError, match="unknown law"):
        sc.fit(d, "cubic", x=("T", "M"))
    with pytest.raises(ValueError, match="takes 1 input"):
        sc.fit(d, "power", x=("T", "M"))
    with pytest.raises(ValueError, match="unknown loss"):
        sc.fit(d, "additive", x=("T", "M"), loss="l1")
    with pytest.raises(ValueError, match="power"):
        sc.compare(d, ["power"], x=("T", "M"))


def test_bad_user_csv_gives_one_error_naming_the_file(tmp_path):
    good = grid_data("additive", TRUTHS["additive"]).rename(columns={"T": "frames", "M": "tokens_per_frame"})
    p = tmp_path / "m.csv"
    good.to_csv(p, index=False)
    df, y, notes = sc.load_measurements(p)
    assert y == "loss" and len(df) == len(good) and notes == []
    with pytest.raises(ValueError, match="perplexity"):
        sc.load_measurements(p, y="perplexity")
    bad = good.astype({"frames": object})
    bad.loc[1, "frames"] = "ten"
    bad.to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"m\.csv.*not numeric"):
        sc.load_measurements(p)
    good.drop(columns="loss").to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"m\.csv.*loss"):
        sc.load_measurements(p)
    good.assign(val_loss=good["loss"] + 0.1, strategy=["pool", "sample"] * (len(good) // 2) + ["pool"]).to_csv(
        p, index=False
    )
    df, y, notes = sc.load_measurements(p)
    assert y == "val_loss" and set(df["strategy"]) == {"pool"} and notes


# ---------------------------------------------------------------- comparison and allocation
@pytest.mark.slow
def test_compare_ranks_the_true_law_and_reports_loo():
    d = grid_data("additive", TRUTHS["additive"], noise=0.01)
    table = sc.compare(d, ["additive", "multiplicative", "power(T*M)"], x=("T", "M"))
    assert list(table.columns[:4]) == ["law", "formula", "k", "n"]
    assert table.loc[0, "law"] == "additive" and table.loc[0, "delta_aic"] == 0
    assert table["aic"].is_monotonic_increasing
    add = table.set_index("law").loc["additive"]
    assert add["rmse_log"] < add["loo_rmse_log"] < 3 * add["rmse_log"]
    assert set(table.attrs["fits"]) == set(table["law"])


def test_additive_allocation_closed_form_matches_numeric():
    f = sc.fit(grid_data("additive", TRUTHS["additive"]), "additive", x=("T", "M"))
    p = f.params
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    for budget in (64.0, 1e3, 1e5):
        closed = sc.optimal_allocation(f, budget)
        numeric = sc.optimal_allocation(f, budget, method="numeric")
        assert closed.method == "closed form" and numeric.method == "numeric"
        assert closed.x["T"] == pytest.approx(G * budget ** (p["beta"] / (p["alpha"] + p["beta"])), rel=1e-9)
        assert numeric.x["T"] == pytest.approx(closed.x["T"], rel=1e-4)
        assert closed.x["T"] * closed.x["M"] == pytest.approx(budget)
        assert numeric.loss == pytest.approx(closed.loss, rel=1e-9)
        for s in (0.9, 1.1):  # the optimum beats its neighbours on the budget line
            assert f.predict({"T": [closed.x["T"] * s], "M": [closed.x["M"] / s]})[0] > closed.loss


def test_multiplicative_allocation_goes_to_the_boundary():
    f = sc.fit(grid_data("multiplicative", TRUTHS["multiplicative"]), "multiplicative", x=("T", "M"))
    a = sc.optimal_allocation(f, 1000.0)
    assert a.at_boundary and a.x["T"] == pytest.approx(1000.0)  # alpha > beta: spend it all on T


def test_frontier_with_bootstrap_bands():
    f = sc.fit(grid_data("kaplan", TRUTHS["kaplan"], noise=0.01), "kaplan", x=("T", "M"))
    budgets = np.geomspace(64, 1e4, 4)
    fr = sc.allocation_frontier(f, budgets, bootstrap=60, seed=0)
    assert list(fr["budget"]) == list(budgets)
    assert (fr["T_opt"] * fr["M_opt"]).to_numpy() == pytest.approx(budgets)
    assert (fr["T_ci_low"] <= fr["T_opt"] * 1.001).all() and (fr["T_opt"] <= fr["T_ci_high"] * 1.001).all()
    assert fr["loss_opt"].is_monotonic_decreasing


def test_synthetic_example_is_documented_and_recoverable():
    d = sc.synthetic_measurements(seed=0)
    assert d.equals(sc.synthetic_measurements(seed=0)) and not d.equals(sc.synthetic_measurements(seed=1))
    assert {"frames", "tokens_per_frame", "loss", "seed"} <= set(d.columns)
    f = sc.fit(d, "additive", x=("frames", "tokens_per_frame"))
    truth = sc.SYNTHETIC_TRUTH["params"]
    assert f.params["alpha"] == pytest.approx(truth["alpha"], abs=0.1)
    assert f.params["beta"] == pytest.approx(truth["beta"], abs=0.1)
