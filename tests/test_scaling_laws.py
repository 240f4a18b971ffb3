"""studio.studies.scaling_laws: the verdicts on planted tables, and the glue the notebook calls."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from studio.analysis import scaling
from studio.studies import scaling_laws as study
from studio.verdicts import NOT_REPRODUCED, REPRODUCED, TIE

EPOCH = scaling.PUBLISHED["epoch_grid"]
X = ("frames", "tokens_per_frame")


def planted_fit(scale: dict | None = None, objective: float = EPOCH["objective"]):
    """A stand-in Fit with Epoch's parameters, each multiplied by `scale`."""
    params = {p: v * (scale or {}).get(p, 1.0) for p, v in EPOCH["params"].items()}
    return SimpleNamespace(params=params, objective=objective)


def intervals(**bounds):
    return pd.DataFrame([{"param": p, "ci_low": lo, "ci_high": hi} for p, (lo, hi) in bounds.items()]).set_index(
        "param"
    )


# ---------------------------------------------------------------- Chinchilla
def test_chinchilla_verdict_follows_its_thresholds():
    assert study.chinchilla_verdict(planted_fit()).verdict == REPRODUCED
    just_inside = planted_fit({"alpha": 1 + study.PARAM_RTOL / 2}, EPOCH["objective"] * (1 + study.OBJECTIVE_RTOL / 2))
    v = study.chinchilla_verdict(just_inside)
    assert v.verdict == REPRODUCED and v.value == pytest.approx(study.PARAM_RTOL / 2)
    assert study.chinchilla_verdict(planted_fit({"beta": 1 + 2 * study.PARAM_RTOL})).verdict == NOT_REPRODUCED
    worse = planted_fit(objective=EPOCH["objective"] * (1 + 2 * study.OBJECTIVE_RTOL))
    assert study.chinchilla_verdict(worse).verdict == NOT_REPRODUCED


def test_hoffmann_verdict_asks_whether_his_beta_is_outside_our_interval():
    beta = scaling.PUBLISHED["hoffmann"]["params"]["beta"]  # 0.28
    fit = planted_fit()  # ours: beta = 0.3672
    v = study.hoffmann_verdict(fit, intervals(beta=(0.33, 0.41)))
    assert v.verdict == REPRODUCED and abs(v.value) > v.spread
    assert v.value == pytest.approx(beta - fit.params["beta"]) and v.spread == pytest.approx(fit.params["beta"] - 0.33)
    v = study.hoffmann_verdict(fit, intervals(beta=(0.25, 0.41)))
    assert v.verdict == NOT_REPRODUCED and abs(v.value) <= v.spread


# ---------------------------------------------------------------- law families by AIC
def planted_comparison(aics: dict) -> pd.DataFrame:
    """A compare() table: law -> (n_inputs, aic), with stand-in fits carrying n_inputs."""
    table = pd.DataFrame({"law": list(aics), "aic": [a for _, a in aics.values()]})
    table.attrs["fits"] = {k: SimpleNamespace(law=SimpleNamespace(n_inputs=n)) for k, (n, _) in aics.items()}
    return table


@pytest.mark.parametrize(
    "one_input_aic, outcome", [(150.0, REPRODUCED), (101.0, TIE), (99.0, TIE), (90.0, NOT_REPRODUCED)]
)
def test_law_family_verdict_uses_the_aic_margin(one_input_aic, outcome):
    table = planted_comparison({"additive": (2, 100.0), "kaplan": (2, 104.0), "power(T*M)": (1, one_input_aic)})
    v = study.law_family_verdict(table)
    assert v.verdict == outcome and v.value == pytest.approx(one_input_aic - 100.0)
    assert v.spread == study.AIC_MARGIN and "additive" in v.evidence and "power(T*M)" in v.evidence


def test_law_family_verdict_needs_both_kinds_of_law():
    assert study.law_family_verdict(planted_comparison({"additive": (2, 1.0), "kaplan": (2, 2.0)})) is None
    assert study.law_family_verdict(planted_comparison({"power(T)": (1, 1.0)})) is None


# ---------------------------------------------------------------- frames against tokens
@pytest.mark.parametrize(
    "gain_2, lo, hi, outcome",
    [
        (0.05, 0.02, 0.08, REPRODUCED),  # frames save more, interval clear of 0
        (0.05, -0.01, 0.08, TIE),  # interval holds 0
        (0.15, -0.08, -0.02, NOT_REPRODUCED),  # tokens save more, interval clear of 0
        (0.05, float("nan"), float("nan"), TIE),  # no bootstrap: cannot be resolved
    ],
)
def test_frames_vs_tokens_verdict(gain_2, lo, hi, outcome):
    v = study.frames_vs_tokens_verdict({"gain_1": 0.1, "gain_2": gain_2, "ci_low": lo, "ci_high": hi}, X)
    assert v.verdict == outcome and v.value == pytest.approx(0.1 - gain_2)
    assert "frames" in v.claim and "tokens_per_frame" in v.claim


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


def test_measurement_verdicts_are_left_out_for_the_synthetic_example():
    gains = {"gain_1": 0.1, "gain_2": 0.05, "ci_low": 0.02, "ci_high": 0.08}
    table = planted_comparison({"additive": (2, 100.0), "power(T*M)": (1, 150.0)})
    real = study.verdicts(table=table, gains=gains, x=X, source="figures/visual_context_results.csv")
    assert [v.paper for v in real] == [study.OPT_VISOR] * 2
    assert study.verdicts(table=table, gains=gains, x=X, source=study.SYNTHETIC) == []
    both = study.verdicts(chinchilla=(planted_fit(), intervals(beta=(0.33, 0.41))), source=study.SYNTHETIC)
    assert [v.verdict for v in both] == [REPRODUCED, REPRODUCED]


def test_synthetic_source_name_is_the_one_the_data_loader_reports(monkeypatch, tmp_path):
    from studio import paths

    monkeypatch.setattr(paths, "FIGURES", tmp_path)  # no published visual-context table here
    *_, source = scaling.measurements_or_example(None)
    assert source == study.SYNTHETIC
