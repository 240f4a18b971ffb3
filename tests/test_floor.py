"""The floor: one interval helper, the one training harness and the verdict tables."""

import math

import numpy as np
import pandas as pd
import pytest

from studio import stats, verdicts


def test_t_interval_matches_scipy_and_is_nan_below_two_values():
    from scipy import stats as st

    x = [0.2, 0.25, 0.4, 0.31]
    mean, lo, hi = stats.t_interval(x, 0.9)
    ref = st.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=st.sem(x))
    assert mean == pytest.approx(np.mean(x)) and (lo, hi) == pytest.approx(ref)
    assert math.isnan(stats.t_interval([0.3])[1])
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        stats.t_interval(x, 95)


def test_summarise_names_the_columns_once():
    df = pd.DataFrame({"arm": ["a", "a", "b", "b", "b"], "seed": [0, 1, 0, 1, 2], "val_loss": [1, 2, 3, 4, 5.0]})
    out = stats.summarise(df, "arm", "val_loss")
    assert list(out.columns) == ["arm", "mean", "ci_low", "ci_high", "n_seeds"]
    assert out.set_index("arm").loc["b", "n_seeds"] == 3
    with pytest.raises(KeyError, match="no column"):
        stats.summarise(df, "arm", "loss")


def test_percentile_interval_is_the_central_share():
    lo, hi = stats.percentile_interval(np.arange(1001), 0.9)
    assert (lo, hi) == pytest.approx((50, 950))


def test_verdict_tables_are_saved_and_unknown_outcomes_are_refused(tmp_path):
    effect = verdicts.paired_effect({0: 0.3, 1: 0.31, 2: 0.29})
    v = [
        verdicts.judge("c1", "p", effect, min_effect=0.1, evidence="e"),
        verdicts.untestable("c2", "p", [verdicts.gate("accuracy", 0.1, 0.5)]),
    ]
    table = verdicts.save_verdicts(v, "toy", echo=lambda *_: None, out_dir=tmp_path)
    assert list(table.columns) == list(verdicts.COLUMNS)
    assert pd.read_csv(tmp_path / "toy_verdicts.csv")["outcome"].tolist() == ["reproduced", "untestable"]
    with pytest.raises(ValueError, match="outcome must be one of"):
        verdicts.Verdict("c", "p", "agrees", "e")
    with pytest.raises(ValueError, match="outcome must be one of"):
        verdicts.Verdict("c", "p", "tie", "e")  # no seventh rule


def test_make_trainer_logs_curves_into_its_folder(tmp_path):
    import lightning as L
    import torch

    from studio.training import OptimConfig, curves, make_trainer

    class Tiny(L.LightningModule):
        def __init__(self, optim: OptimConfig):
            super().__init__()
            self.layer, self.optim = torch.nn.Linear(2, 1), optim

        def training_step(self, batch, i):
            loss = self.layer(batch).pow(2).mean()
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=self.optim.lr)

    data = torch.utils.data.DataLoader(torch.randn(16, 2), batch_size=4)
    trainer = make_trainer(max_steps=8, log_dir=tmp_path / "run", log_every_n_steps=2)
    assert trainer.logger is not None and not trainer.checkpoint_callback
    trainer.fit(Tiny(OptimConfig(lr=0.1)), data)
    df = curves(tmp_path)
    assert "train/loss" in df.columns and df["train/loss"].notna().sum() == 4 and set(df["run"]) == {"run"}
    with pytest.raises(FileNotFoundError, match="make_trainer"):
        curves(tmp_path / "empty")
