"""studio.studies.scaling_laws: the verdicts on planted tables (each outcome, each gate both ways, a failed
seed named), and the glue the notebook calls."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from studio.analysis import scaling
from studio.studies import scaling_laws as study
from studio.studies import visual_context as vc
from studio.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SANITY, UNTESTABLE

EPOCH = scaling.PUBLISHED["epoch_grid"]
X = ("frames", "tokens_per_frame")
LAWS = ["additive", "power(frames*tokens_per_frame)"]


def planted_fit(scale: dict | None = None, objective: float = EPOCH["objective"]):
    """A stand-in Fit with Epoch's parameters, each multiplied by `scale`, on 240 points."""
    params = {p: v * (scale or {}).get(p, 1.0) for p, v in EPOCH["params"].items()}
    return SimpleNamespace(params=params, objective=objective, n=240)


def intervals(**bounds):
    return pd.DataFrame([{"param": p, "ci_low": lo, "ci_high": hi} for p, (lo, hi) in bounds.items()]).set_index(
        "param"
    )


def measurements(
    frames=(4, 8, 16, 32),
    tokens=(4, 16, 64),
    seeds=(0, 1, 2),
    shape="frames",
    noise=0.01,
    retrieval=0.9,
    step=0.0,
):
    """Visual-context-like measurements: every cell complete unless `frames` holds T < 4. shape 'frames':
    frames matter more; 'tokens': tokens matter more; 'product': a function of T x M only. `step` is
    subtracted from every loss at T >= 16 (a surface no smooth law follows)."""
    rng = np.random.default_rng(0)
    rows = []
    for s in seeds:
        for T in frames:
            for M in tokens:
                clean = {
                    "frames": 0.1 + 2.0 / T**0.8 + 0.5 / M**0.4,
                    "tokens": 0.1 + 0.5 / T**0.4 + 2.0 / M**0.8,
                    "product": 0.1 + 3.0 / (T * M) ** 0.5,
                }[shape] - step * (T >= 16)
                cov = vc.needle_coverage(T, raw_frames=32, needle_frames=8)
                rows.append(
                    {
                        "frames": T,
                        "tokens_per_frame": M,
                        "seed": s,
                        "val_loss": clean * np.exp(noise * rng.standard_normal()),
                        "val_acc_retrieval": 0.1 + (retrieval - 0.1) * cov,
                        "val_acc_spatial": 0.9 if M >= 4 else 0.45,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Chinchilla
def test_chinchilla_check_is_a_sanity_row_decided_by_the_share_of_tolerance_left():
    v = study.chinchilla_verdict(planted_fit())
    assert v.kind == SANITY and v.outcome == REPRODUCED and v.statistic == pytest.approx(1.0)
    just_inside = planted_fit({"alpha": 1 + study.PARAM_RTOL / 2}, EPOCH["objective"] * (1 + study.OBJECTIVE_RTOL / 4))
    v = study.chinchilla_verdict(just_inside)
    assert v.outcome == REPRODUCED and v.statistic == pytest.approx(0.5, rel=1e-6)
    assert study.chinchilla_verdict(planted_fit({"beta": 1 + 2 * study.PARAM_RTOL})).outcome == NOT_REPRODUCED
    worse = planted_fit(objective=EPOCH["objective"] * (1 + 2 * study.OBJECTIVE_RTOL))
    v = study.chinchilla_verdict(worse)
    assert v.outcome == NOT_REPRODUCED and v.statistic == pytest.approx(-1.0, rel=1e-6)


def test_hoffmann_claim_asks_whether_his_beta_is_below_our_interval():
    beta = scaling.PUBLISHED["hoffmann"]["params"]["beta"]  # 0.28
    fit = planted_fit()  # ours: beta = 0.3672
    v = study.hoffmann_verdict(fit, intervals(beta=(0.33, 0.41)))
    assert v.kind == "claim" and v.outcome == REPRODUCED and v.n_seeds == 240
    assert v.statistic == pytest.approx(fit.params["beta"] - beta) and v.ci_low == pytest.approx(0.33 - beta)
    assert v.min_effect == pytest.approx((0.415 - 0.331) / 2)  # Epoch's own half-width for beta
    assert study.hoffmann_verdict(fit, intervals(beta=(0.25, 0.41))).outcome == INCONCLUSIVE  # his value inside
    assert study.hoffmann_verdict(fit, intervals(beta=(0.26, 0.30))).outcome == NOT_REPRODUCED  # ours next to his


def test_hoffmann_claim_is_untestable_when_our_fit_missed_epochs_optimum():
    off = planted_fit(objective=EPOCH["objective"] * (1 + 2 * study.OBJECTIVE_RTOL))
    v = study.hoffmann_verdict(off, intervals(beta=(0.33, 0.41)))
    assert v.outcome == UNTESTABLE and not v.gates[0].passed and "Huber objective" in v.evidence
    assert study.hoffmann_verdict(planted_fit(), intervals(beta=(0.33, 0.41))).gates[0].passed


# ---------------------------------------------------------------- law families by AIC
def _family(data, laws=LAWS):
    table = scaling.compare(data, laws, x=X, y="val_loss", loo=False)
    return study.law_family_verdicts(data, table, laws, X, "val_loss")


def test_law_family_claim_outcomes_on_complete_cells():
    [v] = _family(measurements(shape="frames"))
    assert v.outcome == REPRODUCED and v.n_seeds == 3 and v.min_effect == study.AIC_MARGIN and v.ci_low > 0
    assert all(g.passed for g in v.gates)
    [v] = _family(measurements(shape="product"))  # T x M is all there is: the extra parameters cost AIC
    assert v.outcome == NOT_REPRODUCED and v.ci_high < study.AIC_MARGIN
    [v] = _family(measurements(shape="frames", seeds=(0, 1)))
    assert v.outcome == INCONCLUSIVE and "too few seeds" in v.evidence


def test_law_family_claim_is_untestable_on_too_few_complete_cells_and_at_chance():
    claim, whole = _family(measurements(frames=(1, 2, 4, 8), tokens=(4, 16)))  # 4 complete cells
    assert claim.outcome == UNTESTABLE and claim.gates[0].value == 4 and not claim.gates[0].passed
    assert whole.kind == SANITY and "whole grid" in whole.claim  # T < 4 sets a step: true by construction
    [v] = _family(measurements(retrieval=0.12))
    assert v.outcome == UNTESTABLE and [g.passed for g in v.gates[1:3]] == [False, True]


def test_law_family_needs_both_kinds_of_law_and_accuracy_to_gate_on():
    data = measurements()
    assert (
        study.law_family_verdicts(
            data,
            scaling.compare(data, ["additive", "kaplan"], x=X, y="val_loss", loo=False),
            ["additive", "kaplan"],
            X,
            "val_loss",
        )
        == []
    )
    bare = data.drop(columns=["val_acc_retrieval", "val_acc_spatial"])
    [v] = _family(bare)
    assert v.outcome == UNTESTABLE and "holds no per-task accuracy" in v.evidence


# ---------------------------------------------------------------- frames against tokens
def _doubling(data, n_boot=100):
    fit = scaling.fit(data, "additive", x=X, y="val_loss", warn=False)
    return study.frames_vs_tokens_verdicts(fit, data, X, "val_loss", fit.bootstrap(n_boot, seed=0))


def test_doubling_claim_outcomes():
    [v] = _doubling(measurements(shape="frames"))
    assert v.outcome == REPRODUCED and v.n_seeds == 3 and all(g.passed for g in v.gates)
    assert "frames=4, tokens_per_frame=4" in v.evidence  # the corner of the complete cells
    [v] = _doubling(measurements(shape="tokens"))
    assert v.outcome == NOT_REPRODUCED and v.ci_high < 0
    [v] = _doubling(measurements(shape="frames", seeds=(0, 1)))
    assert v.outcome == INCONCLUSIVE


def test_doubling_claim_gates_both_ways():
    [v] = _doubling(measurements(shape="frames", step=0.3))  # no smooth law follows a step
    misfit = [g for g in v.gates if g.name.startswith("RMSE of the law")][0]
    assert v.outcome == UNTESTABLE and not misfit.passed and misfit.value > study.DOUBLING_MIN_EFFECT
    [v] = _doubling(measurements(shape="frames", retrieval=0.12))
    assert v.outcome == UNTESTABLE and "retrieval accuracy" in v.evidence
    [v] = _doubling(measurements(shape="frames", frames=(4, 8), tokens=(4, 16)))  # doubling 4 reaches 8 only
    assert v.gates[0].value == pytest.approx(1.0) and v.gates[0].passed


def test_doubling_names_a_failed_seed_and_refits_without_it():
    data = measurements(shape="frames", seeds=(0, 1, 2, 3))
    data.loc[data["seed"] == 3, "val_acc_retrieval"] = 0.12  # seed 3 never learned to retrieve
    [v] = _doubling(data)
    assert v.failed_seeds == (3,) and v.n_seeds == 3 and v.outcome == REPRODUCED
    assert "failed seeds set aside: [3]" in v.evidence


def test_the_whole_grid_doubling_is_a_sanity_row_when_its_middle_is_limited():
    data = measurements(frames=(1, 2, 4, 8, 16), shape="frames")
    claim, middle = _doubling(data)
    assert claim.kind == "claim" and middle.kind == SANITY and "grid's middle" in middle.claim
    assert "frames=4, tokens_per_frame=4" in claim.evidence


def test_doubling_gains_match_the_law_and_its_bootstrap():
    data = scaling.synthetic_measurements(seed=0)
    fit = scaling.fit(data, "additive", x=X)
    boot = fit.bootstrap(40, seed=0)
    g = study.doubling_gains(fit, data, X, boot)
    p = fit.params
    m1, m2 = float(g["mid"]["frames"][0]), float(g["mid"]["tokens_per_frame"][0])
    assert m1 == pytest.approx(np.exp(np.log(data["frames"]).mean()))
    assert g["gain_1"] == pytest.approx(p["A"] * m1 ** -p["alpha"] * (1 - 2 ** -p["alpha"]), rel=1e-9)
    assert g["gain_2"] == pytest.approx(p["B"] * m2 ** -p["beta"] * (1 - 2 ** -p["beta"]), rel=1e-9)
    assert g["ci_low"] < g["gain_1"] - g["gain_2"] < g["ci_high"]
    assert np.isnan(study.doubling_gains(fit, data, X)["ci_low"])


# ---------------------------------------------------------------- tables, notes, the verdict list
def test_chinchilla_tables_name_intervals_ci_low_ci_high():
    chin = pd.DataFrame({"N": [1e8, 1e9], "D": [1e9, 1e10], "loss": [3.0, 2.5]})
    fit = SimpleNamespace(params=dict(EPOCH["params"]), predict=lambda data, params: np.full(len(data), params["E"]))
    ci = intervals(E=(1.7, 1.9), alpha=(0.3, 0.4), beta=(0.33, 0.41))
    points, table = study.chinchilla_tables(chin, fit, ci)
    assert list(points["set"].unique()) == ["hoffmann", "epoch", "ours"] and len(points) == 3 * len(chin)
    assert list(table.columns) == [
        "param",
        "ours",
        "ours_ci_low",
        "ours_ci_high",
        "epoch",
        "epoch_ci_low",
        "epoch_ci_high",
        "hoffmann",
    ]
    assert table.set_index("param").loc["beta", "ours_ci_low"] == 0.33


def test_frontier_notes_flag_extrapolation_and_boundaries():
    data = pd.DataFrame({"frames": [1, 8], "tokens_per_frame": [1, 16]})
    frontier = pd.DataFrame(
        {
            "budget": [16, 4096],
            "frames_opt": [4.0, 64.0],
            "tokens_per_frame_opt": [4.0, 64.0],
            "at_boundary": [False, True],
        }
    )
    notes = study.frontier_notes(frontier, data, X)
    assert len(notes) == 2 and "[4096]" in notes[0] and "extrapolation" in notes[0] and "[4096]" in notes[1]
    assert study.frontier_notes(frontier.iloc[:1], data, X) == []


def test_verdicts_list_claims_first_and_leave_the_synthetic_example_out():
    data = measurements(frames=(1, 2, 4, 8, 16), shape="frames")
    table = scaling.compare(data, LAWS, x=X, y="val_loss", loo=False)
    best = table.attrs["fits"]["additive"]
    chin = (planted_fit(), intervals(beta=(0.33, 0.41)))
    real = study.verdicts(
        chinchilla=chin,
        data=data,
        table=table,
        best=best,
        boot=best.bootstrap(50, seed=0),
        x=X,
        laws=LAWS,
        source="figures/visual_context_results.csv",
    )
    kinds = [v.kind for v in real]
    assert kinds == sorted(kinds) and kinds.count("claim") == 3 and kinds.count(SANITY) == 3
    assert [v.paper for v in real if v.kind == "claim"] == [study.EPOCH, study.OPT_VISOR, study.OPT_VISOR]
    synthetic = study.verdicts(chinchilla=chin, data=data, table=table, best=best, x=X, source=study.SYNTHETIC)
    assert [(v.paper, v.kind) for v in synthetic] == [(study.EPOCH, "claim"), (study.EPOCH, SANITY)]
    assert study.verdicts(data=data, table=table, best=best, x=X, source=study.SYNTHETIC) == []


def test_extrapolated_frontier_rows_are_marked():
    data = pd.DataFrame({"frames": [1, 8], "tokens_per_frame": [1, 16]})
    frontier = pd.DataFrame(
        {
            "budget": [4, 16, 64, 4096],
            "frames_opt": [2.0, 4.0, 16.0, 64.0],
            "tokens_per_frame_opt": [2.0, 4.0, 4.0, 64.0],
        }
    )
    assert list(study.mark_extrapolation(frontier, data, X)["extrapolated"]) == [False, False, True, True]
    assert study.measured_budgets(data, X) == (1.0, 128.0)
    assert "Over the measured budgets" in study.budget_share(frontier, X, data)


def test_law_curves_are_measured_only_where_their_level_was():
    data = measurements(frames=(1, 2, 4, 8), tokens=(1, 4), seeds=(0,))
    data = data[~((data["tokens_per_frame"] == 4) & (data["frames"] > 2))]  # M = 4 measured at T = 1, 2 only
    fit = scaling.fit(data, "additive", x=X, y="val_loss", warn=False)
    curves = study.law_curves(fit, data, X, n_bootstrap=20, n=8)
    m4 = curves[(curves["panel"] == "loss vs frames") & (curves["tokens_per_frame"] == 4)]
    assert m4.loc[m4["frames"] <= 2, "measured"].all() and not m4.loc[m4["frames"] > 2.01, "measured"].any()
    assert {"pred", "ci_low", "ci_high"} <= set(curves.columns)


def test_plain_log_ticks_keep_a_short_log_axis_legible():
    import matplotlib

    matplotlib.use("Agg")
    from studio.figures import figure, legibility_problems

    fig, ax = figure()
    ax.scatter([0.22, 0.5, 1.0, 2.4], [0, 1, 0, 1])
    ax.set_xscale("log")
    study.plain_log_ticks(ax.xaxis)
    assert legibility_problems(fig) == []
    labels = {t.get_text() for t in ax.get_xticklabels() if t.get_text()}
    assert {"0.5", "1", "2"} <= labels <= {"0.1", "0.2", "0.5", "1", "2", "5", "10"}  # plain numbers, 1-2-5


def test_synthetic_source_name_is_the_one_the_data_loader_reports(monkeypatch, tmp_path):
    from studio import paths

    monkeypatch.setattr(paths, "FIGURES", tmp_path)  # no published visual-context table here
    *_, source = scaling.measurements_or_example(None)
    assert source == study.SYNTHETIC
