"""Jacobian-vector rules: one per op, in one table beside `rules.VJP`.

`rule(tangents, out, *args)` gets the tangent of each arg (None for zero) and returns
the tangent of `out` (None for zero). Rules build IR with the same constructors as
the VJP rules, so tangent nodes are interned with the forward (and backward) ones.

Elementwise ops have a diagonal local Jacobian, which is its own transpose: their
tangent is the sum over args of the VJP rule's contribution for that arg with the
arg's tangent in the cotangent's place (`t_x * f'(x)`). So the two tables share one
statement of each derivative, and with it the kink conventions (relu'(0) = 0, max
and min split ties evenly, abs'(0) = 0, floor' = 0). The ops whose Jacobian is not
diagonal (products, transposes, broadcasts, sums, log-sum-exp) and WHERE (which
selects rather than adds) have rules of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from symgrad.ir import (
    STRUCTURAL,
    Node,
    Op,
    broadcast_to,
    const,
    make,
    matmul,
    sum_,
    transpose,
    where,
)
from symgrad.rules import NON_DIFFERENTIABLE, VJP, lookup, registrar

Tangent = Node | None
JvpRule = Callable[..., Tangent]
JVP: dict[Op, JvpRule] = {}


jvp = registrar(JVP, "JVP")


def jvp_rule_for(op: Op) -> JvpRule:
    return lookup(JVP, "JVP", op)


def _shaped(t: Tangent, out: Node) -> Tangent:
    """`t` broadcast to out's shape (an arg's tangent may be a smaller broadcast operand)."""
    return None if t is None else broadcast_to(t, out.shape) if t.shape != out.shape else t


def _plus(a: Tangent, b: Tangent) -> Tangent:
    return b if a is None else a if b is None else a + b


def _elementwise(tangents, out, *args):
    total = None
    for i, t in enumerate(tangents):
        if t is not None:
            total = _plus(total, VJP[out.op](t, out, *args)[i])
    return _shaped(total, out)


ELEMENTWISE = frozenset(VJP) - STRUCTURAL - NON_DIFFERENTIABLE - {Op.WHERE}
jvp(*sorted(ELEMENTWISE, key=lambda op: op.name))(_elementwise)


@jvp(*sorted(NON_DIFFERENTIABLE, key=lambda op: op.name))
def _zero(tangents, out, *args):
    return None


@jvp(Op.WHERE)
def _where(tangents, out, cond, if_true, if_false):
    # Selects, lazily: the untaken branch's tangent is never computed (the schedule
    # guards it as it guards the branch itself).
    _, t_true, t_false = tangents
    if t_true is None and t_false is None:
        return None
    zero = const(0.0)
    return _shaped(where(cond, zero if t_true is None else t_true,
                         zero if t_false is None else t_false), out)


@jvp(Op.MATMUL)
def _matmul(tangents, out, a, b):
    ta, tb = tangents
    return _plus(None if ta is None else matmul(ta, b), None if tb is None else matmul(a, tb))


@jvp(Op.TRANSPOSE)
def _transpose(tangents, out, x):
    return None if tangents[0] is None else transpose(tangents[0])


@jvp(Op.BROADCAST)
def _broadcast(tangents, out, x):
    return _shaped(tangents[0], out)


@jvp(Op.SUM)
def _sum(tangents, out, x):
    t = tangents[0]
    return None if t is None else sum_(_shaped(t, x), out.attr)


@jvp(Op.LOGSUMEXP)
def _logsumexp(tangents, out, x):
    t = tangents[0]     # the softmax-weighted sum of the tangent, from the forward value
    return None if t is None else sum_(make(Op.EXP, x - out) * _shaped(t, x), out.attr)
