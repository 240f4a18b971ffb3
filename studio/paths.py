"""Every path the workbench uses, made in one place.

Nothing else in `studio` guesses locations from the working directory: notebooks, the runner, the
sweeps and the tests all ask this module. Set STUDIO_ROOT to point the workbench at another checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from studio.errors import PathError  # noqa: F401  (raised here; re-exported for callers)

ROOT = Path(os.environ.get("STUDIO_ROOT", Path(__file__).resolve().parent.parent)).resolve()
NOTEBOOKS = ROOT / "notebooks"
EXPERIMENTS = ROOT / "experiments"
SWEEP_CONFIGS = EXPERIMENTS / "sweeps"  # experiments/sweeps/NAME.yaml
# Where things are written. Each can be moved by an environment variable: the tests point all three
# at a temporary folder so that they never touch (or trust) a user's real runs and caches.
RUNS = Path(os.environ.get("STUDIO_RUNS", EXPERIMENTS / "runs")).resolve()
SWEEPS = Path(os.environ.get("STUDIO_SWEEPS", EXPERIMENTS / "sweeps")).resolve()  # outputs: SWEEPS/NAME/PROFILE/
CACHE = Path(os.environ.get("STUDIO_CACHE", EXPERIMENTS / "cache")).resolve()  # artefacts keyed by config + code
FIGURES = ROOT / "figures"
MANIFEST = FIGURES / "MANIFEST"
README = ROOT / "README.md"  # its gallery section is written from the MANIFEST (studio.workbench.readme)
SCRATCH = EXPERIMENTS / "scratch"  # where notebooks opened by hand in JupyterLab save their figures
SHARED = Path(os.environ.get("STUDIO_SHARED", ROOT.parent / "shared")).resolve()
SHARED_DATA = SHARED / "data"
CHINCHILLA_CSV = SHARED_DATA / "chinchilla" / "svg_extracted_data.csv"

KERNEL_NAME = "studio"

# Set by the runner for the kernel it starts: where this run's figures and tables go.
RUN_DIR_ENV = "STUDIO_RUN_DIR"


def inside_project(path: str | os.PathLike, *, must_exist: bool = False) -> Path:
    """Resolve `path` (relative paths are taken from the repo root) and refuse it outside the project.

    Used for everything the workbench writes, so that no parameter can make it write elsewhere.
    """
    p = Path(path)
    p = (ROOT / p if not p.is_absolute() else p).resolve()
    if p != ROOT and ROOT not in p.parents:
        raise PathError(f"{path!s} is outside the project ({ROOT}); outputs must stay inside it")
    if must_exist and not p.exists():
        raise PathError(f"{path!s} does not exist")
    return p


def input_path(path: str | os.PathLike) -> Path:
    """Resolve a file the user asks us to read (their own CSV may live anywhere); it must exist."""
    p = Path(path).expanduser()
    p = (ROOT / p if not p.is_absolute() else p).resolve()
    if not p.is_file():
        raise PathError(f"{path!s} is not a file (resolved to {p})")
    return p


def run_dir() -> Path | None:
    """The run folder of the current `studio run`, or None when a notebook is opened by hand."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def figure_output_dir() -> Path:
    """Where `save_figure` writes: the run's figures/ under `studio run`, else experiments/scratch."""
    rd = run_dir()
    out = (rd / "figures") if rd is not None else SCRATCH / "figures"
    out.mkdir(parents=True, exist_ok=True)
    return out


def relative(path: str | os.PathLike) -> str:
    """A path as shown to users and written into manifests: relative to the repo root when inside."""
    p = Path(path).resolve()
    try:
        return p.relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)
