"""Sweeps: a grid of runs, each cached in its own folder by the hash of its config, resumable.

`studio sweep CONFIG.yaml [--profile P] [--out DIR] [--launcher local|submitit]` (or `run_sweep` from
Python) expands a sweep config into full run configs, calls a target function once per run, and
collects the metrics into one table, `results.csv`. The engine knows no study: what a run does is
the target's business.

The config file (YAML, read with yaml.safe_load)::

    name: visual_context                 # the sweep's name; outputs go to experiments/sweeps/NAME/PROFILE/
    description: one line                # optional
    target: studio.engine:train_cell     # "module:function", called as fn(config: dict, run_dir: Path)
                                         #   and returning a dict of metrics (JSON-able numbers, strings)
    base: {frames: 4, tokens_per_frame: 4, seed: 0}   # a run's full default config
    grid:                                # cartesian product over base; every key must be in base
      frames: [1, 2, 4, 8, 16]
      tokens_per_frame: [1, 4, 16, 64]
    seeds: [0, 1]                        # optional; every cell is run once per seed (sets config["seed"])
    exclude:                             # optional; a grid run matching every key of an entry is dropped
      - {frames: 16, tokens_per_frame: 64}
    include:                             # optional; extra cells (merged over base, run for every seed
      - {frames: 3, tokens_per_frame: 3} #   unless they set seed); exclude does not apply to them
    trainer: {accelerator: gpu, devices: 4, strategy: ddp}   # optional; set as config["trainer"]
    workers: 2                           # optional; local launcher: runs at once, each in its own process
    submitit: {partition: gpu, timeout_min: 60, gpus_per_node: 4, tasks_per_node: 4}  # --launcher submitit
    profiles:                            # each replaces top-level keys; its `base` is deep-merged
      smoke: {grid: {frames: [1, 4], tokens_per_frame: [1, 4]}, seeds: [0], base: {steps: 20}}
      default: {}
      paper: {base: {steps: 5000}, trainer: {accelerator: gpu, devices: 1}}

Unknown keys, at the top level, in a profile, or in grid/exclude/include (a key not in base), are
refused with a ParameterError naming the key and the valid ones. Without --profile the profile
`default` is used when the file has one. A number written `1e-3` is a string to YAML; write `1.0e-3`.

Each run lives in OUT/RUN_KEY/, RUN_KEY = `run_key(config)`, a hash of the full run config:

    config.json    the run config (written first)
    ...            whatever the target writes (a checkpoint it resumes from, logs)
    timing.json    start, end, wall_s, host, launcher
    metrics.json   what the target returned; written atomically and LAST: its presence means done
    error.json     instead of metrics.json when the target raised (type, message, traceback)

A rerun skips every run with a metrics.json and says how many it skipped. A run killed midway (kill -9)
has no metrics.json, so it is redone; stray temporary files (NAME.tmp.PID, from
studio.repro.atomic_write_text) are removed first, and a target that finds its own checkpoint in
run_dir resumes from it. Failed runs are retried on the next rerun. The cache is keyed by the config,
not by the code: after changing the target's code, delete OUT (or pass another --out) to redo the runs.

OUT/results.csv has one row per finished run, in expansion order: the config (nested mappings
flattened as `trainer.devices`, lists as JSON), the metrics, `wall_s` and `run_key`. OUT/sweep.json
records the resolved sweep config, the environment and the git commit of the last invocation.

Launchers: `local` runs in this process, one run after another, with a progress bar (done, skipped,
failed counts); with `workers: N` (or `--workers N`, which wins) it runs up to N at once, each in a
process of its own (concurrent.futures.ProcessPoolExecutor, spawned), still with one bar. A run's
result does not depend on which process ran it (tests compare workers 1 and 2). Give each run one CPU
thread (the visual-context target's `threads: 1`) so that N workers use N cores. `submitit` submits one job per pending run (a job array) with submitit.AutoExecutor and
the `submitit:` options: submitit's generic options (timeout_min, gpus_per_node, tasks_per_node,
cpus_per_task, mem_gb, nodes, name, stderr_to_stdout) pass as they are, other unprefixed ones get the
`slurm_` prefix (partition -> slurm_partition, array_parallelism -> slurm_array_parallelism), and
`cluster: local` or `cluster: debug` runs the jobs on this machine (without it submitit picks SLURM
when it finds it). Job logs go to OUT/submitit/. A run uses whatever the target does, so GPUs and DDP
come from the config's `trainer` options. For DDP over several devices launch one process per device
and let Lightning find them: with submitit set tasks_per_node = trainer.devices (Lightning reads SLURM's
variables), or run the whole sweep under `torchrun --nproc-per-node N -m studio.workbench.cli sweep ...`. Every
rank runs the same runs in the same order; only global rank 0 writes files.

`toy_target` below is a cheap deterministic target for trying the engine out
(experiments/sweeps/toy.yaml): `studio sweep experiments/sweeps/toy.yaml --profile smoke`.
"""
from __future__ import annotations

import copy
import datetime as _dt
import importlib
import json
import math
import os
import random
import re
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable

import yaml

from studio import paths
from studio.repro import atomic_write_text, environment, git_state, seed_everything, stable_hash

TOP_KEYS = ("name", "description", "target", "base", "grid", "seeds", "exclude", "include", "trainer",
            "submitit", "workers", "profiles")
PROFILE_KEYS = ("target", "base", "grid", "seeds", "exclude", "include", "trainer", "submitit", "workers")
LAUNCHERS = ("local", "submitit")
RUN_FILES = ("config.json", "timing.json", "metrics.json", "error.json")
# submitit.AutoExecutor's cluster-independent options; anything else unprefixed is a SLURM option.
SUBMITIT_GENERIC = ("name", "timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node",
                    "tasks_per_node", "stderr_to_stdout")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FLOATLIKE_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")
_TMP_RE = re.compile(r"\.tmp\.\d+$")  # atomic_write_text's temporary files: NAME.tmp.PID


def _bad(message: str) -> Exception:
    """A studio.workbench.params.ParameterError (the CLI prints it as one line and exits 2), imported late:
    studio.workbench.params pulls in nbformat (seconds), which a submitit job running one config never needs."""
    from studio.errors import ParameterError

    return ParameterError(message)


def __getattr__(name):  # `sweep.ParameterError` without importing studio.workbench.params up front
    if name == "ParameterError":
        from studio.errors import ParameterError

        return ParameterError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class SweepConfig:
    """A sweep config with its profile applied (see the module docstring for the file format)."""
    name: str
    target: str
    base: dict
    grid: dict = field(default_factory=dict)
    seeds: list | None = None
    exclude: list = field(default_factory=list)
    include: list = field(default_factory=list)
    trainer: dict | None = None
    submitit: dict = field(default_factory=dict)
    workers: int = 1
    description: str = ""
    profile: str | None = None  # the profile applied, None when the file has no profile of that name
    source: str | None = None  # the file it was read from

    @property
    def profile_name(self) -> str:
        return self.profile or "default"

    def default_out(self) -> Path:
        return paths.SWEEPS / self.name / self.profile_name


# ---------------------------------------------------------------------------------------------------
# Reading and checking configs

def load_config(path: str | os.PathLike, profile: str | None = None) -> SweepConfig:
    """Read a sweep config YAML and apply `profile` (default: the file's `default` profile, if any)."""
    p = paths.input_path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise _bad(f"{path}: not valid YAML: {e}") from e
    return parse_config(data, profile, source=paths.relative(p))


def parse_config(data: dict, profile: str | None = None, source: str | None = None) -> SweepConfig:
    """Check a sweep config mapping (as read from YAML) and apply `profile`."""
    where = source or "sweep config"
    if not isinstance(data, dict):
        raise _bad(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    _refuse_unknown(data, TOP_KEYS, where)
    for key in ("name", "target", "base"):
        if key not in data:
            raise _bad(f"{where}: missing required key {key!r}")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise _bad(f"{where}: 'profiles' must be a mapping of profile names to overrides")
    if profile is None and "default" in profiles:
        profile = "default"
    if profile is not None and profile not in profiles and profile != "default":
        raise _bad(f"{where}: no profile {profile!r}; profiles: {', '.join(profiles) or 'none'}")
    # Every profile is checked, not only the one asked for: a typo in `paper` shows up in CI's smoke run.
    chosen = None
    for name in profiles:
        cfg = _check(_apply_profile(data, name, where), name, source, f"{where} (profile {name!r})")
        if name == profile:
            chosen = cfg
    return chosen or _check(_apply_profile(data, None, where), None, source, where)


def _apply_profile(data: dict, profile: str | None, where: str) -> dict:
    merged = {k: copy.deepcopy(v) for k, v in data.items() if k != "profiles"}
    if profile is None:
        return merged
    overrides = data["profiles"][profile] or {}
    pwhere = f"{where}, profile {profile!r}"
    if not isinstance(overrides, dict):
        raise _bad(f"{pwhere}: must be a mapping of overrides")
    _refuse_unknown(overrides, PROFILE_KEYS, pwhere)
    for key, value in overrides.items():
        if key == "base":
            if not isinstance(value, dict):
                raise _bad(f"{pwhere}: 'base' must be a mapping")
            merged["base"] = _deep_merge(merged.get("base") or {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check(d: dict, profile, source, where) -> SweepConfig:
    name = d["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _bad(f"{where}: name must be a folder-safe string (letters, digits, _ . -), got {name!r}")
    target = d["target"]
    if not isinstance(target, str) or not re.match(r"^[\w.]+:[\w]+$", target):
        raise _bad(f"{where}: target must be 'module:function', got {target!r}")
    base = d["base"]
    if not isinstance(base, dict) or not base:
        raise _bad(f"{where}: base must be a non-empty mapping (a run's full default config)")
    _check_values(base, f"{where}: base")

    grid = d.get("grid") or {}
    if not isinstance(grid, dict):
        raise _bad(f"{where}: grid must be a mapping of config keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _bad(f"{where}: grid[{key!r}] must be a non-empty list, got {values!r}")
    _refuse_unknown(grid, base, f"{where}: grid", what="config key", valid_name="base keys")
    _check_values(grid, f"{where}: grid")

    seeds = d.get("seeds")
    if seeds is not None:
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise _bad(f"{where}: seeds must be a non-empty list of ints, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise _bad(f"{where}: seeds has repeats: {seeds!r}")
        if "seed" in grid:
            raise _bad(f"{where}: 'seed' is both in grid and seeds; use one")

    cells = {}
    for key in ("exclude", "include"):
        entries = d.get(key) or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) and e for e in entries):
            raise _bad(f"{where}: {key} must be a list of non-empty mappings, got {entries!r}")
        valid = dict.fromkeys([*base, *grid, "seed"])
        for i, entry in enumerate(entries):
            _refuse_unknown(entry, valid, f"{where}: {key}[{i}]", what="config key",
                            valid_name="base and grid keys and seed")
            _check_values(entry, f"{where}: {key}[{i}]")
        cells[key] = copy.deepcopy(entries)

    trainer = d.get("trainer")
    if trainer is not None and not isinstance(trainer, dict):
        raise _bad(f"{where}: trainer must be a mapping (accelerator, devices, strategy, num_nodes)")
    submitit = d.get("submitit") or {}
    if not isinstance(submitit, dict):
        raise _bad(f"{where}: submitit must be a mapping of submitit options")
    workers = d.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise _bad(f"{where}: workers must be an int >= 1 (runs at once with the local launcher), got {workers!r}")
    description = d.get("description") or ""
    return SweepConfig(workers=workers, name=name, target=target, base=copy.deepcopy(base), grid=copy.deepcopy(grid),
                       seeds=list(seeds) if seeds is not None else None, exclude=cells["exclude"],
                       include=cells["include"], trainer=copy.deepcopy(trainer),
                       submitit=copy.deepcopy(submitit), description=str(description), profile=profile,
                       source=source)


def _refuse_unknown(d: dict, valid, where: str, what: str = "key", valid_name: str = "valid keys") -> None:
    for key in d:
        if key not in valid:
            raise _bad(f"{where}: unknown {what} {key!r}; {valid_name}: {', '.join(map(str, valid))}")


def _check_values(d: dict, where: str) -> None:
    """Values must be JSON-able (they are hashed and written to config.json); catch YAML's 1e-3."""
    try:
        json.dumps(d, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _bad(f"{where}: values must be plain YAML scalars, lists and mappings ({e})") from e

    def walk(value, key):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and _FLOATLIKE_RE.match(value):
            mantissa, exponent = f"{float(value):e}".split("e")
            mantissa = mantissa.rstrip("0") + ("0" if mantissa.rstrip("0").endswith(".") else "")
            raise _bad(f"{where}: {key} = {value!r} is a string to YAML; for a float write it with a dot "
                       f"and a signed exponent: {mantissa}e{int(exponent):+d}")
    walk(d, None)


def _deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------------
# Expansion

def expand(config: SweepConfig) -> list[dict]:
    """Every run's full config, in a deterministic order: grid cells (last grid key fastest) x seeds,
    then include cells x seeds. A grid run whose config matches every key of an exclude entry is
    dropped (include cells are kept); duplicates (same config) are kept once."""
    keys = list(config.grid)
    grid_cells = [dict(zip(keys, values)) for values in product(*(config.grid[k] for k in keys))]
    runs, seen = [], set()
    for cell, from_grid in [*((c, True) for c in grid_cells), *((c, False) for c in config.include)]:
        seeds = [None] if (config.seeds is None or "seed" in cell) else config.seeds
        for seed in seeds:
            run = _deep_merge(config.base, cell)
            if seed is not None:
                run["seed"] = seed
            if from_grid and any(_matches(run, ex) for ex in config.exclude):
                continue
            if config.trainer is not None:
                run["trainer"] = _deep_merge(run.get("trainer") or {}, config.trainer)
            key = run_key(run)
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs


def _matches(cell: dict, pattern: dict) -> bool:
    return all(k in cell and cell[k] == v for k, v in pattern.items())


def run_key(cfg: dict) -> str:
    """The name of a run's folder: a hash of its full config (independent of key order)."""
    return stable_hash(cfg, length=12)


# ---------------------------------------------------------------------------------------------------
# One run (the same code for both launchers)

def resolve_target(spec: str) -> Callable[[dict, Path], dict]:
    """Import 'module:function' and return the function; a ParameterError if it cannot."""
    module_name, _, fn_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise _bad(f"target {spec!r}: cannot import {module_name}: {e}") from e
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise _bad(f"target {spec!r}: {module_name} has no function {fn_name!r}")
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
                rank: int | None = None) -> dict:
    """Run one config in run_dir and record it; return {"status": "done"|"failed", ...}.

    Exceptions from the target are recorded in error.json, not raised (KeyboardInterrupt is raised).
    Only rank 0 writes files; other ranks (DDP) just call the target.
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
        atomic_write_text(run_dir / "config.json", _json(config))
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
        timing.update(finished=_now(), wall_s=round(time.perf_counter() - t0, 3))
        error = {"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc(),
                 "timing": timing}
        if writer:
            atomic_write_text(run_dir / "error.json", _json(error))
        return {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    timing.update(finished=_now(), wall_s=round(time.perf_counter() - t0, 3))
    if writer:
        atomic_write_text(run_dir / "timing.json", _json(timing))
        atomic_write_text(run_dir / "metrics.json", text)  # last: its presence means done
    return {"status": "done", "metrics": json.loads(text), "wall_s": timing["wall_s"]}


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


def _submitit_job(target: str, config: dict, run_dir: str) -> dict:
    """What a submitit job runs (module-level so that it pickles by reference)."""
    import submitit

    try:
        rank = submitit.JobEnvironment().global_rank
    except RuntimeError:  # not inside a submitit job (the "debug" cluster runs in this process)
        rank = 0
    return execute_run(target, config, run_dir, launcher="submitit", rank=rank)


def _jsonable_number(x):
    """numpy / torch scalars in metrics become plain numbers."""
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"metric value {x!r} of type {type(x).__name__} is not JSON-able")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------
# The sweep

def run_sweep(config_or_path, profile: str | None = None, out: str | os.PathLike | None = None,
              launcher: str = "local", progress: bool = True, workers: int | None = None):
    """Run every pending run of a sweep and return the results table (a pandas DataFrame).

    `config_or_path`: a YAML path, a SweepConfig, or a config mapping. `out`: the output folder, inside
    the project (default experiments/sweeps/NAME/PROFILE). `workers`: runs at once with the local
    launcher (default: the config's `workers`, else 1). The DataFrame has one row per finished run in
    expansion order; `df.attrs` holds out, results_csv, ran, skipped, failed (a list of run keys).
    """
    import pandas as pd

    if launcher not in LAUNCHERS:
        raise _bad(f"unknown launcher {launcher!r}; launchers: {', '.join(LAUNCHERS)}")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise _bad(f"workers must be an int >= 1, got {workers!r}")
    if isinstance(config_or_path, SweepConfig):
        config = config_or_path
        if profile is not None and profile != config.profile_name:
            raise _bad(f"the config was loaded with profile {config.profile_name!r}, "
                       f"not {profile!r}; pass the path to choose a profile")
    elif isinstance(config_or_path, dict):
        config = parse_config(config_or_path, profile)
    else:
        config = load_config(config_or_path, profile)
    out = paths.inside_project(out if out is not None else config.default_out())
    resolve_target(config.target)  # a bad target is a config error, found before any run
    runs = expand(config)
    if not runs:
        raise _bad(f"sweep {config.name}: the grid expands to no runs (everything excluded?)")
    keys = [run_key(r) for r in runs]
    writer = _global_rank() == 0
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "sweep.json", _json({
            "config": asdict(config), "n_runs": len(runs), "launcher": launcher, "started": _now(),
            "git": git_state(), "environment": environment()}))

    results: dict[str, dict] = {}
    for key in keys:
        metrics = is_done(out / key)
        if metrics is not None:
            results[key] = {"status": "skipped", "metrics": metrics, "wall_s": _read_wall_s(out / key)}
    pending = [(k, r) for k, r in zip(keys, runs) if k not in results]
    skipped = len(results)
    label = f"sweep {config.name} ({config.profile_name})"
    print(f"{label}: {len(runs)} runs in {paths.relative(out)}; skipping {skipped} already finished, "
          f"{len(pending)} to run", file=sys.stderr)

    if pending:
        bar = _Bar(progress and writer, len(runs), skipped, label)
        if launcher == "submitit":
            results.update(_run_submitit(config, pending, out, bar))
        else:
            results.update(_run_local(config, pending, out, bar, workers or config.workers))

    failed = [k for k in keys if results.get(k, {}).get("status") == "failed"]
    rows = []
    for key, cfg in zip(keys, runs):
        r = results.get(key, {})
        if r.get("status") in ("done", "skipped"):
            row = _flatten(cfg)
            for name, value in _flatten(r["metrics"]).items():
                row[f"metric_{name}" if name in row else name] = value
            row["wall_s"] = r.get("wall_s")
            row["run_key"] = key
            rows.append(row)
    # all failed: still write the config columns, so that readers get a table, not an empty file
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*_flatten(runs[0]), "wall_s", "run_key"])
    csv = out / "results.csv"
    if writer:
        atomic_write_text(csv, df.to_csv(index=False))
    ran = sum(1 for r in results.values() if r.get("status") == "done")
    df.attrs.update(out=str(out), results_csv=str(csv), ran=ran, skipped=skipped, failed=failed)
    for key in failed:
        print(f"  failed: {paths.relative(out / key)}: {results[key].get('error', '?')} "
              f"(see error.json)", file=sys.stderr)
    print(f"{label}: {ran} ran, {skipped} skipped, {len(failed)} failed; results: {paths.relative(csv)}",
          file=sys.stderr)
    return df


def _read_wall_s(run_dir: Path):
    try:
        return json.loads((run_dir / "timing.json").read_text()).get("wall_s")
    except (OSError, ValueError):
        return None


class _Bar:
    """tqdm over runs with done / skipped / failed counts in its postfix."""

    def __init__(self, progress: bool, total: int, skipped: int, label: str):
        from tqdm import tqdm

        self.tqdm = tqdm(total=total, initial=skipped, desc=label, unit="run", disable=not progress,
                         file=sys.stderr, dynamic_ncols=True)
        self.label, self.counts = label, {"done": 0, "skipped": skipped, "failed": 0}
        self.tqdm.set_postfix(self.counts)

    def record(self, result: dict) -> None:
        self.counts[result["status"]] += 1
        self.tqdm.set_postfix(self.counts)
        self.tqdm.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.tqdm.close()


def _run_local(config: SweepConfig, pending, out: Path, bar: _Bar, workers: int = 1) -> dict:
    """Run the pending runs here (workers == 1) or in `workers` spawned processes, recording each in `bar`."""
    results = {}
    with bar:
        if workers == 1 or len(pending) == 1:
            for key, cfg in pending:
                results[key] = execute_run(config.target, cfg, out / key, launcher="local")
                bar.record(results[key])
            return results
        import concurrent.futures as cf
        import multiprocessing

        # spawn, not fork: a forked child would inherit this process's torch thread pools and locks.
        pool = cf.ProcessPoolExecutor(max_workers=min(workers, len(pending)),
                                      mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = {pool.submit(execute_run, config.target, cfg, str(out / key), "local", 0): key
                       for key, cfg in pending}
            for future in cf.as_completed(futures):
                key = futures[future]
                try:
                    results[key] = future.result()
                except Exception as e:  # the worker process died (killed, out of memory)
                    results[key] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                bar.record(results[key])
        finally:  # Ctrl-C: drop the runs not started; finished ones are already on disk
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def submitit_parameters(options: dict) -> tuple[str | None, dict]:
    """Split the config's `submitit:` options into (cluster, AutoExecutor.update_parameters kwargs)."""
    import submitit.core.plugins as plugins

    options = dict(options)
    cluster = options.pop("cluster", None)
    executors = set(plugins.get_executors())
    if cluster is not None and cluster not in executors:
        raise _bad(f"submitit: unknown cluster {cluster!r}; clusters: {', '.join(sorted(executors))}")
    params = {}
    for key, value in options.items():
        prefixed = key.split("_", 1)[0] in executors
        params[key if key in SUBMITIT_GENERIC or prefixed else f"slurm_{key}"] = value
    return cluster, params


def _run_submitit(config: SweepConfig, pending, out: Path, bar: _Bar) -> dict:
    import submitit

    cluster, params = submitit_parameters(config.submitit)
    params.setdefault("name", f"sweep-{config.name}")
    try:
        executor = submitit.AutoExecutor(folder=out / "submitit", cluster=cluster)
        executor.update_parameters(**params)
    except (NameError, AssertionError, ValueError, RuntimeError) as e:
        raise _bad(f"submitit options {config.submitit}: {e}") from e
    jobs = executor.map_array(_submitit_job, [config.target] * len(pending), [c for _, c in pending],
                              [str(out / k) for k, _ in pending])
    key_of = {id(job): key for job, (key, _) in zip(jobs, pending)}
    print(f"{bar.label}: submitted {len(jobs)} jobs ({executor.cluster}); logs in "
          f"{paths.relative(out / 'submitit')}", file=sys.stderr)
    poll = 0.2 if executor.cluster in ("local", "debug") else 10.0
    results = {}
    with bar:
        for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
            key = key_of[id(job)]
            try:
                r = job.results()[0]  # rank 0's result when a job has several tasks
            except Exception as e:  # the job itself died (timeout, out of memory, node failure)
                r = {"status": "failed", "error": f"{type(e).__name__}: {str(e).strip().splitlines()[-1:]}"}
                if is_done(out / key) is None:
                    atomic_write_text(out / key / "error.json", _json(
                        {"type": type(e).__name__, "message": str(e), "job_id": job.job_id}))
            results[key] = r
            bar.record(r)
    return results


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
# The command line

def main(args) -> int:
    """`studio sweep CONFIG.yaml [--profile P] [--out DIR] [--launcher local|submitit] [--workers N]`; 0 ok, 1 failed runs."""
    if not hasattr(args, "config"):  # a list of arguments: go through the real parser
        from studio.workbench.cli import main as cli_main

        return cli_main(["sweep", *args])
    df = run_sweep(args.config, profile=getattr(args, "profile", None), out=getattr(args, "out", None),
                   launcher=getattr(args, "launcher", None) or "local", progress=True,
                   workers=getattr(args, "workers", None))
    a = df.attrs
    print(f"{paths.relative(a['results_csv'])}: {len(df)} rows ({a['ran']} ran, {a['skipped']} skipped, "
          f"{len(a['failed'])} failed)")
    return 1 if a["failed"] else 0


# ---------------------------------------------------------------------------------------------------
# A toy target: cheap, deterministic, resumable

def toy_target(config: dict, run_dir: Path) -> dict:
    """A stand-in for a training run: loss falls with frames and tokens_per_frame, plus seeded noise.

    Keys read (all optional): frames, tokens_per_frame, seed, steps (default 3), sleep_s (per step),
    fail (raise when true). The loss approaches L(T, M) = 0.3 + 2 T^-0.5 + 1 M^-0.3 (+ noise) over
    `steps` steps; a checkpoint.json written after every step lets a killed run resume where it
    stopped, with the same final numbers as an uninterrupted one.
    """
    if config.get("fail"):
        raise RuntimeError("toy_target asked to fail (fail: true)")
    frames = float(config.get("frames", 1))
    tokens = float(config.get("tokens_per_frame", 1))
    steps = int(config.get("steps", 3))
    # Noise from the config itself (not global RNG state), so the result depends on nothing else.
    # (steps and sleep_s are how long, not what, so they leave the target loss alone).
    noise_seed = int(stable_hash({k: v for k, v in config.items() if k not in ("trainer", "steps", "sleep_s")},
                                 length=8), 16)
    import numpy as np

    noise = float(np.random.default_rng(noise_seed).normal(0, 0.01))
    floor = 0.3 + 2.0 * frames ** -0.5 + 1.0 * tokens ** -0.3 + noise
    ckpt = Path(run_dir) / "checkpoint.json"
    start, loss = 0, math.log(10)
    if ckpt.exists():
        state = json.loads(ckpt.read_text())
        start, loss = state["step"], state["loss"]
    for step in range(start, steps):
        loss = floor + (loss - floor) * 0.5  # each step halves the distance to the floor
        time.sleep(float(config.get("sleep_s", 0)))
        atomic_write_text(ckpt, json.dumps({"step": step + 1, "loss": loss}))
    return {"val_loss": round(loss, 10), "val_acc": round(math.exp(-loss), 10), "steps_run": steps - start,
            "resumed_from_step": start}
