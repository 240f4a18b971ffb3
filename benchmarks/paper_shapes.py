"""Before a sweep's `paper` profile goes to a GPU or to SLURM: one training step of every distinct model
shape it holds, on tiny banks, on this machine, so that a shape that cannot be built (a width the heads do
not divide, a scan order a backbone refuses, a budget a strategy cannot meet) fails here in seconds, not
after a queue wait. It checks that the configs run, not what they learn: one step, 64 training videos.

    .venv/bin/python benchmarks/paper_shapes.py backbones
    .venv/bin/python benchmarks/paper_shapes.py visual_design_space --profile paper

Prints per shape: the keys that make it distinct, the seconds the step (with its bank and evaluation)
took, and the validation loss; then how many shapes ran. Exit 1 when any shape fails (each failure is
printed with its config). Everything it trains goes to a temporary cache, never to experiments/cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# what makes two runs different models (or different token layouts); seeds and data sizes do not
SHAPE_KEYS = ("backbone", "scan", "strategy", "mix", "frames", "tokens_per_frame", "width", "layers", "heads")
TINY = {"steps": 1, "train_videos": 64, "val_videos": 32, "encoder_steps": 5, "batch_size": 8, "threads": 1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", help="a sweep config name under experiments/sweeps/ (e.g. backbones)")
    ap.add_argument("--profile", default="paper")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paper-shapes-") as cache:
        os.environ["STUDIO_CACHE"] = cache  # before studio.paths is imported
        from studio import paths
        from studio.sweep.config import expand, load_config
        from studio.sweep.run import resolve_target

        config = load_config(paths.SWEEP_CONFIGS / f"{args.sweep}.yaml", args.profile)
        target = resolve_target(config.target)
        runs = expand(config)
        keys = [k for k in SHAPE_KEYS if k in runs[0]]
        shapes: dict[str, dict] = {}
        for run in runs:
            shapes.setdefault(json.dumps({k: run.get(k) for k in keys}), run)
        print(f"{args.sweep} ({args.profile}): {len(runs)} runs, {len(shapes)} distinct shapes", flush=True)
        failed = 0
        for i, (shape, run) in enumerate(shapes.items(), 1):
            tiny = {**run, **{k: v for k, v in TINY.items() if k in run}}
            t0 = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory() as out:
                    metrics = target(tiny, Path(out))
                print(
                    f"[{i}/{len(shapes)}] {shape}: {time.perf_counter() - t0:.1f} s, val_loss {metrics['val_loss']:.3f}"
                )
            except Exception as e:  # noqa: BLE001  (report every failing shape, not only the first)
                failed += 1
                print(f"[{i}/{len(shapes)}] {shape}: FAILED {type(e).__name__}: {e}")
        print(f"{len(shapes) - failed} of {len(shapes)} shapes ran one step")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
