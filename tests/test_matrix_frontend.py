"""The matrix front end: each SymPy matrix construct lowers to the right shape and value.

Every construct is checked as the `predict=` output of a model whose loss is its total,
so the generated code's array (shape and entries) and its loss are compared with the
same math written in NumPy. The cores run uncompiled (`.py_func`, the same source
Numba compiles); one model with every construct is also compiled for real.
"""

import warnings

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

import symgrad
from symgrad import matrix as M

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, 3)
A = sp.MatrixSymbol("A", n, 2)
W = sp.MatrixSymbol("W", 3, 2)
V = sp.MatrixSymbol("V", 2, 4)
b = sp.MatrixSymbol("b", 1, 2)
c = sp.Symbol("c")
BATCH = 5

rng = np.random.default_rng(20261126)
PARAMS = {"W": rng.standard_normal((3, 2)), "V": rng.standard_normal((2, 4)),
          "b": rng.standard_normal(2), "c": 0.75}
DATA = {"X": rng.standard_normal((BATCH, 3)), "A": rng.standard_normal((BATCH, 2))}
Xv, Av, Wv, Vv, bv, cv = (DATA["X"], DATA["A"], PARAMS["W"], PARAMS["V"],
                          PARAMS["b"].reshape(1, 2), PARAMS["c"])
Zv = Xv @ Wv                                       # the (n, 2) product most cases start from


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# name -> (matrix expression, its shape with n = BATCH, NumPy value)
CASES = {
    "matmul chain": (X * W * V, (BATCH, 4), Zv @ Vv),
    "matadd": (X * W + A, (BATCH, 2), Zv + Av),
    "matadd with negated term": (A - X * W, (BATCH, 2), Av - Zv),
    "transpose of a product": ((X * W).T * A, (2, 2), Zv.T @ Av),
    "transpose of a param": (A * W.T, (BATCH, 3), Av @ Wv.T),
    "hadamard product": (sp.HadamardProduct(X * W, A), (BATCH, 2), Zv * Av),
    "hadamard power 3": (sp.HadamardPower(X * W, 3), (BATCH, 2), Zv ** 3),
    "hadamard power 2 via square": (M.square(X * W - A), (BATCH, 2), (Zv - Av) ** 2),
    "2*A": (2 * (X * W), (BATCH, 2), 2 * Zv),
    "-A": (-(X * W), (BATCH, 2), -Zv),
    "A/3": ((X * W) / 3, (BATCH, 2), Zv / 3),
    "scalar param times matrix": (c * (X * W), (BATCH, 2), cv * Zv),
    "sigmoid": (M.elementwise(symgrad.sigmoid, X * W), (BATCH, 2), _sigmoid(Zv)),
    "tanh": (M.elementwise(sp.tanh, X * W), (BATCH, 2), np.tanh(Zv)),
    "relu": (M.elementwise(symgrad.relu, X * W), (BATCH, 2), np.maximum(Zv, 0.0)),
    "exp": (M.elementwise(sp.exp, X * W), (BATCH, 2), np.exp(Zv)),
    "log": (M.elementwise(sp.log, sp.HadamardProduct(X * W, X * W)), (BATCH, 2),
            np.log(Zv * Zv)),
    "softplus": (M.elementwise(symgrad.softplus, X * W), (BATCH, 2), np.log1p(np.exp(Zv))),
    "applyfunc tanh": ((X * W).applyfunc(sp.tanh), (BATCH, 2), np.tanh(Zv)),
    "applyfunc lambda with a param": ((X * W).applyfunc(lambda z: c * z ** 2 + sp.sin(z)),
                                      (BATCH, 2), cv * Zv ** 2 + np.sin(Zv)),
    "nested elementwise": (M.elementwise(sp.tanh, M.elementwise(sp.exp, X * W)), (BATCH, 2),
                           np.tanh(np.exp(Zv))),
    "bias via repeat_rows": (X * W + M.repeat_rows(b, n), (BATCH, 2), Zv + bv),
    "bias via OneMatrix(n, 1) * b": (X * W + sp.OneMatrix(n, 1) * b, (BATCH, 2), Zv + bv),
    "row sums": (M.row_sums(X * W), (BATCH, 1), Zv.sum(axis=1, keepdims=True)),
    "column sums": (M.col_sums(X * W), (1, 2), Zv.sum(axis=0, keepdims=True)),
    "total": (M.total(M.square(X * W)), (1, 1), np.full((1, 1), (Zv ** 2).sum())),
    "logsumexp per row": (M.logsumexp(X * W * V), (BATCH, 1),
                          np.log(np.exp(Zv @ Vv).sum(axis=1, keepdims=True))),
    "softmax per row": (M.softmax(X * W * V), (BATCH, 4), _softmax(Zv @ Vv)),
}


def _params_of(expr):
    used = {s.name for s in expr.free_symbols} | {s.name for s in expr.atoms(sp.MatrixSymbol)}
    syms = [s for s in (W, V, b, c) if s.name in used]
    ins = [s for s in (X, A) if s.name in used]
    return syms, ins


def _model(expr):
    params, inputs = _params_of(expr)
    return symgrad.Model(M.total(expr), params=params, inputs=inputs, predict=expr)


def run_uncompiled(kernel, params, data, entry):
    """An entry point's generated core run as plain Python (no Numba compile)."""
    mod = kernel.module
    theta, given = mod._pack(params)
    columns = mod._columns(data)
    if entry == "predict":
        return mod._predict_core.py_func(theta, *columns)
    out = np.empty(1 + theta.shape[0])
    getattr(mod, f"_{entry}_core").py_func(theta, *columns, out)
    return float(out[0]), mod._unpack(out[1:], given)


def _subset(values, symbols):
    return {s.name: values[s.name] for s in symbols}


@pytest.mark.parametrize("name", list(CASES))
def test_construct_lowers_with_right_shape_and_value(name):
    expr, shape, want = CASES[name]
    model = _model(expr)
    ir_shape = model.predict_node.shape
    assert tuple(BATCH if d == "n" else d for d in ir_shape) == shape
    kernel = symgrad.compile(model)
    params, inputs = _params_of(expr)
    p, d = _subset(PARAMS, params), _subset(DATA, inputs)
    got = run_uncompiled(kernel, p, d, "predict")
    assert got.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    loss, _ = run_uncompiled(kernel, p, d, "loss")
    assert loss == pytest.approx(want.sum(), rel=1e-12, abs=1e-13)


def test_symbolic_batch_dims_stay_symbolic():
    model = _model(X * W + M.repeat_rows(b, n))
    assert model.predict_node.shape == ("n", 2)
    assert _model(M.col_sums(X * W)).predict_node.shape == (1, 2)


def test_one_lambda_applied_to_two_matrices_keeps_them_apart():
    # A reused Lambda must not find its first application's body in the memo.
    z = sp.Symbol("z")
    square = sp.Lambda(z, z ** 2)
    expr = ElementwiseApplyFunction(square, X * W) + ElementwiseApplyFunction(square, A)
    kernel = symgrad.compile(_model(expr))
    got = run_uncompiled(kernel, _subset(PARAMS, [W]), DATA, "predict")
    np.testing.assert_allclose(got, Zv ** 2 + Av ** 2, rtol=1e-13)
    twice = ElementwiseApplyFunction(square, ElementwiseApplyFunction(square, X * W))
    kernel = symgrad.compile(_model(twice))
    got = run_uncompiled(kernel, _subset(PARAMS, [W]), _subset(DATA, [X]), "predict")
    np.testing.assert_allclose(got, Zv ** 4, rtol=1e-13)


def test_every_construct_in_one_compiled_kernel():
    """The same constructs through Numba: the compiled loss equals NumPy's."""
    names = ["matmul chain", "transpose of a product", "hadamard product", "hadamard power 3",
             "A/3", "scalar param times matrix", "sigmoid", "tanh", "relu", "softplus",
             "log", "bias via repeat_rows", "row sums", "column sums", "logsumexp per row",
             "softmax per row"]
    loss = sp.MatAdd(*(M.total(CASES[k][0]) for k in names))
    model = symgrad.Model(loss, params=[W, V, b, c], inputs=[X, A])
    kernel = symgrad.compile(model)
    want = sum(CASES[k][2].sum() for k in names)
    assert kernel.loss(PARAMS, DATA) == pytest.approx(want, rel=1e-12)
    assert kernel.loss(PARAMS, DATA) == pytest.approx(
        run_uncompiled(kernel, PARAMS, DATA, "loss")[0], rel=1e-13)


# ---------------------------------------------------------------- shape errors

def test_mismatched_inner_dims_are_caught_by_sympy_at_construction():
    W4 = sp.MatrixSymbol("W4", 4, 2)
    with pytest.raises(sp.ShapeError):
        X * W4


def _shape_error(expr, inputs, params=()):
    with pytest.raises(symgrad.ShapeMismatchError) as info:
        symgrad.Model(expr, params=list(params), inputs=inputs)
    assert isinstance(info.value, symgrad.SymgradError)
    return info.value


def test_product_sympy_cannot_check_names_both_shapes_and_subexpression():
    # (n, 3) times (n, 3): SymPy cannot decide n != 3, symgrad can.
    Q = sp.MatrixSymbol("Q", n, 3)
    err = _shape_error(M.total(M.elementwise(sp.tanh, X * Q)), [X, Q])
    assert err.shapes == (("n", 3), ("n", 3))
    assert err.subexpression == "X*Q"
    assert "(n, 3)" in str(err) and "X*Q" in str(err) and "MATMUL" in str(err)


def test_sum_sympy_cannot_check_names_both_shapes():
    S = sp.MatrixSymbol("S", 3, 3)
    expr = X + S
    assert expr.shape == (3, 3)          # SymPy accepted it
    err = _shape_error(M.total(M.elementwise(sp.tanh, expr)), [X, S])
    assert set(err.shapes) == {("n", 3), (3, 3)}
    assert "S + X" in str(err) and "(3, 3)" in str(err) and "(n, 3)" in str(err)


def test_hadamard_built_without_check_names_both_shapes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # check= is deprecated in SymPy
        bad = sp.HadamardProduct(X, A, check=False)
        loss = sp.MatMul(sp.OneMatrix(1, n), bad, sp.OneMatrix(3, 1), check=False)
    err = _shape_error(loss, [X, A])
    assert err.shapes == (("n", 3), ("n", 2))
    assert "HadamardProduct(X, A)" in str(err)
    assert "(n, 3)" in str(err) and "(n, 2)" in str(err)


def test_matadd_built_without_check_names_both_shapes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = sp.MatAdd(X, A, check=False)
        loss = sp.MatMul(sp.OneMatrix(1, n), M.elementwise(sp.exp, bad), sp.OneMatrix(3, 1),
                         check=False)
    err = _shape_error(loss, [X, A])
    assert set(err.shapes) == {("n", 3), ("n", 2)}
    assert "A + X" in str(err)


def test_param_with_symbolic_shape_is_rejected():
    P = sp.MatrixSymbol("P", n, 2)
    with pytest.raises(symgrad.InvalidModelError, match="P.*symbolic shape"):
        symgrad.Model(M.total(sp.HadamardProduct(P, A)), params=[P], inputs=[A])


def test_matrix_loss_must_be_1x1():
    with pytest.raises(symgrad.InvalidModelError, match=r"shape \(n, 2\)"):
        symgrad.Model(X * W, params=[W], inputs=[X])


def test_dims_must_be_integers_or_one_size_symbol():
    Z = sp.MatrixSymbol("Z", 2 * n, 3)
    with pytest.raises(symgrad.InvalidModelError, match="2\\*n"):
        symgrad.Model(M.total(Z), params=[], inputs=[Z])
    m = sp.Symbol("m", integer=True, positive=True)
    Y = sp.MatrixSymbol("Y", m, 3)
    with pytest.raises(symgrad.InvalidModelError, match="several symbolic sizes"):
        symgrad.Model(M.total(X) + M.total(Y), params=[], inputs=[X, Y])


S = sp.MatrixSymbol("S", 3, 3)


@pytest.mark.parametrize("name, loss", [
    ("MatPow", M.total(X * S ** 2)),
    ("Inverse", M.total(X * S.I)),
    ("Trace", sp.Trace(S.T * S)),
    ("Determinant", sp.Determinant(S)),
    ("MatrixElement", S[0, 1] * S[1, 0]),
])
def test_unsupported_matrix_constructs_are_named(name, loss):
    with pytest.raises(symgrad.UnsupportedFunctionError, match=name):
        symgrad.Model(loss, params=[S], inputs=[X])
