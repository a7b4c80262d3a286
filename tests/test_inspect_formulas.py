"""Gradient formulas (symgrad.grad): exact LaTeX for the lecture examples, equality
with sympy.diff, the IR -> SymPy converter op by op, and deep graphs."""

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import functions as fn
from symgrad.errors import OptionError
from symgrad.inspect.to_sympy import MAX_INLINE_DEPTH, to_sympy, with_definitions
from symgrad.interpret import loss_and_grad
from symgrad.derivation import derive
from symgrad import ir
from symgrad.ir import LEAVES, Op, apply, make, node, param, where
from symgrad.modelfile import load_model
from symgrad.reverse import reverse_mode

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def models():
    names = ("lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer")
    return {name: load_model(EXAMPLES / f"{name}.py") for name in names}


def test_lecture_graph_reverse_latex_is_exact(models):
    # d(q z)/dx = d(q z)/dy = z and d(q z)/dz = q = x + y, by hand.
    tex = symgrad.grad(models["lecture_graph"]).latex()
    assert tex == (
        "% Gradients of lecture_graph.py by reverse mode (the adjoint DAG; intermediates "
        "used more than once are named h1, h2, ...)\n"
        "% f = z*(x + y)\n"
        "\\begin{align*}\n"
        "\\frac{\\partial f}{\\partial x} &= z \\\\\n"
        "\\frac{\\partial f}{\\partial y} &= z \\\\\n"
        "\\frac{\\partial f}{\\partial z} &= x + y\n"
        "\\end{align*}\n")


def test_lecture_graph_text_pretty_and_jupyter_forms(models):
    for method in ("reverse", "symbolic"):
        g = symgrad.grad(models["lecture_graph"], method=method)
        assert str(g).splitlines()[-3:] == ["df/dx = z", "df/dy = z", "df/dz = x + y"]
        assert "∂f/∂z = x + y" in g.pretty()
        assert g._repr_latex_() == (
            "$$\\begin{aligned}\\frac{\\partial f}{\\partial x} &= z \\\\ "
            "\\frac{\\partial f}{\\partial y} &= z \\\\ "
            "\\frac{\\partial f}{\\partial z} &= x + y\\end{aligned}$$")


def test_chain_rule_reverse_keeps_the_chain_and_equals_18x_plus_12(models):
    model = models["chain_rule"]
    x = model.real_params[0]
    reverse = symgrad.grad(model)
    # f = (3x+1)^2 + 2(3x+1): the adjoint is 2 g(x) * 3 + 6, i.e. 6 (3x + 1) + 6.
    assert sp.latex(reverse.sample["x"]) == r"6 \left(3 x + 1\right) + 6"
    assert sp.simplify(reverse.gradient("x") - (18 * x + 12)) == 0
    symbolic = symgrad.grad(model, method="symbolic")
    assert sp.latex(symbolic.sample["x"]) == "18 x + 12"
    assert reverse.latex_lines() == [r"\frac{\partial f}{\partial x} &= 6 \left(3 x + 1\right) + 6"]


def test_polynomial_names_shared_intermediates_and_sums_over_samples(models):
    model = models["polynomial_sin"]
    g = symgrad.grad(model)
    a, b, c, d = model.real_params
    x, y = model.real_inputs
    residual = a + b * x + c * x**2 + d * x**3 - y
    assert [str(name) for name, _ in g.definitions] == ["h1", "h2", "h3"]
    h3 = dict(g.definitions)[sp.Symbol("h3", real=True)]
    assert sp.expand(h3.xreplace(dict(g.definitions)) - 2 * residual) == 0
    text = g.text()
    assert "dL/da = sum_i( h3 )" in text and "dL/db = sum_i( h3*x )" in text
    assert r"\frac{\partial L}{\partial a} &= \sum_{i=1}^{n} h_{3}" in g.latex()
    for p, sym in zip(model.param_names, model.real_params):
        assert sp.expand(g.gradient(p) - sp.diff(model.loss, sym)) == 0


def test_hinge_reverse_and_symbolic_agree_with_the_interpreter(models):
    model = models["hinge_two_layer"]
    rng = np.random.default_rng(7)
    point = dict(zip((*model.param_names, *model.input_names),
                     rng.standard_normal(len(model.params) + len(model.inputs)).tolist()))
    # One sample: the interpreter's total gradient is sample part + penalty part.
    data = {k: np.array([point[k]]) for k in model.input_names}
    _, expected = loss_and_grad(derive(model), {p: point[p] for p in model.param_names},
                                data)
    symbols = {s: sp.Float(point[s.name]) for s in (*model.real_params, *model.real_inputs)}
    reverse, symbolic = symgrad.grad(model), symgrad.grad(model, method="symbolic")
    assert len(reverse.definitions) > 0 and len(symbolic.definitions) == 0
    for p in model.param_names:
        for g in (reverse, symbolic):
            value = float(g.gradient(p).xreplace(symbols).evalf())
            assert value == pytest.approx(expected[p], rel=1e-12, abs=1e-12)


def test_unknown_method_is_an_option_error(models):
    with pytest.raises(OptionError, match="method must be one of"):
        symgrad.grad(models["lecture_graph"], method="forward")


def _args_for(op):
    a, b = param("a"), param("b")
    if op in (Op.AND, Op.OR):
        return (node(Op.GT, a, b), node(Op.LT, a, b))
    if op is Op.NOT:
        return (node(Op.GT, a, b),)
    if op is Op.WHERE:
        return (node(Op.GT, a, b), a, b)
    return (a, b)[: 2 if ir.ARITY[op] == 2 else 1]


SCALAR_OPS = [op for op in Op if op not in LEAVES | getattr(ir, "STRUCTURAL", frozenset())]


@pytest.mark.parametrize("op", SCALAR_OPS, ids=lambda op: op.name)
def test_every_op_converts_to_sympy_with_the_same_value(op):
    args = _args_for(op)
    n = node(op, *args, attr={Op.HEAVISIDE: 0.5, Op.POLYGAMMA: 1}.get(op))
    a, b = sp.symbols("a b", real=True)
    (expr,) = to_sympy([n], {"a": a, "b": b})
    values = {"a": 1.7 if op is Op.ACOSH else 0.7, "b": 0.3}      # acosh needs a >= 1
    got = expr.xreplace({a: sp.Float(values["a"]), b: sp.Float(0.3)})
    got = got.replace(fn.softplus, lambda t: sp.log(1 + sp.exp(t)))
    arg_values = [float(apply(m.op, [values[x.attr] for x in m.args]))
                  if m.op not in LEAVES else values[m.attr] for m in args]
    want = apply(op, arg_values, n.attr)
    if n.is_bool:
        assert bool(got) == bool(want)
    else:
        assert float(sp.N(got)) == pytest.approx(float(want), rel=1e-12)


def test_deep_graph_converts_without_recursion_and_bounded_nesting():
    x = param("x")
    n = x
    for i in range(3000):
        n = make(Op.SIN, n) if i % 2 else n * x
    (g,) = reverse_mode(n, [x])
    definitions, (expr,) = with_definitions([g], {}, set())
    assert definitions and isinstance(expr, sp.Expr)
    text = "\n".join(sp.sstr(body) for _, body in definitions)   # printable: no deep trees
    assert text.count("sin(") > 100
    deepest = max(_depth(body) for _, body in definitions)
    assert deepest <= 3 * MAX_INLINE_DEPTH


def test_selection_converts_to_piecewise():
    a, b = param("a"), param("b")
    (expr,) = to_sympy([where(node(Op.GT, a, b), a, b)], {})
    assert isinstance(expr, sp.Piecewise)


def _depth(expr) -> int:
    stack, deepest = [(expr, 1)], 0
    while stack:
        e, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((arg, d + 1) for arg in e.args)
    return deepest


def test_matrix_model_formulas_use_matmul_and_transpose():
    n = sp.Symbol("n", integer=True, positive=True)
    X, Y = sp.MatrixSymbol("X", n, 4), sp.MatrixSymbol("Y", n, 1)
    W, V = sp.MatrixSymbol("W", 4, 3), sp.MatrixSymbol("V", 3, 1)
    residual = (X * W).applyfunc(sp.tanh) * V - Y
    loss = sp.OneMatrix(1, n) * sp.hadamard_product(residual, residual) * sp.OneMatrix(1, 1)
    model = symgrad.Model(loss=loss, params=[W, V], inputs=[X, Y])
    g = symgrad.grad(model)
    # By hand: H = tanh(X W), R = H V - Y; dL/dV = H^T (2R), dL/dW = X^T ((2R V^T) * (1 - H^2)).
    assert [sp.sstr(b) for _, b in g.definitions] == ["tanh(matmul(X, W))",
                                                      "2*(-Y + matmul(h1, V))"]
    assert sp.sstr(g.sample["V"]) == "matmul(transpose(h1), h2)"
    assert sp.sstr(g.sample["W"]) == "matmul(transpose(X), (1 - h1**2)*matmul(h2, transpose(V)))"
    assert r"h_{1}^{T}" in g.latex()
    # The loss line reads as math in the same notation, not SymPy's Lambda(_d, ...).(...)
    assert g.text().splitlines()[1] == "L = sum((-Y + matmul(tanh(matmul(X, W)), V))**2)"
    steps = g.steps().text()
    assert "dL/dV = matmul(transpose(v2), dL/dv3)" in steps
    with pytest.raises(OptionError, match="scalar models only"):
        g.steps({"W": 1.0})
    with pytest.raises(OptionError, match="does not support matrix models"):
        symgrad.grad(model, method="symbolic")


def test_structural_ops_convert_to_named_functions():
    a, b = param("A", (2, 3)), param("B", (3, 2))
    product = ir.matmul(a, b)
    nodes = [product, ir.transpose(a), ir.sum_(product), ir.sum_(product, 1),
             node(Op.LOGSUMEXP, product, attr=1), ir.broadcast_to(param("c"), (2, 2))]
    assert [sp.sstr(e) for e in to_sympy(nodes, {})] == [
        "matmul(A, B)", "transpose(A)", "sum(matmul(A, B))", "sum(matmul(A, B), 1)",
        "logsumexp(matmul(A, B), 1)", "c"]
    assert sp.latex(to_sympy([ir.transpose(a)], {})[0]) == "A^{T}"
