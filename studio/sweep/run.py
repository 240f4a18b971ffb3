"""One run of a sweep: its key, its folder, its target, and whether it is finished.

A run lives in OUT/RUN_KEY/ (config.json first, metrics.json written last and atomically; its presence,
holding the target's required metrics, means done). `execute_run` trains it under OUT/RUN_KEY/run.lock
(the `filelock` package) and re-checks that it is still pending once it holds the lock. Launchers
(studio.sweep.launchers) call `execute_run` for every pending run; studio.sweep.execute plans the runs
and collects their metrics.
"""

from __future__ import annotations

import copy
import datetime as _dt
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
from pathlib import Path

from filelock import FileLock, Timeout

from studio.errors import ParameterError
from studio.repro import atomic_write_text, seed_everything, stable_hash

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


def execute_run(
    target: str,
    config: dict,
    run_dir: str | Path,
    launcher: str = "local",
    rank: int | None = None,
    code: str | None = None,
    wait: bool = True,
) -> dict:
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
        error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc(), "timing": timing}
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
