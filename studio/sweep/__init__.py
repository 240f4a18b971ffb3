"""Sweeps: a grid of runs, each cached in its own folder by the hash of its config and code, resumable.

`studio sweep CONFIG.yaml [--profile P] [--out DIR] [--launcher local|submitit]` (or `run_sweep` from
Python) expands a sweep config into full run configs, calls a target function once per run, and
collects the metrics into one table, `results.csv`. The engine knows no study: what a run does is
the target's business.

The config file (YAML, read with yaml.safe_load)::

    name: visual_context                 # the sweep's name; outputs go to paths.SWEEPS/NAME/PROFILE/
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

Config files live in experiments/sweeps/ (paths.SWEEP_CONFIGS); `studio sweep toy` finds toy.yaml there.

A target may declare, as attributes of its function, `check_config(config)` (raises ValueError naming
the key it refuses; every run's config is checked before any run starts, so `stepz: 3` or `steps: -5`
is one error, exit 2 from the CLI) and `required_metrics` (names a finished run's metrics hold).
`--out DIR` typed on the command line may be any folder you can write to (a cluster's scratch disk;
relative paths are taken from the project root), never an existing file; an `out` passed from Python
(notebook parameters, configs) must stay inside the project.

Each run lives in OUT/RUN_KEY/, RUN_KEY = `run_key(config, code)`, a hash of the full run config and
of `code = studio.cache.code_fingerprint(target)`: the source of the target's module and of every
`studio` module it imports. Editing the target or anything it imports gives new keys (the runs are
redone, in new folders); editing a notebook, a study or a plotting helper changes no key.

    config.json    {target, code, config}: the run config and its code fingerprint (written first)
    ...            whatever the target writes (a checkpoint it resumes from, logs)
    timing.json    started, finished, seconds (wall time), host, pid, launcher
    metrics.json   what the target returned; written atomically and LAST: a mapping holding the target's
                   required_metrics means done (`{}`, `[1, 2]` or a missing key: redone, and named)
    error.json     instead of metrics.json when the target raised (type, message, traceback)
    run.lock       held (filelock) while a process trains the run: a second sweep on the same OUT does
                   the runs nobody holds first, then waits for the others and skips what got finished

A rerun skips every finished run and says how many it skipped. A run killed midway (kill -9)
has no metrics.json, so it is redone; stray temporary files (NAME.tmp.PID, from
studio.repro.atomic_write_text) are removed first, and a target that finds its own checkpoint in
run_dir resumes from it. Failed runs are retried on the next rerun.

OUT/results.csv has one row per finished run, in expansion order: the config (nested mappings
flattened as `trainer.devices`, lists as JSON), the metrics, `seconds` (wall time), `code` and
`run_key`. OUT/sweep.json records the resolved sweep config, the code fingerprint, the environment
and the git commit of the last invocation.

Launchers: `local` runs in this process, one run after another, with a progress bar (done, skipped,
failed counts); with `workers: N` (or `--workers N`, which wins) it runs up to N at once, each in a
process of its own (concurrent.futures.ProcessPoolExecutor, spawned), still with one bar; the workers
die with the sweep, even after a kill -9 (studio.workers.die_with_parent). A run's
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

Modules: `config` (SweepConfig, load_config, parse_config, expand), `execute` (run_key, execute_run,
run_sweep, the results table, main), `launchers` (local pool with its bar, submitit), `toy`
(`toy_target`, a cheap deterministic target: `studio sweep experiments/sweeps/toy.yaml --profile smoke`).
"""

from __future__ import annotations

from studio.errors import ParameterError
from studio.sweep.config import SweepConfig, config_path, expand, load_config, parse_config
from studio.sweep.execute import add_arguments, main, results_table, run_sweep
from studio.sweep.launchers import submitit_parameters
from studio.sweep.run import LAUNCHERS, RUN_FILES, execute_run, is_done, resolve_target, run_key, target_code
from studio.sweep.toy import toy_target

__all__ = [
    "LAUNCHERS",
    "RUN_FILES",
    "ParameterError",
    "SweepConfig",
    "add_arguments",
    "config_path",
    "execute_run",
    "expand",
    "is_done",
    "load_config",
    "main",
    "parse_config",
    "resolve_target",
    "results_table",
    "run_key",
    "run_sweep",
    "submitit_parameters",
    "target_code",
    "toy_target",
]
