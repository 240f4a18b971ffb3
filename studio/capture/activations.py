"""Capture hidden states at named layers, split by modality, TransformerLens-style.

    out, cache = run_with_cache(model, inputs, names_filter=["blocks.1"], modality_mask=is_visual)
    cache["blocks.1"]                      # (batch, seq, d) on the CPU
    cache.tokens("blocks.1", "visual")     # (n_visual_tokens, d): every visual position of the batch
    cache.pooled("blocks.1", "text", "last")   # (batch, d): the last text token of each row (EOS)
    cache.pairs(pool="mean")               # {layer: (visual (batch, d), text (batch, d))} for studio.gap

Only the asked layers are hooked, and each output is detached and moved to the CPU the moment it is
produced, so memory stays at model + captured layers (never `output_hidden_states`, which keeps
every layer on the device). Works for any torch module given module names (`model.named_modules()`),
and for any `LayerAdapter` (a `studio.hf.VLMAdapter`): the adapter turns layer indices into module
names and computes the image-token modality mask from `input_ids`. A raw Hugging Face VLM goes
through `studio.hf.run_with_cache`, which wraps it; this module imports no adapter code.

A hooked module's output is taken as is when it is a tensor, else its first element (HF decoder
layers return a tensor or a tuple whose first element is the hidden state). Note that HF's
`output_hidden_states[-1]` has the final norm applied; a hook on the last decoder layer does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

MODALITIES = ("visual", "text", "all")
POOLS = ("mean", "last")


@runtime_checkable
class LayerAdapter(Protocol):
    """What run_with_cache needs from a model adapter (`studio.hf.VLMAdapter` is one).

    model: the torch module that runs (called as model(**inputs) for a dict of inputs).
    layer_names_for(names_filter): module names to hook, from indices, names, a callable or None.
    modality_mask(inputs): (batch, seq) bool, True at visual-token positions.
    """

    model: nn.Module

    def layer_names_for(self, names_filter) -> list[str]: ...

    def modality_mask(self, inputs) -> torch.Tensor: ...


class _StopForward(Exception):
    """Raised from the last hook when stop_early=True: nothing after the captured layers runs."""


@dataclass
class ActivationCache:
    """Captured hidden states and the masks that say which positions are which.

    hidden: {layer name: (batch, seq, d) float tensor on the CPU}, in the order the layers ran.
    modality: (batch, seq) bool, True at visual-token positions; None when unknown (then only
        modality="all" works).
    attention: (batch, seq) bool, True at real (non-padding) tokens; all True when not given.
    """

    hidden: dict[str, torch.Tensor]
    modality: torch.Tensor | None = None
    attention: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.hidden:
            raise KeyError(f"layer {name!r} was not captured; captured: {list(self.hidden)}")
        return self.hidden[name]

    def __contains__(self, name) -> bool:
        return name in self.hidden

    def __iter__(self):
        return iter(self.hidden)

    def __len__(self) -> int:
        return len(self.hidden)

    def keys(self):
        return self.hidden.keys()

    @property
    def layers(self) -> list[str]:
        return list(self.hidden)

    def mask(self, modality: str = "all") -> torch.Tensor:
        """(batch, seq) bool: real tokens of the asked modality ("visual", "text" or "all")."""
        if modality not in MODALITIES:
            raise ValueError(f"modality {modality!r}: use one of {MODALITIES}")
        h = next(iter(self.hidden.values()))
        att = self.attention if self.attention is not None else torch.ones(h.shape[:2], dtype=torch.bool)
        if modality == "all":
            return att
        if self.modality is None:
            raise ValueError("no modality mask was given: pass modality_mask= (or use an HF adapter)")
        return att & (self.modality if modality == "visual" else ~self.modality)

    def tokens(self, layer: str, modality: str = "visual", *, with_rows: bool = False):
        """Every token of one modality across the batch: (n_tokens, d) numpy array.

        with_rows=True also returns (n_tokens,) the batch row each token came from.
        """
        h, m = self[layer], self.mask(modality)
        out = h[m].numpy()
        if with_rows:
            return out, torch.nonzero(m)[:, 0].numpy()
        return out

    def pooled(self, layer: str, modality: str = "visual", pool: str = "mean") -> np.ndarray:
        """One vector per batch row: (batch, d) numpy array.

        pool="mean" averages the row's tokens of that modality; pool="last" takes the last one (for
        text in a caption that ends with EOS, the EOS state HACL uses). Rows with no token of that
        modality give NaN.
        """
        if pool not in POOLS:
            raise ValueError(f"pool {pool!r}: use one of {POOLS}")
        h, m = self[layer], self.mask(modality)
        return pool_hidden(h, m, pool).numpy()

    def pairs(
        self, pool: str = "mean", layers: Iterable[str] | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{layer: (visual (batch, d), text (batch, d))} pooled per row: the input of gap.layer_profile."""
        names = list(layers) if layers is not None else self.layers
        return {n: (self.pooled(n, "visual", pool), self.pooled(n, "text", pool)) for n in names}

    def token_sets(self, layers: Iterable[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{layer: (visual tokens (n_v, d), text tokens (n_t, d))}, unpaired (use paired=False)."""
        names = list(layers) if layers is not None else self.layers
        return {n: (self.tokens(n, "visual"), self.tokens(n, "text")) for n in names}


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, pool: str = "mean") -> torch.Tensor:
    """(batch, seq, d), (batch, seq) bool -> (batch, d): mean or last of the masked positions (NaN if none)."""
    mask = mask.to(hidden.device)
    count = mask.sum(1)
    if pool == "mean":
        out = (hidden * mask[..., None]).sum(1) / count.clamp(min=1)[:, None]
    elif pool == "last":
        pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(mask, pos, torch.full_like(pos, -1)).max(1).values.clamp(min=0)
        out = hidden[torch.arange(len(hidden)), last]
    else:
        raise ValueError(f"pool {pool!r}: use one of {POOLS}")
    return torch.where(count[:, None] > 0, out, torch.full_like(out, float("nan")))


def _resolve(model: nn.Module, names_filter) -> list[str]:
    """Module names to hook: a name, a list of names, or a callable name -> bool (TransformerLens)."""
    modules = dict(model.named_modules())
    if names_filter is None:
        raise ValueError(
            "names_filter is required for a plain module: give layer names "
            "(see model.named_modules()) or a callable name -> bool"
        )
    if callable(names_filter):
        names = [n for n in modules if n and names_filter(n)]
    else:
        names = [names_filter] if isinstance(names_filter, (str, int)) else list(names_filter)
        indices = [n for n in names if not isinstance(n, str)]
        if indices:  # a raw HF model used to be wrapped here; that lives in studio.hf now (no upward import)
            raise ValueError(
                f"layer indices {indices} need an adapter that maps them to module names: pass a "
                "studio.hf.VLMAdapter here, or the raw Hugging Face model to studio.hf.run_with_cache"
            )
        unknown = [n for n in names if n not in modules]
        if unknown:
            near = [n for n in modules if any(u.split(".")[-1] in n for u in unknown)][:8]
            raise ValueError(f"unknown module name(s) {unknown}; e.g. {near or list(modules)[1:9]}")
    if not names:
        raise ValueError("names_filter matched no module")
    return names


def _call(model: nn.Module, inputs):
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def run_with_cache(
    model,
    inputs,
    names_filter=None,
    *,
    modality_mask: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    stop_early: bool = False,
    dtype: torch.dtype = torch.float32,
    forward: Callable | None = None,
) -> tuple[Any, ActivationCache]:
    """Run `model` on `inputs` once, capturing the outputs of the named modules; return (output, cache).

    model: a torch module or a `LayerAdapter` such as `studio.hf.VLMAdapter` (for a raw Hugging Face
        VLM use `studio.hf.run_with_cache`, which wraps it in its adapter).
    inputs: a dict of keyword arguments, a tuple of positional ones, or one tensor.
    names_filter: module names, one name, a callable name -> bool, or (with an HF adapter) layer
        indices such as [0, -1] / None for every decoder layer.
    modality_mask: (batch, seq) bool, True at visual-token positions (from input_ids for HF models).
    attention_mask: (batch, seq), nonzero at real tokens (taken from inputs["attention_mask"] if absent).
    stop_early: stop the forward once every hooked module has run (output is then None): saves the
        later layers and the logits when only representations are wanted.
    Each capture is (batch, seq, d) in `dtype` on the CPU. A module that runs several times in one call
    (generation with a KV cache) has its outputs concatenated along the sequence dimension.
    """
    if isinstance(model, LayerAdapter):
        adapter = model
        module = adapter.model
        names = adapter.layer_names_for(names_filter)
        if modality_mask is None and isinstance(inputs, Mapping) and "input_ids" in inputs:
            modality_mask = adapter.modality_mask(inputs)
    else:
        module = model
        names = _resolve(module, names_filter)
    if attention_mask is None and isinstance(inputs, Mapping) and inputs.get("attention_mask") is not None:
        attention_mask = inputs["attention_mask"]

    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    pending = set(names)

    def make_hook(name):
        def hook(_module, _args, output):
            h = output if torch.is_tensor(output) else output[0]
            store[name].append(h.detach().to("cpu", dtype))
            pending.discard(name)
            if stop_early and not pending:
                raise _StopForward

        return hook

    handles = [module.get_submodule(n).register_forward_hook(make_hook(n)) for n in names]
    output = None
    try:
        with torch.no_grad():  # not inference_mode: captured tensors stay usable in later autograd code
            output = (forward or (lambda inp: _call(module, inp)))(inputs)
    except _StopForward:
        output = None
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if not store[n]]
    if missing:
        raise RuntimeError(f"module(s) {missing} did not run in this forward")
    hidden = {n: (v[0] if len(v) == 1 else torch.cat(v, dim=1)) for n, v in store.items()}
    first = next(iter(hidden.values()))
    if first.ndim == 2:  # (batch, d) outputs (e.g. a pooled head): treat as one token per row
        hidden = {n: v[:, None] for n, v in hidden.items()}
        first = next(iter(hidden.values()))
    shape = first.shape[:2]
    if modality_mask is not None:
        modality_mask = torch.as_tensor(modality_mask).to("cpu", torch.bool)
        if modality_mask.shape != shape:
            raise ValueError(f"modality_mask has shape {tuple(modality_mask.shape)}, hidden states {tuple(shape)}")
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask).to("cpu").bool()
        if attention_mask.shape != shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, hidden states {tuple(shape)}")
    return output, ActivationCache(hidden, modality_mask, attention_mask, {"names": names})
