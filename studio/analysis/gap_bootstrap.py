"""Intervals and layer-by-layer profiles for any metric of studio.analysis.gap.

est, ci_low, ci_high = bootstrap(modality_gap, visual, text, n=1000)
layer_profile({layer: (visual, text)}, modality_gap, n_boot=200)   # one row per layer
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from studio.analysis.gap import _as2d, linear_cka

__all__ = ["bootstrap", "layer_profile", "layer_similarity"]


def bootstrap(
    metric: Callable[..., float],
    *arrays,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    paired: bool = True,
    replace: bool | None = None,
    fraction: float | None = None,
) -> tuple[float, float, float]:
    """(estimate, ci_low, ci_high): `metric(*arrays)` on all the data and a confidence interval.

    paired=True draws the same row indices for every array (they must have equal length: matched
    pairs stay matched); paired=False resamples each array on its own (e.g. visual and text token
    sets of different sizes).
    replace=True: the percentile bootstrap (n resamples of full size, with replacement).
    replace=False: half-sampling (fraction 0.5 without replacement, whose spread matches the
    bootstrap's for smooth statistics), with the interval re-centred on the estimate
    (estimate + quantile - median of the subsample values) because a metric on half the rows can
    be shifted (chance level of mutual kNN, probe training size). Resampling with replacement
    would put copies of a row among its own neighbours or in both the probe's train and test
    folds, so replace=None (default) picks half-sampling for metrics marked duplicate-sensitive
    (`mutual_knn`, `linear_cka`, `probe_*`) and the bootstrap for the rest.
    """
    if not arrays:
        raise ValueError("bootstrap needs at least one array")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    arrays = [_as2d(a, f"array {i}") if np.ndim(a) == 2 else np.asarray(a) for i, a in enumerate(arrays)]
    lengths = [len(a) for a in arrays]
    if paired and len(set(lengths)) != 1:
        raise ValueError(f"paired bootstrap needs arrays of equal length, got {lengths} (use paired=False)")
    if replace is None:
        replace = not getattr(metric, "duplicate_sensitive", False)
    fraction = (1.0 if replace else 0.5) if fraction is None else fraction
    if not replace and not 0 < fraction < 1:
        raise ValueError("replace=False needs 0 < fraction < 1")
    estimate = float(metric(*arrays))
    rng = np.random.default_rng(seed)

    def draw(size):
        m = max(2, int(round(fraction * size)))
        return rng.choice(size, size=m, replace=replace)

    values = []
    for _ in range(n):
        if paired:
            idx = draw(lengths[0])
            sample = [a[idx] for a in arrays]
        else:
            sample = [a[draw(len(a))] for a in arrays]
        values.append(float(metric(*sample)))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    alpha = (1 - level) / 2
    if not len(values):
        return estimate, float("nan"), float("nan")
    low, high = np.quantile(values, [alpha, 1 - alpha])
    if not replace:  # re-centre: keep the spread of the half-samples, not their shift
        shift = estimate - np.median(values)
        low, high = low + shift, high + shift
    return estimate, float(low), float(high)


def layer_profile(
    captures: Mapping[str, Sequence],
    metric,
    *,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    paired: bool = True,
    **boot_kw,
) -> pd.DataFrame:
    """Run metric(s) layer by layer.

    captures: {layer name: tuple of arrays passed to the metric}, in layer order, e.g.
        {"model.language_model.layers.0": (visual (n, d), text (n, d)), ...}
        (`studio.capture.activations.ActivationCache.pairs()` returns this shape).
    metric: a callable returning a float, or {name: callable} for several at once.
    Returns one row per (layer, metric): `layer`, `depth` (0-based position in `captures`), `metric`,
    `value`, and with n_boot > 0 also `ci_low`, `ci_high` (see `bootstrap`; extra keywords go to it).
    """
    metrics = metric if isinstance(metric, Mapping) else {getattr(metric, "__name__", "metric"): metric}
    rows = []
    for depth, (layer, arrays) in enumerate(captures.items()):
        arrays = tuple(arrays) if isinstance(arrays, (tuple, list)) else (arrays,)
        for name, fn in metrics.items():
            row = {"layer": layer, "depth": depth, "metric": name}
            if n_boot > 0:
                row["value"], row["ci_low"], row["ci_high"] = bootstrap(
                    fn, *arrays, n=n_boot, seed=seed, level=level, paired=paired, **boot_kw
                )
            else:
                row["value"] = float(fn(*arrays))
            rows.append(row)
    return pd.DataFrame(rows)


def layer_similarity(representations: Mapping[str, object], metric: Callable = linear_cka) -> pd.DataFrame:
    """Pairwise metric between layers (default linear CKA): {layer: (n, d)} -> square DataFrame.

    Rows of every representation must be the same inputs in the same order.
    """
    names = list(representations)
    out = np.empty((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            out[i, j] = out[j, i] = metric(representations[a], representations[names[j]])
    return pd.DataFrame(out, index=names, columns=names)
