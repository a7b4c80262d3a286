"""The front end: each supported SymPy construct lowers to its op with SymPy's
values; unsupported functions and undeclared symbols are reported by name."""

from __future__ import annotations

import numpy as np
import oracle
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

import symgrad
from symgrad.derivation import derive
from symgrad.frontend import free_symbols
from symgrad.interpret import evaluate_outputs, loss_and_grad
from symgrad.ir import Op, const, input_, make, node, param

A, B = sp.symbols("a b", real=True)
X = sp.Symbol("x", real=True)

# (SymPy construct, the op at the root of its lowering, box for a and b)
SUPPORTED = [
    (A + B, Op.ADD, (-2, 2)),
    (A - B, Op.SUB, (-2, 2)),
    (A * B, Op.MUL, (-2, 2)),
    (A / B, Op.DIV, (0.5, 2)),
    (-A, Op.NEG, (-2, 2)),
    (A**3, Op.POW, (-2, 2)),
    (A**-2, Op.DIV, (0.5, 2)),
    (A**B, Op.POW, (0.5, 2)),
    (A ** sp.Rational(2, 3), Op.POW, (0.5, 2)),
    (sp.sqrt(A), Op.SQRT, (0.5, 2)),
    (1 / sp.sqrt(A), Op.DIV, (0.5, 2)),
    (sp.exp(A), Op.EXP, (-2, 2)),
    (sp.E**A, Op.EXP, (-2, 2)),
    (expm1(A), Op.EXPM1, (-2, 2)),
    (sp.log(A), Op.LOG, (0.5, 2)),
    (log1p(A), Op.LOG1P, (-0.5, 2)),
    (sp.sin(A), Op.SIN, (-2, 2)),
    (sp.cos(A), Op.COS, (-2, 2)),
    (sp.tan(A), Op.TAN, (-1, 1)),
    (sp.tanh(A), Op.TANH, (-2, 2)),
    (sp.Abs(A), Op.ABS, (-2, 2)),
    (sp.sign(A), Op.SIGN, (-2, 2)),
    (symgrad.sigmoid(A), Op.SIGMOID, (-2, 2)),
    (symgrad.relu(A), Op.RELU, (-2, 2)),
    (symgrad.softplus(A), Op.SOFTPLUS, (-2, 2)),
    (sp.Heaviside(A), Op.HEAVISIDE, (-2, 2)),
    (sp.Heaviside(A, 0), Op.HEAVISIDE, (-2, 2)),
    (sp.Max(A, B), Op.MAX, (-2, 2)),
    (sp.Max(A, B, 1), Op.MAX, (-2, 2)),
    (sp.Min(A, B), Op.MIN, (-2, 2)),
    (sp.pi * A + sp.Rational(1, 3), Op.ADD, (-2, 2)),
    (sp.Piecewise((A, B > 0), (B, True)), Op.WHERE, (-2, 2)),
    (sp.Piecewise((A, B < 0), (B**2, B <= 1), (A * B, True)), Op.WHERE, (-2, 2)),
    (sp.Piecewise((A, sp.And(A > 0, B >= 0)), (B, True)), Op.WHERE, (-2, 2)),
    (sp.Piecewise((A, sp.Or(A > 0, sp.Eq(B, 1))), (B, True)), Op.WHERE, (-2, 2)),
    (sp.Piecewise((A, sp.Not(sp.And(A > 0, sp.Ne(B, 1)))), (B, True)), Op.WHERE, (-2, 2)),
    # SymPy folds these nested conditions into ITE(c, t, f), some with a False branch.
    (sp.Piecewise((A, sp.Piecewise((A > 1, B > 0), (B < -1, True))), (B, True)), Op.WHERE,
     (-2, 2)),
    (sp.Piecewise((B, sp.ITE(A > 0, B > 0, sp.false)), (A, True)), Op.WHERE, (-2, 2)),
]


@pytest.mark.parametrize("expr, op, box", SUPPORTED, ids=[str(s[0]) for s in SUPPORTED])
def test_supported_construct_lowers_with_sympy_values(expr, op, box):
    model = symgrad.Model(expr, [A, B])
    out = model.forward[0]
    assert out.op is op
    rng = np.random.default_rng(0)
    for a, b in rng.uniform(*box, size=(4, 2)):
        [got] = evaluate_outputs([out], {"a": a, "b": b})
        want = oracle.value(expr, {A: a, B: b})
        assert got[0] == pytest.approx(want, rel=1e-14, abs=1e-15), (a, b)


def test_lowering_builds_the_expected_nodes():
    a, b, x = param("a"), param("b"), input_("x")

    def lower(expr):
        return symgrad.Model(expr, [A, B], [X]).forward[0]

    assert lower(sp.exp(A * X)) is make(Op.EXP, make(Op.MUL, a, x))
    assert lower(A - B) is make(Op.SUB, a, b)
    assert lower(A / (B * X)) is make(Op.DIV, a, make(Op.MUL, b, x))
    assert lower(A**3) is make(Op.POW, a, const(3.0))
    assert lower(sp.Heaviside(A, 0)) is make(Op.HEAVISIDE, a, attr=0.0)
    assert lower(sp.Max(0, A)) is make(Op.MAX, const(0.0), a)
    assert lower(sp.Piecewise((A, X > 0), (B, True))) is \
        node(Op.WHERE, node(Op.GT, x, const(0.0)), a, b)


def test_piecewise_without_default_is_nan_where_no_condition_holds():
    model = symgrad.Model(sp.Piecewise((A, X > 0)), [A], [X])
    [values] = evaluate_outputs([model.forward[0]], {"a": 2.0}, {"x": np.array([1.0, -1.0])})
    assert values[0] == 2.0 and np.isnan(values[1])


def test_non_real_symbols_are_differentiated_as_real():
    """sympy.diff(Abs(a)) is sign(a) only for real a; the model makes its symbols real."""
    plain = sp.Symbol("a")
    model = symgrad.Model(sp.Abs(plain) + plain * sp.Symbol("x"), [plain], [sp.Symbol("x")])
    for method in ("reverse", "symbolic"):
        _, grads = loss_and_grad(derive(model, method), {"a": -1.5}, {"x": np.array([2.0])})
        assert grads == {"a": 1.0}


def test_deep_expression_over_non_real_symbols_lowers_without_recursion_error():
    a, x = sp.Symbol("a"), sp.Symbol("x")
    h = x
    for _ in range(1_700):   # 5,100 levels, five times Python's default recursion limit
        h = sp.Add(sp.Mul(sp.sin(h, evaluate=False), a, evaluate=False), x, evaluate=False)
    model = symgrad.Model(h, [a], [x])
    # (SymPy's own free_symbols would recurse too deep here.)
    assert free_symbols(model.loss) == {sp.Symbol("a", real=True), sp.Symbol("x", real=True)}
    assert derive(model).sizes()["forward_ops"] >= 3 * 1_700


# ------------------------------------------------------------------ errors

UNSUPPORTED = [
    (sp.besselj(0, A * X), "besselj"),
    (sp.zeta(A), "zeta"),
    (sp.LambertW(A), "LambertW"),
    (sp.Ei(A), "Ei"),
    (sp.Si(A), "Si"),
    (sp.airyai(A), "airyai"),
    (sp.Function("f")(A, X), "f"),
    (sp.uppergamma(A, X), "uppergamma"),
    (sp.Integral(A * B, (B, 0, 1)), "Integral"),
]


@pytest.mark.parametrize("bad, name", UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
def test_unsupported_function_is_named_with_its_subexpression(bad, name):
    loss = A + sp.sin(A * X) * bad                      # buried inside a supported expression
    with pytest.raises(symgrad.UnsupportedFunctionError) as caught:
        symgrad.Model(loss, [A], [X])
    assert caught.value.function == name
    assert caught.value.subexpression == sp.sstr(bad)
    assert name in str(caught.value) and sp.sstr(bad) in str(caught.value)


def test_complex_constant_is_unsupported():
    with pytest.raises(symgrad.UnsupportedFunctionError, match="ImaginaryUnit"):
        symgrad.Model(sp.I * A, [A])


@pytest.mark.parametrize("where", ["loss", "condition", "penalty"])
def test_undeclared_symbol_is_named(where):
    c = sp.Symbol("c", real=True)
    loss, penalty = A * X, None
    if where == "loss":
        loss = A * X + c
    elif where == "condition":
        loss = sp.Piecewise((A * X, c > 0), (A, True))
    else:
        penalty = A**2 * c
    with pytest.raises(symgrad.UndeclaredSymbolError) as caught:
        symgrad.Model(loss, [A], [X], penalty=penalty)
    assert caught.value.symbols == ["c"]
    assert "c" in str(caught.value)


def test_all_undeclared_symbols_are_named():
    with pytest.raises(symgrad.UndeclaredSymbolError) as caught:
        symgrad.Model(A * sp.Symbol("zeta") + sp.Symbol("beta"), [A])
    assert caught.value.symbols == ["beta", "zeta"]
