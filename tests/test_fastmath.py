"""compile(..., fastmath=True): reassociated sums, same values to rounding, NaN kept."""

import numpy as np
import sympy as sp

import symgrad

x, y, a, b = sp.symbols("x y a b", real=True)
MODEL = symgrad.Model((a * x + b - y) ** 2 + sp.log(b * x), [a, b], [x, y])
RNG = np.random.default_rng(3)
DATA = {"x": RNG.uniform(0.5, 2.0, 5000), "y": RNG.standard_normal(5000)}


def test_fastmath_agrees_with_strict_to_rounding_and_is_repeatable():
    strict = symgrad.compile(MODEL)
    fast = symgrad.compile(MODEL, fastmath=True)
    assert "FASTMATH = False" in strict.source and '"reassoc"' in fast.source
    params = {"a": 0.3, "b": 1.7}
    loss, grads = strict.loss_and_grad(params, DATA)
    fast_loss, fast_grads = fast.loss_and_grad(params, DATA)
    assert np.isclose(fast_loss, loss, rtol=1e-12)
    assert all(np.isclose(fast_grads[k], grads[k], rtol=1e-11) for k in grads)
    assert fast.loss_and_grad(params, DATA) == (fast_loss, fast_grads)


def test_fastmath_keeps_nan_and_inf():
    """log(b x) < 0 everywhere at b = -1: the loss is NaN (no-NaN assumptions would let
    LLVM drop it), while the gradient (d/db log(b x) = 1/b) stays finite, as in strict mode."""
    params = {"a": 0.3, "b": -1.0}
    fast_loss, fast_grads = symgrad.compile(MODEL, fastmath=True).loss_and_grad(params, DATA)
    _, grads = symgrad.compile(MODEL).loss_and_grad(params, DATA)
    assert np.isnan(fast_loss)
    assert all(np.isclose(fast_grads[k], grads[k], rtol=1e-11) for k in grads)
