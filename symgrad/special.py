"""Reference values of the special functions, elementwise on NumPy arrays.

NumPy has no erf, gamma or polygamma ufunc, so the IR's reference semantics
(`ir.SEMANTICS`: constant folding, symgrad's own interpreter, the tests' oracle
for the kernels) take them from here: `math`'s functions with C's conventions at
poles and overflow instead of Python's exceptions, and mpmath (SymPy's own
arbitrary-precision library) for polygamma, rounded once to float64. The
generated kernels compute the same functions with codegen/special_math.py.

Conventions (as C's tgamma/lgamma and PyTorch; docs/conventions.md):
gamma(+-0) = +-inf, gamma(-n) = nan, gamma(x > 171.6) = inf; lgamma is log|gamma|
(real for negative x, as torch.lgamma and scipy.special.gammaln; SymPy's loggamma
is complex there), lgamma(-n) = inf; polygamma(0, 0) = -inf, polygamma(n, -k) = nan
for even n (its sign differs on the two sides of the pole), +inf for odd n.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np


def _gamma(x: float) -> float:
    try:
        return math.gamma(x)
    except ValueError:          # a pole: 0 or a negative integer
        return math.copysign(math.inf, x) if x == 0.0 else math.nan
    except OverflowError:
        return math.inf


def _lgamma(x: float) -> float:
    try:
        return math.lgamma(x)
    except (ValueError, OverflowError):
        return math.inf


def polygamma_scalar(n: int, x: float) -> float:
    """The n-th derivative of digamma at x, for an integer n >= 0 and a float x."""
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        if x < 0:
            return math.nan
        return math.inf if n == 0 else 0.0
    if x <= 0.0 and x == math.floor(x):
        if n == 0:
            return -math.inf if x == 0.0 else math.nan
        return math.inf if n % 2 else math.nan
    with mpmath.workdps(30):
        return float(mpmath.polygamma(n, mpmath.mpf(x)))


def _vectorized(f):
    ufunc = np.frompyfunc(f, 1, 1)

    def apply(x):
        return np.asarray(ufunc(np.asarray(x, dtype=np.float64)), dtype=np.float64)[()]
    return apply


erf = _vectorized(math.erf)
erfc = _vectorized(math.erfc)
gamma = _vectorized(_gamma)
lgamma = _vectorized(_lgamma)


def polygamma(x, n: int):
    """polygamma(n, x) elementwise (the order n last, as the IR's attr)."""
    return _vectorized(lambda v: polygamma_scalar(int(n), v))(x)
