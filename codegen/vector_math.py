"""Vector math: branch-free exp, expm1, log, log1p, tanh, sigmoid, softplus for Numba loops.

Embedded verbatim in generated modules (like codegen/scalar_math.py), and importable on
its own for tests and benchmarks. Numba from pip has no SVML: `math.tanh` in an @njit
loop is a libm call per element (16-18 ns in float64). The functions here are plain
arithmetic -- range reduction, a polynomial in Horner form, at most one division,
2^n built from integer bits, selects instead of branches -- so that LLVM's loop
vectorizer turns a loop that calls them into AVX-512/AVX2 code as it is, compiled
strict (no fastmath) with error_model="numpy". They are @njit(forceinline=True): each
is compiled once per process and argument type as a function of its own, marked
`alwaysinline` for LLVM, which inlines it into the caller's loop before the vectorizer
runs (LLVM's own heuristics would leave vsoftplus a call, and the loop scalar).

Names, one per function and dtype (a generated kernel knows its dtype when it prints
a call, and the names behave the same compiled and as plain Python):

    vexp(x)      vexpm1(x)      vlog(x)      vlog1p(x)       float64 -> float64
    vtanh(x)     vsigmoid(x)    vsoftplus(x)
    vexp_f32(x)  vexpm1_f32(x)  vlog_f32(x)  vlog1p_f32(x)   float32 -> float32
    vtanh_f32(x) vsigmoid_f32(x) vsoftplus_f32(x)

The float32 names compute in float32 throughout (16 lanes in a zmm register); they
need a float32 argument. Callers: paste this text before any caller compiled eagerly
(with a signature); a lazily compiled caller only needs the names defined by its first
call. Compile the calling loop with error_model="numpy" (Python's error model adds a
zero check to each division, which keeps the loop scalar; the functions themselves are
compiled with it whatever the caller's). They are compiled strict whatever the caller's
fastmath, so a fastmath caller gets the same bits (its flags apply to its own code).

Compile time (benchmarks/vector_math_compile.py, a loop calling K functions mixed from
vtanh, vexp, vlog, vsigmoid, vsoftplus, one core, fresh process): the first use of each
function in a process costs its own compilation (about 0.1 s), each call site after that
little (about 0.03 s); K=10 compiles in 0.85 s, two such loops in 1.2 s. Inlining them
into the caller's Numba IR instead (inline="always", the earlier choice) retyped the
whole body at every call site, about 0.1-0.6 s each: K=10 in 1.2-1.7 s, two loops in
3.4 s. The loops' machine code is the same either way (instruction counts within 2 of
each other, same ns/element).

`vsigmoid(x)` is 1/(1 + exp(-x)) in the stable form of docs/conventions.md,
`vsoftplus(x)` is max(x, 0) + log1p(exp(-|x|)).

Accuracy (benchmarks/vector_math_accuracy.py, docs/conventions.md "Vector math"): at
most 1 ulp for exp and log, at most 4 ulp for the others, special values (+-0, +-inf,
NaN, subnormals, overflow and underflow) as NumPy's. Polynomials and reductions use
`_vm_fma`, LLVM's llvm.fma: a * b + c rounded once, by definition, so the results are
the same bits on every machine (a CPU without FMA gets a libm call, slow but exact),
compiled or not, in any caller; on these CPUs it is one instruction, and it halved the
time of exp and took a third off tanh (benchmarks/results/vector_math_speed.txt).

Run as plain Python (NUMBA_DISABLE_JIT=1), the same code runs on NumPy scalars (the
first line of each function converts its argument) and gives the same bits; only the
bit casts, `_vm_select` and `_vm_fma` (exact integer arithmetic, then one rounding)
have plain-Python twins.

Sources of the methods (the code and the coefficients are our own): exp and expm1
reduce x = n ln2 + r with n rounded by adding 1.5 * 2^52 and a two-part (Cody-Waite)
ln 2, as in SLEEF's xexp/xexpm1 and Eigen's generic pexp; 2^n is applied as two
factors 2^(n>>1) 2^(n-(n>>1)) like SLEEF's ldexp2k, which keeps subnormal results and
the last binade below overflow exact. log and log1p are fdlibm's e_log.c / s_log1p.c
(log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2+f)), with the exponent taken
from the bits after an offset of sqrt(2)/2 (as in musl's log), subnormals scaled by
2^54 first. tanh is SLEEF's tanh_u35: d = expm1(2|x|), tanh = d/(d + 2), sign copied.
Polynomials: Chebyshev fits (mpmath.chebyfit, 50 digits) of the stated function on
the stated interval, rounded to the target precision; the accuracy of the rounded
coefficients is measured by the accuracy benchmark, not assumed.
"""

import math

import numba
import numpy as np

if numba.config.DISABLE_JIT:
    def _vm_select(cond, a, b):
        """a if cond else b, for two values already computed."""
        return a if cond else b

    def _vm_f64_bits(x):
        return np.float64(x).view(np.int64)

    def _vm_bits_f64(i):
        return np.int64(i).view(np.float64)

    def _vm_f32_bits(x):
        return np.float32(x).view(np.int32)

    def _vm_bits_f32(i):
        return np.int32(i).view(np.float32)

    def _vm_exact(v):
        """(N, k) with v = N / 2^k exactly, for a finite float."""
        num, den = float(v).as_integer_ratio()
        return num, den.bit_length() - 1

    def _vm_fma(a, b, c):
        """a * b + c rounded once, as LLVM's llvm.fma: exact integer arithmetic, then
        the nearest float of a's type (ties to even)."""
        dtype = type(a) if isinstance(a, np.floating) else np.float64
        a, b, c = dtype(a), dtype(b), dtype(c)
        if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
            return a * b + c
        (na, ka), (nb, kb), (nc, kc) = _vm_exact(a), _vm_exact(b), _vm_exact(c)
        k = max(ka + kb, kc)
        n = (na * nb << (k - ka - kb)) + (nc << (k - kc))
        if n == 0:
            return a * b + c                     # an exact zero: IEEE's sign rules
        try:
            y = dtype(n / (1 << k))              # int / int rounds once, to float64
        except OverflowError:
            return dtype(math.copysign(math.inf, n))
        if dtype is np.float64:
            return y
        best = None                               # float32: the nearest of y's neighbours
        for cand in (np.nextafter(y, dtype(-np.inf)), y, np.nextafter(y, dtype(np.inf))):
            if not np.isfinite(cand):
                continue
            nc_, kc_ = _vm_exact(cand)
            kk = max(k, kc_)
            err = abs((n << (kk - k)) - (nc_ << (kk - kc_)))
            even = (int(cand.view(np.int32)) & 1) == 0
            if best is None or (err, not even) < best[0]:
                best = ((err, not even), cand)
        return best[1]

    def _vm_jit(f):
        return f
else:
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def _vm_select(typingctx, cond, a, b):
        """a if cond else b, for two values already computed: an LLVM select."""
        result = typingctx.unify_pairs(a, b)
        if not isinstance(cond, types.Boolean) or result is None:
            return None

        def codegen(context, builder, signature, args):
            c, x, y = args
            x = context.cast(builder, x, signature.args[1], result)
            y = context.cast(builder, y, signature.args[2], result)
            return builder.select(c, x, y)

        return result(cond, a, b), codegen

    def _vm_bitcast(src, dst):
        """An intrinsic reinterpreting the bits of a `src` value as a `dst` (same width);
        an integer argument of another width is converted to `src` first."""
        @intrinsic
        def bitcast(typingctx, x):
            if x != src and not (isinstance(src, types.Integer)
                                 and isinstance(x, types.Integer)):
                return None

            def codegen(context, builder, signature, args):
                value = context.cast(builder, args[0], signature.args[0], src)
                return builder.bitcast(value, context.get_value_type(dst))

            return dst(x), codegen
        return bitcast

    @intrinsic
    def _vm_fma(typingctx, a, b, c):
        """a * b + c rounded once (LLVM's llvm.fma: the same bits on every machine; one
        instruction where the CPU has FMA, which LLVM vectorizes)."""
        if not (a == b == c and a in (types.float64, types.float32)):
            return None

        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return a(a, b, c), codegen

    _vm_f64_bits = _vm_bitcast(types.float64, types.int64)
    _vm_bits_f64 = _vm_bitcast(types.int64, types.float64)
    _vm_f32_bits = _vm_bitcast(types.float32, types.int32)
    _vm_bits_f32 = _vm_bitcast(types.int32, types.float32)

    # Compiled once per argument type as its own function, marked alwaysinline for LLVM
    # (forceinline), strict IEEE whatever the caller's fastmath (fastmath=False is set
    # explicitly: an unset flag would be inherited from whichever caller compiled first).
    _vm_jit = numba.njit(forceinline=True, error_model="numpy", fastmath=False)


# ------------------------------------------------------------------ float64 constants

_VM_INF = math.inf
_VM_NAN = math.nan
_VM_LOG2E = 1.4426950408889634            # 1/ln 2 rounded
_VM_SHIFT = 6755399441055744.0            # 1.5 * 2^52: t = v + SHIFT rounds v to an integer
_VM_SHIFT_BITS = 0x4338000000000000       # bits of SHIFT; bits(t) - SHIFT_BITS is that integer
# ln 2 = LN2_HI + LN2_LO (fdlibm's split): LN2_HI has 32 significant bits, so n * LN2_HI
# is exact for |n| < 2^21.
_VM_LN2_HI = 6.93147180369123816490e-01   # 0x1.62e42feep-1
_VM_LN2_LO = 1.90821492927058770002e-10   # 0x1.a39ef35793c76p-33
_VM_SIGN = -0x8000000000000000            # the sign bit of a float64, as an int64
_VM_SQRT_HALF_BITS = 0x3fe6a09e667f3bcd   # bits of sqrt(2)/2
_VM_MIN_NORMAL = 2.2250738585072014e-308
_VM_TWO54 = 18014398509481984.0           # 2^54 (scales a subnormal into the normals)

# expm1(r) = r + r^2 q(r), |r| <= ln2/2: q(r) = (e^r - 1 - r)/r^2 fitted by
# mpmath.chebyfit (11 terms) on [-ln2/2, ln2/2]; relative error of q with the rounded
# coefficients 4.9e-18.
_VM_E0 = 0.5
_VM_E1 = 0.1666666666666667
_VM_E2 = 0.04166666666666667
_VM_E3 = 0.008333333333326141
_VM_E4 = 0.0013888888888883752
_VM_E5 = 0.00019841269874800493
_VM_E6 = 2.4801587325533363e-05
_VM_E7 = 2.7557255425746435e-06
_VM_E8 = 2.7557273661348637e-07
_VM_E9 = 2.510520637395701e-08
_VM_E10 = 2.0914679376583935e-09

# fdlibm's log: log(1+f) = 2s + s R(z), s = f/(2+f), z = s^2, R(z) = z P(z) with
# P(z) = (2 atanh(s)/s - 2)/z fitted by mpmath.chebyfit (7 terms) on
# [0, ((sqrt2-1)/(sqrt2+1))^2]; relative error of P 4.7e-16, which moves log(1+f) by
# about 5e-18 relative (P is multiplied by z/3 <= 0.01).
_VM_L0 = 0.666666666666667
_VM_L1 = 0.39999999999899505
_VM_L2 = 0.28571428625975487
_VM_L3 = 0.2222221113479508
_VM_L4 = 0.18182889125261723
_VM_L5 = 0.15331721600556042
_VM_L6 = 0.14616449685043406


# ------------------------------------------------------------------ float64 kernels

@_vm_jit
def _vm_expm1_reduced(x):
    """(expm1(r), n) with x = n ln2 + r, |r| <= ln2/2, for |x| < 2^50 (x not NaN)."""
    t = _vm_fma(x, _VM_LOG2E, _VM_SHIFT)
    n = _vm_f64_bits(t) - _VM_SHIFT_BITS
    nf = t - _VM_SHIFT
    r = _vm_fma(-nf, _VM_LN2_LO, _vm_fma(-nf, _VM_LN2_HI, x))
    q = _VM_E10
    q = _vm_fma(q, r, _VM_E9)
    q = _vm_fma(q, r, _VM_E8)
    q = _vm_fma(q, r, _VM_E7)
    q = _vm_fma(q, r, _VM_E6)
    q = _vm_fma(q, r, _VM_E5)
    q = _vm_fma(q, r, _VM_E4)
    q = _vm_fma(q, r, _VM_E3)
    q = _vm_fma(q, r, _VM_E2)
    q = _vm_fma(q, r, _VM_E1)
    q = _vm_fma(q, r, _VM_E0)
    return _vm_fma(r * r, q, r), n


@_vm_jit
def _vm_log_reduced(f, k, c):
    """log(1 + f) + k ln2 + c for f in [sqrt(2)/2 - 1, sqrt(2) - 1] and a correction c
    much smaller than f (fdlibm's formula, which keeps the error under 1 ulp)."""
    s = f / (2.0 + f)
    z = s * s
    p = _VM_L6
    p = _vm_fma(p, z, _VM_L5)
    p = _vm_fma(p, z, _VM_L4)
    p = _vm_fma(p, z, _VM_L3)
    p = _vm_fma(p, z, _VM_L2)
    p = _vm_fma(p, z, _VM_L1)
    p = _vm_fma(p, z, _VM_L0)
    hfsq = 0.5 * f * f
    kf = np.float64(k)
    return kf * _VM_LN2_HI - ((hfsq - (s * (hfsq + z * p) + (kf * _VM_LN2_LO + c))) - f)


@_vm_jit
def _vm_split_exponent(u):
    """(k, f) with u = 2^k (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)), for u normal > 0."""
    iu = _vm_f64_bits(u)
    k = (iu - _VM_SQRT_HALF_BITS) >> 52
    return k, _vm_bits_f64(iu - (k << 52)) - 1.0


# ------------------------------------------------------------------ float64 functions

@_vm_jit
def vexp(x):
    """e^x, float64, within 1 ulp."""
    x = np.float64(x)
    xc = _vm_select(x > -746.0, x, -746.0)       # e^-746 rounds to 0; NaN goes here too
    xc = _vm_select(xc < 710.0, xc, 710.0)       # e^710 overflows
    p, n = _vm_expm1_reduced(xc)
    h = n >> 1                                   # 2^n = 2^h 2^(n-h), both normal
    y = (1.0 + p) * _vm_bits_f64((h + 1023) << 52) * _vm_bits_f64((n - h + 1023) << 52)
    return _vm_select(x == x, y, x)


@_vm_jit
def vexpm1(x):
    """e^x - 1, float64, within 4 ulp (1.9 measured)."""
    x = np.float64(x)
    xc = _vm_select(x > -40.0, x, -40.0)         # e^-40 - 1 rounds to -1
    xc = _vm_select(xc < 710.0, xc, 710.0)
    p, n = _vm_expm1_reduced(xc)
    # e^x - 1 = 2^n p + (2^n - 1); n = 1024 (x in (709.4, 709.8)) as 2 * 2^1023.
    m = _vm_select(n > 1023, 1023, n)
    s = _vm_bits_f64((m + 1023) << 52)
    y = _vm_fma(s, p, s - 1.0) * _vm_select(n > 1023, 2.0, 1.0)
    y = _vm_select(x == 0.0, x, y)               # -0.0 stays -0.0
    return _vm_select(x == x, y, x)


@_vm_jit
def vlog(x):
    """Natural log, float64, within 1 ulp; log(0) = -inf, log(x < 0) = NaN."""
    x = np.float64(x)
    u = _vm_select(x > 0.0, x, 1.0)              # other cases are selected at the end
    tiny = u < _VM_MIN_NORMAL
    u = _vm_select(tiny, u * _VM_TWO54, u)
    k, f = _vm_split_exponent(u)
    y = _vm_log_reduced(f, k - _vm_select(tiny, 54, 0), 0.0)
    y = _vm_select(x == _VM_INF, x, y)
    return _vm_select(x > 0.0, y, _vm_select(x < 0.0, _VM_NAN, _vm_select(x == 0.0, -_VM_INF, x)))


@_vm_jit
def vlog1p(x):
    """log(1 + x), float64, within 4 ulp (1.3 measured)."""
    x = np.float64(x)
    xs = _vm_select(x > -1.0, x, 0.0)            # other cases are selected at the end
    u = 1.0 + xs
    # 1 + xs = u + c exactly (Fast2Sum), u = 2^k (1 + f): log(1 + xs) = k ln2 + log(1 + f
    # + c 2^-k). For k = 0, f + c is xs exactly; else |c 2^-k| < 2^-53 rounds into f.
    c = _vm_select(xs >= 1.0, 1.0 - (u - xs), xs - (u - 1.0))
    k, f = _vm_split_exponent(u)
    f = f + c * _vm_bits_f64((1023 - _vm_select(k > 1000, 1000, k)) << 52)
    y = _vm_log_reduced(f, k, 0.0)
    y = _vm_select(x == _VM_INF, x, y)
    y = _vm_select(x == 0.0, x, y)               # -0.0 stays -0.0
    return _vm_select(x > -1.0, y,
                      _vm_select(x < -1.0, _VM_NAN, _vm_select(x == -1.0, -_VM_INF, x)))


@_vm_jit
def vtanh(x):
    """tanh, float64, within 4 ulp (2.4 measured): d/(d + 2), d = expm1(2|x|)."""
    x = np.float64(x)
    a = _vm_select(abs(x) < 20.0, abs(x), 20.0)  # tanh(20) rounds to 1; NaN goes here too
    p, n = _vm_expm1_reduced(a + a)
    s = _vm_bits_f64((n + 1023) << 52)           # 0 <= n <= 58
    d = _vm_fma(s, p, s - 1.0)
    t = d / (d + 2.0)
    y = _vm_bits_f64(_vm_f64_bits(t) | (_vm_f64_bits(x) & _VM_SIGN))
    return _vm_select(x == x, y, x)


@_vm_jit
def vsigmoid(x):
    """1/(1 + e^-x), float64, within 4 ulp: ((x >= 0) + (x < 0) e)/(1 + e), e = e^-|x|."""
    x = np.float64(x)
    e = vexp(-abs(x))
    return _vm_select(x >= 0.0, 1.0, e) / (1.0 + e)


@_vm_jit
def vsoftplus(x):
    """log(1 + e^x), float64, within 4 ulp: max(x, 0) + log1p(e^-|x|)."""
    x = np.float64(x)
    return _vm_select(x > 0.0, x, 0.0) + vlog1p(vexp(-abs(x)))


# ------------------------------------------------------------------ float32 constants
# Every constant is a np.float32 / np.int32: a Python float in a float32 expression
# would make Numba compute it in float64.

_VMF_ZERO = np.float32(0.0)
_VMF_HALF = np.float32(0.5)
_VMF_ONE = np.float32(1.0)
_VMF_TWO = np.float32(2.0)
_VMF_INF = np.float32(math.inf)
_VMF_NAN = np.float32(math.nan)
_VMF_LOG2E = np.float32(1.44269502162933349609375)   # 0x1.715476p+0, 1/ln 2 rounded
_VMF_SHIFT = np.float32(12582912.0)                  # 1.5 * 2^23
_VMF_SHIFT_BITS = np.int32(0x4b400000)
# ln 2 = LN2_HI + LN2_LO, LN2_HI rounded to 16 significant bits, so n * LN2_HI is exact
# for |n| < 2^8 (all n of exp and log).
_VMF_LN2_HI = np.float32(0.693145751953125)          # 0x1.62e4p-1
_VMF_LN2_LO = np.float32(1.428606765330187e-06)      # 0x1.7f7d1cp-20
_VMF_SIGN = np.int32(-0x80000000)
_VMF_SQRT_HALF_BITS = np.int32(0x3f3504f3)           # bits of sqrt(2)/2 rounded
_VMF_MIN_NORMAL = np.float32(1.1754943508222875e-38)
_VMF_TWO24 = np.float32(16777216.0)                  # 2^24
_VMF_I1 = np.int32(1)
_VMF_I23 = np.int32(23)
_VMF_I24 = np.int32(24)
_VMF_I0 = np.int32(0)
_VMF_I126 = np.int32(126)
_VMF_I127 = np.int32(127)

# q(r) = (e^r - 1 - r)/r^2 on [-ln2/2, ln2/2], mpmath.chebyfit (6 terms), rounded to
# float32; relative error of q 9.1e-9.
_VMF_E0 = np.float32(0.5)
_VMF_E1 = np.float32(float.fromhex("0x1.555556p-3"))
_VMF_E2 = np.float32(float.fromhex("0x1.5554eap-5"))
_VMF_E3 = np.float32(float.fromhex("0x1.1110e0p-7"))
_VMF_E4 = np.float32(float.fromhex("0x1.6d4316p-10"))
_VMF_E5 = np.float32(float.fromhex("0x1.a124e4p-13"))

# P(z) of fdlibm's log (as for float64), mpmath.chebyfit (4 terms) on
# [0, ((sqrt2-1)/(sqrt2+1))^2], rounded to float32; relative error of P 3.3e-8.
_VMF_L0 = np.float32(float.fromhex("0x1.555556p-1"))
_VMF_L1 = np.float32(float.fromhex("0x1.9999ecp-2"))
_VMF_L2 = np.float32(float.fromhex("0x1.245c44p-2"))
_VMF_L3 = np.float32(float.fromhex("0x1.ddced8p-3"))


# ------------------------------------------------------------------ float32 kernels

@_vm_jit
def _vm_expm1_reduced_f32(x):
    """(expm1(r), n) with x = n ln2 + r, |r| <= ln2/2, for |x| < 2^21 (x not NaN)."""
    t = _vm_fma(x, _VMF_LOG2E, _VMF_SHIFT)
    n = _vm_f32_bits(t) - _VMF_SHIFT_BITS
    nf = t - _VMF_SHIFT
    r = _vm_fma(-nf, _VMF_LN2_LO, _vm_fma(-nf, _VMF_LN2_HI, x))
    q = _VMF_E5
    q = _vm_fma(q, r, _VMF_E4)
    q = _vm_fma(q, r, _VMF_E3)
    q = _vm_fma(q, r, _VMF_E2)
    q = _vm_fma(q, r, _VMF_E1)
    q = _vm_fma(q, r, _VMF_E0)
    return _vm_fma(r * r, q, r), n


@_vm_jit
def _vm_pow2_f32(n):
    """2^n as a float32, for -126 <= n <= 127."""
    return _vm_bits_f32((n + _VMF_I127) << _VMF_I23)


@_vm_jit
def _vm_log_reduced_f32(f, k, c):
    """log(1 + f) + k ln2 + c in float32 (see _vm_log_reduced)."""
    s = f / (_VMF_TWO + f)
    z = s * s
    p = _VMF_L3
    p = _vm_fma(p, z, _VMF_L2)
    p = _vm_fma(p, z, _VMF_L1)
    p = _vm_fma(p, z, _VMF_L0)
    hfsq = _VMF_HALF * f * f
    kf = np.float32(k)
    return kf * _VMF_LN2_HI - ((hfsq - (s * (hfsq + z * p) + (kf * _VMF_LN2_LO + c))) - f)


@_vm_jit
def _vm_split_exponent_f32(u):
    """(k, f) with u = 2^k (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)), for u normal > 0."""
    iu = _vm_f32_bits(u)
    k = (iu - _VMF_SQRT_HALF_BITS) >> _VMF_I23
    return k, _vm_bits_f32(iu - (k << _VMF_I23)) - _VMF_ONE


# ------------------------------------------------------------------ float32 functions

@_vm_jit
def vexp_f32(x):
    """e^x, float32, within 1 ulp."""
    x = np.float32(x)
    xc = _vm_select(x > np.float32(-104.0), x, np.float32(-104.0))   # e^-104 rounds to 0
    xc = _vm_select(xc < np.float32(89.0), xc, np.float32(89.0))     # e^89 overflows
    p, n = _vm_expm1_reduced_f32(xc)
    h = n >> _VMF_I1
    y = (_VMF_ONE + p) * _vm_pow2_f32(h) * _vm_pow2_f32(n - h)
    return _vm_select(x == x, y, x)


@_vm_jit
def vexpm1_f32(x):
    """e^x - 1, float32, within 4 ulp."""
    x = np.float32(x)
    xc = _vm_select(x > np.float32(-20.0), x, np.float32(-20.0))     # e^-20 - 1 rounds to -1
    xc = _vm_select(xc < np.float32(89.0), xc, np.float32(89.0))
    p, n = _vm_expm1_reduced_f32(xc)
    s = _vm_pow2_f32(_vm_select(n > _VMF_I127, _VMF_I127, n))
    y = _vm_fma(s, p, s - _VMF_ONE) * _vm_select(n > _VMF_I127, _VMF_TWO, _VMF_ONE)
    y = _vm_select(x == _VMF_ZERO, x, y)
    return _vm_select(x == x, y, x)


@_vm_jit
def vlog_f32(x):
    """Natural log, float32, within 1 ulp."""
    x = np.float32(x)
    u = _vm_select(x > _VMF_ZERO, x, _VMF_ONE)
    tiny = u < _VMF_MIN_NORMAL
    u = _vm_select(tiny, u * _VMF_TWO24, u)
    k, f = _vm_split_exponent_f32(u)
    y = _vm_log_reduced_f32(f, k - _vm_select(tiny, _VMF_I24, _VMF_I0), _VMF_ZERO)
    y = _vm_select(x == _VMF_INF, x, y)
    return _vm_select(x > _VMF_ZERO, y,
                      _vm_select(x < _VMF_ZERO, _VMF_NAN, _vm_select(x == _VMF_ZERO, -_VMF_INF, x)))


@_vm_jit
def vlog1p_f32(x):
    """log(1 + x), float32, within 4 ulp."""
    x = np.float32(x)
    xs = _vm_select(x > -_VMF_ONE, x, _VMF_ZERO)
    u = _VMF_ONE + xs
    c = _vm_select(xs >= _VMF_ONE, _VMF_ONE - (u - xs), xs - (u - _VMF_ONE))   # as in vlog1p
    k, f = _vm_split_exponent_f32(u)
    f = f + c * _vm_pow2_f32(-_vm_select(k > _VMF_I126, _VMF_I126, k))
    y = _vm_log_reduced_f32(f, k, _VMF_ZERO)
    y = _vm_select(x == _VMF_INF, x, y)
    y = _vm_select(x == _VMF_ZERO, x, y)
    return _vm_select(x > -_VMF_ONE, y,
                      _vm_select(x < -_VMF_ONE, _VMF_NAN, _vm_select(x == -_VMF_ONE, -_VMF_INF, x)))


@_vm_jit
def vtanh_f32(x):
    """tanh, float32, within 4 ulp: d/(d + 2), d = expm1(2|x|)."""
    x = np.float32(x)
    a = _vm_select(abs(x) < np.float32(10.0), abs(x), np.float32(10.0))   # tanh(10) rounds to 1
    p, n = _vm_expm1_reduced_f32(a + a)
    s = _vm_pow2_f32(n)                                               # 0 <= n <= 29
    d = _vm_fma(s, p, s - _VMF_ONE)
    t = d / (d + _VMF_TWO)
    y = _vm_bits_f32(_vm_f32_bits(t) | (_vm_f32_bits(x) & _VMF_SIGN))
    return _vm_select(x == x, y, x)


@_vm_jit
def vsigmoid_f32(x):
    """1/(1 + e^-x), float32, within 4 ulp (the stable form of vsigmoid)."""
    x = np.float32(x)
    e = vexp_f32(-abs(x))
    return _vm_select(x >= _VMF_ZERO, _VMF_ONE, e) / (_VMF_ONE + e)


@_vm_jit
def vsoftplus_f32(x):
    """log(1 + e^x), float32, within 4 ulp: max(x, 0) + log1p(e^-|x|)."""
    x = np.float32(x)
    return _vm_select(x > _VMF_ZERO, x, _VMF_ZERO) + vlog1p_f32(vexp_f32(-abs(x)))
