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

from studio import paths  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def chinchilla_csv():
    if not paths.CHINCHILLA_CSV.exists():
        pytest.skip(f"reference data missing: {paths.CHINCHILLA_CSV}")
    return paths.CHINCHILLA_CSV
