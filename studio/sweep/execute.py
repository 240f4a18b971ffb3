"""Running a sweep: one folder per run, keyed by its config and its code, and one results table.

    df = run_sweep("experiments/sweeps/toy.yaml", profile="smoke")   # pending runs only; a pandas DataFrame

A run's key is `run_key(config, code)`: a hash of its full config and of `code_fingerprint(target)`
(the source of the target's module and of every `studio` module it imports, studio.cache). Editing
the target, or anything it imports, gives every run a new key, so the runs are redone in new folders;
editing a notebook, a study module or anything else the target does not import changes no key.

A target may declare, as attributes of its function:
- `required_metrics`: the metric names a finished run holds. A metrics.json that is not a mapping
  holding them all (`{}`, `[1, 2]`, a half-written dict) is not a finished run: it is redone, and the
  sweep names it. Without the attribute any non-empty mapping counts.
- `check_config(config)`: raises ValueError (ParameterError) naming the key it refuses. Every run's
  config is checked before any run starts, so a typo is one error, not one failed run per cell.

Each run is trained under a lock (OUT/KEY/run.lock, the `filelock` package): a second sweep on the
same folder first does the runs nobody holds, then waits for the others and, once it has the lock,
finds them finished and skips them.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import functools
import importlib
import importlib.util
import json
import os
import random
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock, Timeout

from studio import paths
from studio.errors import ParameterError, PathError, StudioError
from studio.repro import atomic_write_text, environment, git_state, seed_everything, stable_hash
from studio.sweep import launchers
from studio.sweep.config import SweepConfig, expand, load_config, parse_config

LAUNCHERS = ("local", "submitit")
RUN_FILES = ("config.json", "timing.json", "metrics.json", "error.json")
LOCK = "run.lock"  # held while a process trains the run (see execute_run)
BOOKKEEPING = ("seconds", "code", "run_key")  # the results table's own columns, after config and metrics
_TMP_RE = re.compile(r"\.tmp\.\d+$")  # atomic_write_text's temporary files: NAME.tmp.PID


def run_key(config: dict, code: str) -> str:
    """The name of a run's folder: a hash of its full config (independent of key order) and its code."""
    return stable_hash({"config": config, "code": code}, length=12)


def target_code(spec: str) -> str:
    """The code fingerprint of a target 'module:function': its module and every studio module it imports.

    A target outside the studio package is fingerprinted by its own file only (we cannot follow its imports).
    """
    from studio.cache import code_fingerprint

    module_name = spec.partition(":")[0]
    if module_name == "studio" or module_name.startswith("studio."):
        return code_fingerprint(module_name)
    origin = importlib.util.find_spec(module_name).origin
    return stable_hash({"module": module_name, "source": Path(origin).read_text()}, length=16)


def resolve_target(spec: str) -> Callable[[dict, Path], dict]:
    """Import 'module:function' and return the function; a ParameterError if it cannot."""
    module_name, _, fn_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ParameterError(f"target {spec!r}: cannot import {module_name}: {e}") from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ParameterError(f"target {spec!r}: {module_name} has no function {fn_name!r}")
    return fn


def required_metrics(target) -> tuple[str, ...]:
    """The metric names a finished run of `target` (a function or 'module:function') holds: its
    `required_metrics` attribute, or () when it declares none (or cannot be imported)."""
    if isinstance(target, str):
        try:
            target = resolve_target(target)
        except ParameterError:
            return ()
    return tuple(getattr(target, "required_metrics", ()) or ())


def check_runs(config: SweepConfig, fn, runs: list[dict]) -> None:
    """Hand every run's config to the target's `check_config` (if it has one); the first refusal is
    one ParameterError naming the sweep and, from the target's message, the key."""
    check = getattr(fn, "check_config", None)
    if check is None:
        return
    for run in runs:
        try:
            check(copy.deepcopy(run))
        except (ValueError, TypeError) as e:  # ParameterError is a ValueError
            cell = {k: run.get(k) for k in config.grid}
            which = f" (grid cell {json.dumps(cell)})" if cell else ""
            message = " ".join(str(e).split())  # one line, as the CLI prints it
            raise ParameterError(f"sweep {config.name} ({config.profile_name}): {config.target} refuses the "
                                 f"run config{which}: {message}") from e


def _global_rank() -> int:
    """This process's rank when a launcher (torchrun, srun, Lightning's DDP) started several."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"


def _world_size() -> int:
    for var in ("WORLD_SIZE", "SLURM_NTASKS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def finished(run_dir: Path, required=()) -> tuple[dict | None, str | None]:
    """(metrics, None) when the run finished; (None, None) when it has no metrics.json; (None, why)
    when it has one that is not a finished run's (torn, not a mapping, empty, missing a required key)."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"metrics.json is unreadable ({type(e).__name__})"
    if not isinstance(metrics, dict):
        return None, f"metrics.json is not a mapping ({type(metrics).__name__})"
    missing = [k for k in required if k not in metrics]
    if missing:
        return None, f"metrics.json holds no {', '.join(missing)}"
    if not metrics:
        return None, "metrics.json is empty"
    return metrics, None


def is_done(run_dir: Path, required=()) -> dict | None:
    """The run's metrics when it finished (a mapping holding every `required` key), else None."""
    return finished(run_dir, required)[0]


def execute_run(target: str, config: dict, run_dir: str | Path, launcher: str = "local",
                rank: int | None = None, code: str | None = None, wait: bool = True) -> dict:
    """Run one config in run_dir and record it; return {"status": "done"|"failed"|"skipped"|"busy", ...}.

    config.json records {target, code, config}. Exceptions from the target are recorded in
    error.json, not raised (KeyboardInterrupt is raised). Only rank 0 writes files; other ranks
    (DDP) just call the target.

    A single process (no DDP world) trains under run_dir/run.lock: when another process holds it,
    `wait=False` returns {"status": "busy"} at once and `wait=True` waits; either way, once the lock
    is ours a run that another sweep finished meanwhile is "skipped", not trained again. (Ranks of
    a DDP world take no lock: every rank must train the same runs in the same order.)
    """
    run_dir = Path(run_dir)
    rank = _global_rank() if rank is None else rank
    if rank != 0 or _world_size() > 1:
        return _execute(target, config, run_dir, launcher, rank == 0, code)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return {"status": "busy"}
    try:
        metrics, _ = finished(run_dir, required_metrics(target))
        if metrics is not None:  # another sweep on this folder finished it while we waited
            return {"status": "skipped", "metrics": metrics, "seconds": _read_seconds(run_dir)}
        return _execute(target, config, run_dir, launcher, True, code)
    finally:
        lock.release()


def _execute(target: str, config: dict, run_dir: Path, launcher: str, writer: bool, code: str | None) -> dict:
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stray in run_dir.rglob("*.tmp.*"):  # left by a process killed inside atomic_write_text
            if _TMP_RE.search(stray.name) and stray.is_file():
                stray.unlink(missing_ok=True)
        (run_dir / "error.json").unlink(missing_ok=True)
        (run_dir / "metrics.json").unlink(missing_ok=True)  # not a finished run's (else we would not be here)
        atomic_write_text(run_dir / "config.json", _json({"target": target, "code": code, "config": config}))
    started, t0 = _now(), time.perf_counter()
    timing = {"started": started, "host": socket.gethostname(), "pid": os.getpid(), "launcher": launcher}
    try:
        fn = resolve_target(target)
        if isinstance(config.get("seed"), int):
            _seed(config["seed"])
        metrics = fn(copy.deepcopy(config), run_dir)
        if not isinstance(metrics, dict) or not metrics:
            raise TypeError(f"target {target} returned {metrics!r:.60}, expected a non-empty dict of metrics")
        missing = [k for k in getattr(fn, "required_metrics", ()) if k not in metrics]
        if missing:
            raise ValueError(f"target {target} returned no {', '.join(missing)} (its required_metrics)")
        text = json.dumps(metrics, indent=2, default=_jsonable_number) + "\n"
    except Exception as e:  # a failed run is recorded and the sweep goes on
        timing.update(finished=_now(), seconds=round(time.perf_counter() - t0, 3))
        error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc(),
                 "timing": timing}
        if writer:
            atomic_write_text(run_dir / "error.json", _json(error))
        return {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    timing.update(finished=_now(), seconds=round(time.perf_counter() - t0, 3))
    if writer:
        atomic_write_text(run_dir / "timing.json", _json(timing))
        atomic_write_text(run_dir / "metrics.json", text)  # last: its presence means done
    return {"status": "done", "metrics": json.loads(text), "seconds": timing["seconds"]}


def _seed(seed: int) -> None:
    """Seed what is loaded when the target is called (its module was imported by resolve_target).

    torch is seeded only when already imported, so that a target without torch (toy_target) does
    not pay seconds for importing it; a target that imports torch lazily must seed it itself.
    """
    if "torch" in sys.modules:
        seed_everything(seed)
    else:
        import numpy as np

        random.seed(seed)
        np.random.seed(seed % 2**32)
        os.environ["PL_GLOBAL_SEED"] = str(seed)


def _jsonable_number(x):
    """numpy / torch scalars in metrics become plain numbers."""
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"metric value {x!r} of type {type(x).__name__} is not JSON-able")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read_seconds(run_dir: Path):
    try:
        return json.loads((run_dir / "timing.json").read_text()).get("seconds")
    except (OSError, ValueError):
        return None


def writable_folder(path: str | os.PathLike) -> Path:
    """A folder the user named (relative paths from the project root): anywhere they can write, but
    not an existing file. Nothing is created here (a refused config must leave no folder behind)."""
    p = Path(path).expanduser()
    p = (paths.ROOT / p if not p.is_absolute() else p).resolve()
    if p.exists() and not p.is_dir():
        raise PathError(f"--out {os.fspath(path)}: {p} is an existing file, not a folder; give a folder")
    ancestor = p
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PathError(f"--out {os.fspath(path)}: {ancestor} is a file, so {p} cannot be made")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PathError(f"--out {os.fspath(path)}: cannot write in {ancestor}")
    return p


def _as_config(config_or_path, profile: str | None) -> SweepConfig:
    if isinstance(config_or_path, SweepConfig):
        if profile is not None and profile != config_or_path.profile_name:
            raise ParameterError(f"the config was loaded with profile {config_or_path.profile_name!r}, "
                                 f"not {profile!r}; pass the path to choose a profile")
        return config_or_path
    if isinstance(config_or_path, dict):
        return parse_config(config_or_path, profile)
    return load_config(config_or_path, profile)


def run_sweep(config_or_path, profile: str | None = None, out: str | os.PathLike | None = None,
              launcher: str = "local", progress: bool = True, workers: int | None = None,
              out_anywhere: bool = False):
    """Run every pending run of a sweep and return the results table (a pandas DataFrame).

    `config_or_path`: a YAML path (or a name under paths.SWEEP_CONFIGS), a SweepConfig, or a config
    mapping. `out`: the output folder, inside the project (default paths.SWEEPS/NAME/PROFILE);
    `out_anywhere=True` accepts any folder the user can write to: for a folder the user typed
    (`studio sweep --out /scratch/...`), never for one from notebook parameters or a config.
    `workers`: runs at once with the local launcher (default: the config's `workers`, else 1). The
    DataFrame has one row per finished run in expansion order; `df.attrs` holds out, results_csv,
    code, ran, skipped, failed (a list of run keys).
    """
    if launcher not in LAUNCHERS:
        raise ParameterError(f"unknown launcher {launcher!r}; launchers: {', '.join(LAUNCHERS)}")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ParameterError(f"workers must be an int >= 1, got {workers!r}")
    config = _as_config(config_or_path, profile)
    # A folder given by a caller must be inside the project; the default root may have been moved
    # outside it by STUDIO_SWEEPS, a setting of the user's environment, and is trusted; so is a folder
    # the user typed on the command line (cluster users put sweeps on scratch disks).
    if out is None:
        out = config.default_out()
    else:
        out = writable_folder(out) if out_anywhere else paths.inside_project(out)
        if out.exists() and not out.is_dir():
            raise PathError(f"out {os.fspath(out)}: an existing file, not a folder; give a folder for the sweep")
    fn = resolve_target(config.target)  # a bad target is a config error, found before any run
    code = target_code(config.target)
    runs = expand(config)
    if not runs:
        raise ParameterError(f"sweep {config.name}: the grid expands to no runs (everything excluded?)")
    check_runs(config, fn, runs)  # a config the target refuses: one error before any run starts
    required = required_metrics(fn)
    keys = [run_key(r, code) for r in runs]
    writer = _global_rank() == 0
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "sweep.json", _json({
            "config": asdict(config), "code": code, "n_runs": len(runs), "launcher": launcher, "started": _now(),
            "git": git_state(), "environment": environment()}))

    results: dict[str, dict] = {}
    redo = {}
    for key in keys:
        metrics, problem = finished(out / key, required)
        if metrics is not None:
            results[key] = {"status": "skipped", "metrics": metrics, "seconds": _read_seconds(out / key)}
        elif problem is not None:
            redo[key] = problem
    pending = [(k, r) for k, r in zip(keys, runs) if k not in results]
    skipped = len(results)
    label = f"sweep {config.name} ({config.profile_name})"
    print(f"{label}: {len(runs)} runs in {paths.relative(out)} (code {code}); skipping {skipped} already "
          f"finished, {len(pending)} to run", file=sys.stderr)
    for key, problem in redo.items():
        print(f"  redoing {paths.relative(out / key)}: {problem}, not a finished run", file=sys.stderr)

    if pending:
        bar = launchers.Bar(progress and writer, len(runs), skipped, label)
        if launcher == "submitit":
            results.update(launchers.run_submitit(config.name, config.submitit, config.target, code, pending,
                                                  out, bar, functools.partial(is_done, required=required)))
        else:
            results.update(launchers.run_local(config.target, code, pending, out, bar, execute_run,
                                               workers or config.workers))

    failed = [k for k in keys if results.get(k, {}).get("status") == "failed"]
    df = results_table(runs, keys, results, code)
    csv = out / "results.csv"
    if writer:
        atomic_write_text(csv, df.to_csv(index=False))
    ran = sum(1 for r in results.values() if r.get("status") == "done")
    skipped = sum(1 for r in results.values() if r.get("status") == "skipped")  # with runs another sweep did
    df.attrs.update(out=str(out), results_csv=str(csv), code=code, ran=ran, skipped=skipped, failed=failed)
    for key in failed:
        print(f"  failed: {paths.relative(out / key)}: {results[key].get('error', '?')} "
              f"(see error.json)", file=sys.stderr)
    print(f"{label}: {ran} ran, {skipped} skipped, {len(failed)} failed; results: {paths.relative(csv)}",
          file=sys.stderr)
    return df


def results_table(runs: list[dict], keys: list[str], results: dict, code: str):
    """One row per finished run, in expansion order: the flattened config, the metrics (a metric named
    like a config key gets a `metric_` prefix), then `seconds` (the run's wall time; a target's own
    `seconds` metric wins), `code` and `run_key`."""
    import pandas as pd

    rows = []
    for key, cfg in zip(keys, runs):
        r = results.get(key, {})
        if r.get("status") in ("done", "skipped"):
            row = _flatten(cfg)
            for name, value in _flatten(r["metrics"]).items():
                row[f"metric_{name}" if name in row else name] = value
            row.setdefault("seconds", r.get("seconds"))
            row["code"] = code
            row["run_key"] = key
            rows.append(row)
    # all failed: still write the config columns, so that readers get a table, not an empty file
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*_flatten(runs[0]), *BOOKKEEPING])


def _flatten(d: dict, prefix: str = "") -> dict:
    """{"trainer": {"devices": 2}, "tasks": ["a"]} -> {"trainer.devices": 2, "tasks": '["a"]'}."""
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        elif isinstance(v, (list, tuple)):
            out[name] = json.dumps(v)
        else:
            out[name] = v
    return out


# ---------------------------------------------------------------------------------------------------
# The command line (`studio sweep` hands its parsed arguments to `main`)

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `studio sweep`."""
    def positive_int(text: str) -> int:
        value = int(text) if text.lstrip("-").isdigit() else 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
        return value

    parser.add_argument("config", help="a sweep config YAML, e.g. experiments/sweeps/visual_context.yaml")
    parser.add_argument("--profile", help="a profile inside the config")
    parser.add_argument("--out", help="output folder: any folder you can write to (relative paths from the "
                                      "project root; default experiments/sweeps/NAME/PROFILE)")
    parser.add_argument("--launcher", choices=list(LAUNCHERS), default="local")
    parser.add_argument("--workers", type=positive_int, metavar="N",
                        help="local launcher: runs at once, each in its own process (default: the config's "
                             "workers, else 1)")
    return parser


def main(args) -> int:
    """`studio sweep CONFIG.yaml [--profile P] [--out DIR] [--launcher local|submitit] [--workers N]`.

    args: parsed arguments, or a list of strings (then a refused config is one line on stderr, exit 2).
    Returns 0 when every run finished, 1 when some failed.
    """
    if not hasattr(args, "config"):
        args = add_arguments(argparse.ArgumentParser(prog="studio sweep")).parse_args(list(args))
        try:
            return main(args)
        except (StudioError, FileNotFoundError) as e:
            print(f"studio sweep: error: {e}", file=sys.stderr)
            return 2
    out = getattr(args, "out", None)
    df = run_sweep(args.config, profile=getattr(args, "profile", None), out=out,
                   launcher=getattr(args, "launcher", None) or "local", progress=True,
                   workers=getattr(args, "workers", None), out_anywhere=out is not None)
    a = df.attrs
    print(f"{paths.relative(a['results_csv'])}: {len(df)} rows ({a['ran']} ran, {a['skipped']} skipped, "
          f"{len(a['failed'])} failed)")
    return 1 if a["failed"] else 0
