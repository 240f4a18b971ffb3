"""2-D pictures of embeddings: UMAP (umap-learn) or a PCA stand-in, reproducible by seed.

    proj = project({"visual": V, "text": T}, method="umap", seed=0,
                   labels={"text": {"caption": ["faithful", "hallucinated", ...]}})
    fig, axes = plot_projection(proj, hues=("group", "caption"))

All groups are projected jointly (one fit), so distances between groups mean something. Rows are
L2-normalised first by default: the modality gap is defined on normalised embeddings, and Euclidean
distance between unit vectors orders neighbours as cosine similarity does.

umap-learn compiles its numba kernels in every new process: pynndescent caches its own on disk, but
umap 0.5 does not, so even with numba's cache filled the first fit cost about a minute. This module
points numba's disk cache at experiments/cache/numba (ignored by git) and switches caching on for
umap's own kernels (`Dispatcher.enable_caching`). Measured on the shared 2-core machine under heavy
load (500 x 16 points): cold process 92 s import + 36 s first fit; every later process 5-9 s import +
2.5 s first fit (the same as a second fit in one process, 2 s). `warm_up()` pays whatever is left up
front on a tiny problem. Unit tests use method="pca" and never import umap.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from studio import paths

METHODS = ("umap", "pca")
NUMBA_CACHE = paths.CACHE / "numba"

if "numba" not in sys.modules and "NUMBA_CACHE_DIR" not in os.environ:
    # numba reads this when it is first imported; umap and pynndescent mark many kernels cache=True
    os.environ["NUMBA_CACHE_DIR"] = str(NUMBA_CACHE)


@functools.lru_cache(maxsize=1)
def _umap_class():
    """umap.UMAP, imported once per process, with numba's disk cache on for its kernels."""
    import numba

    if not numba.config.CACHE_DIR:  # numba was imported before this module could set the variable
        numba.config.CACHE_DIR = str(NUMBA_CACHE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from umap import UMAP
    _enable_numba_caching()
    return UMAP


def _enable_numba_caching() -> int:
    """Turn on numba's disk cache for umap's own kernels; returns how many were switched on.

    pynndescent marks its kernels cache=True but umap 0.5 does not, so without this every new process
    recompiles umap's layout and graph kernels (most of the ~1 min first fit). `enable_caching()` is
    numba's supported way to add the cache after the fact; the cache lives in NUMBA_CACHE_DIR.
    """
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    count = 0
    for name in ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral", "umap.distances", "umap.sparse"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - optional parts of umap
            continue
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and isinstance(obj._cache, NullCache):
                try:
                    obj.enable_caching()
                    count += 1
                except Exception:  # noqa: BLE001 - a kernel numba cannot cache just compiles as before
                    pass
    return count


def _fit(reducer, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": wanted
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        return reducer.fit_transform(x)


_warm = False


def warm_up(log=print) -> float:
    """Fit UMAP once on 64 random points so that numba's compilation is paid now; returns seconds.

    A no-op (0.0) after the first call in a process.
    """
    global _warm
    if _warm:
        return 0.0
    t0 = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(64, 8))
    _fit(_umap_class()(n_neighbors=5, n_epochs=10, random_state=0, init="random"), x)
    _warm = True
    seconds = time.perf_counter() - t0
    if log:
        log(f"umap warm-up (import + numba compilation): {seconds:.1f} s")
    return seconds


def _stack(arrays_by_group: Mapping[str, object], labels: Mapping[str, Mapping[str, Sequence]] | None):
    if not arrays_by_group:
        raise ValueError("project needs at least one group of embeddings")
    blocks, frames = [], []
    dims = set()
    for group, arr in arrays_by_group.items():
        if hasattr(arr, "detach"):
            arr = arr.detach().cpu().float().numpy()
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"group {group!r}: expected shape (n, d), got {a.shape}")
        dims.add(a.shape[1])
        blocks.append(a)
        frame = pd.DataFrame({"group": group, "index": np.arange(len(a))})
        for col, values in (labels or {}).get(group, {}).items():
            if len(values) != len(a):
                raise ValueError(f"labels[{group!r}][{col!r}] has {len(values)} values for {len(a)} rows")
            frame[col] = list(values)
        frames.append(frame)
    unknown = set(labels or {}) - set(arrays_by_group)
    if unknown:
        raise ValueError(f"labels for unknown group(s) {sorted(unknown)}; groups: {list(arrays_by_group)}")
    if len(dims) != 1:
        raise ValueError(f"all groups must share the dimension d, got {sorted(dims)}")
    return np.concatenate(blocks), pd.concat(frames, ignore_index=True)


def project(
    arrays_by_group: Mapping[str, object],
    method: str = "umap",
    seed: int = 0,
    *,
    labels: Mapping[str, Mapping[str, Sequence]] | None = None,
    normalize: bool = True,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    **umap_kw,
) -> pd.DataFrame:
    """Project every group's rows jointly to 2-D.

    arrays_by_group: {group name: (n_g, d)}, e.g. {"visual": V, "text": T}.
    method: "umap" (umap-learn, random_state=seed, so the same seed gives the same picture) or
        "pca" (deterministic; the stand-in unit tests use).
    labels: optional extra columns per group, {group: {column: n_g values}}; rows of other groups get NaN.
    Returns a DataFrame with one row per input row: group, index (row within its group), x, y and
    the label columns.
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r}: use one of {METHODS}")
    x, frame = _stack(arrays_by_group, labels)
    if normalize:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm > 0, norm, 1.0)
    if method == "pca":
        xc = x - x.mean(0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        vt = vt[:2]
        # fix each axis's sign (largest loading positive) so the picture does not flip between builds
        vt = vt * np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])[:, None]
        xy = xc @ vt.T
        if xy.shape[1] < 2:
            xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    else:
        warm_up(log=None)
        reducer = _umap_class()(
            n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist, random_state=seed, **umap_kw
        )
        xy = _fit(reducer, x)
    frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
    frame.attrs["method"] = method.upper()
    return frame


def plot_projection(
    proj: pd.DataFrame,
    hues: Sequence[str] = ("group",),
    *,
    titles: Sequence[str] | None = None,
    s: float = 6.0,
    alpha: float = 0.7,
    axes=None,
):
    """Scatter a `project` result once per hue column (e.g. "group" = modality, "caption" =
    faithful/hallucinated), side by side, in the project style. Rows with no value for a hue are
    drawn in light grey as context. Colours follow first appearance (the order of the groups given
    to `project`). titles: one per hue (default "by modality" for "group", else "by HUE").
    Returns (fig, axes list)."""
    from studio.figures import figure

    hues = [hues] if isinstance(hues, str) else list(hues)
    for h in hues:
        if h not in proj.columns:
            raise ValueError(f"hue {h!r} is not a column of the projection: {list(proj.columns)}")
    if axes is None:
        fig, axes = figure(len(hues), 1, aspect=1.0 if len(hues) == 1 else 0.55)
    else:
        fig = np.atleast_1d(axes)[0].figure
    axes = list(np.atleast_1d(axes))
    titles = list(titles) if titles is not None else ["by modality" if h == "group" else f"by {h}" for h in hues]
    for k, (ax, hue, title) in enumerate(zip(axes, hues, titles)):
        known = proj[hue].notna()
        if (~known).any():
            ax.scatter(proj.loc[~known, "x"], proj.loc[~known, "y"], s=s, color="0.85", lw=0, label=f"no {hue}")
        for i, (value, part) in enumerate(proj[known].groupby(hue, sort=False)):
            ax.scatter(
                part["x"], part["y"], s=s, alpha=alpha, color=f"C{(i + 2 * k) % 8}", lw=0, label=str(value)
            )  # a new pair of colours per panel: no colour means two things
        ax.set(xticks=[], yticks=[], xlabel=f"{_method_name(proj)} 1", ylabel=f"{_method_name(proj)} 2", title=title)
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=3,
            markerscale=2.5,
            fontsize="small",
            handletextpad=0.2,
            columnspacing=1.0,
        )
    return fig, axes


def _method_name(proj: pd.DataFrame) -> str:
    return proj.attrs.get("method", "dim")
