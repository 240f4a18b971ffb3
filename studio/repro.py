"""Seeding and provenance: what a run needs to be repeated exactly."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import subprocess
import sys
from contextlib import contextmanager
from importlib import metadata

import numpy as np

from studio import paths

# The packages whose versions change results; recorded in every run's provenance.json.
TRACKED_PACKAGES = (
    "studio",
    "torch",
    "lightning",
    "transformers",
    "tokenizers",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "seaborn",
    "umap-learn",
    "numba",
    "papermill",
    "submitit",
)

_current_seed: int | None = None


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch (and Lightning's workers through PL_GLOBAL_SEED); return the seed."""
    global _current_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but analyses run without it
        pass
    else:
        torch.manual_seed(seed)
    _current_seed = seed
    return seed


def current_seed() -> int | None:
    return _current_seed


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(root=paths.ROOT) -> dict:
    """The commit and whether the tracked tree differs from it; None where this is no git checkout."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def environment() -> dict:
    from studio import numerics

    return {
        **numerics.describe(),  # numerics mode, CPU model, torch's CPU capability
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
    }


def stable_hash(obj, length: int = 8) -> str:
    """A short hash of a JSON-able object that does not depend on key order."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path, text: str) -> None:
    """Write a file so that a crash leaves either the old file or the new one, never a torn one."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def cpu_threads(n: int | None):
    """Limit torch's and the BLAS libraries' CPU threads to n inside the block (None: no change).

    The tiny models here train faster on one thread (and far faster on a shared machine), and a fixed
    thread count keeps floating-point reductions, and so results, the same from machine to machine.
    """
    if n is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(previous)
