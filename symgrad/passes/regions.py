"""Regions: where each node is needed, so that untaken branches never run.

`WHERE(c, a, b)` needs `a` only where `c` holds and `b` only where it does
not. A region is a chain of such facts, `(parent, cond, branch)`; the root
region (None) holds unconditionally. A node's region is the deepest region
that contains every use of it (the lowest common ancestor of its uses), so a
node is evaluated exactly when some use of it may be taken. Outputs live in the
root. Sound because a value in a region is read only by uses in that region or
deeper, all of which are dead when the region's guard is false.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from symgrad.ir import Node, Op, toposort


@dataclass(frozen=True, eq=False)
class Region:
    parent: Region | None
    cond: Node
    branch: bool
    depth: int = field(default=1)

    def chain(self) -> list[Region]:
        """This region and its ancestors, outermost first."""
        out: list[Region] = []
        r: Region | None = self
        while r is not None:
            out.append(r)
            r = r.parent
        return out[::-1]


class Regions:
    """Region of every node reachable from `roots`."""

    def __init__(self, roots: Sequence[Node]):
        self._children: dict[tuple, Region] = {}
        self.of: dict[Node, Region | None] = {}
        pending: dict[Node, Region | None] = {r: None for r in roots}
        for n in reversed(toposort(roots)):
            here = self.of[n] = pending[n]
            for i, a in enumerate(n.args):
                ra = self.arg_region(n, i, here)
                pending[a] = lca(pending[a], ra) if a in pending else ra

    def child(self, parent: Region | None, cond: Node, branch: bool) -> Region:
        key = (parent, cond, branch)
        r = self._children.get(key)
        if r is None:
            depth = 1 if parent is None else parent.depth + 1
            r = self._children[key] = Region(parent, cond, branch, depth)
        return r

    def arg_region(self, user: Node, i: int, user_region: Region | None = None) -> Region | None:
        """The region in which `user` reads its i-th arg."""
        here = self.of[user] if user_region is None else user_region
        if user.op is Op.WHERE and i > 0:
            return self.child(here, user.args[0], i == 1)
        return here


def lca(a: Region | None, b: Region | None) -> Region | None:
    while a is not b:
        if a is None or b is None:
            return None
        if a.depth > b.depth:
            a = a.parent
        elif b.depth > a.depth:
            b = b.parent
        else:
            a, b = a.parent, b.parent
    return a


def conditions(region: Region | None) -> list[Node]:
    """The condition nodes a region's guard reads, outermost first."""
    return [] if region is None else [r.cond for r in region.chain()]
