"""What a training step of each backbone costs as the visual context grows, and the fitted laws.

    costs = measure_costs(["llama", "mamba", "moe"], lengths=[64, 256, 1024, 4096])  # one row per step timed
    exps = cost_exponents(costs)          # per backbone and metric: cost ~ A * length^alpha, bootstrap CI
    cross = crossover(costs)              # the length where mamba becomes cheaper than llama, with its band
    ratios = cost_ratios(costs)           # per length: median seconds per backbone and their ratios

A step is forward + backward + AdamW on a batch of `batch` sequences of `length` visual tokens plus
QUESTION_TOKENS (<bos>, the question, "answer"), fed as inputs_embeds, with the answer loss of VideoLM
(and the MoE's router loss). Backbones are interleaved within each repeat (llama, mamba, moe at one
length, then the next length), so that a machine whose load changes slows all of them alike: the ratios
of one run are more reliable than its absolute times.

Memory: on a GPU, the peak memory allocated during the step (torch.cuda.max_memory_allocated) minus
what was allocated before it; on a CPU, where torch keeps no such counter, the bytes of the tensors
autograd saves for the backward pass (distinct storages), i.e. the activation memory that grows with
the sequence -- `memory_kind` says which.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from studio.analysis import scaling
from studio.models.backbones import BACKBONES, build_backbone, parameter_counts
from studio.repro import cpu_threads
from studio.stats import LEVEL, percentile_interval

QUESTION_TOKENS = 10  # <bos> + the 8 question words + "answer" (studio.data.vocab.question_table)
VOCAB = 40  # about the video-LM's vocabulary; the head's cost does not depend on the length (one position)


def _activation_bytes():
    """A saved_tensors_hooks context counting the distinct storages autograd saves, and a getter."""
    # Each storage is held until the step ends: a saved tensor of a graph branch freed early (e.g. the MoE's
    # routing) would otherwise release its address to a later saved tensor, which then overwrote its entry,
    # and the count depended on where the allocator put things (it differed between processes).
    seen: dict[int, torch.UntypedStorage] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), lambda: sum(s.nbytes() for s in seen.values())


def _step(lm, opt, batch: int, length: int, width: int, device: str, gen: torch.Generator) -> tuple[float, float]:
    """One timed training step -> (seconds, memory in MB)."""
    seq = torch.randn(batch, length + QUESTION_TOKENS, width, generator=gen).to(device)
    target = torch.randint(0, VOCAB, (batch,), generator=gen).to(device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    hooks, saved = _activation_bytes()
    t0 = time.perf_counter()
    with hooks:
        logits = lm(inputs_embeds=seq, logits_to_keep=1).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, target)
        aux = getattr(lm, "aux", None)
        if aux:
            loss = loss + aux["loss"]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    memory = (torch.cuda.max_memory_allocated() - before) if cuda else saved()
    return seconds, memory / 2**20


def measure_costs(
    backbones=BACKBONES,
    lengths=(64, 128, 256, 512),
    *,
    batch: int = 8,
    width: int = 64,
    layers: int = 2,
    heads: int = 4,
    mlp_ratio: int = 2,
    repeats: int = 3,
    warmup: int = 1,
    threads: int = 1,
    device: str = "cpu",
    seed: int = 0,
    progress=None,
) -> pd.DataFrame:
    """One row per timed step: backbone, length (visual tokens), seq_len, repeat, seconds, memory_mb,
    memory_kind, n_params, n_active. `warmup` untimed steps per backbone and length come first."""
    bad = [b for b in backbones if b not in BACKBONES]
    if bad:
        raise ValueError(f"unknown backbones {bad}; valid: {list(BACKBONES)}")
    rows = []
    with cpu_threads(int(threads) or None):
        models = {}
        for name in backbones:
            torch.manual_seed(seed)
            lm = build_backbone(name, VOCAB, width, layers, heads, max_len=max(lengths) + 2 * QUESTION_TOKENS,
                                mlp_ratio=mlp_ratio).to(device)  # fmt: skip
            models[name] = (lm, torch.optim.AdamW(lm.parameters(), lr=1e-3), parameter_counts(lm))
        gen = torch.Generator().manual_seed(seed)
        kind = "cuda peak allocated" if device.startswith("cuda") else "saved activations"
        for length in lengths:
            for lm, opt, _ in models.values():
                for _ in range(warmup):
                    _step(lm, opt, batch, length, width, device, gen)
        for r in range(repeats):
            for length in lengths:
                for name, (lm, opt, counts) in models.items():
                    seconds, memory = _step(lm, opt, batch, length, width, device, gen)
                    rows.append(
                        dict(backbone=name, length=int(length), seq_len=int(length) + QUESTION_TOKENS, repeat=r,
                             seconds=seconds, memory_mb=memory, memory_kind=kind, batch=batch,
                             n_params=counts["total"], n_active=counts["active"])
                    )  # fmt: skip
                    if progress:
                        progress(f"{name} length {length} repeat {r}: {seconds:.3f} s, {memory:.1f} MB")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- laws
def _fit(part: pd.DataFrame, metric: str):
    return scaling.fit(part, law="pure_power", x="length", y=metric, loss="mse", warn=False)


def cost_exponents(
    costs: pd.DataFrame,
    metrics=("seconds", "memory_mb"),
    *,
    n_bootstrap: int = 200,
    seed: int = 0,
    min_length: int = 0,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Per backbone and metric, the law cost = A * length^alpha fitted (studio.scaling, law pure_power) to
    every timed step at lengths >= min_length: columns backbone, metric, alpha, ci_low, ci_high (percentile
    bootstrap over steps), A, n_points, lengths (the range fitted)."""
    rows = []
    for (name, metric), part in _parts(costs, metrics, min_length):
        f = _fit(part, metric)
        ci = f.ci(level, n=n_bootstrap, seed=seed).set_index("param")
        rows.append(
            dict(backbone=name, metric=metric, alpha=f.params["alpha"], ci_low=ci.loc["alpha", "ci_low"],
                 ci_high=ci.loc["alpha", "ci_high"], A=f.params["A"], n_points=len(part),
                 lengths=f"{part['length'].min()}-{part['length'].max()}")
        )  # fmt: skip
    return pd.DataFrame(rows)


def _parts(costs: pd.DataFrame, metrics, min_length: int):
    keep = costs[costs["length"] >= min_length]
    for name in costs["backbone"].unique():
        for metric in metrics:
            part = keep[(keep["backbone"] == name) & np.isfinite(keep[metric]) & (keep[metric] > 0)]
            if part["length"].nunique() >= 2:
                yield (name, metric), part


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval that keeps infinities (a resample whose lines never cross)."""
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi)


def _cross(A_a, alpha_a, A_b, alpha_b):
    """The length beyond which a (A_a L^alpha_a) costs less than b; inf when its cost grows as fast or faster."""
    A_a, alpha_a, A_b, alpha_b = map(np.asarray, (A_a, alpha_a, A_b, alpha_b))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        length = np.exp(np.log(A_a / A_b) / (alpha_b - alpha_a))
    return np.where(alpha_b > alpha_a, length, np.inf)


def _paired_fits(costs, a: str, b: str, metric: str, n_bootstrap: int, seed: int, min_length: int):
    """The rows at >= min_length, both backbones' fitted laws and their bootstrap refits (the i-th refits
    of a and b are paired by crossover and exponent_gap)."""
    keep = costs[costs["length"] >= min_length]
    fits = {k: _fit(keep[keep["backbone"] == k], metric) for k in (a, b)}
    boot = {k: f.bootstrap(n_bootstrap, seed=seed + i) for i, (k, f) in enumerate(fits.items())}
    return keep, fits, boot


def crossover(
    costs: pd.DataFrame,
    a: str = "mamba",
    b: str = "llama",
    metric: str = "seconds",
    *,
    n_bootstrap: int = 200,
    seed: int = 0,
    min_length: int = 0,
    level: float = LEVEL,
) -> dict:
    """Where backbone `a` becomes cheaper than `b` in `metric`, from the two fitted laws: length (inf when
    a's cost does not grow more slowly), ci_low, ci_high (pairing the i-th bootstrap refit of each),
    measured (inside the lengths timed, else an extrapolation), alpha_a, alpha_b, share_never (of the
    resamples in which the lines never cross)."""
    keep, fits, boot = _paired_fits(costs, a, b, metric, n_bootstrap, seed, min_length)
    point = float(_cross(fits[a].params["A"], fits[a].params["alpha"], fits[b].params["A"], fits[b].params["alpha"]))
    samples = _cross(boot[a]["A"], boot[a]["alpha"], boot[b]["A"], boot[b]["alpha"])
    lo, hi = _quantiles(samples, level)
    span = (keep["length"].min(), keep["length"].max())
    return dict(
        a=a, b=b, metric=metric, length=point, ci_low=lo, ci_high=hi,
        measured=bool(np.isfinite(point) and span[0] <= point <= span[1]),
        alpha_a=fits[a].params["alpha"], alpha_b=fits[b].params["alpha"],
        share_never=float(np.mean(~np.isfinite(samples))), lengths=f"{span[0]}-{span[1]}",
    )  # fmt: skip


def cost_ratios(costs: pd.DataFrame, metric: str = "seconds", reference: str = "llama") -> pd.DataFrame:
    """Per length: the median `metric` of each backbone over repeats and its ratio to `reference`
    (columns length, <backbone>, <backbone>_vs_<reference>)."""
    med = costs.groupby(["length", "backbone"])[metric].median().unstack("backbone")
    out = med.copy()
    for name in med.columns:
        if name != reference and reference in med.columns:
            out[f"{name}_vs_{reference}"] = med[name] / med[reference]
    return out.reset_index().rename_axis(columns=None)


def exponent_gap(
    costs: pd.DataFrame,
    a: str = "mamba",
    b: str = "llama",
    metric: str = "seconds",
    *,
    n_bootstrap: int = 200,
    seed: int = 0,
    min_length: int = 0,
    level: float = LEVEL,
) -> dict:
    """alpha_b - alpha_a of the two fitted laws (> 0: b's cost grows faster than a's) with a percentile
    interval pairing the i-th bootstrap refit of each (the resamples `crossover` draws): gap, ci_low,
    ci_high, alpha_a, alpha_b, lengths."""
    keep, fits, boot = _paired_fits(costs, a, b, metric, n_bootstrap, seed, min_length)
    lo, hi = percentile_interval(boot[b]["alpha"].to_numpy() - boot[a]["alpha"].to_numpy(), level)
    return dict(
        a=a, b=b, metric=metric, gap=float(fits[b].params["alpha"] - fits[a].params["alpha"]),
        ci_low=float(lo), ci_high=float(hi), alpha_a=fits[a].params["alpha"], alpha_b=fits[b].params["alpha"],
        lengths=f"{keep['length'].min()}-{keep['length'].max()}",
    )  # fmt: skip
