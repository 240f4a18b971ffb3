"""The one rule of studio.verdicts: four outcomes, gates both ways, failed seeds named (issue 26)."""

from __future__ import annotations

import json
import math

import pytest

from studio import verdicts as V


def _judge(per_seed, min_effect=0.05, **kw):
    return V.judge("claim", "paper", V.paired_effect(per_seed), min_effect=min_effect, evidence="e", **kw)


def test_reproduced_when_the_interval_is_above_zero():
    v = _judge({0: 0.10, 1: 0.12, 2: 0.11})
    assert v.outcome == V.REPRODUCED and v.ci_low > 0 and v.n_seeds == 3


def test_not_reproduced_when_the_interval_is_below_min_effect_or_opposite():
    assert _judge({0: 0.001, 1: 0.002, 2: 0.0015}, min_effect=0.05).outcome == V.REPRODUCED  # tiny but real
    assert _judge({0: -0.10, 1: -0.12, 2: -0.11}).outcome == V.NOT_REPRODUCED  # the other way
    v = _judge({0: -0.01, 1: 0.01, 2: 0.0}, min_effect=0.2)
    assert v.outcome == V.NOT_REPRODUCED and v.ci_high < 0.2


def test_inconclusive_with_too_few_seeds_or_a_wide_interval():
    v = _judge({0: 0.5, 1: 0.6})
    assert v.outcome == V.INCONCLUSIVE and "too few seeds (2 usable, needs 3)" in v.evidence
    v = _judge({0: -0.3, 1: 0.4, 2: 0.1}, min_effect=0.05)
    assert v.outcome == V.INCONCLUSIVE and "detect effects of about" in v.evidence


def test_a_failed_gate_is_untestable_whatever_the_effect():
    at_chance = V.above_chance("accuracy on motion", 0.27, chance=0.25, margin=0.1)
    assert not at_chance.passed
    v = _judge({0: 0.10, 1: 0.12, 2: 0.11}, gates=[at_chance])
    assert v.outcome == V.UNTESTABLE and "accuracy on motion (chance 0.25) = 0.27 (needs > 0.35)" in v.evidence
    fine = V.above_chance("accuracy on motion", 0.80, chance=0.25, margin=0.1)
    assert fine.passed and _judge({0: 0.10, 1: 0.12, 2: 0.11}, gates=[fine]).outcome == V.REPRODUCED
    gates = json.loads(V.verdict_table([v])["gates"].iloc[0])
    assert gates[0]["passed"] is False and gates[0]["value"] == pytest.approx(0.27)


def test_convergence_and_positive_control_gates_both_ways():
    assert V.converged_gate("train", [2.3, 2.3], [0.5, 0.6]).passed
    assert not V.converged_gate("train", [2.3, 2.3], [0.5, 2.29]).passed  # one seed kept 99 % of its loss
    assert not V.converged_gate("train", [2.3], [math.nan]).passed
    moves = V.interval_effect(0.2, 0.1, 0.3, 3, "bootstrap")
    still = V.interval_effect(0.008, -0.01, 0.02, 3, "bootstrap")
    assert V.responds("rate 0 % vs 80 %", moves).passed and not V.responds("rate 0 % vs 80 %", still).passed


def test_a_diverged_seed_is_named_set_aside_and_counted():
    first = {0: 2.3, 1: 2.3, 2: 2.3, 3: 2.3}
    final = {0: 0.4, 1: 0.5, 2: math.nan, 3: 0.45}
    failed = V.failed_by_loss(first, final)
    assert failed == [2]
    effect = V.paired_effect({0: 0.1, 1: 0.12, 2: 5.0, 3: 0.11}, exclude=failed)
    v = V.judge("c", "p", effect, min_effect=0.05, evidence="", failed_seeds=failed, n_total_seeds=4)
    assert v.outcome == V.REPRODUCED and v.n_seeds == 3 and v.failed_seeds == (2,)
    assert "failed seeds set aside: [2]" in v.evidence
    assert json.loads(V.verdict_table([v])["failed_seeds"].iloc[0]) == [2]
    # two of three failed: more than a third, so the claim is untestable
    v = V.judge("c", "p", V.paired_effect({0: 0.1}), min_effect=0.05, evidence="", failed_seeds=[1, 2], n_total_seeds=3)
    assert v.outcome == V.UNTESTABLE and "share of seeds that failed" in v.evidence


def test_a_seed_at_chance_while_others_learned_is_failed():
    assert V.failed_at_chance({0: 0.9, 1: 0.11, 2: 0.85}, chance=0.1, margin=0.05) == [1]
    assert V.failed_at_chance({0: 0.1, 1: 0.11}, chance=0.1, margin=0.05) == []  # all at chance: a gate's job


def test_sanity_rows_and_the_tally():
    s = V.sanity("generator check", "ours", V.paired_effect({0: 1, 1: 1.1, 2: 0.9}), min_effect=0.1, evidence="")
    assert s.kind == V.SANITY and s.outcome == V.REPRODUCED
    u = V.untestable("c", "p", [V.gate("x", 0.1, 0.5)])
    assert u.outcome == V.UNTESTABLE
    table = V.verdict_table([s, u])
    assert list(table.columns) == list(V.COLUMNS) and list(table["kind"]) == ["sanity", "claim"]
    assert V.tally(["reproduced", "untestable", "untestable"]) == (
        "3 claims; 1 reproduced, 0 not reproduced, 0 inconclusive, 2 untestable"
    )
    with pytest.raises(ValueError, match="min_effect must be > 0"):
        _judge({0: 1, 1: 1, 2: 1}, min_effect=0)


def test_failed_against_the_blind_loss_names_a_seed_only_when_another_trained():
    blind = math.log(10)
    loss = {0: 0.4, 1: 2.30, 2: 0.5}
    acc = {0: 0.9, 1: 0.1, 2: 0.88}
    assert V.failed_against_blind(loss, blind, acc, chance=0.1, margin=0.1) == [1]
    # every seed at the blind loss and at chance: an unlearned task (a gate's finding), only NaN seeds named
    flat = {0: 2.30, 1: math.nan, 2: 2.29}
    assert V.failed_against_blind(flat, blind, {0: 0.1, 1: 0.1, 2: 0.11}, chance=0.1, margin=0.1) == [1]
    # a blind loss per seed (workloads of different chance)
    assert V.failed_against_blind({0: 0.2, 1: 0.69}, {0: 0.7, 1: 0.7}, {0: 0.9, 1: 0.6}, 0.5, 0.2) == [1]
