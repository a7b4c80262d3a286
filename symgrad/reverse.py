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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symgrad.ir import Node, const, fit_shape, toposort, where
from symgrad.passes.regions import Region, Regions
from symgrad.rules import rule_for


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
    result: dict[Node, Node] = {}
    for n in reversed(order):
        g = ct.pop(n, None)
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
        if trace is not None:
            trace.append(BackwardStep(n, g, tuple(contributions)))
        for i, (arg, c) in enumerate(zip(n.args, contributions, strict=True)):
            if c is None or not reaches[arg]:
                continue
            c = _mask(fit_shape(c, arg.shape), regions.arg_region(n, i), regions.of[arg])
            ct[arg] = ct[arg] + c if arg in ct else c
    return [result.get(w) for w in wrt]


def _mask(c: Node, inner: Region | None, outer: Region | None) -> Node:
    """Zero `c` outside `inner`, up to `outer` (an ancestor of `inner`)."""
    zero = const(0.0)
    while inner is not outer:
        assert inner is not None, "a contribution left the root region"
        c = where(inner.cond, c, zero) if inner.branch else where(inner.cond, zero, c)
        inner = inner.parent
    return c
