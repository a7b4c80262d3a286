"""Losses on matrix expressions, with PyTorch's definitions and reductions.

Each returns a 1x1 SymPy matrix expression (the batch's loss). "mean" divides
as PyTorch does: by the number of elements for mse and bce, by the batch size
for cross-entropy. Stable forms are built in: cross-entropy goes through
log-sum-exp, BCE with logits through softplus, so large logits give no NaN.
"""

from __future__ import annotations

import sympy as sp

from symgrad.errors import OptionError, ShapeMismatchError
from symgrad.frontend import _short
from symgrad.functions import relu, softplus
from symgrad.matrix import elementwise, hadamard, logsumexp, square, total

REDUCTIONS = ("mean", "sum")


def _same_shape(loss: str, pred: sp.MatrixExpr, target: sp.MatrixExpr) -> None:
    """A SymgradError naming both shapes, before SymPy's own ShapeError would."""
    shapes = (tuple(getattr(pred, "shape", ())), tuple(getattr(target, "shape", ())))
    where = f"{loss}({_short(pred, 40)}, {_short(target, 40)})"
    if len(shapes[0]) != 2 or len(shapes[1]) != 2:
        raise ShapeMismatchError(shapes, where,
                                 f"{loss} takes two matrix expressions, got shapes "
                                 f"{shapes[0]} and {shapes[1]}")
    if any(sp.sympify(a) != sp.sympify(b) for a, b in zip(*shapes)):
        raise ShapeMismatchError(shapes, where, f"{loss} needs the prediction and the target "
                                 f"in one shape, got {_show(shapes[0])} and {_show(shapes[1])}")


def _show(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _reduce(summed: sp.MatrixExpr, count, reduction: str) -> sp.MatrixExpr:
    if reduction not in REDUCTIONS:
        raise OptionError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return summed if reduction == "sum" else summed / count


def mse(pred: sp.MatrixExpr, target: sp.MatrixExpr, reduction: str = "mean"):
    """Mean squared error: sum((pred - target)^2), divided by the element count for "mean"."""
    _same_shape("mse", pred, target)
    rows, cols = pred.shape
    return _reduce(total(square(pred - target)), rows * cols, reduction)


def cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr, reduction: str = "mean"):
    """Softmax cross-entropy from logits (n, C) and one-hot targets (n, C), computed as
    logsumexp(logits) - <target, logits> per row. Kernels also accept integer class
    labels for a one-hot input."""
    _same_shape("cross_entropy", logits, target)
    rows, _ = logits.shape
    per_row = total(logsumexp(logits)) - total(hadamard(target, logits))
    return _reduce(per_row, rows, reduction)


def binary_cross_entropy_with_logits(logits: sp.MatrixExpr, target: sp.MatrixExpr,
                                     reduction: str = "mean"):
    """softplus(x) - y x per element: -(y log sigmoid(x) + (1-y) log(1 - sigmoid(x)))
    without overflow; its gradient is sigmoid(x) - y at every x."""
    _same_shape("binary_cross_entropy_with_logits", logits, target)
    rows, cols = logits.shape
    summed = total(elementwise(softplus, logits) - hadamard(target, logits))
    return _reduce(summed, rows * cols, reduction)


def hinge(score: sp.MatrixExpr, target: sp.MatrixExpr, reduction: str = "sum"):
    """max(0, 1 - y * score) per element, for labels y in {-1, +1}."""
    _same_shape("hinge", score, target)
    rows, cols = score.shape
    margin = sp.OneMatrix(rows, cols) - hadamard(target, score)
    return _reduce(total(elementwise(relu, margin)), rows * cols, reduction)


def l2(*weights: sp.MatrixExpr):
    """The squared L2 norm of all the given weights (add lambda * l2(W1, W2) to a loss)."""
    return sp.MatAdd(*(total(square(w)) for w in weights))
