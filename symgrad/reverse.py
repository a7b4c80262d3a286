"""Reverse-mode accumulation (backpropagation) over the DAG.

One topological order, then one sweep from the output back: each node's
cotangent is complete when it is reached (all its users come later in the
order), its rule from `rules.VJP` turns it into contributions for its args,
and those are summed. Only nodes on a path to a `wrt` node are visited. The
backward nodes are ordinary interned IR nodes, so the result is one graph
in which backward code reads forward values.

Branches: a contribution made inside a `WHERE` branch and flowing to a node
that lives outside it is wrapped in `WHERE(cond, contribution, 0)`, so the
backward code of an untaken branch is never evaluated either.

Shared nodes: a node read by several branches (`1/x` in the first and the last
branch of a Piecewise) lives where any of them may be taken, and its cotangent
is a sum of masked contributions, exactly 0 where none is taken. Its rule would
still multiply that 0 by its local derivative, which may be infinite there
(`-1/x**2` at x = 0), and 0 * inf is NaN. So the sweep also tracks where each
cotangent may be nonzero (its activity: a float indicator built from the same
masks, > 0 where some use is taken), and the contributions of a rule that scales
its cotangent by such a factor are gated by it: `WHERE(active, contribution, 0)`.
The gate is an ordinary WHERE, so the schedule guards the gated code like a
branch and it never runs where no use of the node is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symgrad.ir import STRUCTURAL, Node, Op, const, fit_shape, toposort, where
from symgrad.passes.regions import Region, Regions
from symgrad.rules import UNBOUNDED_FACTOR, rule_for


@dataclass(frozen=True)
class BackwardStep:
    """One node's turn in the backward sweep, for inspection: its complete
    cotangent `g` and the contribution sent to each arg (None: none)."""

    node: Node
    g: Node
    contributions: tuple[Node | None, ...]


def reverse_mode(out: Node, wrt: Sequence[Node], trace: list[BackwardStep] | None = None
                 ) -> list[Node | None]:
    """d(out)/d(w) for each w in wrt (None where out does not depend on w).

    With `trace`, appends one `BackwardStep` per visited non-leaf node, in sweep order.
    """
    order = toposort([out])
    targets = set(wrt)
    reaches: dict[Node, bool] = {}
    for n in order:
        reaches[n] = n in targets or any(reaches[a] for a in n.args)
    regions = Regions([out])
    ct: dict[Node, Node] = {out: const(1.0)}
    active: dict[Node, Node] = {}      # where ct may be nonzero; ALWAYS when absent
    result: dict[Node, Node] = {}
    for n in reversed(order):
        g = ct.pop(n, None)
        here = active.pop(n, ALWAYS)
        if g is None or not reaches[n]:
            continue
        if n in targets:
            # A param read only inside a branch lives in that branch's region, but
            # its gradient is an output (root region): zero it where the branch is
            # not taken, so the untaken branch's backward code never runs.
            result[n] = _mask(g, regions.of[n], None)
        if not n.args:
            continue
        contributions = rule_for(n.op)(g, n, *n.args)
        if here is not ALWAYS and n.op in UNBOUNDED_FACTOR:
            contributions = [None if c is None else _gate(here, c) for c in contributions]
        if trace is not None:
            trace.append(BackwardStep(n, g, tuple(contributions)))
        for i, (arg, c) in enumerate(zip(n.args, contributions, strict=True)):
            if c is None or not reaches[arg]:
                continue
            inner, outer = regions.arg_region(n, i), regions.of[arg]
            c = _mask(fit_shape(c, arg.shape), inner, outer)
            ct[arg] = ct[arg] + c if arg in ct else c
            a = _mask(_activity(n, here, arg), inner, outer)
            active[arg] = a if arg not in active else _either(active[arg], a)
    return [result.get(w) for w in wrt]


def _mask(c: Node, inner: Region | None, outer: Region | None) -> Node:
    """Zero `c` outside `inner`, up to `outer` (an ancestor of `inner`)."""
    zero = const(0.0)
    while inner is not outer:
        assert inner is not None, "a contribution left the root region"
        c = where(inner.cond, c, zero) if inner.branch else where(inner.cond, zero, c)
        inner = inner.parent
    return c


ALWAYS = const(1.0)     # the activity of a cotangent that may be nonzero anywhere


def _activity(user: Node, user_active: Node, arg: Node) -> Node:
    """Where the contribution of `user` to `arg` may be nonzero, before region masks:
    where the user's own cotangent may be, for an elementwise user of the arg's shape;
    ALWAYS for products, reductions and broadcasts (they mix entries)."""
    if user.op in STRUCTURAL or arg.shape != user.shape:
        return ALWAYS
    return user_active


def _either(a: Node, b: Node) -> Node:
    return ALWAYS if ALWAYS in (a, b) else a + b


def _gate(active: Node, c: Node) -> Node:
    """`c` where `active` says the cotangent may be nonzero, else 0."""
    zero = const(0.0)
    if active.op is Op.WHERE:       # one mask: reuse its condition (and its guard)
        cond, if_true, if_false = active.args
        if if_true is ALWAYS and _is_zero(if_false):
            return where(cond, c, zero)
        if _is_zero(if_true) and if_false is ALWAYS:
            return where(cond, zero, c)
    return where(active > 0.0, c, zero)


def _is_zero(n: Node) -> bool:
    return n.op is Op.CONST and n.attr == 0.0
