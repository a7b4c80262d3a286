"""Compile time against graph size for scalar models (1k, 5k, 20k IR nodes).

Each size is a random expression DAG (fixed seed) over 4 inputs and 16 params, built
so that most nodes are shared; each row runs in a fresh child process with an empty
kernel cache, and reports derive, emit and Numba times and the generated size.

    python benchmarks/compile_scaling.py [--sizes 1000,5000,20000] [--json out.json]

benchmarks/results/compile_scaling.txt has the last run, the times before the chunk
functions were printed branch-free, and the measured attempts at splitting the body.
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
target = int(sys.argv[1])
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
start = time.perf_counter()
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
kernel = symgrad.compile(model)
jit = kernel.warmup()
kernel.warmup_loss()
print(json.dumps({"nodes": len(kernel.derivation.dump().splitlines()),
                  "lines": len(kernel.source.splitlines()), "derive": kernel.timings["derive"],
                  "emit": kernel.timings["emit"], "jit_loss": kernel.timings["jit_loss"],
                  "jit_loss_and_grad": jit["jit_loss_and_grad"]}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'IR nodes':>9}{'lines':>8}{'derive s':>10}{'emit s':>8}{'numba loss s':>14}"
          f"{'numba grad s':>14}{'s / 1k nodes':>14}")
    for size in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "SYMGRAD_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "1"}
            done = subprocess.run([sys.executable, "-c", CHILD, str(size)], env=env,
                                  capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        per_k = row["jit_loss_and_grad"] / row["nodes"] * 1000
        print(f"{row['nodes']:9d}{row['lines']:8d}{row['derive']:10.2f}{row['emit']:8.2f}"
              f"{row['jit_loss']:14.2f}{row['jit_loss_and_grad']:14.2f}{per_k:14.2f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
