"""Notebooks are written as py:percent text (reviewable diffs) and paired with their .ipynb.

`studio sync` rewrites each notebooks/NAME.ipynb from notebooks/NAME.py (without outputs, with the
project kernel); tests/test_notebooks.py checks that no pair has drifted. JupyterLab's jupytext
extension keeps both files updated when a notebook is saved from Lab.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat

from studio import paths
from studio.errors import ParameterError

KERNELSPEC = {"name": paths.KERNEL_NAME, "display_name": "Python (studio)", "language": "python"}


def pairs() -> list[tuple[Path, Path]]:
    return [(py, py.with_suffix(".ipynb")) for py in sorted(paths.NOTEBOOKS.glob("*.py"))]


def to_ipynb(py: Path):
    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def cells(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


def sync_all(check: bool = False) -> list[str]:
    """Rewrite (or, with check, compare) every .ipynb from its .py; return the ones that differed."""
    changed = []
    for py, ipynb in pairs():
        nb = to_ipynb(py)
        if ipynb.exists():
            current = nbformat.read(ipynb, as_version=4)
            has_outputs = any(c.get("outputs") for c in current.cells if c.cell_type == "code")
            if cells(current) == cells(nb) and not has_outputs:
                continue
        changed.append(paths.relative(ipynb))
        if not check:
            nbformat.write(nb, ipynb)
    return changed


def current(notebook: str | Path) -> Path:
    """The .ipynb to execute for `notebook` (NAME.py or NAME.ipynb), made to say what NAME.py says.

    The .py is the source. When the pair differs, the .ipynb is rewritten from the .py (as `studio sync`
    does) unless the .ipynb is the newer file: then it holds edits the .py lacks, and the run is refused
    with a message naming `studio sync`, rather than silently running one or losing the other.
    """
    path = Path(notebook)
    py, ipynb = path.with_suffix(".py"), path.with_suffix(".ipynb")
    if path.suffix not in (".py", ".ipynb"):
        raise ParameterError(f"{notebook}: expected a notebook, NAME.ipynb or its paired NAME.py")
    if not py.is_file():
        return ipynb  # a notebook without a text twin (e.g. a user's own): run it as it is
    nb = to_ipynb(py)
    if ipynb.is_file():
        if cells(nbformat.read(ipynb, as_version=4)) == cells(nb):
            return ipynb
        if ipynb.stat().st_mtime > py.stat().st_mtime:
            raise ParameterError(
                f"{paths.relative(ipynb)} was edited after {paths.relative(py)} and they differ; the .py is the "
                f"source: save the notebook from JupyterLab (jupytext updates the .py), or run `studio sync` to "
                f"rewrite the .ipynb from the .py (discarding the .ipynb's edits)"
            )
    nbformat.write(nb, ipynb)
    return ipynb
