"""Compile time of loops calling codegen/vector_math.py, and their speed.

For K = 0, 1, 5, 10 (--ks) a fresh function

    @numba.njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.size):
            a = x[i]
            y = vtanh(a + 0.0)
            y += vexp(a + 0.125)        # K calls cycling through vtanh, vexp, vlog,
            ...                         # vsigmoid, vsoftplus (distinct arguments, so
            out[i] = y                  # that no call is a common subexpression)

(K = 0: `out[i] = x[i] * 2.0`) is compiled for float64 arrays in a fresh process
(NUMBA_CACHE_DIR an empty temporary folder, nothing cached, one core by
sched_setaffinity). The time is the thread's CPU time (time.thread_time, so that other
processes on a shared machine count less) of `loop.compile`, after an untimed first
compilation of another function (Numba's own imports); the vector functions compile
inside it, so their own compilation is counted. "KxM" compiles M such functions in the
process (as a generated module compiles several chunk functions). Then the loop's
ns/element (min of --repeats on --n elements) and whether its asm holds packed
multiplies (vmulpd on ymm/zmm). "tanh" is the plain `out[i] = vtanh(x[i])` loop,
"tanh_f32" its float32 twin.

    python benchmarks/vector_math_compile.py [--module PATH] [--runs 3] [--ks 0,1,5,10,5x2,10x2]
                                             [--json out.json]

--module compiles another copy of vector_math.py (e.g. `git show HEAD:...` saved to a
file) to compare versions. The compile time reported is the min over --runs processes.
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
CYCLE = ("vtanh", "vexp", "vlog", "vsigmoid", "vsoftplus")


def loop_source(k: int) -> str:
    if k == 0:
        return "def loop(x, out):\n    for i in range(x.size):\n        out[i] = x[i] * 2.0\n"
    if k < 0:
        return "def loop(x, out):\n    for i in range(x.size):\n        out[i] = F(x[i])\n"
    lines = ["def loop(x, out):", "    for i in range(x.size):", "        a = x[i]"]
    for j in range(k):
        name = CYCLE[j % len(CYCLE)]
        arg = f"abs(a) + {1.0 + j / 8}" if name == "vlog" else f"a + {j / 8}"
        lines.append(f"        y {'=' if j == 0 else '+='} {name}({arg})")
    lines.append("        out[i] = y")
    return "\n".join(lines) + "\n"


def child(module_path: str, case: str, n: int, repeats: int) -> dict:
    import importlib.util
    import re
    import time

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    import numba
    import numpy as np

    spec = importlib.util.spec_from_file_location("vector_math_under_test", module_path)
    vm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vm)
    namespace = {name: getattr(vm, name) for name in dir(vm) if name.startswith("v")}
    if case.startswith("tanh"):
        f32 = case == "tanh_f32"
        namespace["F"] = vm.vtanh_f32 if f32 else vm.vtanh
        exec(loop_source(-1), namespace)
        dtype = np.float32 if f32 else np.float64
    else:
        exec(loop_source(int(case.split("x")[0])), namespace)
        dtype = np.float64
    warm = {}
    exec(loop_source(0), warm)           # Numba's own first-compile imports, not counted
    numba.njit(error_model="numpy")(warm["loop"])(np.ones(1), np.ones(1))
    loop = numba.njit(error_model="numpy")(namespace["loop"])
    arr = numba.types.Array(numba.from_dtype(np.dtype(dtype)), 1, "C")
    t0 = time.thread_time()
    loop.compile((arr, arr))
    for _ in range(int(case.split("x")[1]) - 1 if "x" in case else 0):
        numba.njit(error_model="numpy")(namespace["loop"]).compile((arr, arr))
    compile_s = time.thread_time() - t0
    x = np.random.default_rng(1).uniform(-5, 5, n).astype(dtype)
    out = np.empty_like(x)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        loop(x, out)
        best = min(best, time.thread_time() - t0)
    asm = loop.inspect_asm(loop.signatures[0])
    suffix = "ps" if dtype == np.float32 else "pd"
    return {"compile_s": compile_s, "ns_per_element": best / n * 1e9,
            "vectorized": bool(re.search(rf"vmul{suffix}\s+[^\n]*%[yz]mm", asm)),
            "zmm": "%zmm" in asm, "checksum": float(out.astype(np.float64).sum())}


def run(module: str, case: str, n: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, __file__, "--child", case, "--module", module,
                               "--n", str(n), "--repeats", str(repeats)],
                              env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", default=str(ROOT / "codegen" / "vector_math.py"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ks", default="0,1,5,10,5x2,10x2")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--child")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.module, args.child, args.n, args.repeats)))
        return
    rows = {}
    for case in ["tanh", "tanh_f32", *args.ks.split(",")]:
        results = [run(args.module, case, args.n, args.repeats) for _ in range(args.runs)]
        row = {"compile_s": min(r["compile_s"] for r in results),
               "ns_per_element": min(r["ns_per_element"] for r in results),
               "vectorized": all(r["vectorized"] for r in results),
               "zmm": all(r["zmm"] for r in results), "checksum": results[0]["checksum"]}
        rows[case] = row
        label = case if case.startswith("tanh") else f"K={case}"
        print(f"{label:>9}: compile {row['compile_s']:6.2f} s   {row['ns_per_element']:6.2f} "
              f"ns/element   vectorized {row['vectorized']}   checksum {row['checksum']!r}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
