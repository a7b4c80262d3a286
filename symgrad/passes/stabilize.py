"""Stability rewrites: replace formulas that overflow or cancel by stable ops.

    log(sigmoid(x))          -> -softplus(-x)
    log(1 - sigmoid(x))      -> -softplus(x)
    log(1 + exp(x))          -> softplus(x)
    log(sum(exp(x)))         -> logsumexp(x)       (max shifted out)
    log(1 + x)               -> log1p(x)
    exp(x) - 1               -> expm1(x)
    1 / (1 + exp(-x))        -> sigmoid(x)
    k exp(x) / (1 + exp(x))  -> k sigmoid(x)
    k exp(x) / (1 + exp(x))^2 -> k sigmoid(x) sigmoid(-x)

Each left side equals its right side as real functions, so the rewrite is sound;
the right sides are finite wherever the result is (for logits up to +-1000,
where the left sides give inf or NaN). The pass runs on the forward graph
before differentiation and on the gradients after it (sympy.diff produces
some of these forms itself, e.g. exp(x)/(1 + exp(x)) from log(1 + exp(x))).
It reports which rules fired, for the inspection tools.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from symgrad.ir import Node, Op, const, make, mul, neg, node, toposort

Rule = Callable[[Node], Node | None]
RULES: list[tuple[str, Rule]] = []


def rule(name: str):
    def register(fn: Rule) -> Rule:
        RULES.append((name, fn))
        return fn
    return register


def _is(n: Node, value: float) -> bool:
    return n.op is Op.CONST and n.attr == value


def _one_plus(n: Node) -> Node | None:
    """x when n is 1 + x or x + 1."""
    if n.op is Op.ADD:
        a, b = n.args
        if _is(a, 1.0):
            return b
        if _is(b, 1.0):
            return a
    return None


@rule("log(sigmoid(x)) -> -softplus(-x)")
def _log_sigmoid(n):
    if n.op is Op.LOG and n.args[0].op is Op.SIGMOID:
        return neg(make(Op.SOFTPLUS, neg(n.args[0].args[0])))


@rule("log(1 - sigmoid(x)) -> -softplus(x)")
def _log_one_minus_sigmoid(n):
    if n.op is Op.LOG and n.args[0].op is Op.SUB:
        a, b = n.args[0].args
        if _is(a, 1.0) and b.op is Op.SIGMOID:
            return neg(make(Op.SOFTPLUS, b.args[0]))


@rule("log(1 + exp(x)) -> softplus(x)")
def _softplus(n):
    if n.op is Op.LOG and (x := _one_plus(n.args[0])) is not None and x.op is Op.EXP:
        return make(Op.SOFTPLUS, x.args[0])


@rule("log(sum(exp(x))) -> logsumexp(x)")
def _logsumexp(n):
    if n.op is Op.LOG and n.args[0].op is Op.SUM and n.args[0].args[0].op is Op.EXP:
        return make(Op.LOGSUMEXP, n.args[0].args[0].args[0], attr=n.args[0].attr)


@rule("log(1 + x) -> log1p(x)")
def _log1p(n):
    if n.op is Op.LOG and (x := _one_plus(n.args[0])) is not None and x.op is not Op.EXP:
        return make(Op.LOG1P, x)


@rule("exp(x) - 1 -> expm1(x)")
def _expm1(n):
    if n.op is Op.SUB and _is(n.args[1], 1.0) and n.args[0].op is Op.EXP:
        return make(Op.EXPM1, n.args[0].args[0])


@rule("1 / (1 + exp(-x)) -> sigmoid(x)")
def _sigmoid(n):
    if n.op is Op.DIV and _is(n.args[0], 1.0):
        x = _one_plus(n.args[1])
        if x is not None and x.op is Op.EXP and x.args[0].op is Op.NEG:
            return make(Op.SIGMOID, x.args[0].args[0])


def _without(product: Node, factor: Node) -> Node | None:
    """product / factor when `factor` is one of the factors of a MUL chain (1 if equal)."""
    if product is factor:
        return const(1.0)
    if product.op is not Op.MUL:
        return None
    a, b = product.args
    if b is factor:
        return a
    if a is factor:
        return b
    for i, part in enumerate((a, b)):
        rest = _without(part, factor)
        if rest is not None:
            return mul(rest, b) if i == 0 else mul(a, rest)
    return None


@rule("k exp(x) / (1 + exp(x)) -> k sigmoid(x)")
def _sigmoid_ratio(n):
    if n.op is Op.DIV and (e := _one_plus(n.args[1])) is not None and e.op is Op.EXP:
        k = _without(n.args[0], e)
        if k is not None:
            return mul(k, make(Op.SIGMOID, e.args[0]))


@rule("k exp(x) / (1 + exp(x))^2 -> k sigmoid(x) sigmoid(-x)")
def _sigmoid_derivative(n):
    if n.op is Op.DIV and n.args[1].op is Op.POW and _is(n.args[1].args[1], 2.0):
        e = _one_plus(n.args[1].args[0])
        if e is not None and e.op is Op.EXP:
            k = _without(n.args[0], e)
            if k is not None:
                u = e.args[0]
                return mul(k, mul(make(Op.SIGMOID, u), make(Op.SIGMOID, neg(u))))


def stabilize(roots: Sequence[Node | None]) -> tuple[list[Node | None], Counter]:
    """The roots rewritten bottom-up until no rule applies; and how often each rule fired."""
    fired: Counter = Counter()
    new: dict[Node, Node] = {}
    for n in toposort([r for r in roots if r is not None]):
        rebuilt = n if not n.args else _rebuild(n, [new[a] for a in n.args])
        for _ in range(8):          # rules shrink the node; a few rounds reach a fixpoint
            for name, fn in RULES:
                replacement = fn(rebuilt)
                if replacement is not None:
                    fired[name] += 1
                    rebuilt = replacement
                    break
            else:
                break
        new[n] = rebuilt
    return [None if r is None else new[r] for r in roots], fired


def _rebuild(n: Node, args: list[Node]) -> Node:
    if all(a is b for a, b in zip(args, n.args)):
        return n
    if n.op is Op.WHERE:
        return node(Op.WHERE, *args)
    return make(n.op, *args, attr=n.attr)
