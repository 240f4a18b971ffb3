"""`studio run`: execute a notebook with papermill into a run folder and record its provenance.

A run goes into a new folder experiments/runs/NAME/<UTC time>-<params hash>/ holding the executed
notebook, params.yaml and provenance.json. It executes what notebooks/NAME.py says (the pair is synced
first, studio.workbench.notebooks.current). Nothing outside the run folder is written by a run; only a
successful `studio figures` (studio.workbench.regenerate) publishes a run's figures into figures/.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from studio import paths
from studio.repro import atomic_write_text, environment, git_state, sha256_file, stable_hash
from studio.workbench.notebooks import current
from studio.workbench.params import read_notebook, resolve


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

    def __reduce__(self):  # crosses process boundaries in `studio figures --jobs N`
        return type(self), (str(self), self.run_dir)


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM, `timeout`, `kill`) during a run: recorded as `interrupted`, like Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated(f"signal {signum}")


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


def kernel_manager_class():
    """nbclient's kernel manager, asking for CurveZMQ transport encryption where pyzmq has it.

    A kernel listens on loopback TCP ports: without encryption any local user could read or send code,
    and the kernel prints a warning saying so into every run's output. jupyter_client provisions the
    keys ("auto": when the kernelspec declares support, as ipykernel's do); a pyzmq built without
    libsodium keeps the plain transport (and the warning) rather than failing the run."""
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    if not zmq.has("curve"):
        return AsyncKernelManager

    class EncryptedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport_encryption = "auto"

    return EncryptedKernelManager


def _new_run_dir(name: str, params_hash: str, runs_root: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = runs_root / name / f"{stamp}-{params_hash}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):  # two runs in one second with the same parameters take the next suffix
        run_dir = base if i == 0 else base.with_name(f"{base.name}.{i}")
        try:
            run_dir.mkdir()  # atomic: of two processes racing for a name, exactly one gets it
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder name under {base.parent}")


def prepare(notebook: str | Path, profile: str | None = None, files=(), overrides: dict | None = None):
    """Everything that can be refused is checked here, before a folder or a kernel exists."""
    path = Path(notebook)
    if not path.is_absolute():
        path = (paths.ROOT / path) if not path.exists() else path.resolve()
    if path.suffix in (".py", ".ipynb") and path.with_suffix(".py").is_file():
        path = current(path)  # execute what NAME.py says
    spec = read_notebook(path)
    params = resolve(spec, profile, files, overrides)
    return spec, params


def run_notebook(
    notebook: str | Path,
    profile: str | None = None,
    files=(),
    overrides: dict | None = None,
    *,
    runs_root: Path | None = None,
    progress: bool = True,
) -> RunResult:
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
        "notebook_sha256": sha256_file(spec.path),  # identifies the code that ran, in or out of the repo
        "profile": profile,
        "params_hash": params_hash,
        "seed": params.get("seed"),
        "status": "running",
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "git": code_state(),
        **environment(),
    }
    _write_provenance(run_dir, provenance)
    env_before = os.environ.get(paths.RUN_DIR_ENV)
    os.environ[paths.RUN_DIR_ENV] = str(run_dir)  # the kernel inherits it: save_figure writes here
    t0 = time.perf_counter()
    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        pm.execute_notebook(
            str(spec.path),
            str(output),
            parameters=params,
            kernel_name=kernel,
            cwd=str(paths.ROOT),
            progress_bar=progress,
            request_save_on_cell_execute=True,
            kernel_manager_class=kernel_manager_class(),
        )
    except PapermillExecutionError as e:
        provenance.update(
            status="failed",
            error={"cell_index": e.cell_index, "execution_count": e.exec_count, "ename": e.ename, "evalue": e.evalue},
        )
        message = (
            f"{spec.name}: cell {e.cell_index} (execution count {e.exec_count}) raised "
            f"{e.ename}: {e.evalue}\n  executed notebook: {paths.relative(output)}"
        )
        raise RunFailed(message, run_dir) from None
    except KeyboardInterrupt:
        provenance.update(status="interrupted")
        raise
    except Exception as e:  # kernel died, papermill could not start, ...
        provenance.update(status="failed", error={"ename": type(e).__name__, "evalue": str(e)})
        raise RunFailed(
            f"{spec.name}: {type(e).__name__}: {e}\n  run folder: {paths.relative(run_dir)}", run_dir
        ) from e
    else:
        provenance.update(status="ok")
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        provenance["seconds"] = round(time.perf_counter() - t0, 2)
        provenance["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_provenance(run_dir, provenance)
        if env_before is None:
            os.environ.pop(paths.RUN_DIR_ENV, None)
        else:
            os.environ[paths.RUN_DIR_ENV] = env_before
    return RunResult(spec.name, run_dir, params, params_hash, profile, provenance)


def _write_provenance(run_dir: Path, provenance: dict) -> None:
    atomic_write_text(run_dir / "provenance.json", json.dumps(provenance, indent=2, default=str) + "\n")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def code_state() -> dict:
    """The commit, and whether the code differs from it: studio.repro.git_state, except that changes
    to what `studio figures` itself writes (figures/, the README's generated sections) do not count,
    so that a figure published earlier in a run does not mark the next notebook's run as dirty.

    (Here and not in studio.repro: every cached artefact's key covers repro's source, so an edit
    there reruns every sweep cell and model.)
    """
    import subprocess

    state = git_state()
    if state.get("dirty"):
        out = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)figures",
                ":(exclude)README.md",
            ],
            cwd=paths.ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode == 0:
            state["dirty"] = bool(out.stdout.strip())
    return state
