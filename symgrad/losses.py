"""Losses on matrix expressions, with PyTorch's definitions and reductions.

Each returns a 1x1 SymPy matrix expression (the batch's loss). "mean" divides
as PyTorch does: by the number of elements for mse and bce, by the batch size
for cross-entropy. Stable forms are built in: cross-entropy goes through
log-sum-exp, BCE with logits through softplus, so large logits give no NaN.
"""

from __future__ import annotations

import sympy as sp

from symgrad.errors import OptionError
from symgrad.functions import relu, softplus
from symgrad.matrix import elementwise, hadamard, logsumexp, square, total

REDUCTIONS = ("mean", "sum")


def _reduce(summed: sp.MatrixExpr, count, reduction: str) -> sp.MatrixExpr:
    if reduction not in REDUCTIONS:
        raise OptionError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return summed if reduction == "sum" else summed / count


def mse(pred: sp.MatrixExpr, target: sp.MatrixExpr, reduction: str = "mean"):
    """Mean squared error: sum((pred - target)^2), divided by the element count for "mean"."""
    rows, cols = pred.shape
    return _reduce(total(square(pred - target)), rows * cols, reduction)


def cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr, reduction: str = "mean"):
    """Softmax cross-entropy from logits (n, C) and one-hot targets (n, C), computed as
    logsumexp(logits) - <target, logits> per row. Kernels also accept integer class
    labels for a one-hot input."""
    rows, _ = logits.shape
    per_row = total(logsumexp(logits)) - total(hadamard(target, logits))
    return _reduce(per_row, rows, reduction)


def binary_cross_entropy_with_logits(logits: sp.MatrixExpr, target: sp.MatrixExpr,
                                     reduction: str = "mean"):
    """softplus(x) - y x per element: -(y log sigmoid(x) + (1-y) log(1 - sigmoid(x)))
    without overflow; its gradient is sigmoid(x) - y at every x."""
    rows, cols = logits.shape
    summed = total(elementwise(softplus, logits) - hadamard(target, logits))
    return _reduce(summed, rows * cols, reduction)


def hinge(score: sp.MatrixExpr, target: sp.MatrixExpr, reduction: str = "sum"):
    """max(0, 1 - y * score) per element, for labels y in {-1, +1}."""
    rows, cols = score.shape
    margin = sp.OneMatrix(rows, cols) - hadamard(target, score)
    return _reduce(total(elementwise(relu, margin)), rows * cols, reduction)


def l2(*weights: sp.MatrixExpr):
    """The squared L2 norm of all the given weights (add lambda * l2(W1, W2) to a loss)."""
    return sp.MatAdd(*(total(square(w)) for w in weights))
