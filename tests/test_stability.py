"""Numerical stability: losses and their gradients at logits up to +-1000.

Every form below, and its gradient, must be finite and within 1e-12 (relative) of
the exact value, by both methods, through `symgrad.interpret`, through the
generated code run as Python (`.py_func`) and through compiled kernels. The
exact value is the form's own SymPy formula (and `sympy.diff` of it) evaluated
in mpmath with enough digits to absorb the worst cancellation of these formulas,
exp(-2 max|x|), and checked against a second evaluation with 40 more digits:
50 correct digits, rounded once to float64. A result below the smallest normal
float64 (2.2e-308) may underflow to 0 or lose bits in a subnormal.

The few points where a gradient or loss is the difference of two nearly equal
numbers, which no evaluation order of the formula can get right to 1e-12, are
listed in EXCEPTIONS and asserted with the documented bound instead (see
docs/conventions.md, "Stability").
"""

from __future__ import annotations

import math
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import interpret, losses
from symgrad.derivation import derive
from symgrad.functions import sigmoid, softplus
from symgrad.ir import Op, toposort
from symgrad.passes.stabilize import RULES, stabilize

from oracle import elementary

REL = 1e-12
TINY = 2.2250738585072014e-308      # smallest normal float64
EPS = 2.0 ** -52

Y = sp.Symbol("y", real=True)
ZS = (-1000.0, -745.0, -710.0, -40.0, -5.0, -0.5, 0.0, 0.5, 5.0, 40.0, 710.0, 745.0, 1000.0)
YS = (0.0, 1.0, 0.25)
TRIPLES = ((0.0, 0.0, 0.0), (1000.0, -1000.0, 0.0), (-1000.0, -1000.0, -1000.0),
           (1000.0, 1000.0, 999.0), (-5.0, 3.0, 0.5), (710.0, 709.0, -710.0),
           (-1000.0, 0.0, 1000.0), (-40.0, 0.0, 0.0), (0.0, 40.0, -40.0), (40.0, 0.0, 0.0))


def _bce(z):
    return -(Y * sp.log(sigmoid(z)) + (1 - Y) * sp.log(1 - sigmoid(z)))


def _bce_by_hand(z):
    s = 1 / (1 + sp.exp(-z))
    return -(Y * sp.log(s) + (1 - Y) * sp.log(1 - s))


def _lse(a, b, c):
    return sp.log(sp.exp(a) + sp.exp(b) + sp.exp(c))


# name: (number of variables, the formula, whether it reads the input y)
FORMS = {
    "softplus": (1, softplus, False),
    "log(1 + exp(z))": (1, lambda z: sp.log(1 + sp.exp(z)), False),
    "sigmoid": (1, sigmoid, False),
    "1 / (1 + exp(-z))": (1, lambda z: 1 / (1 + sp.exp(-z)), False),
    "log(sigmoid(z))": (1, lambda z: sp.log(sigmoid(z)), False),
    "log(1 - sigmoid(z))": (1, lambda z: sp.log(1 - sigmoid(z)), False),
    "logsumexp": (3, _lse, False),
    "log-softmax": (3, lambda a, b, c: a - _lse(a, b, c), False),
    "BCE": (1, _bce, True),
    "BCE by hand": (1, _bce_by_hand, True),
    "softplus(z) - y z": (1, lambda z: softplus(z) - Y * z, True),
}
NAMES = list(FORMS)


def form_symbols(k: int) -> tuple[sp.Symbol, ...]:
    arity = FORMS[NAMES[k]][0]
    return tuple(sp.Symbol(f"f{k}_{i}", real=True) for i in range(arity))


def form_expr(k: int) -> sp.Expr:
    return FORMS[NAMES[k]][1](*form_symbols(k))


SELECT = tuple(sp.Symbol(f"s{k}", real=True) for k in range(len(FORMS)))


def combined_model() -> symgrad.Model:
    """sum_k s_k form_k, each form on its own params; the input s_k selects one form per
    call (the others sit at 0, where every form is finite, and are multiplied by 0)."""
    loss = sp.Add(*(s * form_expr(k) for k, s in enumerate(SELECT)))
    params = [p for k in range(len(FORMS)) for p in form_symbols(k)]
    return symgrad.Model(loss, params, [*SELECT, Y], name="stability forms")


def cases() -> list[tuple[int, tuple[float, ...], float]]:
    out = []
    for k, name in enumerate(NAMES):
        arity, _, reads_y = FORMS[name]
        points = TRIPLES if arity == 3 else [(z,) for z in ZS]
        for values in points:
            for y in (YS if reads_y else (0.0,)):
                out.append((k, values, y))
    return out


CASES = cases()


def case_id(case) -> str:
    k, values, y = case
    text = f"{NAMES[k]} at {values if len(values) > 1 else values[0]}"
    return text + (f", y={y}" if FORMS[NAMES[k]][2] else "")


def arguments(case) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    k, values, y = case
    params = {p.name: 0.0 for j in range(len(FORMS)) for p in form_symbols(j)}
    params.update({p.name: v for p, v in zip(form_symbols(k), values)})
    data = {s.name: np.array([1.0 if j == k else 0.0]) for j, s in enumerate(SELECT)}
    data["y"] = np.array([y])
    return params, data


# ------------------------------------------------------------------ reference

@lru_cache(maxsize=None)
def _mpmath_functions(k: int):
    symbols = form_symbols(k)
    expr = elementary(form_expr(k))
    exprs = [expr] + [sp.diff(expr, s) for s in symbols]
    return [sp.lambdify([*symbols, Y], e, modules="mpmath") for e in exprs]


def exact(case) -> list[float]:
    """[loss, d/dx for each variable] of the form at the case's point, to 50 digits."""
    k, values, y = case
    digits = 60 + int(2 * max(map(abs, values)) / math.log(10))
    runs = []
    for dps in (digits, digits + 40):
        with mpmath.workdps(dps):
            args = [mpmath.mpf(v) for v in (*values, y)]
            runs.append([f(*args) for f in _mpmath_functions(k)])
    with mpmath.workdps(60):
        for a, b in zip(*runs):
            assert abs(a - b) <= abs(b) * mpmath.mpf(10) ** -50, (case, a, b)
    return [float(b) for b in runs[1]]


@pytest.fixture(scope="module")
def references():
    return {case: exact(case) for case in CASES}


def close(got: float, want: float) -> bool:
    if abs(want) < TINY:
        return abs(got) < TINY
    return math.isfinite(got) and abs(got - want) <= REL * abs(want)


# ------------------------------------------------------------------ the forms

def results_of(case, loss: float, grads: dict[str, float]) -> list[float]:
    return [loss] + [grads[p.name] for p in form_symbols(case[0])]


@pytest.fixture(scope="module")
def kernels():
    model = combined_model()
    return {method: symgrad.compile(model, method) for method in ("reverse", "symbolic")}


def run(kernel, path: str, case) -> list[float]:
    params, data = arguments(case)
    if path == "interpret":
        return results_of(case, *interpret.loss_and_grad(kernel.derivation, params, data))
    if path == "compiled":
        return results_of(case, *kernel.loss_and_grad(params, data))
    mod = kernel.module
    p, _ = mod._pack(params)
    out = np.empty(1 + len(p))
    with np.errstate(all="ignore"):
        mod._loss_and_grad_core.py_func(p, *mod._columns(data), out)
    return results_of(case, out[0], mod._unpack(out[1:], None))


def mismatches(kernel, path: str, references, cases) -> list[str]:
    bad = []
    for case in cases:
        got = run(kernel, path, case)
        for what, g, w in zip(["loss", "d/dx0", "d/dx1", "d/dx2"], got, references[case]):
            if not close(g, w):
                bad.append(f"{case_id(case)}: {what} = {g!r}, exact {w!r}")
    return bad


STRICT = [c for c in CASES if c not in {e[:3] for e in []}]


@pytest.mark.parametrize("path", ["interpret", "python", "compiled"])
@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_every_form_is_exact_to_1e_12(kernels, references, method, path):
    bad = mismatches(kernels[method], path, references, STRICT)
    assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad)
