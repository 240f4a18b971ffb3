"""`studio run` and `studio figures`: execute notebooks with papermill, record provenance, refresh figures/.

A run goes into a new folder experiments/runs/NAME/<UTC time>-<params hash>/ holding the executed
notebook, params.yaml and provenance.json. Nothing outside that folder is written by a run; only a
successful `studio figures` copies a run's figures into figures/ and rewrites figures/MANIFEST.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from studio import paths
from studio.figures import INDEX_FILE
from studio.workbench.params import NotebookSpec, ParameterError, list_notebooks, read_notebook, resolve
from studio.repro import atomic_write_text, environment, git_state, sha256_file, stable_hash


class _QuietPapermill(logging.Filter):
    """papermill's own parameter inspection cannot read annotations like `list[int]` and warns about
    every parameter; ours (studio.workbench.params) has already checked them, so those warnings are noise."""

    def filter(self, record):
        msg = record.getMessage()
        return not (msg.startswith("Unable to parse line") or msg.startswith("Passed unknown parameter"))


logging.getLogger("papermill").addFilter(_QuietPapermill())
for _name in ("papermill.parameterize", "papermill.translators", "papermill.inspection"):
    logging.getLogger(_name).addFilter(_QuietPapermill())


class RunFailed(RuntimeError):
    """A notebook cell raised; the message names the cell and the executed notebook."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class RunResult:
    name: str
    run_dir: Path
    params: dict
    params_hash: str
    profile: str | None
    provenance: dict

    @property
    def figures_dir(self) -> Path:
        return self.run_dir / "figures"


def ensure_kernel() -> str:
    """Make sure the project kernel points at this interpreter (installs it into the venv if not)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(paths.KERNEL_NAME)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return paths.KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=paths.KERNEL_NAME, display_name="Python (studio)", prefix=sys.prefix)
    return paths.KERNEL_NAME


def _new_run_dir(name: str, params_hash: str, runs_root: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = runs_root / name / f"{stamp}-{params_hash}"
    run_dir, i = base, 1
    while run_dir.exists():  # two runs in one second with the same parameters
        run_dir, i = base.with_name(f"{base.name}.{i}"), i + 1
    run_dir.mkdir(parents=True)
    return run_dir


def prepare(notebook: str | Path, profile: str | None = None, files=(), overrides: dict | None = None):
    """Everything that can be refused is checked here, before a folder or a kernel exists."""
    path = Path(notebook)
    if not path.is_absolute():
        path = (paths.ROOT / path) if not path.exists() else path.resolve()
    spec = read_notebook(path)
    params = resolve(spec, profile, files, overrides)
    return spec, params


def run_notebook(notebook: str | Path, profile: str | None = None, files=(), overrides: dict | None = None,
                 *, runs_root: Path | None = None, progress: bool = True) -> RunResult:
    """Execute a notebook with checked parameters into a fresh run folder; raise RunFailed on error."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    spec, params = prepare(notebook, profile, files, overrides)
    runs_root = paths.inside_project(runs_root) if runs_root is not None else paths.RUNS
    params_hash = stable_hash({"notebook": spec.name, "params": params})
    kernel = ensure_kernel()
    run_dir = _new_run_dir(spec.name, params_hash, runs_root)
    output = run_dir / f"{spec.name}.ipynb"
    atomic_write_text(run_dir / "params.yaml", yaml.safe_dump(params, sort_keys=True))
    provenance = {
        "notebook": paths.relative(spec.path),
        "profile": profile,
        "params_hash": params_hash,
        "seed": params.get("seed"),
        "status": "running",
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "git": git_state(),
        **environment(),
    }
    _write_provenance(run_dir, provenance)
    env_before = os.environ.get(paths.RUN_DIR_ENV)
    os.environ[paths.RUN_DIR_ENV] = str(run_dir)  # the kernel inherits it: save_figure writes here
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(spec.path), str(output), parameters=params, kernel_name=kernel,
                            cwd=str(paths.ROOT), progress_bar=progress, request_save_on_cell_execute=True)
    except PapermillExecutionError as e:
        provenance.update(status="failed", error={"cell_index": e.cell_index, "execution_count": e.exec_count,
                                                  "ename": e.ename, "evalue": e.evalue})
        message = (f"{spec.name}: cell {e.cell_index} (execution count {e.exec_count}) raised "
                   f"{e.ename}: {e.evalue}\n  executed notebook: {paths.relative(output)}")
        raise RunFailed(message, run_dir) from None
    except KeyboardInterrupt:
        provenance.update(status="interrupted")
        raise
    except Exception as e:  # kernel died, papermill could not start, ...
        provenance.update(status="failed", error={"ename": type(e).__name__, "evalue": str(e)})
        raise RunFailed(f"{spec.name}: {type(e).__name__}: {e}\n  run folder: {paths.relative(run_dir)}",
                        run_dir) from e
    else:
        provenance.update(status="ok")
    finally:
        provenance["wall_time_s"] = round(time.perf_counter() - t0, 2)
        provenance["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_provenance(run_dir, provenance)
        if env_before is None:
            os.environ.pop(paths.RUN_DIR_ENV, None)
        else:
            os.environ[paths.RUN_DIR_ENV] = env_before
    return RunResult(spec.name, run_dir, params, params_hash, profile, provenance)


def _write_provenance(run_dir: Path, provenance: dict) -> None:
    atomic_write_text(run_dir / "provenance.json", json.dumps(provenance, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------- figures

def figure_notebooks(only=None) -> list[NotebookSpec]:
    """Notebooks registered for figures (`figures: true` in experiments/NAME.yaml), upstream first."""
    specs = {s.name: s for s in (read_notebook(p) for p in list_notebooks()) if s.figures}
    if only:
        missing = set(only) - set(specs)
        if missing:
            raise ParameterError(f"not registered for figures: {sorted(missing)}; registered: {sorted(specs)}")
    ordered, seen = [], set()

    def visit(name, stack=()):
        if name in stack:
            raise ParameterError(f"notebooks depend on each other in a cycle: {' -> '.join(stack + (name,))}")
        if name in seen or name not in specs:
            return
        for dep in specs[name].after:
            visit(dep, stack + (name,))
        seen.add(name)
        ordered.append(specs[name])

    for name in sorted(specs):
        visit(name)
    return [s for s in ordered if not only or s.name in only]


def read_manifest() -> dict:
    if not paths.MANIFEST.exists():
        return {}
    return (yaml.safe_load(paths.MANIFEST.read_text()) or {}).get("figures", {}) or {}


def write_manifest(entries: dict) -> None:
    header = "# Written by `studio figures`: each figure, the notebook, parameters and commit that made it.\n"
    body = yaml.safe_dump({"figures": dict(sorted(entries.items()))}, sort_keys=False, width=100)
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.MANIFEST, header + body)


def _outputs(result: RunResult) -> dict:
    index_path = result.figures_dir / INDEX_FILE
    return json.loads(index_path.read_text()) if index_path.exists() else {}


def publish(result: RunResult, manifest: dict) -> dict:
    """Copy one successful run's figures into figures/ and return the updated manifest entries."""
    outputs = _outputs(result)
    git = result.provenance.get("git", {})
    notebook = result.provenance["notebook"]
    paths.FIGURES.mkdir(parents=True, exist_ok=True)  # a fresh clone may have no figures/ yet
    # Figures this notebook made before but no longer makes are removed with their entries.
    for name, entry in list(manifest.items()):
        if entry.get("notebook") == notebook and name not in outputs:
            for f in entry.get("files", []):
                (paths.ROOT / f).unlink(missing_ok=True)
            del manifest[name]
    for name, info in outputs.items():
        files = []
        for ext in ("png", "pdf", "csv"):
            src = result.figures_dir / f"{name}.{ext}"
            if src.exists():
                dst = paths.FIGURES / src.name
                tmp = dst.with_name(dst.name + ".tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
                files.append(paths.relative(dst))
        manifest[name] = {
            "kind": info["kind"],
            "caption": info["caption"],
            "notebook": notebook,
            "profile": result.profile,
            "params_hash": result.params_hash,
            "seed": result.params.get("seed"),
            "git_commit": git.get("commit"),
            "git_dirty": git.get("dirty"),
            "run": paths.relative(result.run_dir),
            "files": files,
            "csv_sha256": sha256_file(result.figures_dir / f"{name}.csv"),
        }
    return manifest


def compare(result: RunResult, manifest: dict) -> list[str]:
    """Differences between a fresh run's figure data and the MANIFEST (empty: nothing changed)."""
    problems = []
    outputs = _outputs(result)
    notebook = result.provenance["notebook"]
    for name in outputs:
        new = sha256_file(result.figures_dir / f"{name}.csv")
        old = manifest.get(name, {}).get("csv_sha256")
        if old is None:
            problems.append(f"{name}: new (not in MANIFEST)")
        elif old != new:
            problems.append(f"{name}: data changed (csv sha256 {old[:12]} -> {new[:12]}; "
                            f"compare figures/{name}.csv with {paths.relative(result.figures_dir / (name + '.csv'))})")
    for name, entry in manifest.items():
        if entry.get("notebook") == notebook and name not in outputs:
            problems.append(f"{name}: in MANIFEST but no longer produced")
    return problems


def run_figures(profile: str = "default", *, check: bool = False, only=None, echo=print) -> int:
    """Run every figure notebook with `profile`; publish (or, with check, compare). Returns an exit code."""
    from tqdm.auto import tqdm

    specs = figure_notebooks(only)
    for spec in specs:  # refuse bad profiles for all notebooks before running any
        resolve(spec, profile)
    manifest = read_manifest()
    problems: list[str] = []
    bar = tqdm(specs, desc=f"figures ({profile})", unit="notebook")
    for spec in bar:
        bar.set_postfix_str(spec.name)
        t0 = time.perf_counter()
        result = run_notebook(spec.path, profile, progress=False)
        if check:
            found = compare(result, manifest)
            problems += found
            echo(f"{spec.name}: {'changed' if found else 'unchanged'} ({time.perf_counter() - t0:.0f} s)")
        else:
            manifest = publish(result, manifest)
            write_manifest(manifest)
            echo(f"{spec.name}: {len(_outputs(result))} figures/tables -> figures/ ({time.perf_counter() - t0:.0f} s)")
    from studio.workbench.readme import update_readme

    if check:
        if update_readme(check=True):
            problems.append("README gallery is stale (python -m studio.workbench.readme rewrites it)")
        for p in problems:
            echo(f"  {p}")
        echo("figures --check: " + ("no change" if not problems else f"{len(problems)} difference(s)"))
        return 1 if problems else 0
    update_readme()
    echo("README gallery updated from figures/MANIFEST")
    return 0
