"""Special functions: erf, erfc, gamma, lgamma and polygamma for generated modules.

Embedded verbatim in a generated module whose model uses one of them (and importable
on its own for tests). Compiled, erf, erfc, gamma and lgamma are libm's (`math`'s in
Numba); gamma and lgamma are wrapped in @njit functions so that a core run as plain
Python (`.py_func`) gets the compiled, IEEE behaviour too (Python's raise at poles).
Under NUMBA_DISABLE_JIT they are plain functions with C's conventions where Python's
`math` would raise: gamma(+-0) = +-inf, gamma(-n) = nan,
gamma(x > 171.6) = inf, lgamma = log|gamma| with lgamma(-n) = inf. NumPy has no such
ufuncs. floor, ceil, mod and the inverse trigonometric and hyperbolic functions print as
NumPy's own (np.floor, np.mod, np.arcsin, ...).

`polygamma(n, x)`, the n-th derivative of digamma, is our own (Numba has none): the
recurrence psi_n(x) = psi_n(x + 1) - (-1)^n n! / x^(n+1) moves x up to at least 20, where
the asymptotic series with Bernoulli numbers B_2 .. B_20 is accurate to rounding; negative
x uses the reflection formula for n = 0 and 1 (psi(1 - x) - psi(x) = pi cot(pi x)) and the
same recurrence for n >= 2 down to x = -1e4 (NaN below: the loop would be as long as |x|).
At the poles (x = 0, -1, -2, ...): -inf for digamma at 0 and NaN at negative integers,
+inf for odd n, NaN for even n >= 2 (the sign differs on the two sides), as PyTorch.
Written with `math` only, so that CUDA kernels compile the same function as a device
function (codegen/cuda_special.py).
"""

import math

import numba
import numpy as np

# B_2k for k = 1..10
_BERNOULLI = (1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0, -691.0 / 2730.0,
              7.0 / 6.0, -3617.0 / 510.0, 43867.0 / 798.0, -174611.0 / 330.0)


def _polygamma_at(n, x):
    """polygamma(n, x) away from the poles: the recurrence up to x >= 20, then the
    series (for x < 0, as many steps as |x|)."""
    shift = 0.0
    while x < 20.0:
        shift += 1.0 / x ** (n + 1)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    if n == 0:
        series = math.log(x) - 0.5 * inv
        power = inv2
        for k in range(10):
            series -= _BERNOULLI[k] / (2 * k + 2) * power
            power *= inv2
        return series - shift
    fact = 1.0                                      # n!
    for j in range(2, n + 1):
        fact *= j
    series = fact / n * inv ** n + 0.5 * fact * inv ** (n + 1)
    power = inv ** (n + 2)
    for k in range(10):
        two_k = 2 * k + 2
        ratio = 1.0                                 # (2k + n - 1)! / (2k)!
        for j in range(two_k + 1, two_k + n):
            ratio *= j
        series += _BERNOULLI[k] * ratio * power
        power *= inv2
    sign = 1.0 if n % 2 == 1 else -1.0              # (-1)^(n+1)
    return sign * series + sign * fact * shift


def _polygamma(n, x):
    """d^n/dx^n digamma(x) for an integer n >= 0 (see the module docstring)."""
    if x != x:
        return x
    if math.isinf(x):
        if x < 0.0:
            return math.nan
        return math.inf if n == 0 else 0.0
    if x <= 0.0 and math.floor(x) == x:
        if n == 0:
            return -math.inf if x == 0.0 else math.nan
        return math.inf if n % 2 == 1 else math.nan
    if x > 0.0:
        return _polygamma_at(n, x)
    r = x - math.floor(x + 0.5)    # in [-1/2, 1/2], exact: pi r keeps the accuracy at poles
    if n == 0:      # psi(x) = psi(1 - x) - pi / tan(pi x)
        return _polygamma_at(0, 1.0 - x) - math.pi / math.tan(math.pi * r)
    if n == 1:      # psi_1(x) = pi^2 / sin^2(pi x) - psi_1(1 - x)
        s = math.sin(math.pi * r)
        return math.pi * math.pi / (s * s) - _polygamma_at(1, 1.0 - x)
    if x < -1e4:
        return math.nan
    return _polygamma_at(n, x)     # its recurrence runs up from negative x as well


if numba.config.DISABLE_JIT:
    def erf(x):
        return np.float64(math.erf(x))

    def erfc(x):
        return np.float64(math.erfc(x))

    def gamma(x):
        if x != x or x == -math.inf:
            return np.float64(math.nan)
        if x == 0.0:
            return np.float64(math.copysign(math.inf, x))
        if x < 0.0 and math.floor(x) == x:
            return np.float64(math.nan)
        if x > 171.7:
            return np.float64(math.inf)
        return np.float64(math.gamma(x))

    def lgamma(x):
        if x != x:
            return np.float64(math.nan)
        if math.isinf(x) or (x <= 0.0 and math.floor(x) == x):
            return np.float64(math.inf)
        return np.float64(math.lgamma(x))

    def polygamma(n, x):
        with np.errstate(all="ignore"):
            return np.float64(_polygamma(n, np.float64(x)))
else:
    from math import erf, erfc      # typed by Numba; as Python functions they never raise

    @numba.njit(cache=True, error_model="numpy")
    def gamma(x):
        return math.gamma(x)

    @numba.njit(cache=True, error_model="numpy")
    def lgamma(x):
        return math.lgamma(x)

    _polygamma_at = numba.njit(cache=True, error_model="numpy")(_polygamma_at)
    polygamma = numba.njit(cache=True, error_model="numpy")(_polygamma)
