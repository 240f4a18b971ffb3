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
