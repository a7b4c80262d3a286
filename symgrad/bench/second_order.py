"""The second-order benchmark (`symgrad bench second-order`): the Hessian by sympy.diff
twice against forward-over-reverse over the DAG, on the width-4 tanh networks of depth
L and the hinge network.

Per model, sizes in operations and the time to derive them:
- forward: the loss's DAG; gradient: the reverse-mode DAG (loss + gradients);
- HVP DAG: forward-over-reverse, every node of loss, gradient and Hessian-vector
  product after interning, and its ratio to the forward DAG;
- sympy.hessian trees (`count_ops` of its P x P entries, summed), the same trees after
  `sympy.cse`, and the direct method's HVP (sympy.diff twice, lowered into the IR);
and per model, run on a batch: one loss evaluation and one HVP (compiled, order=2), the
HVP's cost in loss evaluations (the cheap-gradient principle at second order: a small
constant), and the compile (derive, emit, JIT) of order=1 against order=2.

Each direct step runs in a forked child under a time budget and is reported as "over
budget" past it (sympy.hessian of the deeper nets runs for hours).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import sympy as sp
from sympy.core.cache import clear_cache

from symgrad.bench import models
from symgrad.measure import (
    OK,
    Measure,
    _can_fork,
    _run_forked,
    _run_inline,
    cse_ops,
    tree_ops,
)

# Two forked runs, each under its own budget: sympy.hessian then cse of its trees, and
# sympy.diff twice lowered into the IR (the direct method's HVP).
DIRECT_RUNS = (("hessian_trees", "hessian_cse"), ("symbolic_hvp_dag",))


def hessian_trees(model) -> list[sp.Expr]:
    """sympy.hessian of the per-sample loss and of the penalty: P x P trees each."""
    trees = list(sp.hessian(model.loss, model.real_params))
    if model.penalty is not None:
        trees += list(sp.hessian(model.penalty, model.real_params))
    return trees


def _hessian_steps(model, budget_s):
    yield "start", "hessian_trees", budget_s
    clear_cache()
    start = time.perf_counter()
    trees = hessian_trees(model)
    t_diff = time.perf_counter() - start
    yield "done", "hessian_trees", Measure(tree_ops(trees), t_diff)
    yield "start", "hessian_cse", None if budget_s is None else max(budget_s - t_diff, 0.0)
    start = time.perf_counter()
    ops = cse_ops(trees)
    yield "done", "hessian_cse", Measure(ops, t_diff + time.perf_counter() - start)


def _symbolic_hvp_steps(model, budget_s):
    from symgrad.derivation import derive
    from symgrad.second_order import derive_second

    yield "start", "symbolic_hvp_dag", budget_s
    clear_cache()
    start = time.perf_counter()
    first = derive(model, "symbolic")
    second = derive_second(model, first)
    yield "done", "symbolic_hvp_dag", Measure(second.total_ops(first),
                                              time.perf_counter() - start)


def sizes_row(model, budget_s: float | None) -> dict:
    from symgrad.derivation import derive
    from symgrad.second_order import derive_second

    start = time.perf_counter()
    first = derive(model, "reverse")
    second = derive_second(model, first)
    seconds = time.perf_counter() - start
    sizes = first.sizes()
    row = {"model": model.name, "params": len(model.params),
           "forward_ops": sizes["forward_ops"], "gradient_ops": sizes["total_ops"],
           "hvp_dag": Measure(second.total_ops(first), seconds)}
    for steps, gen in zip(DIRECT_RUNS, (_hessian_steps, _symbolic_hvp_steps)):
        if budget_s is None or not _can_fork():
            row.update(_run_inline(gen(model, budget_s), steps))
        else:
            row.update(_run_forked(lambda g=gen: g(model, budget_s), steps))
    return row


def median_seconds(call, repeats: int) -> float:
    """The median of `repeats` timed calls, after one untimed call (JIT, caches)."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def runtime_row(model, samples: int, repeats: int, seed: int) -> dict:
    """Loss and HVP times on a batch (compiled, order=2), and, from an empty kernel cache,
    each order's `symgrad.compile` (derive and emit) and its time to a first result:
    compile + Numba of loss_and_grad (order 1), and of loss_and_grad and hvp (order 2)."""
    import symgrad

    data = models.batch(model, samples, seed)
    params = models.point(model, seed + 1)
    vector = models.point(model, seed + 2)
    emit_s, ready_s = {}, {}
    for order in (1, 2):
        with tempfile.TemporaryDirectory() as cache:
            old = os.environ.get("SYMGRAD_CACHE_DIR")
            os.environ["SYMGRAD_CACHE_DIR"] = cache
            try:
                start = time.perf_counter()
                kernel = symgrad.compile(model, order=order)
                emit_s[order] = time.perf_counter() - start
                kernel.loss_and_grad(params, data)
                if order == 2:
                    kernel.hvp(params, vector, data)
                ready_s[order] = time.perf_counter() - start
            finally:
                if old is None:
                    del os.environ["SYMGRAD_CACHE_DIR"]
                else:
                    os.environ["SYMGRAD_CACHE_DIR"] = old
    loss_s = median_seconds(lambda: kernel.loss(params, data), repeats)
    grad_s = median_seconds(lambda: kernel.loss_and_grad(params, data), repeats)
    hvp_s = median_seconds(lambda: kernel.hvp(params, vector, data), repeats)
    return {"samples": samples, "loss_s": loss_s, "loss_and_grad_s": grad_s, "hvp_s": hvp_s,
            "hvp_over_loss": hvp_s / loss_s, "compile_order1_s": emit_s[1],
            "compile_order2_s": emit_s[2], "compile_ratio": emit_s[2] / emit_s[1],
            "ready_order1_s": ready_s[1], "ready_order2_s": ready_s[2],
            "ready_ratio": ready_s[2] / ready_s[1]}


# ------------------------------------------------------------------ the table

def _ops(m: Measure) -> str:
    return f"{m.ops:,}" if m.ok else m.status


def _secs(m: Measure) -> str:
    return f"{m.seconds:.2f}" if m.ok else "-"


def table(rows: list[dict]) -> str:
    head = (f"{'model':<22} {'P':>4} {'forward':>8} {'gradient':>9} {'HVP DAG':>8} "
            f"{'ratio':>6} {'s':>6} | {'hessian trees':>14} {'s':>7} {'trees+cse':>10} "
            f"{'s':>7} {'symbolic HVP':>12} {'s':>6} | {'loss ms':>8} {'HVP ms':>8} "
            f"{'HVP/loss':>8} {'compile 1':>9} {'2':>6} {'ready 1':>8} {'2':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        h = r["hvp_dag"]
        cells = [f"{r['model']:<22} {r['params']:>4} {r['forward_ops']:>8,} "
                 f"{r['gradient_ops']:>9,} {h.ops:>8,} {h.ops / r['forward_ops']:>6.2f} "
                 f"{h.seconds:>6.2f} | {_ops(r['hessian_trees']):>14} "
                 f"{_secs(r['hessian_trees']):>7} {_ops(r['hessian_cse']):>10} "
                 f"{_secs(r['hessian_cse']):>7} {_ops(r['symbolic_hvp_dag']):>12} "
                 f"{_secs(r['symbolic_hvp_dag']):>6} |"]
        if "hvp_s" in r:
            cells.append(f" {r['loss_s'] * 1e3:>8.2f} {r['hvp_s'] * 1e3:>8.2f} "
                         f"{r['hvp_over_loss']:>8.2f} {r['compile_order1_s']:>9.2f} "
                         f"{r['compile_order2_s']:>6.2f} {r['ready_order1_s']:>8.1f} "
                         f"{r['ready_order2_s']:>6.1f}")
        lines.append("".join(cells))
    lines += ["", "ratio: HVP DAG / forward DAG ops (loss, gradient and H v, interned). "
              "hessian trees: sympy.count_ops of sympy.hessian's P x P entries, summed; "
              "trees+cse: after sympy.cse; symbolic HVP: sympy.diff twice, lowered into the "
              "IR. HVP/loss: one compiled HVP in loss evaluations (medians). compile: "
              "symgrad.compile (derive and emit; Numba compiles on first call), order=1 and "
              "order=2, seconds; ready: from an empty kernel cache to the first "
              "loss_and_grad (order 1) or to the first loss_and_grad and hvp (order 2, "
              "whose HVP cores compile in a worker process meanwhile: symgrad/precompile.py),"
              " Numba included, both in this process (benchmarks/compile_ratio.py measures "
              "them in fresh ones)."]
    return "\n".join(lines)


def as_json(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        out.append({k: (v.__dict__ if isinstance(v, Measure) else v) for k, v in r.items()})
    return out


# ------------------------------------------------------------------ the command

def add_arguments(p: argparse.ArgumentParser) -> None:
    from symgrad.bench.symbolic_vs_reverse import int_range, positive
    p.add_argument("--depth", type=int_range, default=None, metavar="RANGE",
                   help="depths L of the width-4 tanh networks (default 1..6)")
    p.add_argument("--hinge", action=argparse.BooleanOptionalAction, default=True,
                   help="also the hinge network 4x3 (default: yes)")
    p.add_argument("--budget", type=positive(float), default=None, metavar="S",
                   help="seconds per direct step before it is over budget (default 60)")
    p.add_argument("--samples", type=positive(int), default=None, metavar="N",
                   help="samples per kernel call (default 20000)")
    p.add_argument("--repeats", type=positive(int), default=5, metavar="R")
    p.add_argument("--no-run", dest="run", action="store_false",
                   help="sizes only: no compile, no timings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="depth 1..2, the hinge net, 1000 samples, budget 20 s")
    p.add_argument("--json", metavar="OUT.json")


def main_args(args: argparse.Namespace, log=None) -> int:
    import sys

    from symgrad.files import write_atomic

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    depths = args.depth or ([1, 2] if args.quick else list(range(1, 7)))
    budget = args.budget or (20.0 if args.quick else 60.0)
    samples = args.samples or (1000 if args.quick else 20_000)
    specs = [{"kind": "tanh", "depth": d, "width": 4} for d in depths]
    if args.hinge:
        specs.append({"kind": "hinge", "inputs": 4, "hidden": 3})
    rows = []
    for spec in specs:
        model = models.build(spec)
        row = sizes_row(model, budget)
        row["model"] = models.label(spec)
        if args.run:
            row.update(runtime_row(model, samples, args.repeats, args.seed))
        log(f"{row['model']}: HVP DAG {row['hvp_dag'].ops:,} ops; sympy.hessian "
            f"{_ops(row['hessian_trees'])}")
        rows.append(row)
    print(table(rows))
    if args.json:
        meta = {"budget_s": budget, "samples": samples, "repeats": args.repeats,
                "numpy": np.__version__, "sympy": sp.__version__}
        write_atomic(args.json, json.dumps({"meta": meta, "rows": as_json(rows)},
                                           indent=1) + "\n")
    return 0 if all(r["hvp_dag"].status == OK for r in rows) else 1
