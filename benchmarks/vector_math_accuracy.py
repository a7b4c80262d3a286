"""Accuracy of codegen/vector_math.py: max and mean ulp error of every function.

float64: 10^7 samples per function (log-uniform magnitudes over every binade of the
domain, both signs where meaningful, plus a uniform share over the interesting range
and the edge list), against NumPy's longdouble functions (80-bit x87 here: 64-bit
significands, ~2^-63 relative), which are themselves checked against mpmath (40
digits) on a 10^5 subset. float32: the same samples rounded to float32 against the
same reference; `--float32-exhaustive` checks all 2^32 float32 inputs against
float64 libm (math.*) in a compiled loop, in chunks.

    python benchmarks/vector_math_accuracy.py [--samples 10000000] [--json out.json]
                                              [--float32-exhaustive]

The ulp error of y against the exact value v is |y - v| / ulp(v), ulp(v) the spacing
of the target format in v's binade (2^-1074 / 2^-149 below the normals); y equal to v
rounded to the format counts 0 (so an overflow to inf that the exact value also rounds
to is no error), NaN against NaN 0, anything else against NaN inf.
benchmarks/results/vector_math_accuracy.{txt,json} hold the last run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from codegen import vector_math as vm  # noqa: E402

LD = np.longdouble
FUNCTIONS = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus")
BOUND = {"exp": 1.0, "log": 1.0, "expm1": 4.0, "log1p": 4.0, "tanh": 4.0,
         "sigmoid": 4.0, "softplus": 4.0}
DTYPES = {"float64": np.float64, "float32": np.float32}


def vector_function(name: str, dtype) -> object:
    return getattr(vm, f"v{name}" + ("_f32" if np.dtype(dtype) == np.float32 else ""))


# ---------------------------------------------------------------- references

def _sigmoid(x, exp):
    e = exp(-abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def _softplus(x, exp, log1p):
    return np.maximum(x, 0) + log1p(exp(-abs(x)))


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The function in longdouble (x is converted exactly)."""
    x = x.astype(LD)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return _sigmoid(x, np.exp)
        if name == "softplus":
            return _softplus(x, np.exp, np.log1p)
        return getattr(np, name)(x)


def numpy_function(name: str, x: np.ndarray) -> np.ndarray:
    """NumPy's own result in x's dtype (the stable forms for sigmoid and softplus):
    what the special values must equal."""
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return _sigmoid(x, np.exp).astype(x.dtype)
        if name == "softplus":
            return _softplus(x, np.exp, np.log1p).astype(x.dtype)
        return getattr(np, name)(x)


def mpmath_reference(name: str, x: float):
    import mpmath as mp
    x = mp.mpf(float(x))
    if name == "exp":
        return mp.exp(x)
    if name == "expm1":
        return mp.expm1(x)
    if name == "log":
        return mp.log(x) if x > 0 else (mp.ninf if x == 0 else mp.nan)
    if name == "log1p":
        return mp.log1p(x) if x > -1 else (mp.ninf if x == -1 else mp.nan)
    if name == "tanh":
        return mp.tanh(x)
    if name == "sigmoid":
        return 1 / (1 + mp.exp(-x))
    if name == "softplus":
        return mp.log1p(mp.exp(x))
    raise ValueError(name)


# ---------------------------------------------------------------- ulp errors

def ulp_errors(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The ulp error of each y (float64 or float32) against a longdouble reference."""
    info = np.finfo(y.dtype)
    with np.errstate(all="ignore"):
        rounded = ref.astype(y.dtype)
        _, e = np.frexp(ref)
        e = np.maximum(e.astype(np.int64) - info.nmant - 1, int(np.log2(info.smallest_subnormal)))
        ulp = np.ldexp(LD(1), e)
        err = np.abs(y.astype(LD) - ref) / ulp
    err = err.astype(np.float64)
    same = (y == rounded) | (np.isnan(y) & np.isnan(ref))
    err[same] = 0.0
    err[np.isnan(err) | (np.isnan(y) != np.isnan(ref))] = np.inf
    return err


@numba.njit(error_model="numpy")
def _apply(f, x, out):
    for i in range(x.size):
        out[i] = f(x[i])


def evaluate(name: str, x: np.ndarray) -> np.ndarray:
    """The vector function on every element, compiled, in x's dtype."""
    out = np.empty_like(x)
    _apply(vector_function(name, x.dtype), x, out)
    return out


# ---------------------------------------------------------------- samples

def _log_uniform(rng, n, lo_exp, hi_exp, signed=True):
    x = np.exp2(rng.uniform(lo_exp, hi_exp, n))
    return x * rng.choice([-1.0, 1.0], n) if signed else x


DOMAIN = {   # (exponent range of |x|, signed, uniform range) per function
    "exp": ((-1075, 10), True, (-746.0, 710.0)),
    "expm1": ((-1075, 10), True, (-40.0, 710.0)),
    "log": ((-1075, 1024), False, (0.0, 4.0)),
    "log1p": ((-1075, 1024), True, (-1.0, 4.0)),
    "tanh": ((-1075, 6), True, (-20.0, 20.0)),
    "sigmoid": ((-1075, 10), True, (-750.0, 40.0)),
    "softplus": ((-1075, 10), True, (-750.0, 40.0)),
}


def edges(dtype=np.float64) -> np.ndarray:
    """Special and threshold inputs (in float64; cast to float32 they keep their role)."""
    f = np.finfo(dtype)
    tiny, small, big = float(f.smallest_subnormal), float(f.smallest_normal), float(f.max)
    base = [0.0, tiny, 2 * tiny, small, np.nextafter(dtype(small), dtype(0)), 1e-300, 1e-30,
            1e-8, 2.0 ** -27, 0.5, 1.0, 2.0, math.log(2) / 2, math.log(2), 3.0, 10.0, 19.06,
            20.0, 40.0, 88.72, 89.0, 103.97, 104.0, 708.39, 709.43, 709.78,
            709.782712893384, 709.7827128933841, 710.0, 745.1332191019411,
            745.1332191019412, 746.0, 1000.0, 1e300, big, math.inf]
    more = [-1.0, np.nextafter(-1.0, 0.0), -1 + 2.0 ** -53, -1 + 2.0 ** -24, -0.5, 1 - 2.0 ** -53,
            1 + 2.0 ** -52, math.nan]
    x = np.array(base + [-v for v in base] + more, dtype=np.float64)
    with np.errstate(all="ignore"):
        return x.astype(dtype)


def samples(name: str, n: int, dtype=np.float64, seed: int = 0) -> np.ndarray:
    """n inputs: 3/4 log-uniform magnitudes over the domain's binades, 1/4 uniform over
    the range where the result is neither saturated nor trivially x, and the edges."""
    rng = np.random.default_rng(seed + FUNCTIONS.index(name))
    (lo, hi), signed, (ulo, uhi) = DOMAIN[name]
    n_log = 3 * n // 4
    parts = [_log_uniform(rng, n_log, lo, hi, signed), rng.uniform(ulo, uhi, n - n_log)]
    if name == "log1p":           # close to -1, where log1p goes to -inf
        k = n // 16
        parts[0][:k] = -1 + _log_uniform(rng, k, -60, -1, signed=False)
    x = np.concatenate(parts)
    if name == "log1p":
        x = np.where(x < -1, -x - 1, x)
    with np.errstate(all="ignore"):
        x = x.astype(dtype)
    e = edges(dtype)
    x[:len(e)] = e
    return x


# ---------------------------------------------------------------- the checks

def measure(name: str, dtype, n: int, seed: int = 0) -> dict:
    x = samples(name, n, dtype, seed)
    err = ulp_errors(evaluate(name, x), reference(name, x))
    worst = int(np.argmax(err))
    return {"function": name, "dtype": np.dtype(dtype).name, "samples": int(x.size),
            "max_ulp": float(err[worst]), "mean_ulp": float(err[np.isfinite(err)].mean()),
            "worst_input": float(x[worst]), "bound_ulp": BOUND[name],
            "ok": bool(err[worst] <= BOUND[name])}


def special_value_mismatches(name: str, dtype) -> list[float]:
    """Edge inputs where the exact result rounds to 0, +-inf, NaN or +-1, NumPy gives it,
    and ours differs (NaN equal to NaN, zeros with their sign)."""
    x = edges(dtype)
    got, want = evaluate(name, x), numpy_function(name, x)
    with np.errstate(all="ignore"):
        exact = reference(name, x).astype(dtype)
    special = (want == 0) | np.isinf(want) | np.isnan(want) | (np.abs(want) == 1)
    # where NumPy is not correctly rounded (tanh(19.06) is 1 - 2^-53, NumPy says 1), the
    # value is not a special one
    special &= (want == exact) | np.isnan(exact)
    equal = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    return [float(v) for v in x[special & ~equal]]


def validate_reference(name: str, n: int, seed: int = 1) -> dict:
    """The longdouble reference against mpmath (40 digits) on n of the float64 samples,
    in float64 ulps: it must be far below the errors it measures."""
    import mpmath as mp
    x = samples(name, n, np.float64, seed)
    ref = reference(name, x)
    worst = 0.0
    with mp.workdps(40):
        for xi, ri in zip(x, ref):
            exact = mpmath_reference(name, xi)
            if np.isinf(np.float64(ri)) and np.float64(ri) == float(exact):
                continue                         # both overflow float64
            if mp.isnan(exact) or mp.isinf(exact):
                ok = (np.isnan(ri) and mp.isnan(exact)) or (ri == float(exact))
                worst = max(worst, 0.0 if ok else math.inf)
                continue
            if exact == 0:
                worst = max(worst, 0.0 if ri == 0 else math.inf)
                continue
            e = max(int(mp.floor(mp.log(abs(exact), 2))) - 52, -1074)
            worst = max(worst, float(abs(mp.mpf(str(ri)) - exact) / mp.mpf(2) ** e))
    return {"function": name, "samples": n, "max_ulp_of_longdouble_vs_mpmath": worst}


# ------------------------------------------------------ float32, all 2^32 inputs

@numba.njit(error_model="numpy")
def _reference_f64(kind, v):
    if kind == 0:
        return math.exp(v)
    if kind == 1:
        return math.expm1(v)
    if kind == 2:
        return math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)
    if kind == 3:
        return math.log1p(v) if v > -1 else (-math.inf if v == -1 else math.nan)
    if kind == 4:
        return math.tanh(v)
    e = math.exp(-abs(v))
    if kind == 5:
        return (1.0 if v >= 0 else e) / (1.0 + e)
    return max(v, 0.0) + math.log1p(e)


@numba.njit(error_model="numpy")
def _ulp32(y, ref):
    """The float32 ulp error of y against a float64 reference (the rules above)."""
    if np.float32(ref) == y or (y != y and ref != ref):
        return 0.0
    if y != y or ref != ref:
        return math.inf
    e = (vm._vm_f64_bits(abs(ref)) >> 52) - 1023          # ref's binade, from its bits
    ulp = vm._vm_bits_f64((max(e, -126) - 23 + 1023) << 52)
    return abs(np.float64(y) - ref) / ulp


def _exhaustive_chunk_kernel(f):
    @numba.njit(error_model="numpy", parallel=True)
    def chunk(kind, start, count):
        """Worst error and its input, error sum and count over the float32 inputs whose
        bits are start ... start + count - 1, in 64 slices run in parallel."""
        slices = 64
        worst = np.zeros(slices)
        worst_x = np.zeros(slices, dtype=np.float32)
        total = np.zeros(slices)
        finite = np.zeros(slices, dtype=np.int64)
        size = count // slices
        for s in numba.prange(slices):
            for i in range(s * size, (s + 1) * size):
                x = vm._vm_bits_f32(start + i)           # the low 32 bits
                err = _ulp32(f(x), _reference_f64(kind, np.float64(x)))
                if err > worst[s]:
                    worst[s], worst_x[s] = err, x
                if err < math.inf:
                    total[s] += err
                    finite[s] += 1
        k = np.argmax(worst)
        return worst[k], worst_x[k], total.sum(), finite.sum()
    return chunk


def float32_exhaustive(name: str, chunk: int = 1 << 26, progress=None) -> dict:
    """Every float32 input (2^32 of them), compiled, against float64 libm."""
    kernel = _exhaustive_chunk_kernel(vector_function(name, np.float32))
    kind = FUNCTIONS.index(name)
    worst, worst_x, total, finite = 0.0, 0.0, 0.0, 0
    start_time = time.perf_counter()
    for start in range(0, 1 << 32, chunk):
        w, wx, t, c = kernel(kind, start, chunk)
        if w > worst:
            worst, worst_x = w, float(wx)
        total, finite = total + t, finite + c
        if progress:
            progress(name, start + chunk, worst)
    return {"function": name, "dtype": "float32", "samples": 1 << 32, "max_ulp": worst,
            "mean_ulp": total / max(finite, 1), "worst_input": worst_x,
            "bound_ulp": BOUND[name], "ok": bool(worst <= BOUND[name]),
            "reference": "float64 libm (math.*)", "seconds": time.perf_counter() - start_time}


# ---------------------------------------------------------------- report

def table(rows: list[dict]) -> str:
    lines = [f"{'function':<10} {'dtype':<8} {'samples':>11} {'max ulp':>8} {'mean ulp':>9} "
             f"{'bound':>5}  worst input"]
    for r in rows:
        lines.append(f"{r['function']:<10} {r['dtype']:<8} {r['samples']:>11} "
                     f"{r['max_ulp']:>8.3f} {r['mean_ulp']:>9.4f} {r['bound_ulp']:>5.0f}  "
                     f"{r['worst_input']!r}" + ("" if r["ok"] else "  OVER BOUND"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--mpmath-samples", type=int, default=100_000)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--float32-exhaustive", action="store_true",
                        help="also check all 2^32 float32 inputs (takes a while)")
    args = parser.parse_args(argv)
    names = args.functions.split(",")
    result = {"reference": "numpy longdouble (x87 80-bit), validated with mpmath at 40 digits",
              "numba": numba.__version__, "numpy": np.__version__, "sampled": [],
              "reference_check": [], "special_value_mismatches": {}}
    for name in names:
        for dtype in (np.float64, np.float32):
            result["sampled"].append(measure(name, dtype, args.samples))
            mism = special_value_mismatches(name, dtype)
            result["special_value_mismatches"][f"{name} {np.dtype(dtype).name}"] = mism
    print(f"sampled, reference {result['reference']}")
    print(table(result["sampled"]))
    print("\nspecial values (0, +-inf, NaN, +-1 on the edge list) differing from NumPy:",
          {k: v for k, v in result["special_value_mismatches"].items() if v} or "none")
    if args.mpmath_samples:
        print(f"\nlongdouble reference vs mpmath (40 digits), {args.mpmath_samples} samples, "
              "max error in float64 ulps:")
        for name in names:
            check = validate_reference(name, args.mpmath_samples)
            result["reference_check"].append(check)
            print(f"  {name:<10} {check['max_ulp_of_longdouble_vs_mpmath']:.2e}")
    def save():
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")

    save()
    if args.float32_exhaustive:
        rows = result["float32_exhaustive"] = []
        for name in names:
            rows.append(float32_exhaustive(name))
            print(f"  exhaustive {name}: {rows[-1]['max_ulp']:.3f} ulp "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
            save()                  # partial results survive an interrupted run
        print("\nfloat32, all 2^32 inputs, reference float64 libm")
        print(table(rows))
    bad = [r for r in result["sampled"] + result.get("float32_exhaustive", []) if not r["ok"]]
    return 1 if bad or any(result["special_value_mismatches"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
