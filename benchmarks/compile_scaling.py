"""Compile time against graph size for scalar models: random DAGs and relu chains.

`--shape dag`: a random expression DAG (fixed seed) over 4 inputs and 16 params, built so
that most nodes are shared, sized by its IR nodes. `--shape relu`: the chain
h = relu(w_i h + 0.01) of issue 12, sized by its depth: reverse mode nests one branch
region per layer. Each row runs in a fresh child process with an empty kernel cache (so
the interpreter, where used, is compiled too) and reports derive, emit and Numba times,
the time of one loss_and_grad over 4,096 samples once compiled, and whether the
program ran unrolled or on the interpreter (codegen/interpreter.py).

    python benchmarks/compile_scaling.py [--shape dag|relu] [--sizes 1000,5000,20000]
        [--interpret auto|on|off] [--json out.json]

With both sizes of a target pair in the run, it prints the targets of issue 12: a relu
chain of 1,000 within 15 s, and 2,000 (resp. a 10,000-node DAG) within 2.3 times 1,000
(resp. 5,000). benchmarks/results/compile_scaling*.txt have the runs, the times before
the chunk functions were printed branch-free, and the measured attempts at splitting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import numpy as np, sympy as sp
import symgrad
shape, target, interpret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
interpret = {"auto": None, "on": True, "off": False}[interpret]
start = time.perf_counter()
if shape == "relu":
    sys.setrecursionlimit(max(10000, 60 * target))   # SymPy's assumptions recurse per layer
    x, y = sp.symbols("x y", real=True)
    ws = sp.symbols(f"w0:{target}", real=True)
    h = x
    for w in ws:
        h = symgrad.relu(w * h + sp.Float(0.01))
    model = symgrad.Model((h - y) ** 2, list(ws), [x, y])
else:
    rng = np.random.default_rng(0)
    xs = sp.symbols("x0:4", real=True)
    ps = sp.symbols("p0:16", real=True)
    pool = list(xs) + list(ps)
    loss = 0
    # evaluate=False: SymPy's automatic simplification of deep random trees costs minutes
    unary = [lambda e: sp.sin(e, evaluate=False), lambda e: sp.cos(e, evaluate=False),
             lambda e: sp.tanh(e, evaluate=False), lambda e: symgrad.sigmoid(e, evaluate=False),
             lambda e: sp.log(sp.Add(1, sp.Pow(e, 2, evaluate=False), evaluate=False),
                              evaluate=False)]
    model = None
    while True:
        a, b = (pool[int(i)] for i in rng.integers(0, len(pool), 2))
        kind = int(rng.integers(0, 4))
        e = (sp.Mul(a, b, evaluate=False) if kind == 0 else sp.Add(a, b, evaluate=False)
             if kind == 1 else unary[int(rng.integers(0, 5))](a))
        pool.append(e)
        if len(pool) % 200 == 0:
            loss = loss + e
            model = symgrad.Model(loss, list(ps), list(xs))
            # forward + backward is about 2.5 times the forward graph
            if 2.5 * symgrad.ir.count_ops([model.forward[0]]) >= target:
                break
built = time.perf_counter() - start
kernel = symgrad.compile(model, interpret=interpret)
jit = kernel.warmup()
kernel.warmup_loss()
rng = np.random.default_rng(1)
params = {p: float(v) for p, v in zip(kernel.params, rng.uniform(0.9, 1.1, len(kernel.params)))}
data = {x: rng.normal(size=4096) for x in kernel.inputs}
runs = []
for _ in range(7):
    t = time.perf_counter()
    kernel.loss_and_grad(params, data)
    runs.append(time.perf_counter() - t)
print(json.dumps({"shape": shape, "size": target,
                  "nodes": len(kernel.derivation.dump().splitlines()),
                  "lines": len(kernel.source.splitlines()), "build": built,
                  "vm": "_vm_run" in kernel.source, "derive": kernel.timings["derive"],
                  "emit": kernel.timings["emit"], "jit_loss": kernel.timings["jit_loss"],
                  "jit_loss_and_grad": jit["jit_loss_and_grad"],
                  "run_ms": 1e3 * sorted(runs)[3]}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("dag", "relu"), default="dag")
    parser.add_argument("--sizes", default=None,
                        help="IR nodes (dag; default 1000,5000,20000) or depths (relu; "
                             "default 100,200,1000,2000)")
    parser.add_argument("--interpret", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    sizes = args.sizes or ("100,200,1000,2000" if args.shape == "relu" else "1000,5000,20000")
    rows = []
    print(f"{'size':>6}{'IR nodes':>9}{'lines':>8}{'kernel':>9}{'derive s':>9}{'emit s':>8}"
          f"{'numba loss s':>13}{'numba grad s':>13}{'total s':>9}{'run ms':>8}")
    for size in map(int, sizes.split(",")):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "SYMGRAD_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "1"}
            done = subprocess.run([sys.executable, "-c", CHILD, args.shape, str(size),
                                   args.interpret], env=env, capture_output=True, text=True,
                                  check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["total"] = row["derive"] + row["emit"] + row["jit_loss_and_grad"]
        rows.append(row)
        print(f"{size:6d}{row['nodes']:9d}{row['lines']:8d}"
              f"{'vm' if row['vm'] else 'unrolled':>9}{row['derive']:9.2f}{row['emit']:8.2f}"
              f"{row['jit_loss']:13.2f}{row['jit_loss_and_grad']:13.2f}{row['total']:9.2f}"
              f"{row['run_ms']:8.2f}", flush=True)
    print("total: derive + emit + the first loss_and_grad (Numba); run: one loss_and_grad "
          "over 4,096 samples, compiled, median of 7")
    for line in targets(args.shape, rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def targets(shape: str, rows: list[dict]) -> list[str]:
    """Issue 12's compile-time targets among the rows measured."""
    total = {row["size"]: row["total"] for row in rows}
    out = []
    if shape == "relu" and 1000 in total:
        out.append(f"relu chain of 1,000 in {total[1000]:.2f} s (target <= 15 s): "
                   f"{'met' if total[1000] <= 15 else 'missed'}")
    small, large = (1000, 2000) if shape == "relu" else (5000, 10000)
    if small in total and large in total:
        ratio = total[large] / total[small]
        out.append(f"{large:,} vs {small:,}: {ratio:.2f}x (target <= 2.3x): "
                   f"{'met' if ratio <= 2.3 else 'missed'}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
