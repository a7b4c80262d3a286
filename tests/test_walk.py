"""symgrad/walk.py: the one bottom-up walk of the front end, the stabilizer and the
measures: each node once, children first, no recursion, and the visiting order."""

import sys

from symgrad.walk import bottom_up


def test_a_chain_deeper_than_the_recursion_limit():
    depth = 5 * sys.getrecursionlimit()
    children = {k: (k + 1,) for k in range(depth)}
    children[depth] = ()
    calls = []

    def compute(k):
        calls.append(k)
        return 1 + sum(done[c] for c in children[k])

    done = {}
    assert bottom_up(0, children.__getitem__, done, compute) == depth + 1
    assert calls == list(range(depth, -1, -1))      # each once, the leaf first


def test_shared_children_once_and_the_visiting_order():
    graph = {"root": ("a", "b"), "a": ("c",), "b": ("c",), "c": ()}
    for in_order, want in ((False, ["c", "b", "a", "root"]), (True, ["c", "a", "b", "root"])):
        seen = []
        bottom_up("root", graph.__getitem__, {}, lambda n: seen.append(n) or n,
                  children_in_order=in_order)
        assert seen == want
    done = {"a": "given"}           # what `done` holds already is neither revisited nor recomputed
    seen = []
    bottom_up("root", graph.__getitem__, done, lambda n: seen.append(n) or n)
    assert seen == ["c", "b", "root"] and done["a"] == "given"
