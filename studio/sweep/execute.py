"""Running a sweep: one folder per run, keyed by its config and its code, and one results table.

    df = run_sweep("experiments/sweeps/toy.yaml", profile="smoke")   # pending runs only; a pandas DataFrame

A run's key is `run_key(config, code)`: a hash of its full config and of `code_fingerprint(target)`
(the source of the target's module and of every `studio` module it imports, studio.cache). Editing
the target, or anything it imports, gives every run a new key, so the runs are redone in new folders;
editing a notebook, a study module or anything else the target does not import changes no key.
"""
from __future__ import annotations

import argparse
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
from dataclasses import asdict
from pathlib import Path

from studio import paths
from studio.errors import ParameterError, StudioError
from studio.repro import atomic_write_text, environment, git_state, seed_everything, stable_hash
from studio.sweep import launchers
from studio.sweep.config import SweepConfig, expand, load_config, parse_config

LAUNCHERS = ("local", "submitit")
RUN_FILES = ("config.json", "timing.json", "metrics.json", "error.json")
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


def _global_rank() -> int:
    """This process's rank when a launcher (torchrun, srun, Lightning's DDP) started several."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"


def is_done(run_dir: Path) -> dict | None:
    """The run's metrics when it finished, else None (a torn or missing metrics.json means not done)."""
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def execute_run(target: str, config: dict, run_dir: str | Path, launcher: str = "local",
                rank: int | None = None, code: str | None = None) -> dict:
    """Run one config in run_dir and record it; return {"status": "done"|"failed", ...}.

    config.json records {target, code, config}. Exceptions from the target are recorded in
    error.json, not raised (KeyboardInterrupt is raised). Only rank 0 writes files; other ranks
    (DDP) just call the target.
    """
    run_dir = Path(run_dir)
    rank = _global_rank() if rank is None else rank
    writer = rank == 0
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stray in run_dir.rglob("*.tmp.*"):  # left by a process killed inside atomic_write_text
            if _TMP_RE.search(stray.name) and stray.is_file():
                stray.unlink(missing_ok=True)
        (run_dir / "error.json").unlink(missing_ok=True)
        atomic_write_text(run_dir / "config.json", _json({"target": target, "code": code, "config": config}))
    started, t0 = _now(), time.perf_counter()
    timing = {"started": started, "host": socket.gethostname(), "pid": os.getpid(), "launcher": launcher}
    try:
        fn = resolve_target(target)
        if isinstance(config.get("seed"), int):
            _seed(config["seed"])
        metrics = fn(copy.deepcopy(config), run_dir)
        if not isinstance(metrics, dict):
            raise TypeError(f"target {target} returned {type(metrics).__name__}, expected a dict of metrics")
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
              launcher: str = "local", progress: bool = True, workers: int | None = None):
    """Run every pending run of a sweep and return the results table (a pandas DataFrame).

    `config_or_path`: a YAML path (or a name under paths.SWEEP_CONFIGS), a SweepConfig, or a config
    mapping. `out`: the output folder, inside the project (default paths.SWEEPS/NAME/PROFILE).
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
    # outside it by STUDIO_SWEEPS, a setting of the user's environment, and is trusted.
    out = paths.inside_project(out) if out is not None else config.default_out()
    resolve_target(config.target)  # a bad target is a config error, found before any run
    code = target_code(config.target)
    runs = expand(config)
    if not runs:
        raise ParameterError(f"sweep {config.name}: the grid expands to no runs (everything excluded?)")
    keys = [run_key(r, code) for r in runs]
    writer = _global_rank() == 0
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "sweep.json", _json({
            "config": asdict(config), "code": code, "n_runs": len(runs), "launcher": launcher, "started": _now(),
            "git": git_state(), "environment": environment()}))

    results: dict[str, dict] = {}
    for key in keys:
        metrics = is_done(out / key)
        if metrics is not None:
            results[key] = {"status": "skipped", "metrics": metrics, "seconds": _read_seconds(out / key)}
    pending = [(k, r) for k, r in zip(keys, runs) if k not in results]
    skipped = len(results)
    label = f"sweep {config.name} ({config.profile_name})"
    print(f"{label}: {len(runs)} runs in {paths.relative(out)} (code {code}); skipping {skipped} already "
          f"finished, {len(pending)} to run", file=sys.stderr)

    if pending:
        bar = launchers.Bar(progress and writer, len(runs), skipped, label)
        if launcher == "submitit":
            results.update(launchers.run_submitit(config.name, config.submitit, config.target, code, pending,
                                                  out, bar, is_done))
        else:
            results.update(launchers.run_local(config.target, code, pending, out, bar, execute_run,
                                               workers or config.workers))

    failed = [k for k in keys if results.get(k, {}).get("status") == "failed"]
    df = results_table(runs, keys, results, code)
    csv = out / "results.csv"
    if writer:
        atomic_write_text(csv, df.to_csv(index=False))
    ran = sum(1 for r in results.values() if r.get("status") == "done")
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
    parser.add_argument("--out", help="output folder (inside the project)")
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
    df = run_sweep(args.config, profile=getattr(args, "profile", None), out=getattr(args, "out", None),
                   launcher=getattr(args, "launcher", None) or "local", progress=True,
                   workers=getattr(args, "workers", None))
    a = df.attrs
    print(f"{paths.relative(a['results_csv'])}: {len(df)} rows ({a['ran']} ran, {a['skipped']} skipped, "
          f"{len(a['failed'])} failed)")
    return 1 if a["failed"] else 0
