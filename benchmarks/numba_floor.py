"""Numba's fixed cost per process: the floor under any symgrad compile or warm start.

    python benchmarks/numba_floor.py [--runs 5] [--json out.json]

Each run is a fresh process (one core, no other work) that imports numba and then calls
a trivial @njit(cache=True) function (a sum over an array) once: cold, with an empty
cache directory (compile), and warm, with the cache the cold run left (load). Printed:
the median seconds of `import numba` and of that first call. The first call pays for
Numba's target context (its typing and lowering registries, among them `scipy.linalg`'s
BLAS bindings), whatever the function; issue 12's warm target (0.3 s for a whole model)
sits below it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FUNCTION = """
import numba

@numba.njit(cache=True)
def total(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
    return s
"""

CHILD = """
import json, sys, time
start = time.perf_counter()
import numba, numpy as np
imported = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import trivial
x = np.ones(10)
begun = time.perf_counter()
trivial.total(x)
done = time.perf_counter()
print(json.dumps({"import": imported - start, "first_call": done - begun,
                  "scipy_linalg": "scipy.linalg" in sys.modules}))
"""


def run(folder: Path) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    pin = ["taskset", "-c", "0"] if sys.platform.startswith("linux") else []
    done = subprocess.run([*pin, sys.executable, "-c", CHILD, str(folder)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "trivial.py").write_text(FUNCTION)
            cold.append(run(folder))
            warm.append(run(folder))
    rows = {}
    print(f"{'':>6} {'import numba s':>15} {'first call s':>13}  scipy.linalg imported")
    for name, results in (("cold", cold), ("warm", warm)):
        rows[name] = {key: statistics.median(r[key] for r in results)
                      for key in ("import", "first_call")}
        print(f"{name:>6} {rows[name]['import']:>15.3f} {rows[name]['first_call']:>13.3f}  "
              f"{all(r['scipy_linalg'] for r in results)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
