"""Speed of codegen/vector_math.py: ns per element in a generated-style loop.

Each function, float64 and float32, in `for i in range(n): out[i] = f(x[i])` compiled
by @njit(error_model="numpy") without fastmath (as generated kernels are), against the
same loop calling `math.*` (libm; the stable forms for sigmoid and softplus) and
against NumPy's ufuncs (SIMD; expressions with temporaries for sigmoid and softplus).
One core (sched_setaffinity), NUMBA_NUM_THREADS=1, median (and min) of --repeats, timed
as the thread's CPU time (time.thread_time), so that time the scheduler gives other
processes on a shared machine does not count (a busy hyperthread sibling still does).

Then the sums: `s += vtanh(x[i])` in one strict float64 accumulator (a loop-carried
dependence that IEEE order forbids reassociating, so the loop stays scalar) against 8
accumulators, unrolled by 8 and combined by a fixed tree at the end, against an
`acc[i & 7]` array, against a map loop and a separate 8-accumulator sum, and the
generated code's own: blocks of 256 summed by codegen/block_sums.add_block_sums. "vectorized"
says whether the loop's asm holds packed multiplies (vmulpd/vmulps on ymm or zmm).

    python benchmarks/vector_math_speed.py [--n 16384] [--repeats 200] [--json out.json]
                                           [--no-prefer-256]

n = 16384 keeps input and output (256 KiB in float64) in L2, as the generated loops
find them (blocks of 256 samples, a layer's activations); at n = 2*10^6 the float64
loops measure memory bandwidth (about 1.5 ns per element here) more than the math.

--no-prefer-256 compiles with NUMBA_CPU_FEATURES = the host's features plus
-prefer-256-bit, so LLVM may vectorize with zmm (512-bit) registers on AVX-512 CPUs
whose tuning prefers 256-bit (Skylake-X to Emerald Rapids): a setting of the caller's
compilation, not of the library. benchmarks/results/vector_math_speed.{txt,json} hold
the last run.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
if "--no-prefer-256" in sys.argv and "NUMBA_CPU_FEATURES" not in os.environ:
    import llvmlite.binding as _ll
    os.environ["NUMBA_CPU_FEATURES"] = _ll.get_host_cpu_features().flatten() + ",-prefer-256-bit"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from codegen import vector_math as vm  # noqa: E402
from codegen.block_sums import add_block_sums  # noqa: E402

FUNCTIONS = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus")
TARGETS = {("tanh", "float64"): 1.5, ("tanh", "float32"): 0.6, ("exp", "float64"): 1.0}
INPUT_RANGE = {"exp": (-20.0, 20.0), "expm1": (-5.0, 5.0), "log": (1e-3, 1e3),
               "log1p": (-0.9, 10.0), "tanh": (-5.0, 5.0), "sigmoid": (-10.0, 10.0),
               "softplus": (-10.0, 10.0)}


# ------------------------------------------------------------ the compared functions

@numba.njit(inline="always")
def _math_sigmoid(x):
    e = math.exp(-abs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)


@numba.njit(inline="always")
def _math_softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _numpy_sigmoid(x, out):
    e = np.exp(-np.abs(x))
    np.divide(np.where(x >= 0, x.dtype.type(1), e), 1 + e, out=out)


def _numpy_softplus(x, out):
    np.add(np.maximum(x, 0), np.log1p(np.exp(-np.abs(x))), out=out)


def libm_function(name):
    return {"sigmoid": _math_sigmoid, "softplus": _math_softplus}.get(name) or getattr(math, name)


def numpy_function(name):
    if name in ("sigmoid", "softplus"):
        return {"sigmoid": _numpy_sigmoid, "softplus": _numpy_softplus}[name]
    ufunc = getattr(np, name)
    return lambda x, out: ufunc(x, out=out)


def map_loop(f):
    """The generated-style loop: one call per element, strict IEEE."""
    @numba.njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])
    return loop


# ------------------------------------------------------------ the sum loops

def sum_loops(f):
    """Loops that compute f and accumulate the sum, each strict IEEE."""
    @numba.njit(error_model="numpy")
    def one_accumulator(x):
        s = 0.0
        for i in range(x.size):
            s += f(x[i])
        return s

    @numba.njit(error_model="numpy")
    def eight_accumulators(x):
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        m = x.size - x.size % 8
        for i in range(0, m, 8):
            s0 += f(x[i])
            s1 += f(x[i + 1])
            s2 += f(x[i + 2])
            s3 += f(x[i + 3])
            s4 += f(x[i + 4])
            s5 += f(x[i + 5])
            s6 += f(x[i + 6])
            s7 += f(x[i + 7])
        for i in range(m, x.size):
            s0 += f(x[i])
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))

    @numba.njit(error_model="numpy")
    def acc_array(x):
        acc = np.zeros(8)
        for i in range(x.size):
            acc[i & 7] += f(x[i])
        return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))

    @numba.njit(error_model="numpy")
    def map_then_sum(x, out):
        for i in range(x.size):
            out[i] = f(x[i])
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        m = x.size - x.size % 8
        for i in range(0, m, 8):
            s0 += out[i]
            s1 += out[i + 1]
            s2 += out[i + 2]
            s3 += out[i + 3]
            s4 += out[i + 4]
            s5 += out[i + 5]
            s6 += out[i + 6]
            s7 += out[i + 7]
        for i in range(m, x.size):
            s0 += out[i]
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))

    @numba.njit(error_model="numpy")
    def blocked(x):
        buf = np.empty(256)
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for start in range(0, x.size, 256):
            m = min(256, x.size - start)
            for j in range(m):
                buf[j] = f(x[start + j])
            for j in range(m, 256):
                buf[j] = 0.0
            for j in range(0, 256, 8):
                s0 += buf[j]
                s1 += buf[j + 1]
                s2 += buf[j + 2]
                s3 += buf[j + 3]
                s4 += buf[j + 4]
                s5 += buf[j + 5]
                s6 += buf[j + 6]
                s7 += buf[j + 7]
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))

    @numba.njit(error_model="numpy")
    def lanes(x):
        buf = np.empty((1, 256))
        sums = np.zeros(1)
        for start in range(0, x.size, 256):
            m = min(256, x.size - start)
            col = x[start:start + m]
            for k in range(m):
                buf[0, k] = f(col[k])
            add_block_sums(buf, m, sums)
        return sums[0]

    return {"s += f(x[i]) (one accumulator)": (one_accumulator, False),
            "blocks of 256, 32 vector lanes (the generated code)": (lanes, False),
            "blocks of 256: map into a buffer, 8-accumulator sum": (blocked, False),
            "8 scalar accumulators, unrolled by 8, tree at the end": (eight_accumulators, False),
            "acc[i & 7] += f(x[i]) (array of 8)": (acc_array, False),
            "map loop into out, then 8-accumulator sum": (map_then_sum, True)}


# ------------------------------------------------------------ measuring

def ns_per_element(call, n, repeats):
    call()                                            # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        call()
        times.append(time.thread_time() - start)
    return float(np.median(times)) / n * 1e9, float(np.min(times)) / n * 1e9


@numba.njit(error_model="numpy")
def sum8(y):
    """The 8-accumulator sum alone: does LLVM pack the 8 independent chains (SLP)?"""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(0, y.size - y.size % 8, 8):
        s0 += y[i]
        s1 += y[i + 1]
        s2 += y[i + 2]
        s3 += y[i + 3]
        s4 += y[i + 4]
        s5 += y[i + 5]
        s6 += y[i + 6]
        s7 += y[i + 7]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def packed_adds(dispatcher) -> bool:
    asm = dispatcher.inspect_asm(dispatcher.signatures[0])
    return re.search(r"vaddpd\s+[^\n]*%[yz]mm", asm) is not None


def packed(dispatcher, suffix="pd") -> bool:
    """Whether the compiled loop multiplies packed ymm/zmm vectors."""
    asm = dispatcher.inspect_asm(dispatcher.signatures[0])
    return re.search(rf"vmul{suffix}\s+[^\n]*%[yz]mm", asm) is not None


def run(n, repeats):
    rng = np.random.default_rng(0)
    rows = []
    for name in FUNCTIONS:
        lo, hi = INPUT_RANGE[name]
        for dtype in (np.float64, np.float32):
            dt = np.dtype(dtype).name
            x = rng.uniform(lo, hi, n).astype(dtype)
            out = np.empty_like(x)
            vec = map_loop(vector_function(name, dtype))
            lib = map_loop(libm_function(name))
            npf = numpy_function(name)
            v, vmin = ns_per_element(lambda: vec(x, out), n, repeats)
            lm, lmin = ns_per_element(lambda: lib(x, out), n, max(3, repeats // 3))
            nu, numin = ns_per_element(lambda: npf(x, out), n, repeats)
            row = {"function": name, "dtype": dt, "vector_ns": v, "vector_min_ns": vmin,
                   "math_ns": lm, "numpy_ns": nu, "numpy_min_ns": numin,
                   "vectorized": packed(vec, "pd" if dtype == np.float64 else "ps")}
            if (name, dt) in TARGETS:
                row["target_ns"] = TARGETS[name, dt]
                row["target_met"] = v <= TARGETS[name, dt]
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def vector_function(name, dtype):
    return getattr(vm, f"v{name}" + ("_f32" if np.dtype(dtype) == np.float32 else ""))


def run_sums(n, repeats):
    x = np.random.default_rng(1).uniform(-5, 5, n)
    out = np.empty_like(x)
    rows = []
    for label, fname, f in (("vtanh", "tanh", vm.vtanh), ("vexp", "exp", vm.vexp)):
        for loop_name, (loop, needs_out) in sum_loops(f).items():
            args = (x, out) if needs_out else (x,)
            t, tmin = ns_per_element(lambda: loop(*args), n, repeats)
            rows.append({"function": label, "loop": loop_name, "ns": t, "min_ns": tmin,
                         "vectorized": packed(loop), "sum": float(loop(*args))})
            print(f"  {label:<6} {loop_name:<55} {t:6.2f} ns  "
                  f"vectorized={rows[-1]['vectorized']}", flush=True)
    t, tmin = ns_per_element(lambda: sum8(x), n, repeats)
    rows.append({"function": "-", "loop": "8-accumulator sum of an array alone", "ns": t,
                 "min_ns": tmin, "vectorized": packed_adds(sum8), "sum": float(sum8(x))})
    print(f"  {'-':<6} {rows[-1]['loop']:<55} {t:6.2f} ns  packed adds={rows[-1]['vectorized']}")
    return rows


def format_row(r):
    target = ""
    if "target_ns" in r:
        target = f"  target <= {r['target_ns']} ns: {'met' if r['target_met'] else 'MISSED'}"
    return (f"{r['function']:<9} {r['dtype']:<8} {r['vector_ns']:7.2f} {r['vector_min_ns']:7.2f} "
            f"{r['math_ns']:8.2f} {r['numpy_ns']:7.2f}  {str(r['vectorized']):<5}{target}")


HEADER = (f"{'function':<9} {'dtype':<8} {'vector':>7} {'(min)':>7} {'math.*':>8} {'numpy':>7}  "
          f"packed  (ns/element, medians)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=16_384)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-prefer-256", action="store_true",
                        help="let LLVM use 512-bit vectors (set before Numba is imported)")
    parser.add_argument("--no-sums", action="store_true")
    args = parser.parse_args(argv)
    try:
        os.sched_setaffinity(0, {0})
    except (AttributeError, OSError):
        pass
    import llvmlite.binding as ll
    cpu = ll.get_host_cpu_name()
    print(f"n={args.n}, one core, cpu {cpu}, NUMBA_CPU_FEATURES "
          f"{'host -prefer-256-bit' if os.environ.get('NUMBA_CPU_FEATURES') else 'default'}")
    print(HEADER)
    rows = run(args.n, args.repeats)
    sums = [] if args.no_sums else (print("\nsum of f(x[i]), float64, strict IEEE:")
                                    or run_sums(args.n, args.repeats))
    if args.json:
        args.json.write_text(json.dumps({
            "n": args.n, "repeats": args.repeats, "cpu": cpu, "numba": numba.__version__,
            "cpu_features": os.environ.get("NUMBA_CPU_FEATURES", "default"),
            "map": rows, "sums": sums}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
