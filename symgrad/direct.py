"""The direct way: `sympy.diff` of the whole loss for each parameter.

This is the lecture's "bad choice", kept as a contrast and as an oracle. Each
derivative is a separate SymPy tree; lowering them into the IR hash-conses
them, so the kernels it yields are compared with reverse mode's like with like.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.numpy_nodes import maximum, minimum

from symgrad.errors import ExpressionTooDeepError
from symgrad.frontend import map_tree, rebuilt
from symgrad.ir import Node


def symbolic_gradients(expr: sp.Expr, wrt) -> list[sp.Expr]:
    """d(expr)/d(w) for each symbol w, as SymPy trees (no simplification)."""
    expr = nest_max_min(expr)
    try:
        return [sp.diff(expr, w) for w in wrt]
    except RecursionError:
        raise ExpressionTooDeepError(
            "sympy.diff exceeded Python's recursion limit on this loss (it nests too "
            "deeply for SymPy); use method='reverse', which has no depth limit") from None


_NUMPY_MAX_MIN = {maximum: sp.Max, minimum: sp.Min}


def nest_max_min(expr: sp.Expr) -> sp.Expr:
    """Max(a, b, c) as Max(Max(a, b), c) (and Min alike), as the IR lowers it, so that
    sympy.diff splits a tie at each binary max as reverse mode does (1/4, 1/4, 1/2 for a
    three-way tie; SymPy's own n-ary rule gives 1/2 to each)."""
    def leaf(e: sp.Basic) -> sp.Basic | None:
        return e if not e.args or getattr(e, "bound_symbols", None) else None

    def build(e: sp.Basic, args: tuple) -> sp.Basic:
        if type(e) in _NUMPY_MAX_MIN:        # sympy.diff cannot differentiate these
            e = _NUMPY_MAX_MIN[type(e)](*args, evaluate=False)
            args = e.args
        if isinstance(e, (sp.Max, sp.Min)) and len(args) > 2:
            nested = args[0]
            for a in args[1:]:
                nested = e.func(nested, a, evaluate=False)
            return nested
        return rebuilt(e, args)

    return map_tree(expr, leaf, build)


def lower_gradients(lowering, gradients: list[sp.Expr]) -> list[Node | None]:
    """IR nodes of the SymPy derivatives (None for an exact zero)."""
    return [None if g.is_Number and g.is_zero else lowering(g) for g in gradients]
