"""figures/MANIFEST: each published figure, the notebook, profile, parameters and commit that made it.

Every read-modify-write of the MANIFEST happens under one lock (the `filelock` package) and merges only
the entries of the run being published, so two `studio figures` at once (different notebooks) keep
each other's entries. Files a stale entry lists are removed only when they resolve inside figures/.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import yaml
from filelock import FileLock

from studio import paths
from studio.errors import ParameterError
from studio.figures import INDEX_FILE
from studio.repro import atomic_write_text, sha256_file
from studio.tolerance import allowed as tolerance_allowed
from studio.tolerance import describe as describe_tolerance

HEADER = "# Written by `studio figures`: each figure, the notebook, parameters and commit that made it.\n"
EXTENSIONS = ("png", "pdf", "csv")


def _lock() -> FileLock:
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    return FileLock(str(paths.FIGURES / ".MANIFEST.lock"))


def read_manifest() -> dict:
    """The MANIFEST's entries by figure name ({} when there is none); a malformed file is one clear error."""
    if not paths.MANIFEST.exists():
        return {}
    try:
        data = yaml.safe_load(paths.MANIFEST.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParameterError(
            f"{paths.relative(paths.MANIFEST)} is not valid YAML ({e}); restore it with "
            f"`git checkout {paths.relative(paths.MANIFEST)}`"
        ) from None
    entries = data.get("figures", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ParameterError(f"{paths.relative(paths.MANIFEST)}: expected a mapping `figures: {{name: entry}}`")
    return entries


def write_manifest(entries: dict) -> None:
    body = yaml.safe_dump({"figures": dict(sorted(entries.items()))}, sort_keys=False, width=100)
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.MANIFEST, HEADER + body)


@contextmanager
def updating():
    """Hold the MANIFEST lock; yield its current entries; write them back when the block succeeds."""
    with _lock():
        entries = read_manifest()
        yield entries
        write_manifest(entries)


def outputs(figures_dir: Path) -> dict:
    """What a run saved: {name: {"caption", "kind"}} from the run's figures index."""
    index_path = figures_dir / INDEX_FILE
    return json.loads(index_path.read_text()) if index_path.exists() else {}


def _inside_figures(name: str, rel: str) -> Path:
    target = (paths.ROOT / rel).resolve()
    if paths.FIGURES.resolve() not in target.parents:
        raise ParameterError(
            f"MANIFEST entry {name!r} lists {rel!r}, which is not inside figures/; nothing was "
            f"deleted: fix or remove that entry in {paths.relative(paths.MANIFEST)}"
        )
    return target


def publish(result, entries: dict) -> dict:
    """Copy one successful run's figures into figures/ and update `entries` (a RunResult's outputs only)."""
    made = outputs(result.figures_dir)
    git = result.provenance.get("git", {})
    notebook = result.provenance["notebook"]
    stale = {n: e for n, e in entries.items() if e.get("notebook") == notebook and n not in made}
    doomed = [_inside_figures(n, f) for n, e in stale.items() for f in e.get("files", [])]  # check all first
    for target in doomed:
        target.unlink(missing_ok=True)
    for name in stale:
        del entries[name]
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    for name, info in made.items():
        files = []
        for ext in EXTENSIONS:
            src = result.figures_dir / f"{name}.{ext}"
            if src.exists():
                dst = paths.FIGURES / src.name
                tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
                files.append(paths.relative(dst))
        entries[name] = {
            "kind": info["kind"],
            "caption": info["caption"],
            "notebook": notebook,
            "profile": result.profile,
            "params_hash": result.params_hash,
            "seed": result.params.get("seed"),
            "git_commit": git.get("commit"),
            "git_dirty": git.get("dirty"),
            "numerics": result.provenance.get("numerics"),
            "cpu_model": result.provenance.get("cpu_model"),
            "torch_cpu_capability": result.provenance.get("torch_cpu_capability"),
            "run": paths.relative(result.run_dir),
            "files": files,
            "csv_sha256": sha256_file(result.figures_dir / f"{name}.csv"),
            **({"tolerance": info["tolerance"]} if info.get("tolerance") else {}),
        }
    return entries


IDENTICAL, WITHIN, CHANGED = "identical", "within spread", "changed"
ROUNDING = 1e-5  # relative: the CSVs keep 6 significant digits (studio.figures.CSV_FLOAT_FORMAT)


def _verdict_changes(old, new) -> list[str]:
    old, new = old.set_index("claim")["verdict"], new.set_index("claim")["verdict"]
    return [
        f"{claim!r}: {old.get(claim, 'absent')} -> {new.get(claim, 'absent')}"
        for claim in sorted(set(old.index) | set(new.index))
        if old.get(claim) != new.get(claim)
    ]


def classify(old_csv: Path, new_csv: Path, kind: str = "figure", tolerance: dict | None = None) -> tuple[str, str]:
    """(IDENTICAL | WITHIN | CHANGED, what moved) for a figure's data against its published copy.

    WITHIN: the bytes differ, but every number moved less than the tolerance the study declared for its
    column (its measured seed spread) or than the CSV's rounding, and text is the same; a verdict table is
    WITHIN when every claim keeps its verdict. Anything else is CHANGED, naming what moved.
    """
    import numpy as np
    import pandas as pd

    if old_csv.read_bytes() == new_csv.read_bytes():
        return IDENTICAL, ""
    old, new = pd.read_csv(old_csv), pd.read_csv(new_csv)
    if list(old.columns) != list(new.columns) or len(old) != len(new):
        return CHANGED, (
            f"shape {len(old)}x{len(old.columns)} -> {len(new)}x{len(new.columns)}; columns "
            f"gone {sorted(set(old.columns) - set(new.columns))}, new {sorted(set(new.columns) - set(old.columns))}"
        )
    if kind == "verdicts":
        moved = _verdict_changes(old, new)
        return (CHANGED, "verdicts changed: " + "; ".join(moved)) if moved else (WITHIN, "same verdicts")
    tolerance = tolerance or {}
    moved = []
    for col in old.columns:
        a, b = old[col], new[col]
        spec = tolerance.get(col)
        numeric = pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)
        if not numeric and spec is not None:  # per-seed values written as text: "0.989 0.810 1.243"
            a, b, numeric = _numbers(a), _numbers(b), True
            if a is None or b is None or a.shape != b.shape:
                moved.append(f"{col}: text value(s) changed")
                continue
            room = np.repeat(tolerance_allowed(spec, old)[:, None], a.shape[1], axis=1)
        elif numeric:
            a, b = a.to_numpy(float), b.to_numpy(float)
            room = tolerance_allowed(spec, old)
        if numeric:
            allowed = room + ROUNDING * np.maximum(np.abs(a), np.abs(b))
            bad = ~((np.abs(a - b) <= allowed) | (np.isnan(a) & np.isnan(b)))
            if bad.any():
                worst = float(np.nanmax(np.abs(a - b)[bad])) if np.isfinite(np.abs(a - b)[bad]).any() else float("nan")
                limit = f" ({describe_tolerance(spec)})" if spec is not None else " (no tolerance declared)"
                moved.append(f"{col}: {int(bad.sum())} value(s), max |diff| {worst:.3g}{limit}")
        elif not (a.astype(str) == b.astype(str)).all():
            moved.append(f"{col}: {int((a.astype(str) != b.astype(str)).sum())} text value(s)")
    if moved:
        return CHANGED, "; ".join(moved)
    return WITHIN, "numbers within " + ("the declared seed spread" if tolerance else "the CSV's rounding")


def _numbers(column):
    """A text column of space-separated numbers as a (rows, k) array; None if it is not one."""
    import numpy as np

    try:
        rows = [[float(x) for x in str(v).split()] for v in column]
    except ValueError:
        return None
    return np.array(rows, dtype=float) if rows and len({len(r) for r in rows}) == 1 else None


def compare(result, entries: dict) -> list[tuple[str, str, str]]:
    """[(figure, IDENTICAL | WITHIN | CHANGED, detail)] for a fresh run against the MANIFEST."""
    out = []
    made = outputs(result.figures_dir)
    notebook = result.provenance["notebook"]
    for name, info in made.items():
        new_csv = result.figures_dir / f"{name}.csv"
        old_csv = paths.FIGURES / f"{name}.csv"
        entry = entries.get(name)
        if entry is None or not old_csv.is_file():
            out.append((name, CHANGED, "new (not in MANIFEST)"))
        elif entry.get("csv_sha256") != sha256_file(old_csv):
            out.append(
                (
                    name,
                    CHANGED,
                    f"figures/{name}.csv was edited after it was published (sha256 differs from the MANIFEST)",
                )
            )
        else:
            status, detail = classify(old_csv, new_csv, info.get("kind", "figure"), info.get("tolerance"))
            if status != IDENTICAL:
                detail += f"; compare figures/{name}.csv with {paths.relative(new_csv)}"
            out.append((name, status, detail))
    for name, entry in entries.items():
        if entry.get("notebook") == notebook and name not in made:
            out.append((name, CHANGED, "in MANIFEST but no longer produced"))
    return out
