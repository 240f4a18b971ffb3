"""The visual-context study's declared noise: the seed spread --check tolerates."""

import pandas as pd
import pytest

from studio.studies import visual_context as vc


def _table():
    rows = []
    for T, M, losses in [(1, 4, (1.0, 1.1)), (4, 1, (0.5, 0.52)), (4, 4, (0.3, 0.33))]:
        for seed, loss in enumerate(losses):
            rows.append(
                {
                    "frames": T,
                    "tokens_per_frame": M,
                    "token_strategy": "mean",
                    "frame_strategy": "uniform",
                    "seed": seed,
                    "val_loss": loss,
                    "val_acc": 1 - loss / 2,
                    "val_acc_retrieval": 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_seed_spread_is_the_largest_range_over_seeds_of_each_metric():
    spread = vc.seed_spread(_table())
    assert spread["val_loss"] == pytest.approx(0.1) and spread["val_acc"] == pytest.approx(0.05)
    assert spread["val_acc_retrieval"] == 0.0


def test_tolerance_maps_derived_columns_to_the_spread_of_their_value():
    spread = vc.seed_spread(_table())
    lines = pd.DataFrame(
        {"budget": [4, 4], "frames": [1, 4], "mean": [1.05, 0.51], "std": [0.07, 0.01], "best": [False, True]}
    )
    tol = vc.tolerance(lines, spread)
    assert tol == {"mean": pytest.approx(0.1), "std": pytest.approx(0.1)}  # budget, frames, best: exact
    assert vc.tolerance(_table(), spread)["val_acc"] == pytest.approx(0.05)
