"""Compile time of each shipped example, cold (empty kernel cache) and warm (a new
process that finds the kernels in the cache), each in its own child process.

    python benchmarks/compile_cache.py [--json out.json] [--examples a,b]

"compile" is symgrad.compile (derive + emit + import) plus Kernel.warmup (Numba's JIT
of loss and loss_and_grad, or loading them from Numba's cache); imports of symgrad,
SymPy and Numba are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer",
            "linear_rmsprop", "two_layer_net"]

CHILD = r"""
import importlib.util, json, sys, time
import symgrad
spec = importlib.util.spec_from_file_location("example", sys.argv[1])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
start = time.perf_counter()
kernel = symgrad.compile(example.model)
built = time.perf_counter() - start
jit = sum(kernel.warmup().values())
hits = sum(sum(f.stats.cache_hits.values()) for f in
           (kernel.module._loss_core, kernel.module._loss_and_grad_core))
print(json.dumps({"build": built, "jit": jit, "total": built + jit, "cache_hits": hits}))
"""


def measure(example: str, cache: str) -> dict:
    env = {**os.environ, "SYMGRAD_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "examples" / f"{example}.py")],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="OUT.json")
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    args = parser.parse_args(argv)
    rows = []
    print(f"{'example':<18}{'cold s':>9}{'(numba)':>9}{'warm s':>9}{'(numba)':>9}{'hits':>6}")
    for example in args.examples.split(","):
        with tempfile.TemporaryDirectory() as cache:
            cold = measure(example, cache)
            warm = measure(example, cache)
        rows.append({"example": example, "cold": cold, "warm": warm})
        print(f"{example:<18}{cold['total']:9.3f}{cold['jit']:9.3f}{warm['total']:9.3f}"
              f"{warm['jit']:9.3f}{warm['cache_hits']:6d}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
