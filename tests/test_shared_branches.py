"""A subexpression read by several branches reaches the gradient only through the
branches taken at a sample (reverse.py, "Shared nodes").

`1/x` in the first and the last branch of a Piecewise lives where either may be
taken; at x = 0 with the middle branch taken, its cotangent is 0 and its own
derivative -1/x**2 is infinite: 0 * inf would be NaN. Each case is checked through
the interpreter and the compiled kernels, both methods, against SymPy at high
precision (the CUDA module: test_cuda_sim.py's "shared-branches" check and the
fuzz grammar in test_fuzz.py).
"""

from __future__ import annotations

import numpy as np
import oracle
import pytest
import sympy as sp

import symgrad
from symgrad import matrix as M
from symgrad.derivation import derive
from symgrad.interpret import loss_and_grad as interpret_loss_and_grad

x, y, a = sp.symbols("x y a", real=True)
HALF = sp.Rational(1, 2)

# name -> (loss, params, inputs, param values, data[, exact result where SymPy has none])
SCALAR_CASES = {
    # The issue's reproduction: the middle branch is taken at y = 1, where 1/x is 1/0.
    "one_piecewise": (sp.Piecewise((1 / x, y < -1), (x, y <= 1), (1 / x, True)),
                      [x, y], [], {"x": 0.0, "y": 1.0}, None),
    "per_sample_data": (sp.Piecewise((a / x, y < -1), (a * x, y <= 1), (a / x, True)),
                        [a], [x, y], {"a": 2.0},
                        {"x": np.array([0.0, 1.0, 3.0, 0.0]), "y": np.array([0.0, 0.5, 2.0, 1.0])}),
    "two_piecewise_nodes": (sp.Piecewise((sp.log(x), y > 2), (0, True))
                            + sp.Piecewise((sp.log(x), y < -2), (x, True)),
                            [x, y], [], {"x": 0.0, "y": 0.0}, None),
    "nested": (sp.Piecewise((a * sp.sqrt(x), x > 2),
                            (sp.Piecewise((a * y, y > 0), (a * sp.sqrt(x), x > HALF), (y, True)),
                             True)),
               [a], [x, y], {"a": 1.5},
               {"x": np.array([-1.0, 0.0, 3.0, 1.0]), "y": np.array([0.5, 2.0, 1.0, -1.0])}),
    "negative_power_three_levels": (
        sp.Piecewise((y, y < -1), (sp.Piecewise((a * x**-2, x > 1), (sp.Piecewise(
            (a * y, y < 1), (a * x**-2, x > HALF), (a, True)), True)), True)),
        [a], [x, y], {"a": -0.75},
        {"x": np.array([0.0, 0.0, 2.0, 0.0]), "y": np.array([0.5, -2.0, 0.0, 3.0])}),
    # log(x) lives outside the branch (the condition reads it); at x = 0 it is -inf.
    "condition_reads_the_shared_node": (
        sp.Piecewise((sp.log(x), sp.log(x) > 1), (x, True)), [x], [], {"x": 0.0}, None,
        (0.0, {"x": 1.0})),     # SymPy cannot compare log(0) = zoo with 1
}


def _exact(loss, params, inputs, values, data, want=None):
    return want or oracle.loss_and_grad(loss, params, inputs, values, data)


@pytest.mark.parametrize("case", sorted(SCALAR_CASES))
@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_scalar_models(case, method):
    loss, params, inputs, values, data, *want = SCALAR_CASES[case]
    want = _exact(loss, params, inputs, values, data, *want)
    model = symgrad.Model(loss, params, inputs)
    got = interpret_loss_and_grad(derive(model, method), values, data)
    oracle.assert_grads_close(got, want, 1e-12, 1e-12, f"interpret {method}")
    got = symgrad.compile(model, method).loss_and_grad(values, data)
    oracle.assert_grads_close(got, want, 1e-12, 1e-12, f"compiled {method}")


def test_issue_reproduction_gives_the_middle_branch_derivative():
    loss, params, _, values, _ = SCALAR_CASES["one_piecewise"]
    for method in ("reverse", "symbolic"):
        k = symgrad.compile(symgrad.Model(loss, params), method)
        assert k.loss_and_grad(values) == (0.0, {"x": 1.0, "y": 0.0})


def matrix_model():
    """The reproduction entrywise on Z = X W: d/dz of the taken middle branch is 1."""
    n = sp.Symbol("n")
    X, W = sp.MatrixSymbol("X", n, 2), sp.MatrixSymbol("W", 2, 1)
    d = sp.Dummy("d", real=True)
    f = sp.Lambda(d, sp.Piecewise((1 / d, d < -1), (d, d <= 1), (1 / d, True)))
    return symgrad.Model(loss=M.total(M.elementwise(f, X * W)), params=[W], inputs=[X])


def matrix_expected(w, xs):
    z = xs @ w
    inner = np.abs(z) <= 1
    loss = float(np.sum(np.where(inner, z, 1 / np.where(inner, 1.0, z))))
    dz = np.where(inner, 1.0, -1 / np.where(inner, 1.0, z) ** 2)
    return loss, xs.T @ dz


MATRIX_W = np.array([[1.0], [-2.0]])
MATRIX_X = np.array([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0], [1.0, 0.5], [0.0, -2.0]])  # z = 0 twice


def test_matrix_model():
    w, xs = MATRIX_W, MATRIX_X
    want_loss, want_grad = matrix_expected(w, xs)
    loss, grads = symgrad.compile(matrix_model()).loss_and_grad({"W": w}, {"X": xs})
    assert np.isfinite(grads["W"]).all()
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grads["W"], want_grad, rtol=1e-12)


def test_a_gate_with_one_condition_reuses_it():
    """log(x) is read by the condition (no cotangent) and by one branch: its cotangent
    is masked by that one condition, and the gate reuses it (no new comparison), so
    the gated code sits under the branch's own guard."""
    from symgrad.ir import COMPARISONS, toposort
    loss = SCALAR_CASES["condition_reads_the_shared_node"][0]
    d = derive(symgrad.Model(loss, [x]), "reverse")
    comparisons = [n for n in toposort([d.sample_grads[0]]) if n.op in COMPARISONS]
    assert len(comparisons) == 1


def test_symbolic_method_refuses_a_piecewise_lambda_on_a_matrix_clearly():
    """SymPy cannot rebuild X*W inside a Piecewise Lambda when it writes the model
    entrywise: a clear error naming the way out, not SymPy's TypeError."""
    with pytest.raises(symgrad.errors.OptionError, match="method='reverse'"):
        symgrad.compile(matrix_model(), "symbolic")
