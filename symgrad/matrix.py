"""Matrix building blocks written in plain SymPy, for losses and layers.

SymPy has no "sum of entries", "sum of each row" or "repeat a row"; each is a
product with a ones matrix (`OneMatrix`), which SymPy's algebra and printers
understand and which symgrad lowers to a reduction or a broadcast, never to an
actual product with ones.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction


def total(a: sp.MatrixExpr) -> sp.MatrixExpr:
    """The sum of all entries, as a 1x1 matrix."""
    rows, cols = a.shape
    return sp.OneMatrix(1, rows) * a * sp.OneMatrix(cols, 1)


def row_sums(a: sp.MatrixExpr) -> sp.MatrixExpr:
    """(rows, 1): each row's sum."""
    return a * sp.OneMatrix(a.shape[1], 1)


def col_sums(a: sp.MatrixExpr) -> sp.MatrixExpr:
    """(1, cols): each column's sum."""
    return sp.OneMatrix(1, a.shape[0]) * a


def repeat_rows(row: sp.MatrixExpr, rows) -> sp.MatrixExpr:
    """The (1, k) row repeated `rows` times: a bias broadcast over the batch."""
    return sp.OneMatrix(rows, 1) * row


def elementwise(function, a: sp.MatrixExpr) -> sp.MatrixExpr:
    """`function` (a SymPy function class such as sp.tanh or symgrad.relu) on each entry."""
    return ElementwiseApplyFunction(function, a)


def logsumexp(a: sp.MatrixExpr) -> sp.MatrixExpr:
    """(rows, 1): log(sum(exp(row))) per row; compiled in the stable, max-shifted form."""
    return elementwise(sp.log, row_sums(elementwise(sp.exp, a)))


def softmax(a: sp.MatrixExpr) -> sp.MatrixExpr:
    """Row-wise softmax exp(a - logsumexp(a)), stable for any logits."""
    return elementwise(sp.exp, a - logsumexp(a) * sp.OneMatrix(1, a.shape[1]))


def hadamard(a: sp.MatrixExpr, b: sp.MatrixExpr) -> sp.MatrixExpr:
    return sp.HadamardProduct(a, b)


def square(a: sp.MatrixExpr) -> sp.MatrixExpr:
    return sp.HadamardPower(a, 2)
