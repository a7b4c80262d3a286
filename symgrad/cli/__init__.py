"""The `symgrad` command line. Each subcommand lives in its own module with
`register(subparsers)`, which adds its parser and sets `func(args) -> int`."""

from __future__ import annotations

import argparse
import sys

from symgrad.cli import (bench_cmd, compile_cmd, functions_cmd, grad_cmd, graph_cmd,
                         hessian_cmd, train_cmd)
from symgrad.errors import SymgradError

COMMANDS = [compile_cmd, grad_cmd, graph_cmd, hessian_cmd, train_cmd, bench_cmd,
            functions_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symgrad",
        description="Compile SymPy loss formulas into gradient kernels (Numba).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SymgradError as exc:
        print(f"symgrad: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
