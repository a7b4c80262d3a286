"""`symgrad bench`: measure a model's gradient sizes, or run the symbolic-vs-reverse benchmark.

    symgrad bench sizes MODEL.py [--budget S] [--json OUT.json]
    symgrad bench symbolic-vs-reverse [--depth 1..8] [--quick] [--json F] [--plot F.png]
    symgrad bench second-order [--depth 1..6] [--quick] [--json F]

The benchmark lives in symgrad/bench/ (benchmarks/symbolic_vs_reverse.py is its
script in a checkout).
"""

from __future__ import annotations

import argparse
import json

from symgrad.errors import OptionError

def _benchmark_module():
    from symgrad.bench import symbolic_vs_reverse
    return symbolic_vs_reverse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="gradient sizes of a model; symbolic-vs-reverse benchmark",
                       description="Measure how big each method's gradient is and how long "
                                   "it takes to derive, compile and run.")
    which = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")

    s = which.add_parser("sizes", help="forward, reverse-mode and direct-symbolic sizes of "
                                       "one model, each with its derivation time")
    s.add_argument("model_file", metavar="MODEL.py")
    s.add_argument("--budget", type=float, default=60.0, metavar="S",
                   help="seconds per method before it is reported as over budget (default 60)")
    s.add_argument("--json", metavar="OUT.json", help="also write the sizes as JSON")
    s.set_defaults(func=run_sizes)

    b = which.add_parser("symbolic-vs-reverse",
                         help="sympy.diff trees, trees + sympy.cse and reverse mode on growing "
                              "networks: sizes, times, kernel speed, agreement",
                         description="Direct symbolic differentiation against reverse mode. "
                                     "Rows print to stderr as they finish; the table to "
                                     "stdout. The full default run takes about 15 minutes "
                                     "on 2 cores; --quick takes about one.")
    try:
        _benchmark_module().add_arguments(b)
    except Exception as exc:  # keep the other commands working; say why when asked to run
        b.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        b.set_defaults(func=_unavailable(exc))
        return
    b.set_defaults(func=run_benchmark)

    from symgrad.bench import second_order
    h = which.add_parser("second-order",
                         help="sympy.hessian trees, trees + cse and forward-over-reverse on "
                              "the tanh networks and the hinge net: sizes, HVP cost",
                         description=second_order.__doc__.splitlines()[0])
    second_order.add_arguments(h)
    h.set_defaults(func=lambda args: second_order.main_args(args))


def _unavailable(exc: Exception):
    def run(args: argparse.Namespace) -> int:
        if isinstance(exc, OptionError):
            raise exc
        raise OptionError(f"the benchmark could not be loaded: {type(exc).__name__}: {exc}")
    return run


def run_sizes(args: argparse.Namespace) -> int:
    from symgrad.files import write_atomic
    from symgrad.measure import sizes
    from symgrad.modelfile import load_model

    if not args.budget > 0:
        raise OptionError(f"--budget must be a positive number of seconds, got {args.budget}")
    model = load_model(args.model_file)
    result = sizes(model, budget_s=args.budget)
    print(result.format())
    if args.json:
        write_atomic(args.json, json.dumps(result.as_dict(), indent=1) + "\n")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    return _benchmark_module().main_args(args)
