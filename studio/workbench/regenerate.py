"""`studio figures`: rerun every figure notebook and publish (or, with --check, compare) its figures.

Notebooks registered with `figures: true` in experiments/NAME.yaml run with one profile; `after:` orders
them (scaling_laws reads the table visual_context publishes). With jobs > 1 independent notebooks run
side by side, each in a process of its own (the run folder reaches its kernel through an environment
variable, which a thread could not keep apart); a notebook starts once everything it comes after has
succeeded. Of the notebooks ready to start, the one heading the longest remaining chain goes first
(critical path, from each notebook's last recorded wall time), so a long notebook does not start last.
Each success is published at once, under the MANIFEST lock, its files and the MANIFEST as one step
(studio.workbench.manifest); a publish a kill interrupted is completed before anything runs. With
--check, each rerun's data is compared with the published CSVs, and every published file (CSV, PNG,
PDF) with the sha256 the MANIFEST records.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from studio import paths
from studio.errors import ParameterError, PathError
from studio.workbench import manifest
from studio.workbench.params import NotebookSpec, list_notebooks, read_notebook, resolve
from studio.workbench.runner import RunFailed, run_notebook
from studio.workers import die_with_parent


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


UNKNOWN_SECONDS = 60.0  # a notebook never run here: a middling guess, so it neither jumps nor trails the queue


def last_seconds(name: str, profile: str, runs_root=None) -> float:
    """Wall time of the newest successful run of notebook `name` with `profile` (its provenance.json)."""
    folder = Path(runs_root or paths.RUNS) / name
    for run in sorted(folder.glob("*/provenance.json"), reverse=True):  # run folders start with a UTC stamp
        try:
            record = json.loads(run.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "ok" and record.get("profile") == profile and "seconds" in record:
            return float(record["seconds"])
    return UNKNOWN_SECONDS


def critical_path(specs: list[NotebookSpec], seconds: dict[str, float]) -> dict[str, float]:
    """Per notebook, its own seconds plus the longest chain of notebooks that come after it."""
    after_me = {s.name: [t.name for t in specs if s.name in t.after] for s in specs}
    memo: dict[str, float] = {}

    def length(name: str) -> float:
        if name not in memo:
            memo[name] = seconds[name] + max((length(n) for n in after_me[name]), default=0.0)
        return memo[name]

    return {s.name: length(s.name) for s in specs}


def queue(specs: list[NotebookSpec], profile: str, runs_root=None) -> list[NotebookSpec]:
    """`specs` longest remaining chain first (ties keep the dependency order): the order to start them in."""
    priority = critical_path(specs, {s.name: last_seconds(s.name, profile, runs_root) for s in specs})
    return sorted(specs, key=lambda s: -priority[s.name])


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def _run(path: str, profile: str):
    return run_notebook(path, profile, progress=False)


class _Inline:
    """One notebook at a time, in this process: no process start-up, and paths patched in-process hold."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as e:
            future.set_exception(e)
        return future


def writable_or_refuse(targets) -> None:
    """PathError naming the first of `targets` (files or folders) that this user cannot write."""
    for target in targets:
        target = Path(target)
        try:  # try it rather than ask os.access, which says yes to root and no to nothing else it should
            if target.is_dir():
                tempfile.TemporaryFile(dir=target).close()
            elif target.exists():
                os.close(os.open(target, os.O_WRONLY))
        except OSError:
            raise PathError(
                f"{paths.relative(target)} is not writable: `studio figures` publishes there (fix its permissions, "
                "e.g. chmod u+w, or use --check, which writes nothing)"
            ) from None


def run_figures(
    profile: str = "default", *, check: bool = False, only=None, jobs: int | None = None, echo=print
) -> int:
    """Run every figure notebook with `profile`; publish (or, with check, compare). Returns an exit code."""
    from tqdm.auto import tqdm

    from studio.workbench.readme import update_readme

    specs = figure_notebooks(only)
    for spec in specs:  # refuse bad profiles for all notebooks before running any
        resolve(spec, profile)
    if not check:
        writable_or_refuse([paths.FIGURES, paths.MANIFEST, paths.README])  # before an hour of training, not after
    jobs = jobs or default_jobs()
    names = {s.name for s in specs}
    problems: list[str] = []
    if check:
        with manifest.locked():
            pending = manifest.interrupted()
        if pending:
            echo(f"figures: {manifest.interrupted_detail(pending)}")
            problems.append(f"figures/: {manifest.interrupted_detail(pending)}")
    else:
        with manifest.locked():
            finished = manifest.recover()  # a publish a kill interrupted: complete it before anything runs
            if finished:
                update_readme()
        if finished:
            echo(f"figures: completed the publish of {finished} that an interrupted `studio figures` left")
    failed: list[str] = []
    done: set[str] = set()
    todo = queue(specs, profile)
    bar = tqdm(total=len(specs), desc=f"figures ({profile}, {jobs} at once)", unit="notebook")
    # Workers die with this process (a kill -9 of `studio figures` leaves no notebook running on).
    pool = (
        ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),)
        )
        if jobs > 1
        else _Inline()
    )
    with pool:
        running = {}
        while todo or running:
            for spec in [s for s in todo if all(d in done or d not in names for d in s.after)][: jobs - len(running)]:
                todo.remove(spec)
                running[pool.submit(_run, str(spec.path), profile)] = (spec, time.perf_counter())
            if not running:  # what is left waits on a notebook that failed
                failed += [s.name + " (skipped: an upstream notebook failed)" for s in todo]
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                spec, t0 = running.pop(future)
                bar.update(1)
                try:
                    result = future.result()
                except RunFailed as e:
                    failed.append(spec.name)
                    echo(f"{spec.name}: FAILED: {e}")
                    continue
                done.add(spec.name)
                seconds = time.perf_counter() - t0
                if check:
                    with manifest.locked():  # what is published now, not half of a concurrent publish
                        found = manifest.compare(result, manifest.read_manifest(), manifest.interrupted())
                    counts = {
                        s: sum(1 for _, st, _ in found if st == s)
                        for s in (manifest.IDENTICAL, manifest.WITHIN, manifest.CHANGED)
                    }
                    echo(
                        f"{spec.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" ({seconds:.0f} s)"
                    )
                    for name, status, detail in found:
                        if status != manifest.IDENTICAL:
                            echo(f"  {name}: {status}: {detail}")
                    problems += [f"{name}: {detail}" for name, status, detail in found if status == manifest.CHANGED]
                else:
                    with manifest.updating() as entries:
                        manifest.publish(result, entries)
                    made = len(manifest.outputs(result.figures_dir))
                    echo(f"{spec.name}: {made} figures/tables -> figures/ ({seconds:.0f} s)")
    bar.close()
    if failed:
        echo("figures: failed: " + ", ".join(failed))
        return 1
    if check:
        if update_readme(check=True):
            problems.append("README gallery or findings are stale (python -m studio.workbench.readme rewrites them)")
        echo(
            "figures --check: "
            + (
                "no change beyond the declared seed spread"
                if not problems
                else f"{len(problems)} change(s):\n  " + "\n  ".join(problems)
            )
        )
        return 1 if problems else 0
    with manifest.updating():  # under the MANIFEST lock: a concurrent run cannot interleave its README write
        update_readme()
    echo("README gallery and findings updated from figures/MANIFEST")
    return 0
