"""figures/MANIFEST: each published figure, the notebook, profile, parameters and commit that made it.

Every read-modify-write of the MANIFEST happens under one lock (the `filelock` package) and merges only
the entries of the run being published, so two `studio figures` at once (different notebooks) keep
each other's entries. Files a stale entry lists are removed only when they resolve inside figures/.

A publish is one step for a reader: the run's files and the MANIFEST that names them are first copied
into figures/.publish/; a journal written there (atomically) is the commit point; then each file is
renamed into figures/ and the MANIFEST last, stale files are removed and the journal goes. A kill
before the journal leaves figures/ as it was (the next publish discards the staged copies); a kill after
it leaves a journal that `studio figures --check` names as an interrupted publish and that the next
`studio figures` (any publish, under the lock) completes. The MANIFEST records the sha256 of each
figure's CSV, PNG and PDF, so --check notices a published file replaced or removed by hand.
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
STAGING = ".publish"  # inside figures/, so that each rename into place stays on one file system
JOURNAL = "journal.json"
MANIFEST_FILE = "MANIFEST"  # the staged MANIFEST's name in the journal (no figure is called that)


def _lock() -> FileLock:
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    return FileLock(str(paths.FIGURES / ".MANIFEST.lock"))


@contextmanager
def locked():
    """Hold the MANIFEST lock (no publish runs meanwhile); figures/ is not created when it is absent."""
    if not paths.FIGURES.is_dir():
        yield
        return
    with _lock():
        yield


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


def _manifest_text(entries: dict) -> str:
    return HEADER + yaml.safe_dump({"figures": dict(sorted(entries.items()))}, sort_keys=False, width=100)


def write_manifest(entries: dict) -> None:
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.MANIFEST, _manifest_text(entries))


@contextmanager
def updating():
    """Hold the MANIFEST lock; complete an interrupted publish; yield the current entries; write them
    back when the block succeeds and they differ from the MANIFEST (publish writes its own)."""
    with _lock():
        recover()
        entries = read_manifest()
        yield entries
        if entries != read_manifest():
            write_manifest(entries)


def _target(name: str) -> Path:
    return paths.MANIFEST if name == MANIFEST_FILE else paths.FIGURES / name


def _journal() -> dict | None:
    journal = paths.FIGURES / STAGING / JOURNAL
    if not journal.is_file():
        return None
    try:
        return json.loads(journal.read_text())
    except (OSError, ValueError):  # written atomically, so only a hand edit gets here
        raise ParameterError(
            f"{paths.relative(journal)} is unreadable; remove {paths.relative(journal.parent)} and rerun `studio figures`"
        ) from None


def interrupted() -> dict | None:
    """The journal of a publish that was committed but not completed (killed while renaming its files
    into figures/): {"notebook", "figures": [names], "files", "delete"}; None when there is none."""
    record = _journal()
    if record is None:
        return None
    staging = paths.FIGURES / STAGING
    return record if any((staging / f).exists() for f in record.get("files", [])) else None


def recover() -> str | None:
    """Complete a publish that a kill interrupted after its commit point; discard one staged before it.

    Call under the lock. Returns the interrupted publish's notebook, None when there was nothing to do.
    """
    staging = paths.FIGURES / STAGING
    record = _journal()
    if record is None:
        if staging.exists():  # killed before the commit point: figures/ still holds the old set
            shutil.rmtree(staging)
        return None
    pending = interrupted() is not None
    _complete(record)
    return record.get("notebook") if pending else None


def _complete(record: dict) -> None:
    """Rename the staged files into figures/ (the MANIFEST last), remove stale ones, drop the journal.
    Idempotent: a file already renamed is skipped, so a kill during this is completed by rerunning it."""
    staging = paths.FIGURES / STAGING
    for name in record.get("files", []):
        src = staging / name
        if src.exists():
            os.replace(src, _target(name))
    for rel in record.get("delete", []):
        (paths.FIGURES / rel).unlink(missing_ok=True)
    (staging / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


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
    """Publish one successful run's figures and the MANIFEST naming them, as one step; update `entries`.

    Call under the lock with the entries `updating()` yields (a RunResult's outputs replace that
    notebook's entries, others are kept). A kill at any point leaves either the old set (nothing
    committed yet) or a journal that the next publish completes; see the module's docstring.
    """
    if _journal() is not None:  # a publish a kill interrupted: complete it first, then merge into it
        recover()
        entries.clear()
        entries.update(read_manifest())
    made = outputs(result.figures_dir)
    git = result.provenance.get("git", {})
    notebook = result.provenance["notebook"]
    stale = {n: e for n, e in entries.items() if e.get("notebook") == notebook and n not in made}
    doomed = [_inside_figures(n, f) for n, e in stale.items() for f in e.get("files", [])]  # check all first
    staging = paths.FIGURES / STAGING
    if staging.exists():  # copies a kill left before its commit point
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    staged: list[str] = []
    try:
        for name, info in made.items():
            files, hashes = [], {}
            for ext in EXTENSIONS:
                src = result.figures_dir / f"{name}.{ext}"
                if src.exists():
                    _copy_synced(src, staging / src.name)
                    staged.append(src.name)
                    files.append(paths.relative(paths.FIGURES / src.name))
                    hashes[ext] = sha256_file(staging / src.name)
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
                "csv_sha256": hashes.get("csv") or sha256_file(result.figures_dir / f"{name}.csv"),
                **{f"{ext}_sha256": hashes[ext] for ext in ("png", "pdf") if ext in hashes},
                **({"tolerance": info["tolerance"]} if info.get("tolerance") else {}),
            }
        for name in stale:
            del entries[name]
        atomic_write_text(staging / MANIFEST_FILE, _manifest_text(entries))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = {_target(f).resolve() for f in staged}
    figures = paths.FIGURES.resolve()
    record = {
        "notebook": notebook,
        "figures": sorted(set(made) | set(stale)),
        "files": staged + [MANIFEST_FILE],  # the MANIFEST last: it names the files renamed before it
        "delete": sorted(str(t.relative_to(figures)) for t in set(doomed) - written),
    }
    atomic_write_text(staging / JOURNAL, json.dumps(record, indent=1) + "\n")  # the commit point
    _complete(record)
    return entries


IDENTICAL, WITHIN, CHANGED = "identical", "within spread", "changed"
ROUNDING = 1e-5  # relative: the CSVs keep 6 significant digits (studio.figures.CSV_FLOAT_FORMAT)


def _outcomes(table):
    """claim -> outcome ("verdict" in tables written before the four outcomes)."""
    column = "outcome" if "outcome" in table.columns else "verdict"
    return table.set_index("claim")[column]


def _verdict_changes(old, new) -> list[str]:
    old, new = _outcomes(old), _outcomes(new)
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


def integrity(name: str, entry: dict) -> list[str]:
    """What is wrong with figure `name`'s published files against its MANIFEST entry ([] when nothing):
    a file it lists is missing, or a file's sha256 differs from the one recorded (an edit, or another
    figure's file copied over it). Entries written before images were hashed have only csv_sha256; their
    images are checked for presence, and the next publish records their hashes."""
    problems = []
    listed = {Path(f).suffix.lstrip("."): f for f in entry.get("files", [])}
    for ext in EXTENSIONS:
        rel = listed.get(ext, f"{paths.relative(paths.FIGURES)}/{name}.{ext}")
        path = paths.ROOT / rel
        recorded = entry.get(f"{ext}_sha256")
        if ext not in listed and recorded is None:
            continue
        if not path.is_file():
            problems.append(f"{rel} is missing (the MANIFEST lists it)")
        elif recorded is not None and recorded != sha256_file(path):
            what = "edited" if ext == "csv" else "replaced or edited"
            problems.append(f"{rel} was {what} after it was published (sha256 differs from the MANIFEST)")
    return problems


def interrupted_detail(record: dict) -> str:
    return (
        f"a `studio figures` publishing {record.get('notebook', '?')} was interrupted: "
        f"{paths.relative(paths.FIGURES / STAGING)} holds the rest of it; run `studio figures` to complete it"
    )


def compare(result, entries: dict, pending: dict | None = None) -> list[tuple[str, str, str]]:
    """[(figure, IDENTICAL | WITHIN | CHANGED, detail)] for a fresh run against the MANIFEST.

    Data: the run's CSV against the published one (classify). Integrity: each published file against
    the sha256 its entry records (integrity). Images are never compared with the run's: their bytes
    need not repeat across matplotlib and font versions, and the CSV holds what they show. `pending`
    (interrupted()): figures of an interrupted publish are reported as that, not as edits.
    """
    out = []
    made = outputs(result.figures_dir)
    notebook = result.provenance["notebook"]
    half_published = set(pending.get("figures", [])) if pending else set()
    for name, info in made.items():
        new_csv = result.figures_dir / f"{name}.csv"
        old_csv = paths.FIGURES / f"{name}.csv"
        entry = entries.get(name)
        if name in half_published:
            out.append((name, CHANGED, interrupted_detail(pending)))
        elif entry is None:
            out.append((name, CHANGED, "new (not in MANIFEST)"))
        elif damaged := integrity(name, entry):
            out.append((name, CHANGED, "; ".join(damaged)))
        elif not old_csv.is_file():
            out.append((name, CHANGED, f"figures/{name}.csv is missing"))
        else:
            status, detail = classify(old_csv, new_csv, info.get("kind", "figure"), info.get("tolerance"))
            saved = {ext for ext in EXTENSIONS if (result.figures_dir / f"{name}.{ext}").exists()}
            published = {Path(f).suffix.lstrip(".") for f in entry.get("files", [])}
            if saved != published:
                status = CHANGED
                detail = "; ".join(
                    filter(None, [detail, f"files: published {sorted(published)}, this run saves {sorted(saved)}"])
                )
            if status != IDENTICAL:
                detail += f"; compare figures/{name}.csv with {paths.relative(new_csv)}"
            out.append((name, status, detail))
    for name, entry in entries.items():
        if entry.get("notebook") == notebook and name not in made and name not in half_published:
            out.append((name, CHANGED, "in MANIFEST but no longer produced"))
    return out
