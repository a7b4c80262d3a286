"""`symgrad hessian MODEL.py`: the structure of a model's Hessian (its pattern, read from
the DAG, and the star colouring that computes it from one HVP per colour), its values at
a point (`--at`), and a picture of the pattern in its colours (`--spy pattern.png`)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hessian", help="the Hessian's sparsity pattern, colouring and values",
                       description=__doc__.splitlines()[0])
    p.add_argument("model_file", metavar="MODEL.py")
    p.add_argument("--at", metavar="NAME=VALUE,...",
                   help="a point (params, and one sample's inputs): print the Hessian there")
    p.add_argument("--spy", metavar="PATTERN.png",
                   help="draw the pattern, each entry in its colour (.png, .svg, .pdf)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symgrad.cli.grad_cmd import point_option
    from symgrad.inspect.hessian import format_matrix, hessian_at, spy
    from symgrad.modelfile import load_model
    from symgrad.sparsity import hessian_sparsity

    at = point_option(args.at)
    model = load_model(args.model_file)
    sparsity = hessian_sparsity(model)
    n = sparsity.pattern.shape[0]
    dense = sparsity.n_colors == n and sparsity.density > 0.5
    print(f"{model.name or args.model_file}: {n} flat params; Hessian pattern "
          f"{sparsity.pattern.nnz} entries (density {sparsity.density:.3g})")
    if dense:
        print("structurally dense: a Hessian costs one HVP per param")
    else:
        print(f"star colouring: {sparsity.n_colors} colours, so a Hessian costs "
              f"{sparsity.n_colors} HVPs instead of {n}; a lower bound for any colouring "
              f"(a clique of the pattern): {sparsity.clique_bound()}")
    if at is not None:
        where = ", ".join(f"{k}={v:g}" for k, v in at.items())
        print(f"\nHessian at {where}" + (" (one sample, penalty included)"
                                         if model.inputs else "") + ":")
        print(format_matrix(hessian_at(model, at), model.param_names))
    if args.spy:
        spy(sparsity, model.param_names, args.spy)
        print(f"wrote {args.spy}", file=sys.stderr)
    return 0
