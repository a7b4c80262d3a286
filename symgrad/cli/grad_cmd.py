"""`symgrad grad MODEL.py`: every parameter's gradient formula, or the adjoint
program step by step (`--steps`), optionally at a point (`--at x=-2,y=5`); with
`--order 2`, the Hessian-vector product program (or sympy.hessian's entries)."""

from __future__ import annotations

import argparse
import sys

from symgrad.derivation import METHODS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grad", help="show the gradient formulas, or the derivation step by step",
        description="Print the gradient of the model's loss with respect to each "
                    "parameter: as formulas (reverse mode names the intermediates it "
                    "shares; symbolic is sympy.diff's tree), or with --steps as the "
                    "forward and backward sweep of reverse mode, as a hand derivation.")
    p.add_argument("model_file", metavar="MODEL.py")
    p.add_argument("--method", choices=METHODS, default="reverse",
                   help="reverse mode over the DAG (default) or sympy.diff per parameter")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true",
                       help="print the formulas as a LaTeX align* block (amsmath)")
    style.add_argument("--pretty", action="store_true",
                       help="print the formulas as Unicode art")
    p.add_argument("--order", type=int, choices=(1, 2), default=1,
                   help="2: the Hessian-vector products by forward-over-reverse, shared "
                        "intermediates named (--method symbolic: sympy.hessian's entries); "
                        "with --at, the Hessian's values there")
    p.add_argument("--steps", action="store_true",
                   help="show reverse mode's forward values and backward sweep node by node")
    p.add_argument("--at", metavar="NAME=VALUE,...",
                   help="a point: one value per param and input (for a model with inputs, "
                        "one sample); numbers for --steps, gradient values otherwise")
    p.set_defaults(func=run)


def progress(line: str) -> None:
    """Progress lines go to stderr, so stdout stays the result (e.g. a .tex file)."""
    print(f"symgrad: {line}", file=sys.stderr, flush=True)


def point_option(text: str | None) -> dict[str, float] | None:
    from symgrad.inspect.point import parse_point
    return None if text is None else parse_point(text)


def run(args: argparse.Namespace) -> int:
    from symgrad.errors import OptionError
    from symgrad.inspect import grad
    from symgrad.inspect.steps import adjoint_steps
    from symgrad.modelfile import load_model

    at = point_option(args.at)
    if args.steps and (args.latex or args.pretty):
        raise OptionError("--steps prints text; --latex and --pretty apply to the formulas")
    if args.steps and args.method != "reverse":
        raise OptionError("--steps shows reverse mode's sweep; use it with --method reverse")
    model = load_model(args.model_file)
    if args.order == 2:
        return _second_order(model, args, at)
    if args.steps:
        progress(f"tracing reverse mode over {model.name}...")
        sys.stdout.write(adjoint_steps(model, at).text())
        return 0
    formulas = grad(model, args.method, progress=progress)
    if args.latex:
        sys.stdout.write(formulas.latex())
    elif args.pretty:
        sys.stdout.write(formulas.pretty())
    else:
        sys.stdout.write(formulas.text())
    if at is not None:
        steps = adjoint_steps(model, at)
        where = ", ".join(f"{k}={v:g}" for k, v in at.items())
        prefix = "% " if args.latex else ""
        sample = ""
        if model.inputs:
            sample = " (one sample" + (", penalty included)" if model.penalty else ")")
        print(f"{prefix}At {where}{sample}:")
        for p, value in steps.final.items():
            print(f"{prefix}  d{formulas.loss_name}/d{p} = {value}")
    return 0


def _second_order(model, args: argparse.Namespace, at) -> int:
    from symgrad.errors import OptionError
    from symgrad.inspect.hessian import format_matrix, hessian_at, hessian_formulas

    if args.steps or args.latex or args.pretty:
        raise OptionError("--order 2 prints text formulas; --steps, --latex and --pretty "
                          "are for the gradient (--order 1)")
    progress(f"deriving the second order of {model.name} by {args.method}...")
    sys.stdout.write(hessian_formulas(model, args.method).text())
    if at is not None:
        where = ", ".join(f"{k}={v:g}" for k, v in at.items())
        sample = " (one sample, penalty included)" if model.inputs else ""
        print(f"\nHessian at {where}{sample}:")
        print(format_matrix(hessian_at(model, at, args.method), model.param_names))
    return 0
