"""The quickstart study's summary (one interval helper) and its verdict on planted tables."""

import numpy as np
import pandas as pd
import pytest

from studio.studies import quickstart as qs
from studio.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SANITY, UNTESTABLE


def _results(acc_by_tokens: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"grid": int(np.sqrt(t)), "tokens": t, "seed": s, "accuracy": a, "n_test": 100}
            for t, accs in acc_by_tokens.items()
            for s, a in enumerate(accs)
        ]
    )


def test_summary_is_a_t_interval_over_splits():
    summary = qs.summarise(_results({1: [0.2, 0.3, 0.25], 64: [0.9, 0.92, 0.91]}))
    assert list(summary.columns) == ["grid", "tokens", "mean", "ci_low", "ci_high", "n_seeds"]
    row = summary.set_index("tokens").loc[1]
    half = 4.302652729911275 * np.std([0.2, 0.3, 0.25], ddof=1) / np.sqrt(3)  # t(0.975, 2 dof)
    assert row["mean"] == pytest.approx(0.25) and row["ci_high"] - row["mean"] == pytest.approx(half)
    assert row["n_seeds"] == 3


def _verdict(acc_by_tokens):
    [v] = qs.verdicts(_results(acc_by_tokens))
    return v


def test_pooling_is_a_sanity_row_judged_per_split():
    v = _verdict({1: [0.2, 0.3, 0.25], 4: [0.7, 0.72, 0.71], 64: [0.9, 0.92, 0.91]})
    assert v.kind == SANITY and v.outcome == REPRODUCED and v.n_seeds == 3
    assert v.statistic == pytest.approx(0.91 - 0.25) and v.min_effect == qs.POOLING_MIN_EFFECT
    assert "within 0.02 of the best from 64 tokens" in v.evidence and "by construction" in v.evidence


def test_pooling_check_outcomes():
    assert _verdict({1: [0.9, 0.91, 0.92], 64: [0.5, 0.51, 0.52]}).outcome == NOT_REPRODUCED  # pooling helped
    assert _verdict({1: [0.5, 0.9, 0.7], 64: [0.6, 0.7, 0.85]}).outcome == INCONCLUSIVE  # splits disagree
    single = _verdict({1: [0.2], 64: [0.9]})
    assert single.outcome == INCONCLUSIVE and "too few seeds" in single.evidence  # one split


def test_pooling_check_gates_on_the_finest_grid_above_chance_and_names_a_failed_split():
    v = _verdict({1: [0.1, 0.11, 0.1], 64: [0.12, 0.13, 0.11]})  # the probe reads nothing
    assert v.outcome == UNTESTABLE and not v.gates[0].passed and v.gates[0].value == pytest.approx(0.12)
    v = _verdict({1: [0.2, 0.3, 0.25, 0.22], 64: [0.9, 0.92, 0.91, 0.1]})  # split 3 at chance
    assert v.failed_seeds == (3,) and v.n_seeds == 3 and v.outcome == REPRODUCED and v.gates[0].passed


@pytest.mark.parametrize(
    "grids, n_splits, match",
    [
        ([0], 2, "grids must be"),
        ([], 2, "grids must be"),
        ([3], 2, "dividing the 8-pixel"),
        ([1], 0, "n_splits must be"),
    ],
)
def test_bad_parameters_are_one_clear_error_naming_the_parameter(grids, n_splits, match):
    from studio.errors import ParameterError

    with pytest.raises(ParameterError, match=match):
        qs.probe_pooled(grids=grids, seeds=range(n_splits))


def test_seed_spread_is_the_widest_range_over_splits():
    assert qs.seed_spread(_results({1: [0.2, 0.3, 0.25], 64: [0.9, 0.92, 0.91]})) == {"accuracy": pytest.approx(0.1)}


def test_the_probe_does_not_depend_on_how_many_blas_threads_the_machine_gives_it():
    from threadpoolctl import threadpool_limits

    # grid 8 of splits 2 and 3: the probes that moved by one test image between 1 and 2 threads
    with threadpool_limits(1):
        one = qs.probe_pooled(grids=[8], seeds=[2, 3])
    with threadpool_limits(2):
        two = qs.probe_pooled(grids=[8], seeds=[2, 3])
    pd.testing.assert_frame_equal(one, two)
