"""Wall time of a whole sweep with the local launcher, and how well `workers` processes share the machine.

Runs every cell of a sweep profile into a fresh scratch folder (experiments/scratch/bench_sweep/...,
deleted first: nothing is skipped) once per value of --workers, and prints, for each: wall time, the
sum of the runs' own wall times, parallel efficiency (sum / (wall x workers)), and the speed-up over the
first --workers value. The frame encoder and the feature bank are built on the first call if missing and
then cached (not timed: run once without timing, or accept that the first line includes them).

    .venv/bin/python benchmarks/bench_sweep.py --profile smoke --workers 1 2
    .venv/bin/python benchmarks/bench_sweep.py --workers 2          # the default profile: about 5 minutes
"""

from __future__ import annotations

import argparse
import shutil
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="experiments/sweeps/visual_context.yaml")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from studio import paths
    from studio.sweep import load_config, run_sweep

    config = load_config(args.config, args.profile)
    first = None
    for workers in args.workers:
        out = paths.SCRATCH / "bench_sweep" / f"{config.name}-{config.profile_name}-w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        df = run_sweep(config, out=out, workers=workers, progress=True)
        wall = time.perf_counter() - t0
        busy = float(df["seconds"].sum())
        first = first or wall
        print(
            f"{config.name} ({config.profile_name}), {len(df)} runs, workers {workers}: wall {wall:7.1f} s, "
            f"runs' own wall {busy:7.1f} s, efficiency {busy / (wall * workers):.2f}, "
            f"speed-up {first / wall:.2f}x over workers {args.workers[0]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
