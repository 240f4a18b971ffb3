"""Launchers: where a sweep's pending runs execute. Both call the same `execute_run` for every run.

- `run_local`: in this process, one run after another, or (workers > 1) in that many spawned
  processes (concurrent.futures.ProcessPoolExecutor), with one progress bar either way. Workers die
  with the sweep (studio.workers.die_with_parent): a kill -9 of the sweep leaves no process behind.
  A run another sweep on the same folder is training ("busy", its lock is held) is put back at the
  end of the queue and then waited for.
- `run_submitit`: one job per pending run (a job array) through submitit.AutoExecutor; the config's
  `submitit:` options are mapped to AutoExecutor's names by `submitit_parameters`.

Each returns {run_key: result}, a result being what `execute_run` returns
({"status": "done" | "failed", ...}).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from studio import paths
from studio.errors import ParameterError
from studio.repro import atomic_write_text
from studio.workers import die_with_parent

# submitit.AutoExecutor's cluster-independent options; anything else unprefixed is a SLURM option.
SUBMITIT_GENERIC = (
    "name",
    "timeout_min",
    "mem_gb",
    "nodes",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "stderr_to_stdout",
)


class Bar:
    """tqdm over runs with done / skipped / failed counts in its postfix."""

    def __init__(self, progress: bool, total: int, skipped: int, label: str):
        from tqdm import tqdm

        self.tqdm = tqdm(
            total=total,
            initial=skipped,
            desc=label,
            unit="run",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
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


def run_local(target: str, code: str, pending, out: Path, bar: Bar, run_one: Callable, workers: int = 1) -> dict:
    """Run the pending (key, config) pairs here (workers == 1) or in `workers` spawned processes.

    run_one: `execute_run`, passed in (a module-level function, so that it pickles by reference).
    """
    results = {}
    with bar:
        if workers == 1 or len(pending) == 1:
            busy = []
            for key, cfg in pending:  # first the runs nobody else is training ...
                result = run_one(target, cfg, out / key, "local", None, code, wait=False)
                if result["status"] == "busy":
                    busy.append((key, cfg))
                    continue
                results[key] = result
                bar.record(result)
            for key, cfg in busy:  # ... then wait for the others (another sweep on this folder)
                results[key] = run_one(target, cfg, out / key, "local", None, code, wait=True)
                bar.record(results[key])
            return results
        import concurrent.futures as cf
        import multiprocessing

        # spawn, not fork: a forked child would inherit this process's torch thread pools and locks.
        pool = cf.ProcessPoolExecutor(
            max_workers=min(workers, len(pending)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = {
                pool.submit(run_one, target, cfg, str(out / key), "local", 0, code, wait=False): (key, cfg)
                for key, cfg in pending
            }
            while futures:
                finished, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    key, cfg = futures.pop(future)
                    try:
                        result = future.result()
                    except Exception as e:  # the worker process died (killed, out of memory)
                        result = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                    if result["status"] == "busy":  # at the back of the queue, this time waiting for it
                        futures[pool.submit(run_one, target, cfg, str(out / key), "local", 0, code, wait=True)] = (
                            key,
                            cfg,
                        )
                        continue
                    results[key] = result
                    bar.record(result)
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
        raise ParameterError(f"submitit: unknown cluster {cluster!r}; clusters: {', '.join(sorted(executors))}")
    params = {}
    for key, value in options.items():
        prefixed = key.split("_", 1)[0] in executors
        params[key if key in SUBMITIT_GENERIC or prefixed else f"slurm_{key}"] = value
    return cluster, params


def submitit_job(target: str, config: dict, run_dir: str, code: str | None = None) -> dict:
    """What a submitit job runs (module-level so that it pickles by reference)."""
    import submitit

    from studio.sweep.run import execute_run

    try:
        rank = submitit.JobEnvironment().global_rank
    except RuntimeError:  # not inside a submitit job (the "debug" cluster runs in this process)
        rank = 0
    return execute_run(target, config, run_dir, launcher="submitit", rank=rank, code=code)


def run_submitit(
    name: str, options: dict, target: str, code: str, pending, out: Path, bar: Bar, done: Callable[[Path], dict | None]
) -> dict:
    """Submit the pending (key, config) pairs as a job array and wait for them; `done(run_dir)` says
    whether a run finished (a job that died without writing its error gets an error.json here)."""
    import json

    import submitit

    cluster, params = submitit_parameters(options)
    params.setdefault("name", f"sweep-{name}")
    try:
        executor = submitit.AutoExecutor(folder=out / "submitit", cluster=cluster)
        executor.update_parameters(**params)
    except (NameError, AssertionError, ValueError, RuntimeError) as e:
        raise ParameterError(f"submitit options {options}: {e}") from e
    jobs = executor.map_array(
        submitit_job,
        [target] * len(pending),
        [c for _, c in pending],
        [str(out / k) for k, _ in pending],
        [code] * len(pending),
    )
    key_of = {id(job): key for job, (key, _) in zip(jobs, pending)}
    print(
        f"{bar.label}: submitted {len(jobs)} jobs ({executor.cluster}); logs in {paths.relative(out / 'submitit')}",
        file=sys.stderr,
    )
    poll = 0.2 if executor.cluster in ("local", "debug") else 10.0
    results = {}
    with bar:
        for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
            key = key_of[id(job)]
            try:
                r = job.results()[0]  # rank 0's result when a job has several tasks
            except Exception as e:  # the job itself died (timeout, out of memory, node failure)
                r = {"status": "failed", "error": f"{type(e).__name__}: {str(e).strip().splitlines()[-1:]}"}
                if done(out / key) is None:
                    atomic_write_text(
                        out / key / "error.json",
                        json.dumps({"type": type(e).__name__, "message": str(e), "job_id": job.job_id}, indent=2)
                        + "\n",
                    )
            results[key] = r
            bar.record(r)
    return results
