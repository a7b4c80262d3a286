"""Forward-mode accumulation over the DAG: tangents pushed from the leaves to the roots.

One topological order, one sweep: each node's tangent is its JVP rule applied to its
args' tangents (`symgrad.jvp`). Seeds give the tangent of chosen leaves (a param's
direction); every other leaf has tangent zero, and a node whose args all have zero
tangents has zero tangent (None), so only nodes downstream of a seed get tangent code.

Applied to a gradient graph (which is itself IR), this is forward-over-reverse: the
tangent of the gradient in direction v is the Hessian-vector product H v, at about
the cost of a few gradients, without ever forming H.

Branches need no masks: a WHERE's tangent is a WHERE of its branches' tangents, so a
tangent computed inside a branch is read only there, and the schedule guards it like
the branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from symgrad.ir import Node, toposort
from symgrad.jvp import jvp_rule_for


def forward_mode(roots: Sequence[Node | None], seeds: Mapping[Node, Node]
                 ) -> list[Node | None]:
    """The tangent of each root (None: zero, or a None root) when each leaf in `seeds`
    has the given tangent (a node of its shape) and every other leaf has zero."""
    present = [r for r in roots if r is not None]
    tangent: dict[Node, Node | None] = {}
    for n in toposort(present):
        if n in seeds:
            tangent[n] = seeds[n]
        elif not n.args or n.is_bool:
            tangent[n] = None
        else:
            ts = [tangent[a] for a in n.args]
            tangent[n] = None if all(t is None for t in ts) else \
                jvp_rule_for(n.op)(ts, n, *n.args)
    return [None if r is None else tangent[r] for r in roots]
