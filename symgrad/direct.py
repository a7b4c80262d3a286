"""The direct way: `sympy.diff` of the whole loss for each parameter.

This is the lecture's "bad choice", kept as a contrast and as an oracle. Each
derivative is a separate SymPy tree; lowering them into the IR hash-conses
them, so the kernels it yields are compared with reverse mode's like with like.
"""

from __future__ import annotations

import sympy as sp

from symgrad.ir import Node


def symbolic_gradients(expr: sp.Expr, wrt) -> list[sp.Expr]:
    """d(expr)/d(w) for each symbol w, as SymPy trees (no simplification)."""
    return [sp.diff(expr, w) for w in wrt]


def lower_gradients(lowering, gradients: list[sp.Expr]) -> list[Node | None]:
    """IR nodes of the SymPy derivatives (None for an exact zero)."""
    return [None if g.is_zero is True and g.is_Number else lowering(g) for g in gradients]
