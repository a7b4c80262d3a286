"""Benchmark: the time until an order-2 kernel is ready against an order-1 kernel, each
in a fresh process with an empty kernel cache (Numba's start-up included, as a user's
first run pays it).

    python benchmarks/compile_ratio.py [--depth 1..6] [--samples 20000] [--repeats 3] [--json F]

Per model (the width-4 tanh nets of depth L and the hinge net, as in `symgrad bench
second-order`): seconds from `symgrad.compile` to the first `loss_and_grad` (order 1), or
to the first `loss_and_grad` and `hvp` (order 2, whose HVP cores compile in a worker
process meanwhile: symgrad/precompile.py), medians of --repeats runs, and their ratio
(target: at most 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RUN = '''
import os, sys, tempfile, time
os.environ["SYMGRAD_CACHE_DIR"] = tempfile.mkdtemp()
start = time.perf_counter()
import symgrad
from symgrad.bench import models
spec, order, samples = {spec!r}, {order}, {samples}
model = models.build(spec)
data = models.batch(model, samples, 0)
params, vector = models.point(model, 1), models.point(model, 2)
begin = time.perf_counter()
kernel = symgrad.compile(model, order=order)
kernel.loss_and_grad(params, data)
if order == 2:
    kernel.hvp(params, vector, data)
print(time.perf_counter() - begin)
'''


def ready_seconds(spec: dict, order: int, samples: int) -> float:
    out = subprocess.run([sys.executable, "-c", _RUN.format(spec=spec, order=order,
                                                            samples=samples)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from symgrad.bench import models
    from symgrad.bench.symbolic_vs_reverse import int_range

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int_range, default=list(range(1, 7)))
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", metavar="OUT.json")
    args = p.parse_args(argv)
    specs = [{"kind": "tanh", "depth": d, "width": 4} for d in args.depth]
    specs.append({"kind": "hinge", "inputs": 4, "hidden": 3})
    rows = []
    for spec in specs:
        times = {order: [] for order in (1, 2)}
        for _ in range(args.repeats):
            for order in (1, 2):
                times[order].append(ready_seconds(spec, order, args.samples))
        one, two = (statistics.median(times[o]) for o in (1, 2))
        rows.append({"model": models.label(spec), "order1_s": one, "order2_s": two,
                     "ratio": two / one, "runs": times})
        print(f"{rows[-1]['model']}: {one:.1f} s, {two:.1f} s", file=sys.stderr, flush=True)
    head = f"{'model':<16} {'order 1 s':>9} {'order 2 s':>9} {'ratio':>6}"
    print("\n".join([head, "-" * len(head)] + [
        f"{r['model']:<16} {r['order1_s']:>9.1f} {r['order2_s']:>9.1f} {r['ratio']:>6.2f}"
        for r in rows]))
    print(f"\nready: a fresh process and kernel cache, from symgrad.compile to the first "
          f"loss_and_grad (order 1), or loss_and_grad and hvp (order 2), on "
          f"{args.samples:,} samples; medians of {args.repeats} runs.")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
