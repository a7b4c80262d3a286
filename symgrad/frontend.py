"""Front end: SymPy expressions to IR nodes.

A table maps SymPy classes to ops. The walk is iterative and memoised on the
SymPy expression, so shared subtrees become one node and deep expressions do
not hit Python's recursion limit. Anything not in the table raises
`UnsupportedFunctionError`, naming the function and showing where it occurs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import sympy as sp
from sympy.codegen.cfunctions import Sqrt, exp2, expm1, hypot, log1p, log2, log10
from sympy.codegen.numpy_nodes import logaddexp, logaddexp2, maximum, minimum

from symgrad import functions as fn
from symgrad.errors import ShapeMismatchError, UnsupportedFunctionError
from symgrad.frontend_matrix import MATRIX_CHILDREN, MATRIX_LOWERINGS, dims
from symgrad.ir import (
    Node,
    Op,
    ShapeMismatch,
    add,
    const,
    div,
    input_,
    make,
    mul,
    neg,
    node,
    param,
    pow_,
    sub,
    where,
)
from symgrad.walk import bottom_up

UNARY: dict[type, Op] = {
    sp.exp: Op.EXP, sp.log: Op.LOG, sp.sin: Op.SIN, sp.cos: Op.COS, sp.tan: Op.TAN,
    sp.tanh: Op.TANH, sp.Abs: Op.ABS, sp.sign: Op.SIGN,
    sp.asin: Op.ASIN, sp.acos: Op.ACOS, sp.atan: Op.ATAN, sp.sinh: Op.SINH,
    sp.cosh: Op.COSH, sp.asinh: Op.ASINH, sp.acosh: Op.ACOSH, sp.atanh: Op.ATANH,
    sp.erf: Op.ERF, sp.erfc: Op.ERFC, sp.gamma: Op.GAMMA, sp.loggamma: Op.LGAMMA,
    sp.floor: Op.FLOOR, sp.ceiling: Op.CEIL,
    fn.sigmoid: Op.SIGMOID, fn.relu: Op.RELU, fn.softplus: Op.SOFTPLUS,
    log1p: Op.LOG1P, expm1: Op.EXPM1, Sqrt: Op.SQRT,
}
BINARY: dict[type, Op] = {sp.atan2: Op.ATAN2, sp.Mod: Op.MOD}
# Functions lowered as a formula of supported ones (the same value, and SymPy's own
# definition of it): (x, ...) -> a SymPy expression.
_LN2, _LN10 = sp.log(2), sp.log(10)
REWRITES: dict[type, Callable[..., sp.Expr]] = {
    sp.sec: lambda x: 1 / sp.cos(x), sp.csc: lambda x: 1 / sp.sin(x),
    sp.cot: lambda x: 1 / sp.tan(x), sp.sech: lambda x: 1 / sp.cosh(x),
    sp.csch: lambda x: 1 / sp.sinh(x), sp.coth: lambda x: 1 / sp.tanh(x),
    sp.frac: lambda x: x - sp.floor(x),
    sp.sinc: lambda x: sp.Piecewise((1, sp.Eq(x, 0)), (sp.sin(x) / x, True)),
    exp2: lambda x: sp.Pow(2, x, evaluate=False),
    log2: lambda x: sp.log(x) / _LN2, log10: lambda x: sp.log(x) / _LN10,
    hypot: lambda x, y: sp.sqrt(x**2 + y**2),
    # log(e^x + e^y) with the larger exponent shifted out, as np.logaddexp
    logaddexp: lambda x, y: sp.Max(x, y) + log1p(sp.exp(-sp.Abs(x - y))),
    logaddexp2: lambda x, y: sp.Max(x, y) + log1p(sp.Pow(2, -sp.Abs(x - y))) / _LN2,
    maximum: lambda x, y: sp.Max(x, y), minimum: lambda x, y: sp.Min(x, y),
}
COMPARISON: dict[type, Op] = {
    sp.StrictLessThan: Op.LT, sp.LessThan: Op.LE, sp.StrictGreaterThan: Op.GT,
    sp.GreaterThan: Op.GE, sp.Equality: Op.EQ, sp.Unequality: Op.NE,
}
BINARY_CHAIN: dict[type, Op] = {sp.Max: Op.MAX, sp.Min: Op.MIN, sp.And: Op.AND, sp.Or: Op.OR}


SUPPORTED_HINT = ("symgrad supports the functions listed in its README (\"Supported "
                  "functions\"), which `symgrad functions` prints and "
                  "`symgrad.supported_functions()` returns")


def _short(expr: sp.Basic, limit: int = 120) -> str:
    try:
        text = sp.sstr(expr)
    except RecursionError:      # SymPy's printer recurses; a deep argument is elided
        name = getattr(expr.func, "__name__", type(expr).__name__)
        text = f"{name}(<{len(expr.args)} argument(s) nested too deep to print>)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def free_symbols(expr: sp.Basic) -> set[sp.Basic]:
    """`expr.free_symbols` without recursion (SymPy's recurses, so deep losses overflow)."""
    found: set[sp.Basic] = set()
    seen: set[sp.Basic] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if isinstance(e, (sp.Symbol, sp.MatrixSymbol)):
            found.add(e)
        elif getattr(e, "bound_symbols", None) or not e.args:
            found |= e.free_symbols     # binders (Sum, Lambda, ...) and other atoms
        else:
            stack.extend(e.args)
    return found


def map_tree(expr: sp.Basic, whole: Callable[[sp.Basic], sp.Basic | None],
             build: Callable[[sp.Basic, tuple], sp.Basic]) -> sp.Basic:
    """Rebuild expr bottom-up without recursion (SymPy's own walkers recurse, so deep
    losses overflow); each shared subtree is rebuilt once. `whole(e)` returns the result
    for a subtree it handles as a whole (or None to descend), `build(e, args)` rebuilds a
    node from its rebuilt args."""
    done: dict[sp.Basic, sp.Basic] = {}
    wholes: dict[sp.Basic, sp.Basic | None] = {}

    def whole_of(e: sp.Basic) -> sp.Basic | None:
        if e not in wholes:
            wholes[e] = whole(e)
        return wholes[e]

    def compute(e: sp.Basic) -> sp.Basic:
        result = whole_of(e)
        return result if result is not None else build(e, tuple(done[a] for a in e.args))

    return bottom_up(expr, lambda e: () if whole_of(e) is not None else e.args, done, compute)


def rebuilt(e: sp.Basic, args: tuple) -> sp.Basic:
    """e with new args, or e itself when none changed."""
    return e.func(*args) if any(new is not old for new, old in zip(args, e.args)) else e


def replace_symbols(expr: sp.Basic, mapping: Mapping[sp.Basic, sp.Basic]) -> sp.Basic:
    """`expr.xreplace(mapping)` without recursion."""
    if not mapping:
        return expr
    return map_tree(expr, lambda e: mapping.get(e, e) if e in mapping or not e.args else None,
                    rebuilt)


class Lowering:
    """Lowers SymPy expressions over the given symbols, sharing one memo."""

    def __init__(self, params: Mapping[sp.Symbol, str], inputs: Mapping[sp.Symbol, str],
                 zero_deltas: bool = False, sizes: Mapping[sp.Symbol, str] | None = None):
        self.memo: dict[sp.Basic, Node] = {}
        for sym, name in params.items():
            self.memo[sym] = param(name, _shape_of(sym))
        for sym, name in inputs.items():
            self.memo[sym] = input_(name, _shape_of(sym))
        for sym, name in (sizes or {}).items():
            self.memo[sym] = node(Op.SIZE, attr=name)
        # sympy.diff of Heaviside gives DiracDelta; as PyTorch does for step
        # functions, the direct method takes it as 0 (true almost everywhere).
        self.zero_deltas = zero_deltas

    def __call__(self, expr: sp.Basic) -> Node:
        memo = self.memo

        def lower(e: sp.Basic) -> Node:
            try:
                return self._lower(e, [memo[a] for a in self._children(e)])
            except ShapeMismatch as exc:
                raise ShapeMismatchError(exc.shapes, _short(e), str(exc)) from None

        return bottom_up(expr, self._children, memo, lower, children_in_order=True)

    def _children(self, e: sp.Basic) -> tuple:
        if type(e) in MATRIX_CHILDREN:
            return MATRIX_CHILDREN[type(e)](e)
        if isinstance(e, sp.Piecewise):
            values = tuple(v for v, _ in e.args)
            return values + tuple(c for _, c in e.args if c not in (sp.true, sp.false))
        if isinstance(e, sp.Heaviside):
            return e.args[:1]
        if isinstance(e, sp.ITE):
            # SymPy folds nested Piecewise conditions into ITE(c, t, f), whose
            # branches may be boolean constants; its And/Or form has none.
            return (e.to_nnf(),)
        if isinstance(e, (sp.Symbol, sp.Number, sp.NumberSymbol)) or e.is_Atom:
            return ()
        if isinstance(e, sp.DiracDelta) and self.zero_deltas:
            return ()
        if isinstance(e, sp.polygamma):
            return e.args[1:]       # the order n is the op's attr
        if isinstance(e, sp.Derivative):
            return ()               # lowered whole, through low(...) of its formula
        if getattr(e, "bound_symbols", None):
            return ()   # Integral, Sum, Lambda...: not entered; _lower reports them
        return e.args

    def _lower(self, e: sp.Basic, args: list[Node]) -> Node:
        if e in (sp.true, sp.false):
            raise UnsupportedFunctionError(str(e), _short(e), "a boolean constant can only "
                                           "be a Piecewise condition")
        if isinstance(e, sp.Symbol):
            raise AssertionError(f"undeclared symbol {e} reached lowering")
        if e.is_Number or isinstance(e, sp.NumberSymbol):
            if e.is_extended_real or e is sp.nan:
                return const(float(e))
            raise UnsupportedFunctionError(type(e).__name__, _short(e),
                                           "only real numbers are supported")
        lowering = _LOWERINGS.get(type(e))
        if lowering is not None:
            return lowering(self, e, args)
        for cls, op in UNARY.items():
            if isinstance(e, cls) and len(args) == 1:
                return make(op, args[0])
        for cls, op in BINARY.items():
            if isinstance(e, cls) and len(args) == 2:
                return make(op, *args)
        if type(e) in REWRITES:
            return self(REWRITES[type(e)](*e.args))
        if isinstance(e, sp.DiracDelta) and self.zero_deltas:
            return const(0.0)
        name = getattr(e, "func", type(e))
        name = getattr(name, "__name__", str(name))
        raise UnsupportedFunctionError(name, _short(e), SUPPORTED_HINT)


def _add(low: Lowering, e: sp.Add, args: list[Node]) -> Node:
    # a + (-1)*b lowers to a - b, which reads better and saves the NEG.
    result: Node | None = None
    for term, node_ in zip(e.args, args):
        if term.could_extract_minus_sign() and result is not None:
            result = sub(result, low(-term))
        else:
            result = node_ if result is None else add(result, node_)
    return result


def _mul(low: Lowering, e: sp.Mul, args: list[Node]) -> Node:
    num: Node | None = None
    den: Node | None = None
    sign = 1.0
    for factor, node_ in zip(e.args, args):
        if factor is sp.S.NegativeOne:
            sign = -sign
            continue
        base, expo = factor.as_base_exp()
        if _negative_number(expo) and not factor.is_Number:
            part = low(base ** -expo)
            den = part if den is None else mul(den, part)
        else:
            num = node_ if num is None else mul(num, node_)
    result = const(1.0) if num is None else num
    if den is not None:
        result = div(result, den)
    return neg(result) if sign < 0 else result


def _negative_number(x: sp.Basic) -> bool:
    # `x < 0` rather than `x.is_negative`: SymPy's assumption system costs about 50 us
    # a query, which dominates the lowering of a polynomial with many terms.
    return bool(x.is_Number and x.is_extended_real and x < 0)


def _pow(low: Lowering, e: sp.Pow, args: list[Node]) -> Node:
    base, expo = args
    if e.exp == sp.S.Half:
        return make(Op.SQRT, base)
    if _negative_number(e.exp):
        positive = low(e.base ** -e.exp)
        return div(const(1.0), positive)
    return pow_(base, expo)


def _heaviside(low: Lowering, e: sp.Heaviside, args: list[Node]) -> Node:
    at_zero = e.args[1] if len(e.args) > 1 else sp.S.Half
    if not at_zero.is_Number:
        raise UnsupportedFunctionError("Heaviside", _short(e), "its value at 0 must be a number")
    return make(Op.HEAVISIDE, args[0], attr=float(at_zero))


def _piecewise(low: Lowering, e: sp.Piecewise, args: list[Node]) -> Node:
    result = const(math.nan)    # SymPy's value where no condition holds
    for value, cond in reversed(e.args):
        if cond is sp.true:
            result = low.memo[value]
        elif cond is not sp.false:
            result = where(low.memo[cond], low.memo[value], result)
    return result


def _polygamma(low: Lowering, e: sp.polygamma, args: list[Node]) -> Node:
    n = e.args[0]
    if not (n.is_Integer and n >= 0):
        raise UnsupportedFunctionError("polygamma", _short(e),
                                       "its order must be an integer literal >= 0")
    return make(Op.POLYGAMMA, args[0], attr=int(n))


# The derivatives sympy.diff leaves unevaluated (the direct method meets them): floor and
# ceiling are flat almost everywhere (derivative 0, as PyTorch's), and Mod(a, b) =
# a - b floor(a/b) has the derivative a' - floor(a/b) b' (torch.remainder's).
_FLAT = (sp.floor, sp.ceiling, sp.sign)


def derivative_formula(e: sp.Derivative) -> sp.Expr:
    """The derivative sympy.diff left unevaluated, as an expression it can lower (of any
    order and in any variables: floor(a/b) is locally constant, so Mod's derivatives
    are a's minus floor(a/b) times b's)."""
    f, counts = e.expr, [tuple(c) for c in e.variable_count]
    if isinstance(f, _FLAT):
        return sp.S.Zero
    if isinstance(f, sp.frac):
        return sp.diff(f.args[0], *counts)     # frac(u) = u - floor(u)
    if isinstance(f, sp.Mod):
        a, b = f.args
        return sp.diff(a, *counts) - sp.floor(a / b) * sp.diff(b, *counts)
    raise UnsupportedFunctionError("Derivative", _short(e), "an unevaluated derivative of a "
                                   "function whose derivative symgrad does not know")


def _derivative(low: Lowering, e: sp.Derivative, args: list[Node]) -> Node:
    return low(derivative_formula(e))


def subs_formula(e: sp.Subs) -> sp.Expr:
    """sympy.diff's chain rule through a function it cannot differentiate:
    Subs(Derivative(f(xi), xi), xi, u) is f' at u."""
    if not isinstance(e.expr, sp.Derivative):
        raise UnsupportedFunctionError("Subs", _short(e), "only the Subs(Derivative(...)) "
                                       "that sympy.diff makes is supported")
    return derivative_formula(e.expr).xreplace(dict(zip(e.variables, e.point)))


def with_derivatives_evaluated(expr: sp.Expr) -> sp.Expr:
    """`expr` with sympy.diff's unevaluated derivatives written as their formulas, so
    that it can be differentiated again (SymPy recurses forever differentiating a
    Subs(Derivative(Mod(...)))."""
    if not expr.has(sp.Derivative):
        return expr
    return expr.replace(sp.Subs, lambda *args: subs_formula(sp.Subs(*args))) \
        .replace(sp.Derivative, lambda *args: derivative_formula(sp.Derivative(*args)))


def _subs(low: Lowering, e: sp.Subs, args: list[Node]) -> Node:
    return low(subs_formula(e))


def _chain(op: Op) -> Callable:
    def lower(low: Lowering, e: sp.Basic, args: list[Node]) -> Node:
        result = args[0]
        for a in args[1:]:
            result = node(op, result, a) if op in (Op.AND, Op.OR) else make(op, result, a)
        return result
    return lower


def _comparison(op: Op) -> Callable:
    def lower(low: Lowering, e: sp.Basic, args: list[Node]) -> Node:
        return node(op, *args)
    return lower


def _not(low: Lowering, e: sp.Not, args: list[Node]) -> Node:
    return node(Op.NOT, args[0])


def _ite(low: Lowering, e: sp.ITE, args: list[Node]) -> Node:
    return args[0]      # the lowered And/Or form (see Lowering._children)


def _shape_of(sym: sp.Basic) -> tuple:
    return dims(sym.shape) if isinstance(sym, sp.MatrixSymbol) else ()


_LOWERINGS: dict[type, Callable] = {
    **MATRIX_LOWERINGS,
    sp.Add: _add, sp.Mul: _mul, sp.Pow: _pow, sp.Heaviside: _heaviside,
    sp.Piecewise: _piecewise, sp.Not: _not, sp.ITE: _ite, sp.polygamma: _polygamma,
    sp.Derivative: _derivative, sp.Subs: _subs,
    **{cls: _chain(op) for cls, op in BINARY_CHAIN.items()},
    **{cls: _comparison(op) for cls, op in COMPARISON.items()},
}
