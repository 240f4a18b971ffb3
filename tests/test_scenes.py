"""Synthetic scenes: captions follow the scene, hallucinations change exactly one slot of their type."""

from __future__ import annotations

import numpy as np
import pytest

from studio.data import scenes as S


def test_scene_is_deterministic_from_seed_and_index():
    a, b = S.make_scene(5, seed=3), S.make_scene(5, seed=3)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.caption == b.caption
    assert S.hallucinated_caption(a) == S.hallucinated_caption(b)
    others = [S.make_scene(i, seed=3).caption for i in range(6, 16)]
    assert any(c != a.caption for c in others)
    assert not np.array_equal(S.make_scene(5, seed=4).frames, a.frames)


def test_caption_describes_the_cells():
    for i in range(40):
        sc = S.make_scene(i, seed=1)
        slots = sc.slots
        o1, o2 = S.OBJECTS.index(slots["object1"]) + 1, S.OBJECTS.index(slots["object2"]) + 1
        assert o1 != o2
        ((r1, c1),) = np.argwhere(sc.cell_object[0] == o1)
        ((r2, c2),) = np.argwhere(sc.cell_object[0] == o2)
        want = {
            "left-of": c1 < c2 and r1 == r2,
            "right-of": c1 > c2 and r1 == r2,
            "above": r1 < r2 and c1 == c2,
            "below": r1 > r2 and c1 == c2,
        }
        assert want[slots["relation"]], (slots, (r1, c1), (r2, c2))
        ((q1, d1),) = np.argwhere(sc.cell_object[1] == o1)
        assert (q1 - r1, d1 - c1) == S.STEP[slots["event"]]
        assert sc.cell_colour[0, r1, c1] == S.COLOURS.index(slots["colour1"]) + 1
        assert sc.cell_colour[0, r2, c2] == S.COLOURS.index(slots["colour2"]) + 1
        # the pixels carry the object: an occupied cell is brighter than an empty one
        assert sc.frames[0, :, r1 * 8 : (r1 + 1) * 8, c1 * 8 : (c1 + 1) * 8].mean() > 0.1


@pytest.mark.parametrize("kind", S.HALLUCINATION_TYPES)
def test_hallucination_changes_exactly_one_slot_of_its_type(kind):
    for i in range(60):
        sc = S.make_scene(i, seed=2)
        text, got_kind, slot = S.hallucinated_caption(sc, kind)
        assert got_kind == kind and S.SLOT_TYPE[slot] == kind
        true_words, hall_words = sc.caption.split(), text.split()
        assert len(true_words) == len(hall_words) == S.CAPTION_LENGTH  # length and style kept
        diff = [j for j, (a, b) in enumerate(zip(true_words, hall_words)) if a != b]
        assert diff == [S.SLOT_POSITION[slot]]
        new = hall_words[diff[0]]
        if kind == "object":  # an object absent from the scene
            assert new in S.OBJECTS and new not in sc.objects
        elif kind == "attribute":
            assert new in S.COLOURS
        elif kind == "relation":
            assert new in S.RELATIONS
        else:
            assert new in S.EVENTS


def test_bank_cycles_types_and_tokenizer_round_trips():
    bank = S.scene_bank(80, seed=0, split="test")
    assert set(bank["hallucination_type"]) == set(S.HALLUCINATION_TYPES)
    assert bank["caption_ids"].shape == (80, S.CAPTION_LENGTH)
    diff = (bank["caption_ids"] != bank["hallucinated_ids"]).sum(1)
    assert (diff == 1).all()
    assert S.decode(bank["caption_ids"][0]) == bank["captions"][0]
    tok = S.scene_tokenizer()
    assert tok.unk_token_id not in bank["caption_ids"]
    assert tok.convert_tokens_to_ids(S.EOS) == tok.eos_token_id


def test_train_and_test_scenes_use_disjoint_digit_scans():
    bank_tr, bank_te = S._digit_bank("train"), S._digit_bank("test")
    for c in range(10):
        tr = {im.tobytes() for im in bank_tr[c]}
        assert tr and not tr & {im.tobytes() for im in bank_te[c]}


def test_mentions_and_unknown_type():
    assert S.mentions("a red three left-of a blue square then it moves up") == [("three", "red"), ("square", "blue")]
    assert S.mentions("three square") == [("three", None), ("square", None)]
    with pytest.raises(ValueError, match="unknown hallucination type"):
        S.hallucinate(S.make_scene(0).slots, "colour", np.random.default_rng(0))
