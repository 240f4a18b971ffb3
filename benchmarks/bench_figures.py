"""How long `make figures` takes, warm (nothing changed) and cold (empty caches), and with --jobs.

    .venv/bin/python benchmarks/bench_figures.py                 # warm, jobs = the number of cores
    .venv/bin/python benchmarks/bench_figures.py --cold --jobs 1 # empty sweep and artefact caches, one at a time

It runs `studio figures --check` (the same work as `make figures`, but figures/ is left alone), with
STUDIO_CACHE and STUDIO_SWEEPS pointed at a fresh temporary folder for --cold, and prints the wall time
of each notebook and of the whole run. Exit status: that of `studio figures --check` (1 when a figure's
data differs from the MANIFEST, which on a warm checkout with nothing changed must not happen).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty caches (a fresh clone's first run)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    tmp = None
    if args.cold:
        tmp = tempfile.mkdtemp(prefix="bench-figures-")
        env.update(STUDIO_CACHE=f"{tmp}/cache", STUDIO_SWEEPS=f"{tmp}/sweeps")
    cmd = [
        str(ROOT / ".venv" / "bin" / "studio"),
        "figures",
        "--check",
        "--profile",
        args.profile,
        "--jobs",
        str(args.jobs),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    per_notebook = re.findall(r"^(\w+): [^(\n]* \((\d+) s\)", proc.stdout, re.M)
    mode = "cold" if args.cold else "warm"
    print(f"studio figures --check --profile {args.profile} --jobs {args.jobs} ({mode}, {os.cpu_count()} cores)")
    for name, seconds in per_notebook:
        print(f"  {name:<22} {int(seconds):>5} s")
    print(f"  {'total wall time':<22} {wall:>5.0f} s")
    tail = [line for line in proc.stdout.splitlines() if line.startswith(("  ", "figures"))]
    print("\n".join(tail[-12:]))
    if proc.returncode not in (0, 1):
        print(proc.stderr[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
