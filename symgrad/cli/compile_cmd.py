"""`symgrad compile MODEL.py -o OUT.py`: write a standalone kernel module."""

from __future__ import annotations

import argparse

from symgrad.derivation import METHODS
from symgrad.options import TARGETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model file into a kernel module",
                       description="Differentiate the `model` defined in MODEL.py and "
                                   "write its Numba kernels as a standalone module.")
    p.add_argument("model_file", metavar="MODEL.py")
    p.add_argument("-o", "--output", required=True, metavar="OUT.py")
    # Not argparse choices: symgrad checks them and reports an OptionError in one line.
    p.add_argument("--method", default="reverse", metavar="{" + ",".join(METHODS) + "}",
                   help="reverse mode over the DAG (default) or sympy.diff per parameter")
    p.add_argument("--target", default="cpu", metavar="{" + ",".join(TARGETS) + "}")
    p.add_argument("--order", type=int, default=1, metavar="{1,2}",
                   help="2: also jvp, hvp and hessian (forward mode, forward-over-reverse)")
    p.add_argument("--jit", action="store_true",
                   help="also JIT-compile the kernels now and report the time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import symgrad
    from symgrad.modelfile import load_model

    model = load_model(args.model_file)
    kernel = symgrad.compile(model, method=args.method, target=args.target, order=args.order)
    kernel.save(args.output)
    sizes = kernel.derivation.sizes()
    t = kernel.timings
    print(f"wrote {args.output}: {len(kernel.source.splitlines())} lines; "
          f"{sizes['forward_ops']} forward + {sizes['backward_ops']} backward ops; "
          f"derive {t['derive']:.3f} s, emit {t['emit']:.3f} s")
    if args.jit and args.target == "cuda" and not _gpu_visible():
        print("--jit: no CUDA GPU visible here; CUDA kernels compile at their first launch "
              "on a GPU")
    elif args.jit:
        kernel.warmup_loss()
        jit = kernel.warmup()
        print("numba compile: " + ", ".join(f"{k[4:]} {v:.2f} s" for k, v in jit.items()))
    return 0


def _gpu_visible() -> bool:
    from numba import cuda
    return cuda.is_available()
