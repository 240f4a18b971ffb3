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
        raise ParameterError(f"{paths.relative(paths.MANIFEST)} is not valid YAML ({e}); restore it with "
                             f"`git checkout {paths.relative(paths.MANIFEST)}`") from None
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
        raise ParameterError(f"MANIFEST entry {name!r} lists {rel!r}, which is not inside figures/; nothing was "
                             f"deleted: fix or remove that entry in {paths.relative(paths.MANIFEST)}")
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
        }
    return entries


def _verdict_changes(old_csv: Path, new_csv: Path) -> list[str]:
    import pandas as pd

    try:
        old = pd.read_csv(old_csv).set_index("claim")["verdict"]
    except (OSError, KeyError, ValueError):
        return []
    new = pd.read_csv(new_csv).set_index("claim")["verdict"]
    return [f"{claim!r}: {old.get(claim, 'absent')} -> {new.get(claim, 'absent')}"
            for claim in sorted(set(old.index) | set(new.index)) if old.get(claim) != new.get(claim)]


def compare(result, entries: dict) -> list[str]:
    """Differences between a fresh run's figure data and the MANIFEST (empty: nothing changed)."""
    problems = []
    made = outputs(result.figures_dir)
    notebook = result.provenance["notebook"]
    for name, info in made.items():
        new_csv = result.figures_dir / f"{name}.csv"
        old = entries.get(name, {}).get("csv_sha256")
        if old is None:
            problems.append(f"{name}: new (not in MANIFEST)")
        elif old != sha256_file(new_csv):
            line = (f"{name}: data changed (csv sha256 {old[:12]} -> {sha256_file(new_csv)[:12]}; compare "
                    f"figures/{name}.csv with {paths.relative(new_csv)})")
            if info.get("kind") == "verdicts":
                moved = _verdict_changes(paths.FIGURES / f"{name}.csv", new_csv)
                line += "; verdicts " + ("changed: " + "; ".join(moved) if moved else "unchanged")
            problems.append(line)
    for name, entry in entries.items():
        if entry.get("notebook") == notebook and name not in made:
            problems.append(f"{name}: in MANIFEST but no longer produced")
    return problems
