"""`symgrad graph MODEL.py [--at x=-2,y=5] [-o graph.svg|.png|.dot]`: a picture of
the computational graph with each node's value and gradient."""

from __future__ import annotations

import argparse
import sys

from symgrad.inspect.picture import FORMATS, MAX_NODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "graph", help="draw the computational graph with values and gradients",
        description="Draw the model's computational graph: each node's operation and, "
                    "at a point given with --at, its value (above) and gradient (below). "
                    "SVG and PNG need matplotlib; DOT needs nothing. Without "
                    "-o, DOT (or SVG) text goes to stdout.")
    p.add_argument("model_file", metavar="MODEL.py")
    p.add_argument("--at", metavar="NAME=VALUE,...",
                   help="a point: one value per param and input (one sample)")
    p.add_argument("-o", "--output", metavar="OUT.svg|OUT.png|OUT.dot")
    p.add_argument("--format", choices=FORMATS,
                   help="the output format (default: from the -o extension; dot on stdout)")
    p.add_argument("--max-nodes", type=int, default=MAX_NODES, metavar="N",
                   help=f"draw at most N nodes, those nearest the output (default {MAX_NODES})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symgrad.cli.grad_cmd import point_option, progress
    from symgrad.errors import OptionError
    from symgrad.inspect.picture import graph_picture, output_format
    from symgrad.modelfile import load_model

    at = point_option(args.at)
    if args.output is None:
        fmt = args.format or "dot"
        if fmt == "png":
            raise OptionError("PNG is binary: give a file name with -o graph.png")
    else:
        fmt = output_format(args.output, args.format)
    model = load_model(args.model_file)
    progress(f"tracing the graph of {model.name}...")
    picture = graph_picture(model, at, args.max_nodes)
    if picture.note:
        progress(f"note: {picture.note}")
    if fmt != "dot":
        progress(f"drawing {len(picture.nodes)} nodes as {fmt.upper()}...")
    if args.output is None:
        sys.stdout.write(picture.dot() if fmt == "dot" else picture.svg())
        return 0
    picture.save(args.output, fmt)
    print(f"wrote {args.output}: {len(picture.nodes)} nodes, {len(picture.edges)} edges")
    return 0
