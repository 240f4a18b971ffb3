"""The visual-context study: the generator's limits, the pairs each claim is judged on, and its verdicts
on planted tables (each outcome, each gate both ways, a diverged seed named), and its declared noise."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from studio.studies import visual_context as vc
from studio.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SANITY, UNTESTABLE, verdict_table

GEN = {"raw_frames": 32, "needle_frames": 8}
GRID = [(T, M) for T in (1, 2, 4, 8, 16) for M in (1, 4, 16) if (T, M) not in ((8, 16), (16, 16))] + [(1, 64)]


def _row(T, M, seed, loss, retrieval, spatial, token_strategy="mean"):
    return {
        "frames": T,
        "tokens_per_frame": M,
        "token_strategy": token_strategy,
        "frame_strategy": "uniform",
        "seed": seed,
        "val_loss": loss,
        "val_acc": (retrieval + spatial) / 2,
        "val_acc_retrieval": retrieval,
        "val_acc_spatial": spatial,
        "seconds": 1.0,
    }


def planted(seeds=(0, 1, 2), fair_gap=None, retrieval=0.9, spatial=0.9, sample_gap=None, broken=None):
    """The default grid with losses the generator would give a perfect reader: 0.25 where complete, +1.3 x
    the share of needles missed, +0.6 at one token per frame. fair_gap {seed: loss(4, 16) - loss(16, 4)}
    plants the fair pair's difference; sample_gap {seed: loss(sample) - loss(mean)} at (4, 4); broken
    {(T, M, seed): loss} overrides single runs (a diverged seed)."""
    fair_gap = fair_gap or {s: 0.1 for s in seeds}
    sample_gap = sample_gap or {s: 1.0 for s in seeds}
    rows = []
    for s in seeds:
        for T, M in GRID:
            cov = vc.needle_coverage(T, **GEN)
            loss = 0.25 + 1.3 * (1 - cov) + 0.6 * (M < vc.M_SIDES) + 0.001 * s
            if (T, M) == (16, 4):
                loss = 0.25 + 0.001 * s - fair_gap[s]
            ret = vc.CHANCE + (retrieval - vc.CHANCE) * cov
            spa = 0.45 if M < vc.M_SIDES else vc.CHANCE + (spatial - vc.CHANCE) * cov
            loss = (broken or {}).get((T, M, s), loss)
            rows.append(_row(T, M, s, loss, ret, spa))
        rows.append(_row(4, 4, s, 0.25 + 0.001 * s + sample_gap[s], 0.5, 0.5, token_strategy="sample"))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- the generator
def test_needle_coverage_of_uniform_frames():
    assert vc.needle_coverage(1, **GEN) == pytest.approx(8 / 25)  # the centre frame 16: starts 9..16 of 0..24
    assert vc.needle_coverage(2, **GEN) == pytest.approx(16 / 25)
    assert [vc.needle_coverage(T, **GEN) for T in (4, 8, 16, 32)] == [1.0] * 4
    assert vc.full_coverage_frames(GEN) == 4
    assert vc.full_coverage_frames({"raw_frames": 32, "needle_frames": 4}) == 8
    assert list(vc.uniform_frames(4, 32)) == [4, 12, 20, 28]


def test_each_same_budget_pair_is_named_by_what_it_tests():
    assert vc.pair_test((16, 4), (4, 16), GEN) == vc.FAIR
    assert vc.pair_test((4, 4), (1, 16), GEN) == vc.COVERAGE  # T = 1 misses two thirds of the needles
    assert vc.pair_test((16, 1), (4, 4), GEN) == vc.ONE_TOKEN  # one token cannot say which digit is left
    assert vc.pair_test((4, 1), (1, 4), GEN) == vc.BOTH
    pairs = vc.frames_vs_tokens(planted(), gen=GEN)
    per_pair = pairs.drop_duplicates(["more_frames", "more_tokens"]).set_index(["more_frames", "more_tokens"])["test"]
    assert (per_pair == vc.FAIR).sum() == 1 and per_pair[((16, 4), (4, 16))] == vc.FAIR
    assert len(pairs) == 3 * len(per_pair) == 27  # 9 pairs, one row per seed
    row = pairs[(pairs["test"] == vc.FAIR) & (pairs["seed"] == 0)].iloc[0]
    assert row["difference"] == pytest.approx(row["loss_more_tokens"] - row["loss_more_frames"]) == pytest.approx(0.1)


def test_the_generator_is_read_from_the_runs_or_the_sweep_config():
    runs = pd.DataFrame({"raw_frames": [32, 32], "needle_frames": [4, 4]})
    assert vc.generator(runs) == {"raw_frames": 32, "needle_frames": 4}
    assert vc.generator() == GEN  # experiments/sweeps/visual_context.yaml's base
    text = vc.generator_sentence(planted(), GEN)
    assert "from T = 4 on" in text and "T = 1: 0.32" in text and "M >= 4" in text


# -------------------------------------------------------------------------- frames against tokens
def _frames(table, **kw):
    claim, coverage, one_token = vc.verdict_frames(table, GEN, **kw)
    return claim, coverage, one_token


def test_frames_claim_is_judged_on_the_fair_pair_only():
    claim, coverage, one_token = _frames(planted())
    assert claim.outcome == REPRODUCED and claim.kind == "claim" and claim.n_seeds == 3
    assert claim.statistic == pytest.approx(0.1) and claim.min_effect == vc.LOSS_MIN_EFFECT
    assert all(g.passed for g in claim.gates) and "T*M=64: (16, 4)" in claim.evidence
    # the pairs against a cell the generator limits are sanity rows, each in its own direction
    assert coverage.kind == one_token.kind == SANITY
    assert coverage.outcome == REPRODUCED and coverage.statistic > 0.8
    assert one_token.outcome == REPRODUCED and one_token.statistic == pytest.approx(0.6)


@pytest.mark.parametrize(
    "gap, outcome",
    [
        ({0: -0.10, 1: -0.11, 2: -0.09}, NOT_REPRODUCED),  # more tokens win the fair pair
        ({0: 0.001, 1: -0.002, 2: 0.0005}, NOT_REPRODUCED),  # a tie well inside min_effect
        ({0: 0.2, 1: -0.15, 2: 0.05}, INCONCLUSIVE),  # the seeds disagree
    ],
)
def test_frames_claim_outcomes(gap, outcome):
    claim, *_ = _frames(planted(fair_gap=gap))
    assert claim.outcome == outcome


def test_frames_claim_with_two_seeds_is_inconclusive():
    claim, *_ = _frames(planted(seeds=(0, 1)))
    assert claim.outcome == INCONCLUSIVE and "too few seeds (2 usable, needs 3)" in claim.evidence


def test_frames_claim_is_untestable_when_the_cells_cannot_retrieve():
    claim, coverage, _ = _frames(planted(retrieval=0.15))  # every cell at chance on retrieval
    assert claim.outcome == UNTESTABLE and coverage.outcome == UNTESTABLE
    failed = [g for g in claim.gates if not g.passed]
    assert len(failed) == 1 and failed[0].name.startswith("retrieval accuracy") and failed[0].value < 0.3
    assert "retrieval accuracy of the cells of the fair pairs" in claim.evidence


def test_frames_claim_is_untestable_when_the_runs_did_not_train():
    stuck = {(T, M, s): 2.25 for T, M in [(4, 16), (16, 4)] for s in (0, 1, 2)}  # ln 10 = 2.30: a uniform guess
    claim, *_ = _frames(planted(broken=stuck))
    assert claim.outcome == UNTESTABLE and claim.failed_seeds == (0, 1, 2)
    assert "share of seeds that failed" in claim.evidence


def test_a_diverged_seed_is_named_and_set_aside():
    table = planted(seeds=(0, 1, 2, 3), fair_gap={0: 0.1, 1: 0.11, 2: 0.09, 3: 0.1}, broken={(4, 16, 3): math.nan})
    claim, *_ = _frames(table)
    assert claim.failed_seeds == (3,) and claim.n_seeds == 3 and claim.outcome == REPRODUCED
    assert "failed seeds set aside: [3]" in claim.evidence
    assert json.loads(verdict_table([claim])["failed_seeds"].iloc[0]) == [3]


def test_a_grid_without_fair_pairs_is_untestable():
    table = planted()
    table = table[table["frames"] < 4]  # every cell misses needles
    claim, coverage, one_token = _frames(table)
    assert claim.outcome == coverage.outcome == one_token.outcome == UNTESTABLE
    assert claim.gates[0].value == 0 and "fair pairs" in claim.gates[0].name


# ------------------------------------------------------------------------------------------- pooling
def test_pooling_claim_outcomes_and_gates():
    v = vc.verdict_pooling(planted())
    assert v.outcome == REPRODUCED and v.statistic == pytest.approx(1.0) and all(g.passed for g in v.gates)
    worse = vc.verdict_pooling(planted(sample_gap={0: -0.2, 1: -0.25, 2: -0.22}))
    assert worse.outcome == NOT_REPRODUCED
    two = vc.verdict_pooling(planted(seeds=(0, 1)))
    assert two.outcome == INCONCLUSIVE and "too few seeds" in two.evidence
    at_chance = vc.verdict_pooling(planted(retrieval=0.15))  # the pooled arm cannot retrieve
    assert at_chance.outcome == UNTESTABLE and not at_chance.gates[0].passed
    none = vc.verdict_pooling(planted().query("token_strategy == 'mean'"))
    assert none.outcome == UNTESTABLE and "No cell was measured with both" in none.evidence


def test_pooling_names_a_diverged_sampling_seed():
    table = planted(seeds=(0, 1, 2, 3), sample_gap={0: 1.0, 1: 1.1, 2: 0.9, 3: 1.0})
    table.loc[(table["token_strategy"] == "sample") & (table["seed"] == 3), "val_loss"] = 2.3  # never trained
    v = vc.verdict_pooling(table)
    assert v.failed_seeds == (3,) and v.n_seeds == 3 and v.outcome == REPRODUCED


def test_verdicts_lists_the_claims_then_the_sanity_rows():
    out = vc.verdicts(planted(), GEN)
    assert [v.kind for v in out] == ["claim", "claim", SANITY, SANITY]
    assert [v.claim for v in out[:2]] == [vc.FRAMES_CLAIM, vc.POOLING_CLAIM]


# ----------------------------------------------------------------------------- descriptive tables
def test_budget_lines_give_the_best_split_and_its_margin_interval():
    lines = vc.budget_lines(planted())
    line16 = lines[lines["budget"] == 16]
    assert sorted(line16["frames"]) == [1, 4, 16]
    assert line16[line16["best"]]["frames"].item() == 4 and line16["interior"].all()
    assert line16["margin"].iloc[0] == pytest.approx(0.6)
    assert line16["margin_ci_low"].iloc[0] == pytest.approx(0.6) == line16["margin_ci_high"].iloc[0]
    assert "T*M=16: best (T, M)=(4, 4)" in vc.split_sentence(lines)
    single = vc.budget_lines(planted(seeds=(0,)))
    assert single["margin_ci_low"].isna().all() and "one seed: no interval" in vc.split_sentence(single)
    assert vc.surface(planted()).loc[4, 4] == pytest.approx(0.251)


def test_law_curves_and_frontier_mark_extrapolation():
    class Flat:
        def predict(self, d):
            return np.ones(len(d["frames"]))

    table = planted()
    curves = vc.law_curves(Flat(), table, n=9)
    m64 = curves[curves["tokens_per_frame"] == 64]
    assert m64["measured"].sum() == 1  # M = 64 was measured at T = 1 only
    assert curves[curves["tokens_per_frame"] == 4]["measured"].all()
    frontier = pd.DataFrame({"budget": [4, 64, 256], "frames_opt": [2, 8, 16], "at_boundary": [False] * 3})
    assert list(vc.frontier_extrapolated(frontier, table)) == [False, False, True]
    assert "Budgets [256] lie outside the measured T*M (1-64)" in vc.fit_sentence(frontier, "additive", table)


# ------------------------------------------------------------------------------ the declared noise
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


def test_a_seed_at_chance_while_the_others_learned_is_named():
    table = planted(seeds=(0, 1, 2, 3), fair_gap={0: 0.1, 1: 0.11, 2: 0.09, 3: 0.1})
    at_chance = (table["seed"] == 3) & table["frames"].isin([4, 16]) & table["tokens_per_frame"].isin([4, 16])
    table.loc[at_chance, "val_acc_retrieval"] = 0.12
    claim, *_ = _frames(table)
    assert claim.failed_seeds == (3,) and claim.outcome == REPRODUCED and all(g.passed for g in claim.gates[:3])
