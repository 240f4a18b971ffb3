"""Shared fixtures. Tests build the real configuration and shrink it (no separate test configs)."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before studio.paths is imported: runs, sweep outputs and caches of the whole test session go to a
# temporary folder, never to the user's experiments/ (a test must not reuse, or damage, real results).
_SESSION_ROOT = tempfile.mkdtemp(prefix="studio-tests-")
for _var, _sub in (("STUDIO_RUNS", "runs"), ("STUDIO_SWEEPS", "sweeps"), ("STUDIO_CACHE", "cache")):
    os.environ.setdefault(_var, os.path.join(_SESSION_ROOT, _sub))

# Tests run many tiny forward passes in-process, one pytest worker per core (`make test`): one thread
# each, not portable mode's two (two threads per worker on shared cores spin-wait, up to 50x slower for
# a tiny model's step). Notebook kernels and subprocesses the tests start keep portable mode's count.
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from studio import paths  # noqa: E402

torch.set_num_threads(1)
threadpool_limits(1)

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def chinchilla_csv():
    if not paths.CHINCHILLA_CSV.exists():
        pytest.skip(f"reference data missing: {paths.CHINCHILLA_CSV}")
    return paths.CHINCHILLA_CSV


@pytest.fixture
def sweep_project(tmp_path, monkeypatch):
    """A throw-away project root, so that sweeps write nothing into the checkout."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.setattr(paths, "ROOT", root)
    monkeypatch.setattr(paths, "SWEEPS", root / "experiments" / "sweeps")
    return root


def toy(**overrides) -> dict:
    """A toy sweep config (no training): 2 x 2 cells of studio.sweep.toy:toy_target."""
    cfg = {
        "name": "t",
        "target": "studio.sweep.toy:toy_target",
        "base": {"frames": 4, "tokens_per_frame": 4, "steps": 3, "seed": 0},
        "grid": {"frames": [1, 4], "tokens_per_frame": [1, 4]},
    }
    cfg.update(overrides)
    return cfg


def run_toy(cfg, out, **kw):
    from studio import sweep

    return sweep.run_sweep(cfg, out=out, progress=False, **kw)
