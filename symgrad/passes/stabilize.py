"""Stability rewrites: replace formulas that overflow or cancel by stable ops.

Phase 1 recognises functions written out by hand (or by sympy.diff) and fuses them:

    k / (m (1 + exp(-x)))                -> k sigmoid(x) / m
    k / (m (1 + exp(-x))^2)              -> k sigmoid(x)^2 / m
    (exp(x) - exp(-x)) / (exp(x) + exp(-x)) -> tanh(x)
    k exp(x) / (m (1 + exp(x)))          -> k sigmoid(x) / m
    k exp(x) / (m (1 + exp(x))^2)        -> k sigmoid(x) sigmoid(-x) / m
    log(sigmoid(x))                      -> -softplus(-x)
    log(1 - sigmoid(x))                  -> -softplus(x)
    log(1 + exp(x))                      -> softplus(x)
    log(sum(exp(X)))                     -> logsumexp(X)     (matrices; max shifted out)
    log(exp(x1) + ... + exp(xk))         -> m + log(sum exp(xi - m)), m = max(x1, ..., xk)
    k exp(xi) / (exp(x1) + ... + exp(xk)) -> k exp((xi - m) - log(sum exp(xj - m)))
    log(1 + x), log(1 - x)               -> log1p(x), log1p(-x)
    exp(x) - 1, 1 - exp(x)               -> expm1(x), -expm1(x)
    softplus(x) - y x                    -> y softplus(-x) + (1 - y) softplus(x)

Phase 2, on phase 1's result, removes cancellations that remain:

    1 - sigmoid(x), sigmoid(x) - 1       -> sigmoid(-x), -sigmoid(-x)
    sigmoid(x) - y                       -> (1 - y) sigmoid(x) - y sigmoid(-x)
    k s / (m s)                          -> k / m           (s = sigmoid(x) or exp(x): never 0)
    k / (m x^c)                          -> k x^(-c) / m    (c > 1, so that d/dx at 0 is -inf
                                                             as for torch.pow, not -inf * 0)

Each left side equals its right side as a real function, so every rewrite is
sound; the right sides are finite and accurate wherever the result is (for
logits up to +-1000, where the left sides give inf, NaN or 0 through
cancellation). Sums of exponentials count `c exp(x)` and a constant c > 0 as
exp(x + log c). Phase 1 runs first everywhere so that a whole pattern
(log(1 - sigmoid(x))) is recognised before phase 2 rewrites its inside.

The pass runs on the forward graph before differentiation and on the gradients
after it (sympy.diff produces several of these forms itself, e.g.
exp(x)/(1 + exp(x)) from log(1 + exp(x))), and reports which rules fired, for
the inspection tools. It is iterative, idempotent (a rewritten graph is left as
it is), and linear in the graph size: factor searches stop after `MAX_FACTORS`
factors and sums of exponentials are flattened once per node.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from symgrad.ir import (
    Node,
    Op,
    add,
    const,
    div,
    make,
    mul,
    neg,
    node,
    pow_,
    sub,
    toposort,
)
from symgrad.walk import bottom_up

MAX_FACTORS = 32        # factors of a product searched for a match (patterns are small)

Rule = Callable[[Node, "_Memo"], Node | None]
PHASES: tuple[dict[Op, list[tuple[str, Rule]]], ...] = ({}, {})
RULES: list[str] = []   # every rule's name, phase 1 first, in the order they are tried
MATCHED_OPS = (Op.ADD, Op.SUB, Op.DIV, Op.LOG)     # `_Phase.apply` looks at no others


def rule(phase: int, name: str, *ops: Op):
    """Register a rule of `phase` (1 or 2), tried on nodes whose op is in `ops`."""
    def register(fn: Rule) -> Rule:
        for op in ops:
            assert op in MATCHED_OPS, f"add {op} to MATCHED_OPS and to _Phase.apply"
            PHASES[phase - 1].setdefault(op, []).append((name, fn))
        RULES.append(name)
        return fn
    return register


class _Memo:
    """Per-pass caches, so that a sum shared by many nodes is flattened once."""

    def __init__(self):
        self.exp_terms: dict[Node, tuple[Node, ...] | None] = {}


# ------------------------------------------------------------------ matching

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


def _one_minus(n: Node) -> Node | None:
    """x when n is 1 - x (or 1 + (-x), -x + 1)."""
    if n.op is Op.SUB and _is(n.args[0], 1.0):
        return n.args[1]
    if n.op is Op.ADD:
        a, b = n.args
        if _is(a, 1.0) and b.op is Op.NEG:
            return b.args[0]
        if _is(b, 1.0) and a.op is Op.NEG:
            return a.args[0]
    return None


def _minus_one(n: Node) -> Node | None:
    """x when n is x - 1 (or x + (-1), -1 + x)."""
    if n.op is Op.SUB and _is(n.args[1], 1.0):
        return n.args[0]
    if n.op is Op.ADD:
        a, b = n.args
        if _is(a, -1.0):
            return b
        if _is(b, -1.0):
            return a
    return None


def _difference(n: Node) -> tuple[Node, Node] | None:
    """(a, b) when n is a - b (or a + (-b), -b + a)."""
    if n.op is Op.SUB:
        return n.args[0], n.args[1]
    if n.op is Op.ADD:
        a, b = n.args
        if b.op is Op.NEG:
            return a, b.args[0]
        if a.op is Op.NEG:
            return b, a.args[0]
    return None


def _factors(product: Node) -> list[Node]:
    """The factors of a MUL tree, left to right (at most MAX_FACTORS of them are opened)."""
    out: list[Node] = []
    stack = [product]
    opened = 0
    while stack:
        n = stack.pop()
        if n.op is Op.MUL and opened < MAX_FACTORS:
            opened += 1
            stack.extend(reversed(n.args))
        else:
            out.append(n)
    return out


def _without(product: Node, factor: Node) -> Node | None:
    """product / factor when `factor` is one of the factors of a MUL tree (1 if equal)."""
    if product is factor:
        return const(1.0)
    # Depth-first, left first, remembering the path of (MUL node, arg index) to the factor.
    stack: list[tuple[Node, tuple[tuple[Node, int], ...]]] = [(product, ())]
    opened = 0
    while stack:
        n, path = stack.pop()
        if n is factor:
            last, i = path[-1]
            rest = last.args[1 - i]
            for m, j in reversed(path[:-1]):
                rest = mul(rest, m.args[1]) if j == 0 else mul(m.args[0], rest)
            return rest
        if n.op is Op.MUL and opened < MAX_FACTORS:
            opened += 1
            stack.append((n.args[1], path + ((n, 1),)))
            stack.append((n.args[0], path + ((n, 0),)))
    return None


def _exp_factor(product: Node, exponent: Node) -> Node | None:
    """The factor exp(exponent) of `product`, if it has one."""
    for f in _factors(product):
        if f.op is Op.EXP and f.args[0] is exponent:
            return f
    return None


def _exponent_of(term: Node) -> Node | None:
    """x when term is exp(x), c exp(x) (as x + log c) or a constant c > 0 (as log c)."""
    if term.op is Op.EXP:
        return term.args[0]
    if term.op is Op.CONST and term.attr > 0.0 and math.isfinite(term.attr):
        return const(math.log(term.attr))
    if term.op is Op.MUL:
        a, b = term.args
        if b.op is Op.CONST:
            a, b = b, a
        if a.op is Op.CONST and a.attr > 0.0 and math.isfinite(a.attr) and b.op is Op.EXP:
            return add(b.args[0], const(math.log(a.attr)))
    return None


def _terms(n: Node) -> Iterator[Node]:
    """The terms of an ADD tree, left to right."""
    stack = [n]
    while stack:
        t = stack.pop()
        if t.op is Op.ADD:
            stack.extend(reversed(t.args))
        else:
            yield t


def _exp_terms(n: Node, memo: _Memo) -> tuple[Node, ...] | None:
    """The exponents x1..xk when n is a sum exp(x1) + ... + exp(xk) of k >= 2 terms, not
    all constant, that is not already max-shifted; None otherwise."""
    if n.op is not Op.ADD:
        return None
    if n in memo.exp_terms:
        return memo.exp_terms[n]
    exponents: list[Node] | None = []
    for t in _terms(n):
        x = _exponent_of(t)
        if x is None:
            exponents = None
            break
        exponents.append(x)
    if exponents is not None and (all(x.op is Op.CONST for x in exponents)
                                  or _already_shifted(exponents)):
        exponents = None
    memo.exp_terms[n] = None if exponents is None else tuple(exponents)
    return memo.exp_terms[n]


def _already_shifted(exponents: list[Node]) -> bool:
    """Whether every exponent is x - m (or -m) for one m = max(...): our own output."""
    shifts = {x.args[1] if x.op is Op.SUB else x.args[0] if x.op is Op.NEG else None
              for x in exponents}
    (m,) = shifts if len(shifts) == 1 else (None,)
    return m is not None and m.op is Op.MAX


def _logsumexp(exponents: Sequence[Node]) -> tuple[Node, list[Node], Node]:
    """(m, x_i - m for each i, log(sum_i exp(x_i - m))) with m the max of the x_i."""
    m = exponents[0]
    for x in exponents[1:]:
        m = make(Op.MAX, m, x)
    shifted = [sub(x, m) for x in exponents]
    total = make(Op.EXP, shifted[0])
    for x in shifted[1:]:
        total = add(total, make(Op.EXP, x))
    return m, shifted, make(Op.LOG, total)


def _one_plus_exp_factor(den: Node) -> tuple[Node, Node] | None:
    """(factor 1 + exp(u) of den, exp(u))."""
    for f in _factors(den):
        e = _one_plus(f)
        if e is not None and e.op is Op.EXP:
            return f, e
    return None


# ------------------------------------------------------------------ phase 1

@rule(1, "(exp(x) - exp(-x)) / (exp(x) + exp(-x)) -> tanh(x)", Op.DIV)
def _tanh(n, memo):
    num, den = _difference(n.args[0]), n.args[1]
    if num is None or den.op is not Op.ADD:
        return None
    (p, q), (r, s) = num, den.args
    if {p, q} != {r, s} or p.op is not Op.EXP or q.op is not Op.EXP:
        return None
    x, y = p.args[0], q.args[0]
    if y is neg(x):
        return make(Op.TANH, x)
    return None


def _one_plus_exp_squared(den: Node) -> tuple[Node, Node] | None:
    """(factor (1 + exp(u))^2 of den, exp(u))."""
    for f in _factors(den):
        if f.op is Op.POW and _is(f.args[1], 2.0):
            e = _one_plus(f.args[0])
            if e is not None and e.op is Op.EXP:
                return f, e
    return None


@rule(1, "k exp(x) / (m (1 + exp(x))^2) -> k sigmoid(x) sigmoid(-x) / m", Op.DIV)
def _sigmoid_derivative(n, memo):
    num, den = n.args
    found = _one_plus_exp_squared(den)
    if found is not None and (k := _without(num, found[1])) is not None:
        u = found[1].args[0]
        both = mul(make(Op.SIGMOID, u), make(Op.SIGMOID, neg(u)))
        return div(mul(k, both), _without(den, found[0]))
    return None


@rule(1, "k / (m (1 + exp(-x))^2) -> k sigmoid(x)^2 / m", Op.DIV)
def _sigmoid_squared(n, memo):
    num, den = n.args
    found = _one_plus_exp_squared(den)
    if found is not None:
        s = make(Op.SIGMOID, neg(found[1].args[0]))
        return div(mul(num, mul(s, s)), _without(den, found[0]))
    return None


@rule(1, "k exp(x) / (m (1 + exp(x))) -> k sigmoid(x) / m", Op.DIV)
def _sigmoid_ratio(n, memo):
    num, den = n.args
    found = _one_plus_exp_factor(den)
    if found is not None and (k := _without(num, found[1])) is not None:
        return div(mul(k, make(Op.SIGMOID, found[1].args[0])), _without(den, found[0]))
    return None


@rule(1, "k exp(xi) / (exp(x1) + ... + exp(xk)) -> k exp(xi - logsumexp(x))", Op.DIV)
def _softmax(n, memo):
    num, den = n.args
    exponents = _exp_terms(den, memo)
    if exponents is None:
        return None
    # exp(u) / sum = exp(u - logsumexp) for any u; u is safe (<= about the max) when it
    # is a term's own exponent, with or without the term's constant factor.
    candidates = set(exponents) | {t.args[0] for t in _terms(den) if t.op is Op.EXP}
    candidates |= {f.args[0] for t in _terms(den) if t.op is Op.MUL
                   for f in t.args if f.op is Op.EXP}
    for f in _factors(num):
        if f.op is Op.EXP and f.args[0] in candidates:
            m, _, log_total = _logsumexp(exponents)
            return mul(_without(num, f), make(Op.EXP, sub(sub(f.args[0], m), log_total)))
    return None


@rule(1, "k / (m (1 + exp(-x))) -> k sigmoid(x) / m", Op.DIV)
def _sigmoid(n, memo):
    num, den = n.args
    found = _one_plus_exp_factor(den)
    if found is None:
        return None
    f, e = found
    return div(mul(num, make(Op.SIGMOID, neg(e.args[0]))), _without(den, f))


@rule(1, "log(sigmoid(x)) -> -softplus(-x)", Op.LOG)
def _log_sigmoid(n, memo):
    if n.args[0].op is Op.SIGMOID:
        return neg(make(Op.SOFTPLUS, neg(n.args[0].args[0])))
    return None


@rule(1, "log(1 - sigmoid(x)) -> -softplus(x)", Op.LOG)
def _log_one_minus_sigmoid(n, memo):
    s = _one_minus(n.args[0])
    if s is not None and s.op is Op.SIGMOID:
        return neg(make(Op.SOFTPLUS, s.args[0]))
    return None


@rule(1, "log(1 + exp(x)) -> softplus(x)", Op.LOG)
def _softplus(n, memo):
    if (x := _one_plus(n.args[0])) is not None and x.op is Op.EXP:
        return make(Op.SOFTPLUS, x.args[0])
    return None


@rule(1, "log(sum(exp(x))) -> logsumexp(x)", Op.LOG)
def _matrix_logsumexp(n, memo):
    s = n.args[0]
    if s.op is Op.SUM and s.args[0].op is Op.EXP:
        return make(Op.LOGSUMEXP, s.args[0].args[0], attr=s.attr)
    return None


@rule(1, "log(exp(x1) + ... + exp(xk)) -> logsumexp(x) (max shifted out)", Op.LOG)
def _scalar_logsumexp(n, memo):
    exponents = _exp_terms(n.args[0], memo)
    if exponents is None:
        return None
    m, _, log_total = _logsumexp(exponents)
    return add(m, log_total)


@rule(1, "log(1 + x) -> log1p(x)", Op.LOG)
def _log1p(n, memo):
    if (x := _one_plus(n.args[0])) is not None:
        return make(Op.LOG1P, x)
    return None


@rule(1, "log(1 - x) -> log1p(-x)", Op.LOG)
def _log1p_neg(n, memo):
    if (x := _one_minus(n.args[0])) is not None:
        return make(Op.LOG1P, neg(x))
    return None


@rule(1, "exp(x) - 1 -> expm1(x)", Op.SUB, Op.ADD)
def _expm1(n, memo):
    if (e := _minus_one(n)) is not None and e.op is Op.EXP:
        return make(Op.EXPM1, e.args[0])
    return None


@rule(1, "1 - exp(x) -> -expm1(x)", Op.SUB, Op.ADD)
def _one_minus_exp(n, memo):
    if (e := _one_minus(n)) is not None and e.op is Op.EXP:
        return neg(make(Op.EXPM1, e.args[0]))
    return None


@rule(1, "softplus(x) - y x -> y softplus(-x) + (1 - y) softplus(x)", Op.SUB, Op.ADD)
def _bce(n, memo):
    # Both terms are >= 0 for 0 <= y <= 1, so nothing cancels: softplus(x) - x for
    # y = 1 and x = 40 is 4e-18, which the left side rounds to 0.
    parts = _difference(n)
    if parts is None:
        return None
    s, yx = parts
    if s.op is not Op.SOFTPLUS or yx.op is not Op.MUL:
        return None
    x = s.args[0]
    a, b = yx.args
    y = b if a is x else a if b is x else None
    if y is None:
        return None
    return add(mul(y, make(Op.SOFTPLUS, neg(x))), mul(sub(const(1.0), y), s))


# ------------------------------------------------------------------ phase 2

@rule(2, "1 - sigmoid(x) -> sigmoid(-x)", Op.SUB, Op.ADD)
def _one_minus_sigmoid(n, memo):
    s = _one_minus(n)
    if s is not None and s.op is Op.SIGMOID:
        return make(Op.SIGMOID, neg(s.args[0]))
    return None


@rule(2, "sigmoid(x) - 1 -> -sigmoid(-x)", Op.SUB, Op.ADD)
def _sigmoid_minus_one(n, memo):
    s = _minus_one(n)
    if s is not None and s.op is Op.SIGMOID:
        return neg(make(Op.SIGMOID, neg(s.args[0])))
    return None


@rule(2, "sigmoid(x) - y -> (1 - y) sigmoid(x) - y sigmoid(-x)", Op.SUB, Op.ADD)
def _sigmoid_minus(n, memo):
    # sympy.diff of BCE gives sigmoid(x) - y; for a label y = 1 and x = 40 that is
    # -4e-18, which the left side rounds to 0. Both right-hand terms are >= 0 for
    # 0 <= y <= 1, so only a true root (sigmoid(x) = y) still cancels.
    parts = _difference(n)
    if parts is None:
        return None
    a, b = parts
    if a.op is Op.SIGMOID and b.op is not Op.SIGMOID and b.op is not Op.CONST:
        s, y, sign = a, b, 1.0
    elif b.op is Op.SIGMOID and a.op is not Op.SIGMOID and a.op is not Op.CONST:
        s, y, sign = b, a, -1.0
    else:
        return None
    x = s.args[0]
    result = sub(mul(sub(const(1.0), y), s), mul(y, make(Op.SIGMOID, neg(x))))
    return result if sign > 0 else neg(result)


@rule(2, "k s / (m s) -> k / m (s = sigmoid(x) or exp(x), never 0)", Op.DIV)
def _cancel(n, memo):
    num, den = n.args
    for f in _factors(den):
        if f.op in (Op.SIGMOID, Op.EXP) and (k := _without(num, f)) is not None:
            return div(k, _without(den, f))
    return None


@rule(2, "k / (m x^c) -> k x^(-c) / m (c > 1)", Op.DIV)
def _reciprocal_power(n, memo):
    num, den = n.args
    for f in _factors(den):
        if f.op is Op.POW and f.args[1].op is Op.CONST and f.args[1].attr > 1.0:
            power = pow_(f.args[0], const(-f.args[1].attr))
            return div(mul(num, power), _without(den, f))
    return None


# ------------------------------------------------------------------- driver

def stabilize(roots: Sequence[Node | None]) -> tuple[list[Node | None], Counter]:
    """The roots rewritten bottom-up by phase 1, then by phase 2; and how often each
    rule fired.

    One walk: each node is rewritten by phase 1 once its args are, then phase 2
    rewrites that result (and any node phase 1 created in it) once their args are.
    """
    first, second = _Phase(PHASES[0]), _Phase(PHASES[1])
    for n in toposort([r for r in roots if r is not None]):
        first.new[n] = first.apply(n if not n.args else _rebuild(n, [first.new[a]
                                                                      for a in n.args]))
        second.rewrite(first.new[n])
    fired = first.fired + second.fired
    return [None if r is None else second.new[first.new[r]] for r in roots], fired




class _Phase:
    def __init__(self, rules: dict[Op, list[tuple[str, Rule]]]):
        self.rules = rules
        self.new: dict[Node, Node] = {}
        self.fired: Counter = Counter()
        self.memo = _Memo()

    def apply(self, n: Node) -> Node:
        """n after this phase's rules, applied at its root until none fires."""
        for _ in range(8):          # rules shrink the node; a few rounds reach a fixpoint
            op = n.op               # identity tests first: Enum hashing is slow in bulk
            if op is Op.ADD or op is Op.SUB:
                if not _additive_candidate(n):
                    return n
            elif op is not Op.DIV and op is not Op.LOG:
                return n
            for name, fn in self.rules.get(op, ()):
                replacement = fn(n, self.memo)
                if replacement is not None and replacement is not n:
                    self.fired[name] += 1
                    n = replacement
                    break
            else:
                return n
        return n

    def rewrite(self, root: Node) -> None:
        """Rewrite root and every node below it not yet rewritten (args first)."""
        new = self.new
        if root in new:
            return
        for a in root.args:
            if a not in new:
                break
        else:                       # the common case: the args are done
            new[root] = self.apply(root if not root.args else
                                   _rebuild(root, [new[a] for a in root.args]))
            return
        bottom_up(root, lambda n: n.args, new, lambda n: self.apply(
            n if not n.args else _rebuild(n, [new[a] for a in n.args])))


def _additive_candidate(n: Node) -> bool:
    """Sums and differences only match when an operand (or its negation) is an exp,
    a sigmoid or a softplus."""
    for a in n.args:
        op = a.args[0].op if a.op is Op.NEG else a.op
        if op is Op.EXP or op is Op.SIGMOID or op is Op.SOFTPLUS:
            return True
    return False


def _rebuild(n: Node, args: list[Node]) -> Node:
    if tuple(args) == n.args:       # identity comparison: Node equality is identity
        return n
    if n.op is Op.WHERE:
        return node(Op.WHERE, *args)
    return make(n.op, *args, attr=n.attr)
