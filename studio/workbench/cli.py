"""The `studio` command: run, list, figures, sweep, sync.

Every subcommand checks its input first and prints one clear line on stderr with a non-zero exit when
it refuses (2 for bad input, 1 for a run that failed).
"""

from __future__ import annotations

import argparse
import sys

from studio import paths


def _parse_overrides(pairs) -> dict:
    from studio.workbench.params import ParameterError, parse_cli_value

    out = {}
    for key, value in pairs or []:
        if key in out:
            raise ParameterError(f"parameter {key!r} given twice with -p")
        out[key] = parse_cli_value(value, key)
    return out


def cmd_run(args) -> int:
    from studio.workbench.runner import run_notebook

    result = run_notebook(
        args.notebook, args.profile, args.file or (), _parse_overrides(args.param), progress=not args.quiet
    )
    print(f"ok: {paths.relative(result.run_dir)} ({result.provenance['seconds']} s)")
    return 0


def cmd_list(args) -> int:
    from studio.workbench.params import list_notebooks, read_notebook

    for path in list_notebooks():
        spec = read_notebook(path)
        flags = " [figures]" if spec.figures else ""
        print(f"{paths.relative(path)}{flags}")
        width = max((len(n) for n in spec.params), default=0)
        for p in spec.params.values():
            line = f"    {p.name:<{width}}  {p.type:<16} = {p.default!r}"
            print(line + (f"  # {p.help}" if p.help else ""))
        for pname, values in spec.profiles.items():
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(defaults)"
            print(f"    profile {pname}: {shown}")
    return 0


def cmd_figures(args) -> int:
    from studio.workbench.regenerate import run_figures

    return run_figures(args.profile, check=args.check, only=args.only, jobs=args.jobs)


def cmd_sweep(args) -> int:
    from studio import sweep

    return sweep.main(args)


def cmd_sync(args) -> int:
    from studio.workbench.notebooks import sync_all

    changed = sync_all(check=args.check)
    for c in changed:
        print(("out of sync: " if args.check else "wrote ") + c)
    return 1 if (args.check and changed) else 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def _numerics_flag(parser) -> None:
    parser.add_argument(
        "--fast-numerics",
        action="store_true",
        help="let PyTorch, MKL, oneDNN and OpenBLAS take this processor's fastest kernels (the same "
        "seed may then give other bytes on another processor); default: portable (studio.numerics)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a notebook headlessly into experiments/runs/")
    run.add_argument("notebook", help="e.g. notebooks/quickstart.ipynb")
    run.add_argument("--profile", help="a profile from experiments/NAME.yaml (smoke, default, paper)")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="override one parameter; VALUE is parsed as YAML",
    )
    run.add_argument("-f", "--file", action="append", help="a YAML file of parameter values")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _numerics_flag(run)
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="notebooks, their parameters and profiles")
    lst.set_defaults(func=cmd_list)

    fig = sub.add_parser("figures", help="regenerate figures/ and figures/MANIFEST")
    fig.add_argument("--profile", default="default")
    fig.add_argument(
        "--check",
        action="store_true",
        help="rerun and report figures whose data changed, and published files (CSV, PNG, PDF) that differ "
        "from the MANIFEST; figures/ is left untouched",
    )
    fig.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="only these notebooks (repeatable)")
    fig.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="notebooks run side by side (respecting `after:`); default: the number of cores",
    )
    _numerics_flag(fig)
    fig.set_defaults(func=cmd_figures)

    from studio.sweep import add_arguments as sweep_arguments

    sw = sweep_arguments(sub.add_parser("sweep", help="run a grid of small-scale ablations (cached, resumable)"))
    _numerics_flag(sw)
    sw.set_defaults(func=cmd_sweep)

    sy = sub.add_parser("sync", help="rewrite notebooks/*.ipynb from their paired py:percent files")
    sy.add_argument("--check", action="store_true", help="only report pairs that differ")
    sy.set_defaults(func=cmd_sync)
    return parser


def main(argv=None) -> int:
    from studio.errors import StudioError

    args = build_parser().parse_args(argv)
    if getattr(args, "fast_numerics", False):
        from studio import numerics

        numerics.apply("fast")  # before torch loads here; every kernel and worker inherits it
    try:
        return args.func(args)
    except (StudioError, FileNotFoundError) as e:
        print(f"studio {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"studio {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from studio.workbench.runner import RunFailed

        if isinstance(e, RunFailed):
            print(f"studio {args.command}: failed: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
