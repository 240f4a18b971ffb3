"""The capture layer on its own: no adapter code imported, the adapter protocol, clear errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from studio.capture import activations


def test_activations_imports_no_adapter_code():
    """studio.capture.activations stands below studio.hf: no import of it, not even a lazy one in a function."""
    tree = ast.parse(Path(activations.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [
        f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module for a in n.names
    ]
    assert "torch" in imported  # the walk does see the module's imports
    assert not [m for m in imported if m in ("studio.hf", "studio.capture.hf") or m.startswith("studio.capture.hf.")]


class _Adapter:
    """The smallest LayerAdapter: layer i is module str(i) of a Sequential; positions 0..1 are visual."""

    def __init__(self, model):
        self.model = model

    def layer_names_for(self, names_filter):
        return [str(i) for i in (names_filter if names_filter is not None else range(len(self.model)))]

    def modality_mask(self, inputs):
        mask = torch.zeros(inputs["x"].shape[:2], dtype=torch.bool)
        mask[:, :2] = True
        return mask


def test_a_duck_typed_adapter_gives_names_and_the_modality_mask():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    adapter = _Adapter(model)
    assert isinstance(adapter, activations.LayerAdapter)
    assert not isinstance(model, activations.LayerAdapter)
    x = torch.randn(2, 5, 4)
    out, cache = activations.run_with_cache(
        adapter, {"input_ids": torch.zeros(2, 5), "x": x}, [0, 2], forward=lambda inp: model(inp["x"])
    )
    assert cache.layers == ["0", "2"]
    torch.testing.assert_close(cache["2"], out)
    assert cache.tokens("0", "visual").shape == (4, 6) and cache.tokens("0", "text").shape == (6, 6)


def test_layer_indices_on_a_plain_module_point_to_the_hf_runner():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"studio\.hf\.run_with_cache"):
        activations.run_with_cache(net, torch.randn(1, 2, 4), names_filter=[0])
