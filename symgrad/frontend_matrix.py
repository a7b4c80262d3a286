"""Front end for SymPy matrix expressions: MatMul, MatAdd, Transpose, Hadamard
products and powers, elementwise functions, and the ones-matrix idioms for sums
and broadcasting.

SymPy has no "sum of entries" or "broadcast a row"; both are matrix products
with `OneMatrix`, which SymPy's own algebra understands: `1(1,r) * A` sums A's
columns, `A * 1(c,1)` sums its rows, `1(r,1) * b` repeats the row b r times.
These lower to SUM and BROADCAST rather than to products with a ones matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symgrad.ir import (
    Node,
    add,
    broadcast_to,
    const,
    matmul,
    mul,
    pow_,
    sub,
    sum_,
    transpose,
)


def dims(shape) -> tuple:
    """SymPy shape -> IR shape: ints, and names for symbolic sizes."""
    out = []
    for d in shape:
        if d.is_Integer:
            out.append(int(d))
        elif isinstance(d, sp.Symbol):
            out.append(d.name)
        else:
            raise ValueError(f"dimension {d} is neither an integer nor a size symbol")
    return tuple(out)


def _ones(e: sp.OneMatrix) -> tuple:
    return dims(e.shape)


def _matmul(low, e: sp.MatMul, args: list[Node]) -> Node:
    scale: Node | None = None
    acc: Node | None = None
    pending_ones: tuple | None = None     # a leading ones matrix, applied to the next factor
    for factor, a in zip(e.args, args):
        if not getattr(factor, "is_Matrix", False):
            scale = a if scale is None else mul(scale, a)
            continue
        if isinstance(factor, sp.OneMatrix):
            rows, cols = _ones(factor)
            if acc is None:
                pending_ones = (rows, cols)
            else:   # acc (r, k) @ ones(k, cols): every column is acc's row sum
                acc = broadcast_to(sum_(acc, 1) if acc.shape[1] != 1 else acc,
                                   (acc.shape[0], cols))
            continue
        if pending_ones is not None:  # ones(rows, k) @ a (k, c): every row is a's column sum
            rows, _ = pending_ones
            a = broadcast_to(sum_(a, 0) if a.shape[0] != 1 else a, (rows, a.shape[1]))
            pending_ones = None
        acc = a if acc is None else matmul(acc, a)
    if pending_ones is not None:
        acc = broadcast_to(const(1.0), pending_ones)
    if scale is not None:
        acc = scale if acc is None else mul(scale, acc)
    return acc


def _matadd(low, e: sp.MatAdd, args: list[Node]) -> Node:
    # Positive terms first, then a - b for each negated term: reads like the math.
    terms = sorted(zip(e.args, args), key=lambda ta: ta[0].could_extract_minus_sign())
    result: Node | None = None
    for term, a in terms:
        if result is not None and term.could_extract_minus_sign():
            result = sub(result, low(-term))
        else:
            result = a if result is None else add(result, a)
    return result


def _hadamard(low, e: sp.HadamardProduct, args: list[Node]) -> Node:
    result = args[0]
    for a in args[1:]:
        result = mul(result, a)
    return result


def _hadamard_power(low, e: sp.HadamardPower, args: list[Node]) -> Node:
    return pow_(args[0], args[1])


def _transpose(low, e: sp.Transpose, args: list[Node]) -> Node:
    return transpose(args[0])


def _apply(low, e: ElementwiseApplyFunction, args: list[Node]) -> Node:
    # A fresh variable per application: one Lambda applied to two matrices must not
    # find the first application's body in the memo (nor rebind a model symbol that
    # happens to be the Lambda's variable).
    var = sp.Dummy("d", real=True)
    low.memo[var] = args[0]
    return low(e.function(var))


def _constant_matrix(value: float) -> Callable:
    def lower(low, e, args):
        return broadcast_to(const(value), dims(e.shape))
    return lower



MATRIX_LOWERINGS: dict[type, Callable] = {
    sp.MatMul: _matmul, sp.MatAdd: _matadd, sp.HadamardProduct: _hadamard,
    sp.HadamardPower: _hadamard_power, sp.Transpose: _transpose,
    ElementwiseApplyFunction: _apply,
    sp.OneMatrix: _constant_matrix(1.0), sp.ZeroMatrix: _constant_matrix(0.0),
}

# Children to lower before the node itself (the default is `e.args`).
MATRIX_CHILDREN: dict[type, Callable] = {
    ElementwiseApplyFunction: lambda e: (e.expr,),
    sp.OneMatrix: lambda e: (),
    sp.ZeroMatrix: lambda e: (),
}

