"""IR back to SymPy, so derivations can be shown as formulas.

One table maps each `Op` to a SymPy constructor. The walk is iterative (a
topological order, no recursion), so graphs of any depth convert. Products keep
their structure (`6*(3*x + 1)`, not `18*x + 6`): numeric factors are not
distributed over sums, so a chain-rule product still reads as one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.core.parameters import distribute

from symgrad import functions as fn
from symgrad.ir import BOOLEAN, LEAVES, Node, Op, toposort


class transpose(sp.Function):
    """A matrix's transpose, for display: `transpose(x)` as text, x^T in LaTeX."""

    nargs = 1

    def _latex(self, printer, exp=None):
        from sympy.printing.precedence import PRECEDENCE
        tex = printer.parenthesize(self.args[0], PRECEDENCE["Pow"]) + "^{T}"
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"


# Matrix ops in formulas: leaves of any shape are shown as plain symbols and
# elementwise ops as usual (NumPy semantics), so only the structural ops need
# names of their own. Broadcasting is implicit, as in NumPy.
_matmul = sp.Function("matmul")
_sum = sp.Function("sum")
_logsumexp = sp.Function("logsumexp")

Builder = Callable[..., sp.Basic]

_BUILDERS: dict[Op, Builder] = {
    Op.ADD: lambda a, b: a + b,
    Op.SUB: lambda a, b: a - b,
    Op.MUL: lambda a, b: a * b,
    Op.DIV: lambda a, b: a / b,
    Op.NEG: lambda a: -a,
    Op.POW: lambda a, b: a ** b,
    Op.EXP: sp.exp, Op.EXPM1: expm1, Op.LOG: sp.log, Op.LOG1P: log1p, Op.SQRT: sp.sqrt,
    Op.SIN: sp.sin, Op.COS: sp.cos, Op.TAN: sp.tan, Op.TANH: sp.tanh,
    Op.ASIN: sp.asin, Op.ACOS: sp.acos, Op.ATAN: sp.atan, Op.SINH: sp.sinh, Op.COSH: sp.cosh,
    Op.ASINH: sp.asinh, Op.ACOSH: sp.acosh, Op.ATANH: sp.atanh, Op.ERF: sp.erf,
    Op.ERFC: sp.erfc, Op.GAMMA: sp.gamma, Op.LGAMMA: sp.loggamma, Op.FLOOR: sp.floor,
    Op.CEIL: sp.ceiling, Op.ATAN2: sp.atan2, Op.MOD: sp.Mod,
    Op.TANH_BACKWARD: lambda g, out: g * (1 - out**2),
    Op.ABS: sp.Abs, Op.SIGN: sp.sign,
    Op.SIGMOID: fn.sigmoid, Op.RELU: fn.relu, Op.SOFTPLUS: fn.softplus,
    Op.MAX: sp.Max, Op.MIN: sp.Min,
    Op.LT: sp.Lt, Op.LE: sp.Le, Op.GT: sp.Gt, Op.GE: sp.Ge, Op.EQ: sp.Eq, Op.NE: sp.Ne,
    Op.AND: sp.And, Op.OR: sp.Or, Op.NOT: sp.Not,
    Op.WHERE: lambda c, a, b: sp.Piecewise((a, c), (b, True)),
    Op.MATMUL: _matmul, Op.TRANSPOSE: transpose,
}


def number(value: float) -> sp.Expr:
    """A float as SymPy shows it best: 2 not 2.0, 1/2 for binary fractions."""
    if math.isnan(value):
        return sp.nan
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    if value == int(value):
        return sp.Integer(int(value))
    exact = sp.Rational(value)
    return exact if exact.q <= 64 else sp.Float(value)


def build(n: Node, args: Sequence[sp.Basic]) -> sp.Basic:
    """The SymPy expression of one non-leaf node over its args' expressions."""
    if n.op is Op.HEAVISIDE:
        return sp.Heaviside(args[0], number(n.attr))
    if n.op is Op.BROADCAST:
        return args[0]
    if n.op is Op.POLYGAMMA:
        return sp.polygamma(n.attr, args[0])
    if n.op in (Op.SUM, Op.LOGSUMEXP):
        f = _sum if n.op is Op.SUM else _logsumexp
        return f(args[0]) if n.attr is None else f(args[0], sp.Integer(n.attr))
    return _BUILDERS[n.op](*args)


def leaf(n: Node, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
    if n.op is Op.CONST:
        return number(n.attr)
    if n.op is Op.SIZE:
        return sp.Symbol(n.attr, integer=True, positive=True)
    return symbols.get(n.attr) or sp.Symbol(n.attr, real=True)


def model_symbols(model) -> dict[str, sp.Symbol]:
    """Each param and input name -> the symbol formulas show for it (the model's own
    real symbol; a plain symbol of the same name for a matrix)."""
    return {s.name: s if isinstance(s, sp.Symbol) else sp.Symbol(s.name, real=True)
            for s in (*model.real_params, *model.real_inputs)}


def to_sympy(roots: Sequence[Node], symbols: Mapping[str, sp.Symbol],
             named: Mapping[Node, sp.Symbol] | None = None) -> list[sp.Basic]:
    """Each root as one SymPy expression.

    `symbols` maps PARAM/INPUT names to the model's symbols. A node in `named`
    appears as its symbol wherever it is used (a root that is named, too).
    """
    _, ref = _convert(roots, symbols, named or {})
    return [ref[r] for r in roots]


# Single-use nodes are inlined, but not without end: a node whose inlined
# expression would nest deeper than this gets a name too. That keeps formulas
# readable and keeps SymPy (whose printers and assumptions recurse) off deep trees.
MAX_INLINE_DEPTH = 24
_FAMILY = {Op.ADD: "sum", Op.SUB: "sum", Op.MUL: "product"}   # SymPy flattens these


def shared_names(roots: Sequence[Node], reserved: set[str], prefix: str = "h",
                 max_depth: int = MAX_INLINE_DEPTH) -> dict[Node, sp.Symbol]:
    """Names for the nodes worth naming: those used more than once (each arg slot and
    each root occurrence counts), and those nested deeper than `max_depth`; never
    leaves or conditions. Names follow the topological order, so they are
    deterministic (h1, h2, ...), skipping any name in `reserved`.
    """
    order = toposort(roots)
    uses: dict[Node, int] = {n: 0 for n in order}
    for r in roots:
        uses[r] += 1
    for n in order:
        for a in n.args:
            uses[a] += 1
    names: dict[Node, sp.Symbol] = {}
    depth: dict[Node, int] = {}          # nesting of the node's reference
    counter = 0
    for n in order:
        depth[n] = max((depth[a] + (_FAMILY.get(a.op) != _FAMILY.get(n.op) or
                                    a.op not in _FAMILY) for a in n.args), default=0)
        if n.op in LEAVES or n.op in BOOLEAN:
            continue
        if uses[n] < 2 and depth[n] <= max_depth:
            continue
        counter += 1
        while f"{prefix}{counter}" in reserved:
            counter += 1
        names[n] = sp.Symbol(f"{prefix}{counter}", real=True)
        depth[n] = 0
    return names


def with_definitions(roots: Sequence[Node], symbols: Mapping[str, sp.Symbol],
                     reserved: set[str]) -> tuple[list[tuple[sp.Symbol, sp.Basic]],
                                                  list[sp.Basic]]:
    """sympy.cse-style view of a DAG: (definitions `h = expr`, root expressions).

    Every shared intermediate is defined once, in order, in terms of earlier names;
    single-use nodes are inlined where they are used.
    """
    names = shared_names(roots, reserved)
    body, ref = _convert(roots, symbols, names)
    definitions = [(s, body[n]) for n, s in names.items()]
    return definitions, [ref[r] for r in roots]


def _convert(roots: Sequence[Node], symbols: Mapping[str, sp.Symbol],
             named: Mapping[Node, sp.Symbol]
             ) -> tuple[dict[Node, sp.Basic], dict[Node, sp.Basic]]:
    """(body of each node over its args' references, reference to each node).

    A node's reference is its name when it has one, else its body. Chains of
    additions are gathered into one term list and built by a single `Add`:
    adding terms one at a time re-sorts the sum each time (quadratic).
    """
    order = toposort(roots)
    uses: dict[Node, int] = {n: 0 for n in order}
    for n in [*roots, *(a for m in order for a in m.args)]:
        uses[n] += 1
    body: dict[Node, sp.Basic] = {}
    terms: dict[Node, list[sp.Basic]] = {}       # unbuilt sums

    def built(a: Node) -> sp.Basic:
        if a not in body:
            body[a] = sp.Add(*terms[a])
        return body[a]

    def ref(a: Node) -> sp.Basic:
        return named[a] if a in named else built(a)

    def terms_of(a: Node) -> list[sp.Basic]:
        if a in terms and a not in named:
            return terms.pop(a) if uses[a] == 1 and a not in body else list(terms[a])
        return [ref(a)]

    with distribute(False):
        for n in order:
            if n.op in LEAVES:
                body[n] = leaf(n, symbols)
            elif n.op in (Op.ADD, Op.SUB):
                left, right = terms_of(n.args[0]), terms_of(n.args[1])
                if n.op is Op.SUB:
                    right = [-t for t in right]
                left.extend(right)
                terms[n] = left
            else:
                body[n] = build(n, [ref(a) for a in n.args])
        for n in named:
            built(n)
        refs = {n: ref(n) for n in order if n in named or n in body or n in terms}
    return body, refs
