"""studio.models.pretrained: one cache entry per config, whatever the caller's RNG, whoever gets there first."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn

from studio.models.pretrained import cached_pretrained

# Two processes with different RNG states ask for the same entry at once (as two sweep workers with
# cells of seeds 0 and 1 do on an empty cache). `train` leaves a line in trained.log and holds on for
# a second, so that without the lock both would train.
RACE = """
import sys, time, torch
from torch import nn
from studio.models.pretrained import cached_pretrained
torch.manual_seed(int(sys.argv[2]))
def build(cfg):
    return nn.Linear(4, 4)
def train(model, cfg):
    with open(sys.argv[1] + "/trained.log", "a") as f:
        f.write("trained\\n")
    time.sleep(1.0)
    return {}
m = cached_pretrained("toy", {"seed": 0}, build=build, train=train, root=sys.argv[1], frozen=False, log=lambda *_: None)
print(repr(m.weight.detach().sum().item()))
"""


def test_concurrent_builds_train_once_and_agree(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert (tmp_path / "trained.log").read_text().splitlines() == ["trained"]  # one trained, one waited
    assert outs[0][0] == outs[1][0]  # and both hold the same weights


def test_initial_weights_depend_on_the_config_seed_not_the_callers_rng(tmp_path):
    seen = []

    def train(model, cfg):  # records the initial weights; trains nothing
        seen.append(model.weight.detach().clone())
        return {}

    for caller_seed, root in ((1, "a"), (2, "b")):
        torch.manual_seed(caller_seed)
        cached_pretrained(
            "toy", {"seed": 3}, build=lambda c: nn.Linear(4, 4), train=train, root=tmp_path / root, log=lambda *_: None
        )
    assert torch.equal(seen[0], seen[1])
    cached_pretrained(
        "toy", {"seed": 4}, build=lambda c: nn.Linear(4, 4), train=train, root=tmp_path / "c", log=lambda *_: None
    )
    assert not torch.equal(seen[0], seen[2])
    state = torch.get_rng_state()
    cached_pretrained(
        "toy", {"seed": 3}, build=lambda c: nn.Linear(4, 4), train=train, root=tmp_path / "a", log=lambda *_: None
    )  # loaded from the cache
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left as it was


def test_keyed_by_code_and_a_damaged_entry_is_rebuilt(tmp_path):
    calls = []

    def train_a(model, cfg):
        calls.append("a")
        return {"acc": 1.0}

    def train_b(model, cfg):  # other code, same config: another entry
        calls.append("b")
        return {"acc": 2.0}

    def get(train):
        return cached_pretrained(
            "toy",
            {"seed": 5},
            build=lambda c: nn.Linear(4, 4),
            train=train,
            root=tmp_path,
            frozen=False,
            log=lambda *_: None,
        )

    first = get(train_a)
    assert get(train_a).pretrain_info["acc"] == 1.0 and calls == ["a"]  # the second call loaded
    assert "seconds" in first.pretrain_info
    assert get(train_b).pretrain_info["acc"] == 2.0 and calls == ["a", "b"]
    entries = sorted((tmp_path / "toy").glob("*/model.safetensors"))
    assert len(entries) == 2
    entries[0].write_bytes(b"\0" * entries[0].stat().st_size)  # zeroed weights: verified, moved aside, retrained
    get(train_a), get(train_b)
    assert len(calls) == 3 and sorted(calls[2:]) in (["a"], ["b"])  # only the damaged entry was retrained
    assert len(list((tmp_path / "toy").glob("*.bad-*"))) == 1
