"""One way to cache an expensive artefact: keyed by its config and the code that makes it.

    code = code_fingerprint("studio.models.frame_encoder")      # that module and every studio module it imports
    folder = cached("frame_encoder", config, build=lambda tmp: train_and_save(config, tmp), code=code)
    model = load_from(folder)

- **Keyed by code, not only by config** (as joblib.Memory hashes a function's code): the key is a hash
  of the config, of the source of the named `studio` modules and of every `studio` module they import,
  directly or inside functions (the import graph is built with grimp, import-linter's engine), and of
  the versions of the numerical packages and the numerics mode (studio.numerics). Editing any of that code makes a new key, so the artefact is
  rebuilt; editing a notebook, a plotting helper or a study's verdicts changes no key.
- **Checksummed**: `build` writes into a temporary folder; then every file's size and sha256 go to
  CHECKSUMS.json, and the folder is renamed into place atomically. Each reuse verifies the files; a bad
  entry (truncated, zeroed, missing a file) is named, moved aside to KEY.bad-TIME and rebuilt.
- **Built once under a lock** (the `filelock` package): concurrent sweep workers wait for the builder.
  Temporary folders left by killed builders are removed before the next build.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType

from filelock import FileLock

from studio import numerics, paths
from studio.errors import CacheError
from studio.repro import package_versions, stable_hash

CHECKSUMS = "CHECKSUMS.json"
PACKAGE = "studio"
# Their versions change numbers, so they are part of every code fingerprint.
NUMERICAL_PACKAGES = ("torch", "lightning", "numpy", "scipy", "scikit-learn", "transformers", "tokenizers")


@functools.lru_cache(maxsize=1)
def _graph():
    import grimp

    return grimp.build_graph(PACKAGE, cache_dir=None)


def _module_name(item) -> str:
    if isinstance(item, ModuleType):
        return item.__name__
    if isinstance(item, str):
        return item.split(":")[0]  # "module:function" as sweep targets are written
    if hasattr(item, "__module__"):
        return item.__module__
    raise TypeError(f"code_fingerprint takes module names, modules or functions, got {item!r}")


def code_modules(*modules) -> list[str]:
    """The `studio` modules behind `modules`: themselves and everything they import, transitively."""
    graph = _graph()
    out: set[str] = set()
    for item in modules:
        name = _module_name(item)
        if name not in graph.modules:
            raise ValueError(f"code_fingerprint: {name!r} is not a module of the {PACKAGE} package")
        out.add(name)
        out |= graph.find_upstream_modules(name)
    return sorted(m for m in out if m == PACKAGE or m.startswith(PACKAGE + "."))


@functools.lru_cache(maxsize=256)
def _fingerprint(names: tuple[str, ...], numerics_key: str) -> str:
    h = hashlib.sha256()
    for name in code_modules(*names):
        origin = importlib.util.find_spec(name).origin
        h.update(name.encode() + b"\0" + Path(origin).read_bytes() + b"\0")
    h.update(json.dumps(package_versions(NUMERICAL_PACKAGES), sort_keys=True).encode())
    h.update(numerics_key.encode())  # portable and fast results differ
    return h.hexdigest()[:16]


def code_fingerprint(*modules) -> str:
    """A short hash of the source of `modules` (names, modules or functions) and of what they import."""
    if not modules:
        raise ValueError("code_fingerprint needs at least one module")
    return _fingerprint(tuple(sorted({_module_name(m) for m in modules})), json.dumps(numerics.key(), sort_keys=True))


def cache_key(config: Mapping, code: str) -> str:
    return stable_hash({"config": dict(config), "code": code}, 16)


def _files(folder: Path) -> Iterable[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(folder: Path) -> None:
    sums = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in _files(folder)}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")


# Folders this process has verified in full, with the size and mtime of each file then: a sweep worker
# reuses one feature bank (hundreds of MB) for many cells and need not hash it for every one.
_verified: dict[Path, tuple] = {}


def _stamp(folder: Path, names) -> tuple:
    return tuple((n, (folder / n).stat().st_size, (folder / n).stat().st_mtime_ns) for n in sorted(names))


def _first_link(folder: Path) -> str | None:
    if folder.is_symlink():
        return "the entry itself"
    for p in sorted(folder.rglob("*")):  # rglob does not descend into linked folders
        if p.is_symlink():
            return p.relative_to(folder).as_posix()
    return None


def verify(folder: Path) -> str | None:
    """None when every file matches CHECKSUMS.json, else what is wrong (naming the file).

    The first check in a process hashes every file; later ones in the same process compare sizes and
    modification times with that check's (a file rewritten since is hashed again). A symbolic link
    anywhere in the entry is refused: the builder writes only regular files, and a link would make
    the checksums vouch for whatever it points at (outside the project, say)."""
    link = _first_link(folder)
    if link is not None:
        return f"{link} is a symbolic link (cache entries hold only regular files)"
    try:
        sums = json.loads((folder / CHECKSUMS).read_text())
    except FileNotFoundError:
        return f"{CHECKSUMS} is missing"
    except (OSError, ValueError) as e:
        return f"{CHECKSUMS} is unreadable ({e})"
    if not isinstance(sums, dict):
        return f"{CHECKSUMS} is not a mapping"
    try:
        if _verified.get(folder) == _stamp(folder, sums):
            return None
    except OSError:
        pass  # a file is missing: the full check below names it
    for rel, want in sorted(sums.items()):
        p = folder / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != want.get("bytes"):
            return f"{rel} has {p.stat().st_size} bytes, {want.get('bytes')} were written"
        if _sha256(p) != want.get("sha256"):
            return f"{rel} does not match its checksum"
    _verified[folder] = _stamp(folder, sums)
    return None


def _remove_stale_builds(folder: Path) -> None:
    # Under the entry's lock no live process is building this key, so any temporary build is a leftover.
    for tmp in folder.parent.glob(folder.name + ".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def move_aside(folder: Path, reason: str, log: Callable[[str], None] = print) -> Path:
    aside = folder.with_name(f"{folder.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(folder, aside)
    log(f"cache: {paths.relative(folder)}: {reason}; moved aside to {aside.name}, rebuilding")
    return aside


def cached(
    kind: str,
    config: Mapping,
    build: Callable[[Path], object],
    *,
    code: str,
    root: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The folder CACHE/kind/KEY holding what `build(folder)` wrote for this config and code.

    kind: a name for the artefact family (a folder under the cache root).
    config: JSON-able mapping of everything that changes the artefact.
    build: writes the artefact's files into the folder it is given (a temporary one).
    code: `code_fingerprint(...)` of the modules that make it.
    """
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"cache kind must be a plain name, got {kind!r}")
    folder = Path(root or paths.CACHE) / kind / cache_key(config, code)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if folder.is_dir() or folder.is_symlink():
            problem = verify(folder)
            if problem is None:
                return folder
            move_aside(folder, problem, log)
        _remove_stale_builds(folder)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        try:
            build(tmp)
            (tmp / "config.json").write_text(
                json.dumps({"kind": kind, "config": dict(config), "code": code}, indent=1, sort_keys=True, default=str)
                + "\n"
            )
            write_checksums(tmp)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder


def load_checked(folder: Path, load: Callable[[Path], object]):
    """`load(folder)`, turning a reader's error into a CacheError that names the folder."""
    try:
        return load(folder)
    except Exception as e:  # safetensors, numpy and torch each raise their own types for a bad file
        raise CacheError(
            f"cannot read the cached artefact {paths.relative(folder)}: {type(e).__name__}: {e}; "
            f"delete that folder to rebuild it"
        ) from e
