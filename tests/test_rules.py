"""Every VJP rule against sympy.diff and against central differences.

One case per op (like JAX's LAX_GRAD_OPS): a tiny model written with the SymPy
construct that lowers to that op, differentiated by both methods, evaluated
by the interpreter at random points, and compared with `sympy.diff` evaluated
at 30 digits (rtol 1e-10) and with central differences of the loss. The kink
conventions are tested separately, at the kinks themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import oracle
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

import symgrad
from codegen import special_math
from codegen.printer import SPECIAL_CALLS, ExprPrinter
from symgrad import ir
from symgrad.derivation import METHODS, derive
from symgrad.interpret import loss_and_grad
from symgrad.ir import LEAVES, Op
from symgrad.rules import VJP

A, B = sp.symbols("a b", real=True)
X = sp.Symbol("x", real=True)
RTOL = 1e-10
POINTS_PER_CASE = 3
SCALAR_OPS = [op for op in Op if op not in LEAVES and op not in ir.STRUCTURAL]
FRONTEND_OPS = [op for op in SCALAR_OPS if op not in ir.BACKWARD_ONLY]


@dataclass(frozen=True)
class Case:
    """A loss of params a, b that lowers to `op`; points are drawn in [lo, hi]^2."""

    op: Op
    loss: sp.Expr
    lo: float = -2.0
    hi: float = 2.0
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or self.op.name


CASES = [
    Case(Op.ADD, sp.sin(A) + A * B),
    Case(Op.SUB, A**2 - sp.sin(A * B)),
    Case(Op.MUL, A * sp.exp(B)),
    Case(Op.DIV, sp.sin(A) / B, 0.5, 2.0),
    Case(Op.NEG, -sp.sin(A * B)),
    Case(Op.POW, sp.sin(A) ** 3, name="POW_integer"),
    Case(Op.POW, A ** sp.Rational(1, 3) * B, 0.2, 2.0, name="POW_rational"),
    Case(Op.POW, A**B, 0.2, 2.0, name="POW_variable_exponent"),
    Case(Op.EXP, sp.exp(A * B)),
    Case(Op.EXPM1, expm1(A * B)),
    Case(Op.LOG, sp.log(A * B), 0.2, 2.0),
    Case(Op.LOG1P, log1p(A * B), -0.5, 0.9),
    Case(Op.SQRT, sp.sqrt(A * B), 0.2, 2.0),
    Case(Op.SIN, sp.sin(A * B)),
    Case(Op.COS, sp.cos(A * B)),
    Case(Op.TAN, sp.tan(A * B), -1.0, 1.0),
    Case(Op.TANH, sp.tanh(A * B)),
    Case(Op.ASIN, sp.asin(A * B / 4)),
    Case(Op.ACOS, sp.acos(A * B / 4)),
    Case(Op.ATAN, sp.atan(A * B)),
    Case(Op.SINH, sp.sinh(A * B)),
    Case(Op.COSH, sp.cosh(A * B)),
    Case(Op.ASINH, sp.asinh(A * B)),
    Case(Op.ACOSH, sp.acosh(1 + A**2 + B**2)),
    Case(Op.ATANH, sp.atanh(A * B / 4)),
    Case(Op.ERF, sp.erf(A * B)),
    Case(Op.ERFC, sp.erfc(A * B)),
    Case(Op.GAMMA, sp.gamma(A * B + 1), -0.9, 0.9),
    Case(Op.GAMMA, sp.gamma(A * B - 1.5), -0.4, 0.4, name="GAMMA_negative"),
    Case(Op.LGAMMA, sp.loggamma(A**2 + B), 0.2, 2.0),
    Case(Op.POLYGAMMA, sp.digamma(A * B + 0.5), 0.2, 2.0, name="POLYGAMMA_digamma"),
    Case(Op.POLYGAMMA, sp.polygamma(1, A * B + 0.5), 0.2, 2.0, name="POLYGAMMA_trigamma"),
    Case(Op.POLYGAMMA, sp.polygamma(0, A * B - 2.5), -0.4, 0.4, name="POLYGAMMA_negative"),
    Case(Op.FLOOR, sp.floor(3 * A) * B),
    Case(Op.CEIL, sp.ceiling(3 * A) * B),
    Case(Op.ATAN2, sp.atan2(A, B)),
    Case(Op.MOD, sp.Mod(A, B) * A, 0.3, 2.0),
    Case(Op.MOD, sp.Mod(3 * A, 1.25) * B, name="MOD_constant_divisor"),
    Case(Op.ABS, sp.Abs(A - B) * B),
    Case(Op.SIGN, sp.sign(A - B) * B),
    Case(Op.SIGMOID, symgrad.sigmoid(A * B)),
    Case(Op.RELU, symgrad.relu(A - B) * B),
    Case(Op.SOFTPLUS, symgrad.softplus(A * B)),
    Case(Op.HEAVISIDE, sp.Heaviside(A - B) * A**2),
    Case(Op.MAX, sp.Max(A, B**2)),
    Case(Op.MAX, sp.Max(0, A) * B, name="MAX_with_zero"),
    Case(Op.MIN, sp.Min(A, B**2)),
    Case(Op.WHERE, sp.Piecewise((A * B, A > 0), (sp.sin(B), True))),
    Case(Op.LT, sp.Piecewise((A * B, A < B), (A + B**2, True))),
    Case(Op.LE, sp.Piecewise((A * B, A <= B), (A + B**2, True))),
    Case(Op.GT, sp.Piecewise((A * B, A > B), (A + B**2, True))),
    Case(Op.GE, sp.Piecewise((A * B, A >= B), (A + B**2, True))),
    Case(Op.EQ, sp.Piecewise((A**2, sp.Eq(A, B)), (A * B, True))),
    Case(Op.NE, sp.Piecewise((A**2, sp.Ne(A, B)), (A * B, True))),
    Case(Op.AND, sp.Piecewise((A * B, sp.And(A > 0, B > 0)), (A - B, True))),
    Case(Op.OR, sp.Piecewise((A * B, sp.Or(A > 1, B > 1)), (A - B, True))),
    Case(Op.NOT, sp.Piecewise((A * B, sp.Not(sp.And(A > 1, B > 1))), (A - B, True))),
]


def model_of(case: Case) -> symgrad.Model:
    return symgrad.Model(case.loss, [A, B])


def points(case: Case, seed: int = 0) -> list[dict[str, float]]:
    """Random points in the case's box, each at least 1e-3 from any kink or tie."""
    rng = np.random.default_rng(seed)
    found: list[dict[str, float]] = []
    while len(found) < POINTS_PER_CASE:
        a, b = rng.uniform(case.lo, case.hi, 2)
        if oracle.distance_to_kinks(case.loss, [{A: a, B: b}]) > 1e-3:
            found.append({"a": float(a), "b": float(b)})
    return found


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_lowers_to_its_op(case):
    ops = {n.op for n in ir.toposort([derive(model_of(case)).sample_loss])}
    assert case.op in ops, f"{case.loss} lowered to {sorted(o.name for o in ops)}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_matches_sympy_diff(case, method):
    model = model_of(case)
    derivation = derive(model, method)
    for point in points(case):
        want = oracle.loss_and_grad(model.loss, model.real_params, (), point)
        got = loss_and_grad(derivation, point)
        oracle.assert_grads_close(got, want, RTOL, 1e-13, f"{case.id} {method} at {point}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule_matches_central_differences(case, method):
    derivation = derive(model_of(case), method)
    for point in points(case, seed=1):
        _, grads = loss_and_grad(derivation, point)
        numeric = oracle.central_differences(lambda p: loss_and_grad(derivation, p)[0], point)
        for name in point:
            oracle.assert_close(grads[name], numeric[name], 1e-6, 1e-8,
                                f"{case.id} {method} d/d{name} at {point}")


# ---------------------------------------------------------- exhaustiveness

def test_every_op_has_a_vjp_rule_or_is_a_leaf():
    missing = [op.name for op in Op if op not in LEAVES and op not in VJP]
    assert not missing, f"ops without a VJP rule: {missing}"
    assert not (set(VJP) & LEAVES), "leaves need no rule"


def test_every_scalar_op_has_a_gradient_case():
    covered = {case.op for case in CASES}
    assert [op.name for op in FRONTEND_OPS if op not in covered] == []


@pytest.mark.parametrize("op", sorted(ir.BACKWARD_ONLY, key=lambda op: op.name))
def test_backward_only_ops_have_correct_vjp_rules(op):
    """Ops that only VJP rules make (no SymPy form): their own rule against central
    differences of SEMANTICS, at random points."""
    from symgrad.reverse import reverse_mode
    rng = np.random.default_rng(5)
    args = [ir.param(f"a{i}") for i in range(ir.ARITY[op])]
    out = ir.make(op, *args)
    grads = reverse_mode(out, args)
    for _ in range(5):
        point = {a.attr: float(v) for a, v in zip(args, rng.uniform(-1.5, 1.5, len(args)))}
        values = symgrad.interpret.evaluate([g for g in grads if g is not None], point)
        for a, g in zip(args, grads):
            h = 1e-6
            up = float(ir.apply(op, [point[b.attr] + (h if b is a else 0.0) for b in args]))
            down = float(ir.apply(op, [point[b.attr] - (h if b is a else 0.0) for b in args]))
            assert np.isclose(float(values[g][0]), (up - down) / (2 * h), rtol=1e-7, atol=1e-9)


def _printer_values(op: Op) -> list[tuple]:
    """Argument tuples for op: each kind of operand, with zeros and signs."""
    floats = [-1.5, -0.0, 0.0, 0.7, 2.0]
    if op is Op.WHERE:
        return [(c, 1.25, -3.5) for c in (True, False)]
    if op in ir.LOGICAL:
        bools = (True, False)
        return [(p,) for p in bools] if op is Op.NOT else [(p, q) for p in bools for q in bools]
    if ir.ARITY[op] == 1:
        return [(v,) for v in floats]
    return [(u, v) for u in floats for v in floats if not (op is Op.DIV and v == 0.0)]


@pytest.mark.parametrize("op", SCALAR_OPS, ids=lambda op: op.name)
def test_cpu_printer_prints_every_scalar_op_with_ir_semantics(op):
    """The printed expression, run as Python on float64 scalars, agrees with SEMANTICS."""
    attr = {Op.HEAVISIDE: 0.5, Op.POLYGAMMA: 1}.get(op)
    names = ("u", "v", "w")[:ir.ARITY[op]]
    text = ExprPrinter().expr(op, names, attr)
    special = {name: getattr(special_math, name) for name in SPECIAL_CALLS.values()}
    for values in _printer_values(op):
        scope = {"np": np, **special, **{k: (v if isinstance(v, bool) else np.float64(v))
                                         for k, v in zip(names, values)}}
        with np.errstate(all="ignore"):
            got = eval(text, scope)
        want = ir.apply(op, [np.asarray(v) for v in values], attr)
        # libm's gamma and lgamma (compiled) and CPython's (the reference) differ in the
        # last bits; everything else is the same function
        rtol = 1e-14 if op in SPECIAL_CALLS else 0.0
        assert np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float),
                           rtol=rtol, atol=0.0, equal_nan=True), \
            f"{text} at {values}: {got} vs {want}"


def test_cpu_printer_prints_constant_integer_exponents_as_integers():
    # Numba turns small integer powers into multiplications; the value must not change.
    text = ExprPrinter().expr(Op.POW, ("u", 3.0))
    assert text == "u ** 3"
    assert eval(text, {"u": np.float64(-1.5)}) == (-1.5) ** 3


@pytest.mark.parametrize("op", sorted(ir.STRUCTURAL, key=lambda op: op.name),
                         ids=lambda op: op.name)
def test_cpu_scalar_printer_refuses_matrix_ops_by_name(op):
    """Matrix ops are printed by the tensor backend; the scalar printer must not guess."""
    with pytest.raises(NotImplementedError, match=op.name):
        ExprPrinter().expr(op, ("u", "v")[:ir.ARITY[op]], None)


# ------------------------------------------------------------- kink conventions

R = sp.Symbol("r", real=True)
KINKS = [
    # (name, loss of r and b, point, expected gradient): the conventions of rules.py
    ("relu'(0) = 0", symgrad.relu(R) * B, {"r": 0.0, "b": 1.5}, {"r": 0.0, "b": 0.0}),
    ("Max(0, r)'(0) = 1/2", sp.Max(0, R) * B, {"r": 0.0, "b": 1.5}, {"r": 0.75, "b": 0.0}),
    ("Max tie splits evenly", sp.Max(R, B), {"r": 0.5, "b": 0.5}, {"r": 0.5, "b": 0.5}),
    ("Min tie splits evenly", sp.Min(R, B), {"r": 0.5, "b": 0.5}, {"r": 0.5, "b": 0.5}),
    ("Abs'(0) = 0", sp.Abs(R) * B, {"r": 0.0, "b": 1.5}, {"r": 0.0, "b": 0.0}),
]


def generated_loss_and_grad(kernel, params, data=None):
    """The kernel's serial core run as plain Python (no Numba compile)."""
    p = np.array([params[name] for name in kernel.params])
    columns = [np.ascontiguousarray(data[name], dtype=np.float64) for name in kernel.inputs]
    out = np.empty(1 + len(kernel.params))
    kernel.module._loss_and_grad_core.py_func(p, *columns, out)
    return float(out[0]), dict(zip(kernel.params, out[1:].tolist()))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name, loss, point, expected", KINKS, ids=[k[0] for k in KINKS])
def test_kink_convention(name, loss, point, expected, method):
    model = symgrad.Model(loss, [R, B])
    _, grads = loss_and_grad(derive(model, method), point)
    assert grads == expected
    _, grads = generated_loss_and_grad(symgrad.compile(model, method), point)
    assert grads == expected


# ----------------------------------------------------------- lecture values

LX, LY, LZ = sp.symbols("x y z", real=True)


@pytest.mark.parametrize("method", METHODS)
def test_lecture_graph_values_compiled(method):
    """q = x + y, f = q z at (-2, 5, -4): f = -12, df/dx = df/dy = z = -4, df/dz = q = 3."""
    model = symgrad.Model((LX + LY) * LZ, [LX, LY, LZ])
    f, grads = symgrad.compile(model, method).loss_and_grad({"x": -2.0, "y": 5.0, "z": -4.0})
    assert f == -12.0
    assert grads == {"x": -4.0, "y": -4.0, "z": 3.0}


@pytest.mark.parametrize("method", METHODS)
def test_chain_rule_values(method):
    """f(u) = u^2 + 2u, g(x) = 3x + 1: d/dx f(g(x)) = (2 g + 2) 3 = 18x + 12."""
    g = 3 * LX + 1
    model = symgrad.Model(g**2 + 2 * g, [LX])
    derivation = derive(model, method)
    kernel = symgrad.compile(model, method)
    for x in (-2.0, -0.5, 0.0, 0.25, 3.0, 10.0):
        want = 18 * x + 12
        for got in (loss_and_grad(derivation, {"x": x}),
                    generated_loss_and_grad(kernel, {"x": x})):
            assert got[1]["x"] == pytest.approx(want, rel=1e-14, abs=1e-14)
            assert got[0] == pytest.approx((3 * x + 1) ** 2 + 2 * (3 * x + 1), rel=1e-14)
