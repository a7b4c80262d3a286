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
    p.add_argument("--optimizer", choices=["sgd", "rmsprop", "adam", "adamw", "lbfgs",
                                           "newton"], default="sgd",
                   help="newton compiles the second-order kernels (order=2); lbfgs and "
                        "newton run whole steps with a line search")
    p.add_argument("--lr", type=float,
                   help="learning rate (needed for sgd; the others default to PyTorch's)")
    p.add_argument("--momentum", type=float, default=0.0, help="SGD and RMSprop momentum")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--plot", metavar="LOSS.png", help="draw the loss curve to this file")
    p.add_argument("--check-finite", action="store_true",
                   help="first check the data for NaN and inf (names the first bad row)")
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
    optimizer = _optimizer(args)
    print(f"compiling {args.model_file} ...", file=sys.stderr)
    start = time.perf_counter()
    kernel = symgrad.compile(model, dtype=args.dtype,
                             order=2 if args.optimizer == "newton" else 1)
    built = time.perf_counter() - start
    jit = sum(kernel.warmup(optimizer).values())
    print(f"compiled in {built + jit:.2f} s ({built:.2f} s derive and emit, {jit:.2f} s "
          f"Numba JIT or cache load)", file=sys.stderr)
    history, state, chunks = [], None, []
    interactive = sys.stderr.isatty()
    chunk = max(1, args.steps // (50 if interactive else 10))
    done = 0
    while done < args.steps:
        steps = min(chunk, args.steps - done)
        begun = time.perf_counter()
        params, part, state = kernel.train_step(params, data, optimizer, steps, state,
                                                check_finite=args.check_finite and not done)
        chunks.append((time.perf_counter() - begun, steps))
        history.extend(part.tolist())
        done += steps
        _progress(done, args.steps, history[-1], interactive)
    final = kernel.loss(params, data)
    if interactive:
        print(file=sys.stderr)
    elapsed = sum(seconds for seconds, _ in chunks)
    lr = getattr(optimizer, "lr", None)
    print(f"final loss {final:.6g} (after the last update) after {args.steps} steps of "
          f"{args.optimizer}{'' if lr is None else f' (lr {lr:g})'}; training {elapsed:.3f} s, "
          f"{_steady_us_per_step(chunks):.1f} us/step steady")
    if args.plot:
        _plot(history, args.plot, f"{args.model_file}: {args.optimizer}"
              + ("" if lr is None else f", lr {lr:g}"))
        print(f"wrote {args.plot}")
    return 0


def _optimizer(args: argparse.Namespace):
    from symgrad import optim

    if args.lr is None and args.optimizer == "sgd":
        raise OptionError("--lr is needed for sgd (e.g. --lr 1e-3)")
    if args.momentum and args.optimizer not in ("sgd", "rmsprop"):
        raise OptionError(f"--momentum is for sgd and rmsprop, not {args.optimizer}")
    lr = {} if args.lr is None else {"lr": args.lr}
    if args.optimizer == "newton":
        if lr:
            raise OptionError("--lr is not used by newton (its line search sizes each step)")
        return optim.Newton()
    momentum = {"momentum": args.momentum} if args.optimizer in ("sgd", "rmsprop") else {}
    return optim.OPTIMIZERS[args.optimizer](**lr, **momentum)


def _value(namespace: dict, path: str, *names: str):
    for name in names:
        if name in namespace:
            value = namespace[name]
            return value() if callable(value) else value
    raise ModelFileError(f"model file {path!r} defines no {names[0]!r}; `symgrad train` "
                         f"needs `data()` and `params()` (functions or dicts) beside `model`")


def _steady_us_per_step(chunks: list[tuple[float, int]]) -> float:
    """Microseconds per step: the median over the chunks of steps after the first (which
    may still load a variant of the training loop), or the only chunk's."""
    import statistics
    rates = [seconds / steps * 1e6 for seconds, steps in chunks if steps]
    return statistics.median(rates[1:] or rates) if rates else 0.0


def _progress(done: int, total: int, loss: float, interactive: bool) -> None:
    """A bar redrawn in place on a terminal; a line per tenth of the run otherwise. The
    loss shown is the one the last step started from (its params before the update)."""
    filled = BAR_WIDTH * done // max(total, 1)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    print(f"{chr(13) if interactive else ''}[{bar}] {done}/{total} loss {loss:.6g} "
          f"(before step {done})",
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
