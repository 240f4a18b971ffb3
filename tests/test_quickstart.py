"""The quickstart study's summary (one interval helper) and its verdict on planted tables."""

import numpy as np
import pandas as pd
import pytest

from studio.studies import quickstart as qs


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


def test_verdict_reproduced_when_tokens_help_beyond_the_spread():
    [v] = qs.verdicts(qs.summarise(_results({1: [0.2, 0.3, 0.25], 4: [0.7, 0.72, 0.71], 64: [0.9, 0.92, 0.91]})))
    assert v.verdict == "reproduced" and v.value == pytest.approx(0.91 - 0.25)
    assert "within 0.02 of the best from 64 tokens" in v.evidence


def test_verdict_tie_inside_the_spread_and_not_reproduced_when_pooling_helps():
    [tie] = qs.verdicts(qs.summarise(_results({1: [0.5, 0.9, 0.7], 64: [0.6, 0.95, 0.75]})))
    assert tie.verdict == "tie"
    [worse] = qs.verdicts(qs.summarise(_results({1: [0.9, 0.91, 0.92], 64: [0.3, 0.31, 0.32]})))
    assert worse.verdict == "not reproduced"
    [single] = qs.verdicts(qs.summarise(_results({1: [0.2], 64: [0.9]})))
    assert single.verdict == "tie"  # one split: no spread to be clear of


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
