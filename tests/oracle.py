"""Reference values for the correctness tests: SymPy at high precision, finite differences.

The oracle never runs symgrad code: values come from `sympy.diff` of the loss,
evaluated with exact float inputs at 30 significant digits, or from central
differences of a loss function handed in by the test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import sympy as sp
import sympy.codegen.cfunctions as cf
import sympy.codegen.numpy_nodes as npn

import symgrad.interpret
from symgrad import functions as fn
from symgrad import ir

DIGITS = 30


def elementary(expr: sp.Expr) -> sp.Expr:
    """`expr` with symgrad's own functions written out, so SymPy can evaluate it.

    Repeated to a fixpoint: one `replace` pass can leave a nested application in place
    (the fuzz run found relu(relu(softplus(a))) written out only partly)."""
    ours = (fn.sigmoid, fn.softplus, fn.relu)
    while expr.has(*ours):
        expr = expr.replace(fn.sigmoid, lambda z: 1 / (1 + sp.exp(-z))) \
            .replace(fn.softplus, lambda z: sp.log(1 + sp.exp(z))) \
            .replace(fn.relu, lambda z: sp.Max(0, z))
    if expr.has(*_CODEGEN):
        for f, definition in _CODEGEN.items():
            expr = expr.replace(f, definition)
    if expr.has(sp.Derivative):
        expr = expr.replace(sp.Subs, _chain_rule).replace(sp.Derivative, _flat_derivative)
    return expr


# sympy.codegen's functions (which evalf does not evaluate) by their definitions.
_CODEGEN = {
    cf.Sqrt: sp.sqrt, cf.exp2: lambda x: 2**x, cf.log2: lambda x: sp.log(x) / sp.log(2),
    cf.log10: lambda x: sp.log(x) / sp.log(10), cf.hypot: lambda x, y: sp.sqrt(x**2 + y**2),
    cf.log1p: lambda x: sp.log(1 + x), cf.expm1: lambda x: sp.exp(x) - 1,
    npn.logaddexp: lambda x, y: sp.log(sp.exp(x) + sp.exp(y)),
    npn.logaddexp2: lambda x, y: sp.log(2**x + 2**y) / sp.log(2),
    npn.maximum: sp.Max, npn.minimum: sp.Min,
}


def _flat_derivative(f: sp.Expr, *variables) -> sp.Expr:
    """The derivatives sympy.diff leaves unevaluated: floor, ceiling (0 away from their
    jumps) and Mod(a, b) = a - b floor(a/b) (a' - floor(a/b) b' away from them), of any
    order and in any variables (the second-order tests differentiate twice)."""
    counts = [(v, 1) if not isinstance(v, sp.Tuple) else tuple(v) for v in variables]
    if isinstance(f, (sp.floor, sp.ceiling)):
        return sp.S.Zero
    if isinstance(f, sp.frac):
        return sp.diff(f.args[0], *counts)
    if isinstance(f, sp.Mod):
        a, b = f.args
        return sp.diff(a, *counts) - sp.floor(a / b) * sp.diff(b, *counts)
    derivative = sp.diff(f, *counts)        # a function SymPy knows once rewritten (Max)
    if not derivative.has(sp.Derivative):
        return derivative
    raise ValueError(f"the oracle cannot evaluate {sp.Derivative(f, *variables)}")


def _chain_rule(expr: sp.Expr, variables, point) -> sp.Expr:
    """Subs(Derivative(f(xi), xi), xi, u), sympy.diff's chain rule through such an f."""
    return _flat_derivative(*expr.args).xreplace(dict(zip(variables, point)))


def value(expr: sp.Expr, point: Mapping[sp.Symbol, float]) -> float:
    """`expr` at `point`, computed with DIGITS significant digits, rounded to float.

    The float inputs are taken exactly (a Python float is a binary fraction), so
    the only rounding is SymPy's, far below float64's.
    """
    return float(_exact_value(expr, point))


def loss_and_grad(loss: sp.Expr, params: Sequence[sp.Symbol], inputs: Sequence[sp.Symbol],
                  param_values: Mapping[str, float],
                  data: Mapping[str, Sequence[float]] | None = None,
                  reduction: str = "sum") -> tuple[float, dict[str, float]]:
    """The total loss and `sympy.diff` gradients over a batch, at high precision.

    The batch sums are accumulated in SymPy at `DIGITS` digits, then rounded once.
    """
    grads = {p: sp.diff(loss, p) for p in params}
    n = len(next(iter(data.values()))) if inputs else 1
    point: dict[sp.Symbol, float] = {p: param_values[p.name] for p in params}
    totals = {"loss": sp.S.Zero, **{p.name: sp.S.Zero for p in params}}
    for i in range(n):
        point.update({x: data[x.name][i] for x in inputs})
        totals["loss"] += sp.Float(_exact_value(loss, point), DIGITS)
        for p, g in grads.items():
            totals[p.name] += sp.Float(_exact_value(g, point), DIGITS)
    scale = 1 / sp.Integer(n) if reduction == "mean" else sp.S.One
    out = {k: float(v * scale) for k, v in totals.items()}
    return out.pop("loss"), out


def _exact_value(expr: sp.Expr, point: Mapping[sp.Symbol, float]) -> sp.Float:
    exact = {s: sp.Float(float(v), DIGITS + 10) for s, v in point.items()}
    result = elementary(expr).xreplace(exact)
    # A DiracDelta left by sympy.diff is 0 away from its kink; the tests avoid kinks.
    result = result.replace(sp.DiracDelta, lambda *args: sp.S.Zero).evalf(DIGITS)
    if not (result.is_Number and result.is_real):
        raise ValueError(f"no real value for {expr} at {dict(point)}: {result}")
    return result


def central_differences(loss: Callable[[dict[str, float]], float],
                        params: Mapping[str, float], h: float = 1e-6) -> dict[str, float]:
    """d loss / d p for each param p, by (loss(p + h) - loss(p - h)) / 2h."""
    grads = {}
    for name, v in params.items():
        step = h * max(1.0, abs(v))
        up = loss({**params, name: v + step})
        down = loss({**params, name: v - step})
        grads[name] = (up - down) / (2 * step)
    return grads


def kink_arguments(expr: sp.Expr) -> list[sp.Expr]:
    """Expressions whose zeros are kinks, ties or branch switches of `expr`.

    Near such a point the derivative jumps, so a float64 evaluation may pick
    the other side than the exact one; tests skip points close to them.
    """
    found = []
    for e in sp.preorder_traversal(expr):
        if isinstance(e, (sp.Abs, sp.sign, sp.Heaviside, fn.relu)):
            found.append(e.args[0])
        elif isinstance(e, (sp.floor, sp.ceiling, sp.frac)):     # jumps at integers
            found.append(sp.sin(sp.pi * e.args[0]))
        elif isinstance(e, sp.Mod):
            found.append(sp.sin(sp.pi * e.args[0] / e.args[1]))
        elif isinstance(e, sp.atan2):                     # the cut: y = 0, x < 0
            found.append(e.args[0])
        elif isinstance(e, (sp.Max, sp.Min)):
            args = list(e.args)
            found += [u - v for i, u in enumerate(args) for v in args[i + 1:]]
        elif isinstance(e, sp.Rel):
            found.append(e.lhs - e.rhs)
    return found


def distance_to_kinks(expr: sp.Expr, points: Sequence[Mapping[sp.Symbol, float]]) -> float:
    """The smallest |kink argument| of `expr` over the points (inf when it has none)."""
    kinks = kink_arguments(expr)
    if not kinks:
        return float("inf")
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    f = sp.lambdify(symbols, [elementary(k) for k in kinks], modules="numpy")
    smallest = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for point in points:
            values = np.asarray(f(*[np.float64(point[s]) for s in symbols]), dtype=float)
            smallest = min(smallest, float(np.min(np.abs(values))))
    return smallest


def assert_close(got: float, want: float, rtol: float, atol: float = 0.0, what: str = ""
                 ) -> None:
    """|got - want| <= atol + rtol |want|, with a message showing both."""
    assert np.isfinite(got), f"{what}: got {got!r}, want {want!r}"
    relative = abs(got - want) / max(abs(want), 1e-300)
    assert abs(got - want) <= atol + rtol * abs(want), \
        f"{what}: got {got!r}, want {want!r} (rel err {relative:.3g})"


def assert_grads_close(got: tuple[float, Mapping[str, float]],
                       want: tuple[float, Mapping[str, float]],
                       rtol: float, atol: float = 0.0, what: str = "") -> None:
    """Loss and every gradient of `got` match `want` (same param names)."""
    (got_loss, got_grads), (want_loss, want_grads) = got, want
    assert set(got_grads) == set(want_grads), f"{what}: params {got_grads} vs {want_grads}"
    assert_close(got_loss, want_loss, rtol, atol, f"{what} loss")
    for name in want_grads:
        assert_close(got_grads[name], want_grads[name], rtol, atol, f"{what} d/d{name}")


FLOATING_POINT_ERRORS = {"divide": "raise", "invalid": "raise", "over": "raise", "under": "ignore"}


def _strict_apply(op, values, attr=None):
    with np.errstate(**FLOATING_POINT_ERRORS):
        if op in ir.ATTR_OPS:
            return ir.SEMANTICS[op](*values, attr)
        return ir.SEMANTICS[op](*values)


@contextmanager
def strict_floating_point() -> Iterator[None]:
    """Make every NaN- or inf-producing NumPy operation raise, and every warning an error.

    Covers generated code run as Python (NumPy scalars) and the interpreter,
    whose `ir.apply` silences NumPy on purpose (IEEE results), so it is swapped
    for a strict one here. A correct model on a safe domain never trips it; an
    untaken branch evaluated out of its domain (log(0), 0/0) does.
    """
    original = symgrad.interpret.apply
    symgrad.interpret.apply = _strict_apply
    try:
        with warnings.catch_warnings(), np.errstate(**FLOATING_POINT_ERRORS):
            warnings.simplefilter("error")
            yield
    finally:
        symgrad.interpret.apply = original


def hessian_of(loss: sp.Expr, params: Sequence[sp.Symbol]) -> sp.Matrix:
    """sympy.hessian, with the unevaluated derivatives of the first differentiation
    written out first (SymPy recurses forever differentiating Subs(Derivative(Mod)))."""
    grads = [elementary(sp.diff(loss, p)) for p in params]
    return sp.Matrix([[sp.diff(g, q) for q in params] for g in grads])


def jvp_and_hvp(loss: sp.Expr, params: Sequence[sp.Symbol], inputs: Sequence[sp.Symbol],
                param_values: Mapping[str, float], vector: Mapping[str, float],
                data: Mapping[str, Sequence[float]] | None = None,
                reduction: str = "sum") -> tuple[float, dict[str, float]]:
    """The directional derivative and `sympy.hessian(loss) @ v` over a batch, at high
    precision (summed at DIGITS digits, rounded once)."""
    hessian = hessian_of(loss, params)
    grads = [sp.diff(loss, p) for p in params]
    v = [vector[p.name] for p in params]
    jvp = sum((g * vi for g, vi in zip(grads, v)), sp.S.Zero)
    hvp = [sum((hessian[i, j] * v[j] for j in range(len(params))), sp.S.Zero)
           for i in range(len(params))]
    n = len(next(iter(data.values()))) if inputs else 1
    point: dict[sp.Symbol, float] = {p: param_values[p.name] for p in params}
    totals = [sp.S.Zero] * (1 + len(params))
    for i in range(n):
        point.update({x: data[x.name][i] for x in inputs})
        for k, expr in enumerate([jvp, *hvp]):
            totals[k] += sp.Float(_exact_value(expr, point), DIGITS)
    scale = 1 / sp.Integer(n) if reduction == "mean" else sp.S.One
    out = [float(t * scale) for t in totals]
    return out[0], {p.name: h for p, h in zip(params, out[1:])}
