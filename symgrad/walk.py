"""One walk for expression graphs too deep to recurse over: memoized, bottom-up.

SymPy's own walkers recurse, so a deep loss overflows Python's stack; the front end,
the stabilizer and the tree measures all compute one value per node from its
children's values, each node once. `bottom_up` is that walk, written once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, MutableMapping
from typing import TypeVar

N = TypeVar("N", bound=Hashable)
V = TypeVar("V")


def bottom_up(root: N, children: Callable[[N], Iterable[N]], done: MutableMapping[N, V],
              compute: Callable[[N], V], *, children_in_order: bool = False) -> V:
    """done[root], computing done[n] = compute(n) for every node below root not in `done`
    yet, each once and only after done holds all of its children (compute reads them
    there). Without recursion. `children_in_order` visits children first to last (the
    default pushes them so that the last is visited first); the order decides which of
    two independent subtrees is computed first, which matters where compute has effects
    such as interning new nodes."""
    stack = [root]
    while stack:
        n = stack[-1]
        if n in done:
            stack.pop()
            continue
        pending = [c for c in children(n) if c not in done]
        if pending:
            stack.extend(reversed(pending) if children_in_order else pending)
            continue
        stack.pop()
        done[n] = compute(n)
    return done[root]
