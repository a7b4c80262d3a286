"""The direct method for matrix models: the scalar expansion, differentiated by sympy.diff,
agrees with reverse mode on the matrix model; non-separable losses are refused."""

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, matrix, nn
from symgrad.expand import expand_to_scalars, sympy_matrix_calculus

n = sp.Symbol("n", integer=True, positive=True)
X, Y = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("Y", n, 2)
NET = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
RNG = np.random.default_rng(7)
DATA = {"X": RNG.standard_normal((9, 3)), "Y": RNG.standard_normal((9, 2))}
PARAMS = NET.init(3)


def reference(model):
    """Loss and gradients of the matrix model by NumPy finite differences of its own loss
    evaluated independently (central differences, h = 1e-6)."""
    from symgrad.interpret import evaluate_tensor
    roots = [r for r in model.forward if r is not None]

    def f(params):
        values = evaluate_tensor(roots, params, DATA)
        return sum(float(values[r]) for r in roots)

    grads = {}
    for name, value in PARAMS.items():
        g = np.zeros(value.size)
        for k in range(value.size):
            up, down = value.astype(float).ravel(), value.astype(float).ravel()
            up[k] += 1e-6
            down[k] -= 1e-6
            g[k] = (f({**PARAMS, name: up.reshape(value.shape)})
                    - f({**PARAMS, name: down.reshape(value.shape)})) / 2e-6
        grads[name] = g.reshape(value.shape)
    return f(PARAMS), grads


@pytest.mark.parametrize("loss, penalty", [
    (losses.mse(NET(X), Y, reduction="mean"), None),
    (losses.mse(NET(X), Y, reduction="sum"), 0.1 * losses.l2(*NET.params)),
    (losses.cross_entropy(NET(X), Y), None),
])
def test_symbolic_method_on_matrix_models_matches_the_math(loss, penalty):
    model = symgrad.Model(loss, NET.params, [X, Y], penalty=penalty)
    value, grads = symgrad.compile(model, method="symbolic").loss_and_grad(PARAMS, DATA)
    ref_value, ref_grads = reference(model)
    assert np.isclose(value, ref_value, rtol=1e-12)
    for name in PARAMS:
        assert grads[name].shape == PARAMS[name].shape
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-6, atol=1e-8)


def test_expansion_names_entries_like_the_matrix():
    model = symgrad.Model(losses.mse(NET(X), Y), NET.params, [X, Y])
    e = expand_to_scalars(model)
    assert "0.weight[3,2]" in e.scalar_model.param_names
    assert "0.bias[3]" in e.scalar_model.param_names
    assert e.scalar_model.input_names[:3] == ("X[0]", "X[1]", "X[2]")
    assert e.scalar_model.reduction == "mean"


def test_penalty_written_into_the_loss_is_not_per_sample():
    """With reduction "sum", an L2 term inside the loss would be counted once per sample by
    the expansion: refused, with the advice to pass it as penalty=. (Under "mean" the
    expansion is exact: the mean of a constant is the constant.)"""
    model = symgrad.Model(losses.mse(NET(X), Y, reduction="sum") + 0.1 * losses.l2(*NET.params),
                          NET.params, [X, Y])
    with pytest.raises(symgrad.InvalidModelError, match="per-sample"):
        symgrad.compile(model, method="symbolic")


def test_non_separable_loss_is_refused():
    model = symgrad.Model(matrix.total(NET(X)) * matrix.total(NET(X)), NET.params, [X])
    with pytest.raises(symgrad.InvalidModelError, match="per-sample"):
        symgrad.compile(model, method="symbolic")


def test_large_models_are_refused_with_advice():
    big = nn.Sequential(nn.Linear(100, 30), nn.ReLU(), nn.Linear(30, 2))
    model = symgrad.Model(losses.mse(big(sp.MatrixSymbol("Z", n, 100)), Y), big.params,
                          [sp.MatrixSymbol("Z", n, 100), Y])
    with pytest.raises(symgrad.OptionError, match="method='reverse'"):
        symgrad.compile(model, method="symbolic")


def test_sympy_matrix_calculus_report_never_raises():
    model = symgrad.Model(losses.mse(NET(X), Y), NET.params, [X, Y])
    report = sympy_matrix_calculus(model)
    assert set(report) == set(PARAMS) and all(isinstance(v, str) for v in report.values())


def test_the_expanded_kernel_has_every_entry_point():
    model = symgrad.Model(losses.cross_entropy(NET(X), Y), NET.params, [X, Y])
    symbolic = symgrad.compile(model, method="symbolic")
    reverse = symgrad.compile(model, method="reverse")
    assert isinstance(symbolic, symgrad.Kernel)
    labels = {"X": DATA["X"], "Y": np.array([0, 1, 1, 0, 1, 0, 0, 1, 1])}   # class labels
    want = reverse.loss_and_grad(PARAMS, labels)
    got = symbolic.loss_and_grad(PARAMS, labels)
    assert np.isclose(got[0], want[0], rtol=1e-12)
    for opt in (symgrad.optim.SGD(lr=0.1, momentum=0.9), symgrad.optim.Adam(lr=0.01)):
        new, history = symbolic.train(PARAMS, labels, opt, steps=4)
        ref, ref_history = reverse.train(PARAMS, labels, opt, steps=4)
        np.testing.assert_allclose(history, ref_history, rtol=1e-10)
        for name in PARAMS:
            assert new[name].shape == PARAMS[name].shape
            np.testing.assert_allclose(new[name], ref[name], rtol=1e-9, atol=1e-12)
        assert history[-1] < history[0]
    with pytest.raises(symgrad.errors.OptionError, match="method='reverse' to predict"):
        symbolic.predict(PARAMS, labels)
    with pytest.raises(symgrad.errors.ShapeError, match="class labels must lie in"):
        symbolic.loss(PARAMS, {"X": DATA["X"], "Y": np.full(9, 5)})
