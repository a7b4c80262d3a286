"""`symgrad train MODEL.py`: train a model file's `model` on its own data.

The model file defines `model`, and `data()` and `params()` (functions or
plain dicts) giving the training data and the initial params (`initial_params`
is accepted for `params`).
"""

from __future__ import annotations

import argparse
import io
import sys
import time

from symgrad.errors import ModelFileError, OptionError

BAR_WIDTH = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model file's model on its data",
                       description=__doc__.splitlines()[0])
    p.add_argument("model_file", metavar="MODEL.py")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--optimizer", choices=["sgd", "rmsprop", "adam"], default="sgd")
    p.add_argument("--lr", type=float, required=True, help="learning rate")
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--plot", metavar="LOSS.png", help="draw the loss curve to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import symgrad
    from symgrad import optim
    from symgrad.modelfile import load_namespace, model_from

    if args.steps < 0:
        raise OptionError(f"--steps must be >= 0, got {args.steps}")
    namespace = load_namespace(args.model_file)
    model = model_from(namespace, args.model_file)
    data = _value(namespace, args.model_file, "data")
    params = _value(namespace, args.model_file, "params", "initial_params")
    print(f"compiling {args.model_file} ...", file=sys.stderr)
    kernel = symgrad.compile(model, dtype=args.dtype)
    optimizer = {"sgd": optim.SGD(lr=args.lr, momentum=args.momentum),
                 "rmsprop": optim.RMSprop(lr=args.lr),
                 "adam": optim.Adam(lr=args.lr)}[args.optimizer]
    kernel.warmup(optimizer)
    history, state = [], None
    start = time.perf_counter()
    interactive = sys.stderr.isatty()
    chunk = max(1, args.steps // (50 if interactive else 10))
    done = 0
    while done < args.steps:
        steps = min(chunk, args.steps - done)
        params, part, state = kernel.train_step(params, data, optimizer, steps, state)
        history.extend(part.tolist())
        done += steps
        _progress(done, args.steps, history[-1], interactive)
    elapsed = time.perf_counter() - start
    final = kernel.loss(params, data)
    if interactive:
        print(file=sys.stderr)
    per_step = elapsed / max(args.steps, 1) * 1e6
    print(f"final loss {final:.6g} after {args.steps} steps of {args.optimizer} "
          f"(lr {args.lr:g}); {elapsed:.3f} s, {per_step:.1f} us/step")
    if args.plot:
        _plot(history, args.plot, f"{args.model_file}: {args.optimizer}, lr {args.lr:g}")
        print(f"wrote {args.plot}")
    return 0


def _value(namespace: dict, path: str, *names: str):
    for name in names:
        if name in namespace:
            value = namespace[name]
            return value() if callable(value) else value
    raise ModelFileError(f"model file {path!r} defines no {names[0]!r}; `symgrad train` "
                         f"needs `data()` and `params()` (functions or dicts) beside `model`")


def _progress(done: int, total: int, loss: float, interactive: bool) -> None:
    """A bar redrawn in place on a terminal; a line per tenth of the run otherwise."""
    filled = BAR_WIDTH * done // max(total, 1)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    print(f"{chr(13) if interactive else ''}[{bar}] {done}/{total} loss {loss:.6g}",
          end="" if interactive else "\n", file=sys.stderr, flush=True)


def _plot(history: list[float], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from symgrad.files import write_atomic

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(history)), history)
    if history and min(history) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (before the step)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.rsplit(".", 1)[-1].lower() if "." in path else "png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
