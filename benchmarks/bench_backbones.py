"""What a training step of each LM backbone costs against the number of visual tokens, at matched size.

Times forward + backward + AdamW of the Llama (attention), the Mamba (mambapy's parallel scan; mamba_ssm's
CUDA kernels on a GPU when installed) and the MoE (Mixtral, matched active parameters) at the video-LM
cells' size on `--batch` sequences of L visual tokens plus the question, for L in --lengths (backbones
interleaved at each length, so a change of machine load hits all of them alike). Prints, from this one run:
median step time and memory per backbone and length, the ratios to the Llama, the fitted cost exponents
(cost = A * L^alpha, studio.scaling law pure_power, bootstrap CIs over the timed steps) on all lengths
and on the long end (L >= --long-from), and the length where the Mamba step becomes cheaper than the
Llama's, with its bootstrap band (measured when inside the lengths timed, else extrapolated).

    .venv/bin/python benchmarks/bench_backbones.py                              # 64..4096, batch 8
    .venv/bin/python benchmarks/bench_backbones.py --lengths 64 256 1024 --batch 4 --repeats 2
    .venv/bin/python benchmarks/bench_backbones.py --device cuda --lengths 64 256 1024 4096 16384

Memory: on a CPU, the activations autograd saves for the backward pass; on a GPU, the peak allocated.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096], help="visual tokens")
    ap.add_argument("--backbones", nargs="+", default=["llama", "mamba", "moe"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per backbone and length")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per backbone and length")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--long-from", type=int, default=1024, help="the long end's shortest length")
    ap.add_argument("--csv", default=None, help="write the timed steps here")
    args = ap.parse_args()

    from studio.studies.backbones import cost_exponents, cost_ratios, crossover, measure_costs

    t0 = time.perf_counter()
    costs = measure_costs(
        args.backbones,
        args.lengths,
        batch=args.batch,
        width=args.width,
        layers=args.layers,
        heads=args.heads,
        mlp_ratio=args.mlp_ratio,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        device=args.device,
        progress=lambda line: print("  " + line, flush=True),
    )
    wall = time.perf_counter() - t0
    if args.csv:
        costs.to_csv(args.csv, index=False)
    pd.set_option("display.width", 160)
    n = costs.groupby("backbone")[["n_params", "n_active"]].first()
    print(
        f"\n{len(costs)} timed steps in {wall:.0f} s on {args.device} ({args.threads} thread(s)), batch {args.batch}, "
        f"width {args.width}, {args.layers} layers; parameters (active): "
        + ", ".join(f"{k} {r.n_params:,} ({r.n_active:,})" for k, r in n.iterrows())
    )
    print(f"memory: {costs['memory_kind'].iloc[0]}")
    for metric, unit in (("seconds", "s"), ("memory_mb", "MB")):
        print(f"\nmedian {metric} per step ({unit}) and ratio to the Llama:")
        print(cost_ratios(costs, metric).round(4).to_string(index=False))
    for label, start in (("all lengths", 0), (f"lengths >= {args.long_from}", args.long_from)):
        if costs[costs["length"] >= start]["length"].nunique() < 2:
            continue
        exps = cost_exponents(costs, n_bootstrap=args.bootstrap, min_length=start)
        print(f"\ncost exponents alpha (cost ~ L^alpha), {label}, 95% bootstrap CI:")
        print(exps[["backbone", "metric", "alpha", "ci_low", "ci_high", "lengths"]].round(3).to_string(index=False))
        if {"mamba", "llama"} <= set(args.backbones):
            c = crossover(costs, "mamba", "llama", n_bootstrap=args.bootstrap, min_length=start)
            where = (
                "never (mamba's time does not grow more slowly)"
                if not np.isfinite(c["length"])
                else f"{c['length']:,.0f} visual tokens [{c['ci_low']:,.0f}, {c['ci_high']:,.0f}] "
                + ("(measured)" if c["measured"] else "(extrapolated)")
            )
            print(f"mamba cheaper than llama per step from: {where}; {c['share_never']:.0%} of resamples never cross")


if __name__ == "__main__":
    main()
