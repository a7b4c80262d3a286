"""Vector-Jacobian rules: one per op, in one table.

`rule(g, out, *args)` gets the cotangent `g` of the node `out` and returns one
entry per arg: the cotangent contribution for that arg, or None for none.
Rules are written with the IR's own constructors, so backward nodes are
interned together with the forward ones, and they reuse forward values where
the math allows (exp' = out, tanh' = 1 - out^2, sigmoid' = out (1 - out)).

Contributions may have the shape of `out` rather than of the arg (broadcasting);
the reverse driver sums them back to the arg's shape.

Kink conventions, shared with the direct method (SymPy's own derivatives):
relu'(0) = 0 as in PyTorch; Heaviside(0) = 1/2, so max/min ties split the
gradient evenly; abs'(0) = sign(0) = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from symgrad.ir import (
    BOOLEAN,
    LEAVES,
    Node,
    Op,
    broadcast_to,
    const,
    fit_shape,
    make,
    matmul,
    transpose,
    unary,
    where,
)

Rule = Callable[..., tuple[Node | None, ...]]
VJP: dict[Op, Rule] = {}
# Flat almost everywhere: derivative 0 (PyTorch's for sign, floor, ceil).
NON_DIFFERENTIABLE = BOOLEAN | LEAVES | {Op.SIGN, Op.HEAVISIDE, Op.FLOOR, Op.CEIL}


def registrar(table: dict, kind: str):
    """A decorator factory filling `table` (one rule per op: VJP here, JVP in jvp.py)."""
    def register_for(*ops: Op):
        def register(rule):
            for op in ops:
                assert op not in table, f"two {kind} rules for {op}"
                table[op] = rule
            return rule
        return register
    return register_for


def lookup(table: dict, kind: str, op: Op):
    try:
        return table[op]
    except KeyError:
        raise NotImplementedError(f"no {kind} rule for {op.name}") from None


vjp = registrar(VJP, "VJP")


def rule_for(op: Op) -> Rule:
    return lookup(VJP, "VJP", op)


def _half_step(x: Node) -> Node:
    return unary(Op.HEAVISIDE, x, attr=0.5)


@vjp(Op.ADD)
def _add(g, out, x, y):
    return g, g


@vjp(Op.SUB)
def _sub(g, out, x, y):
    return g, -g


@vjp(Op.MUL)
def _mul(g, out, x, y):
    return g * y, g * x


@vjp(Op.DIV)
def _div(g, out, x, y):
    gx = g / y
    return gx, -(gx * out)


@vjp(Op.NEG)
def _neg(g, out, x):
    return (-g,)


@vjp(Op.POW)
def _pow(g, out, x, y):
    if y.op is Op.CONST:
        return g * (y * x ** const(y.attr - 1.0)), None
    return g * (y * x ** (y - 1.0)), g * (out * make(Op.LOG, x))


@vjp(Op.EXP)
def _exp(g, out, x):
    return (g * out,)


@vjp(Op.EXPM1)
def _expm1(g, out, x):
    return (g * (out + 1.0),)


@vjp(Op.LOG)
def _log(g, out, x):
    return (g / x,)


@vjp(Op.LOG1P)
def _log1p(g, out, x):
    return (g / (x + 1.0),)


@vjp(Op.SQRT)
def _sqrt(g, out, x):
    return (g / (out * 2.0),)


@vjp(Op.SIN)
def _sin(g, out, x):
    return (g * make(Op.COS, x),)


@vjp(Op.COS)
def _cos(g, out, x):
    return (-(g * make(Op.SIN, x)),)


@vjp(Op.TAN)
def _tan(g, out, x):
    return (g * (out * out + 1.0),)


@vjp(Op.TANH)
def _tanh(g, out, x):
    # g (1 - out^2) as one op, reading the forward output (as PyTorch's tanh_backward):
    # so a deep tanh chain's gradient costs under 3 forward passes.
    return (make(Op.TANH_BACKWARD, g, out),)


@vjp(Op.TANH_BACKWARD)
def _tanh_backward(h, out, g, y):
    return make(Op.TANH_BACKWARD, h, y), -(h * g * y * 2.0)


@vjp(Op.ASIN)
def _asin(g, out, x):
    return (g / make(Op.SQRT, 1.0 - x * x),)


@vjp(Op.ACOS)
def _acos(g, out, x):
    return (-(g / make(Op.SQRT, 1.0 - x * x)),)


@vjp(Op.ATAN)
def _atan(g, out, x):
    return (g / (x * x + 1.0),)


@vjp(Op.SINH)
def _sinh(g, out, x):
    return (g * make(Op.COSH, x),)


@vjp(Op.COSH)
def _cosh(g, out, x):
    return (g * make(Op.SINH, x),)


@vjp(Op.ASINH)
def _asinh(g, out, x):
    return (g / make(Op.SQRT, x * x + 1.0),)


@vjp(Op.ACOSH)
def _acosh(g, out, x):
    # SymPy's form: sqrt(x - 1) sqrt(x + 1) keeps its accuracy near 1, where x^2 - 1 cancels
    return (g / (make(Op.SQRT, x - 1.0) * make(Op.SQRT, x + 1.0)),)


@vjp(Op.ATANH)
def _atanh(g, out, x):
    return (g / (1.0 - x * x),)


def _erf_slope(x: Node) -> Node:
    """erf'(x) = 2 exp(-x^2) / sqrt(pi) (and erfc' = -erf')."""
    return make(Op.EXP, -(x * x)) * (2.0 / math.sqrt(math.pi))


@vjp(Op.ERF)
def _erf(g, out, x):
    return (g * _erf_slope(x),)


@vjp(Op.ERFC)
def _erfc(g, out, x):
    return (-(g * _erf_slope(x)),)


@vjp(Op.GAMMA)
def _gamma(g, out, x):
    return (g * (out * make(Op.POLYGAMMA, x, attr=0)),)


@vjp(Op.LGAMMA)
def _lgamma(g, out, x):
    return (g * make(Op.POLYGAMMA, x, attr=0),)


@vjp(Op.POLYGAMMA)
def _polygamma(g, out, x):
    return (g * make(Op.POLYGAMMA, x, attr=out.attr + 1),)


@vjp(Op.ATAN2)
def _atan2(g, out, y, x):
    scale = g / (x * x + y * y)
    return scale * x, -(scale * y)


@vjp(Op.MOD)
def _mod(g, out, x, y):
    # mod(x, y) = x - y floor(x / y): 1 and -floor(x / y), as torch.remainder's backward
    return g, -(g * make(Op.FLOOR, x / y))


@vjp(Op.SIGMOID)
def _sigmoid(g, out, x):
    return (g * (out * (1.0 - out)),)


@vjp(Op.SOFTPLUS)
def _softplus(g, out, x):
    return (g * make(Op.SIGMOID, x),)


@vjp(Op.RELU)
def _relu(g, out, x):
    # out > 0 exactly where x > 0; reading out spares matrix models a stored mask.
    return (where(out > 0.0, g, const(0.0)),)


@vjp(Op.ABS)
def _abs(g, out, x):
    return (g * make(Op.SIGN, x),)


@vjp(Op.MAX)
def _max(g, out, x, y):
    return g * _half_step(x - y), g * _half_step(y - x)


@vjp(Op.MIN)
def _min(g, out, x, y):
    return g * _half_step(y - x), g * _half_step(x - y)


@vjp(Op.WHERE)
def _where(g, out, cond, if_true, if_false):
    # The cotangent flows into each branch unmasked: the reverse driver masks
    # every contribution that leaves a branch, so the untaken branch's backward
    # code never runs and cannot leak a NaN (e.g. d/dx log(x) at x = 0).
    return None, g, g


@vjp(Op.MATMUL)
def _matmul(g, out, a, b):
    return matmul(g, transpose(b)), matmul(transpose(a), g)


@vjp(Op.TRANSPOSE)
def _transpose(g, out, x):
    return (transpose(g),)


@vjp(Op.BROADCAST)
def _broadcast(g, out, x):
    return (fit_shape(g, x.shape),)


@vjp(Op.SUM)
def _sum(g, out, x):
    return (broadcast_to(g, x.shape),)


@vjp(Op.LOGSUMEXP)
def _logsumexp(g, out, x):
    return (g * make(Op.EXP, x - out),)    # g times the softmax, from the forward value


@vjp(*sorted(NON_DIFFERENTIABLE - LEAVES, key=lambda op: op.name))
def _zero(g, out, *args):
    return (None,) * len(args)


# Rules that scale the cotangent by a local factor which can be infinite or NaN where
# the op's own value is fine (1/x at 0, log'(0), sqrt'(0), x**-2 at 0, exp overflow,
# cos(inf)): 0 * inf is NaN, so the reverse driver gates their contributions where
# the cotangent is structurally 0 (reverse.py, "Shared nodes"). The other rules keep
# an exact 0 a 0 (sums, selects, bounded factors such as sigmoid' and tanh').
UNBOUNDED_FACTOR = frozenset({Op.MUL, Op.DIV, Op.POW, Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P,
                              Op.SQRT, Op.SIN, Op.COS, Op.TAN, Op.ASIN, Op.ACOS, Op.SINH,
                              Op.COSH, Op.ACOSH, Op.ATANH, Op.GAMMA, Op.LGAMMA,
                              Op.POLYGAMMA, Op.ATAN2, Op.MOD})
