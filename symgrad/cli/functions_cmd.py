"""`symgrad functions`: the SymPy functions symgrad compiles, with their conventions."""

from __future__ import annotations

import argparse
from pathlib import Path

from symgrad import catalog


def register(sub) -> None:
    p = sub.add_parser("functions", help="list the SymPy functions symgrad compiles",
                       description=__doc__.splitlines()[0])
    p.add_argument("--write", type=Path, metavar="README",
                   help="replace the table between the file's <!-- functions: ... --> "
                        "markers instead of printing it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.write is None:
        print(catalog.readme_block(), end="")
    else:
        print("updated" if catalog.write_readme(args.write) else "unchanged", args.write)
    return 0
