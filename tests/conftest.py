"""Shared fixtures. Tests build the real configuration and shrink it (no separate test configs)."""
from __future__ import annotations

import os

import pytest

from studio import paths

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def chinchilla_csv():
    if not paths.CHINCHILLA_CSV.exists():
        pytest.skip(f"reference data missing: {paths.CHINCHILLA_CSV}")
    return paths.CHINCHILLA_CSV
