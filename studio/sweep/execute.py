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
import functools
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from studio import paths
from studio.errors import ParameterError, PathError, StudioError
from studio.repro import atomic_write_text, environment, git_state
from studio.sweep import launchers
from studio.sweep.config import SweepConfig, expand, load_config, parse_config
from studio.sweep.run import (
    BOOKKEEPING,
    LAUNCHERS,
    _global_rank,
    _json,
    _now,
    _read_seconds,
    execute_run,
    finished,
    is_done,
    required_metrics,
    resolve_target,
    run_key,
    target_code,
)


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
            raise ParameterError(
                f"sweep {config.name} ({config.profile_name}): {config.target} refuses the run config{which}: {message}"
            ) from e


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
            raise ParameterError(
                f"the config was loaded with profile {config_or_path.profile_name!r}, "
                f"not {profile!r}; pass the path to choose a profile"
            )
        return config_or_path
    if isinstance(config_or_path, dict):
        return parse_config(config_or_path, profile)
    return load_config(config_or_path, profile)


def run_sweep(
    config_or_path,
    profile: str | None = None,
    out: str | os.PathLike | None = None,
    launcher: str = "local",
    progress: bool = True,
    workers: int | None = None,
    out_anywhere: bool = False,
):
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
        atomic_write_text(
            out / "sweep.json",
            _json(
                {
                    "config": asdict(config),
                    "code": code,
                    "n_runs": len(runs),
                    "launcher": launcher,
                    "started": _now(),
                    "git": git_state(),
                    "environment": environment(),
                }
            ),
        )

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
    print(
        f"{label}: {len(runs)} runs in {paths.relative(out)} (code {code}); skipping {skipped} already "
        f"finished, {len(pending)} to run",
        file=sys.stderr,
    )
    for key, problem in redo.items():
        print(f"  redoing {paths.relative(out / key)}: {problem}, not a finished run", file=sys.stderr)

    if pending:
        bar = launchers.Bar(progress and writer, len(runs), skipped, label)
        if launcher == "submitit":
            results.update(
                launchers.run_submitit(
                    config.name,
                    config.submitit,
                    config.target,
                    code,
                    pending,
                    out,
                    bar,
                    functools.partial(is_done, required=required),
                )
            )
        else:
            results.update(
                launchers.run_local(config.target, code, pending, out, bar, execute_run, workers or config.workers)
            )

    failed = [k for k in keys if results.get(k, {}).get("status") == "failed"]
    df = results_table(runs, keys, results, code)
    csv = out / "results.csv"
    if writer:
        atomic_write_text(csv, df.to_csv(index=False))
    ran = sum(1 for r in results.values() if r.get("status") == "done")
    skipped = sum(1 for r in results.values() if r.get("status") == "skipped")  # with runs another sweep did
    df.attrs.update(out=str(out), results_csv=str(csv), code=code, ran=ran, skipped=skipped, failed=failed)
    for key in failed:
        print(
            f"  failed: {paths.relative(out / key)}: {results[key].get('error', '?')} (see error.json)", file=sys.stderr
        )
    print(
        f"{label}: {ran} ran, {skipped} skipped, {len(failed)} failed; results: {paths.relative(csv)}", file=sys.stderr
    )
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
    parser.add_argument(
        "--out",
        help="output folder: any folder you can write to (relative paths from the "
        "project root; default experiments/sweeps/NAME/PROFILE)",
    )
    parser.add_argument("--launcher", choices=list(LAUNCHERS), default="local")
    parser.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="local launcher: runs at once, each in its own process (default: the config's workers, else 1)",
    )
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
    df = run_sweep(
        args.config,
        profile=getattr(args, "profile", None),
        out=out,
        launcher=getattr(args, "launcher", None) or "local",
        progress=True,
        workers=getattr(args, "workers", None),
        out_anywhere=out is not None,
    )
    a = df.attrs
    print(
        f"{paths.relative(a['results_csv'])}: {len(df)} rows ({a['ran']} ran, {a['skipped']} skipped, "
        f"{len(a['failed'])} failed)"
    )
    return 1 if a["failed"] else 0
