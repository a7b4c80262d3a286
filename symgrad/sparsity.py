"""The structural sparsity of a model's Hessian, read from the DAG, and a star colouring
of it, so a sparse Hessian costs one Hessian-vector product per colour.

Pattern: the Hessian of the loss is a sum, over the nonlinear nodes, of the node's
second derivative times the outer product of its args' first derivatives. So two
params can meet in the Hessian only where both reach the args of one nonlinear node
(`x * y` couples x's params with y's; `tanh(u)` couples u's params with themselves;
sums, differences, transposes, broadcasts, selections and piecewise-linear ops such as
relu, abs, max, floor couple nothing: their second derivative is 0 by the kink
conventions). Each node carries the set of params it depends on.

Scalar models get the exact structural pattern over their params. Matrix models are
read block by block (a param matrix is one block, entries not told apart): the pattern
is a union of dense blocks, a superset of the true one, which is all the colouring
needs to be correct. Networks' Hessians are dense in practice anyway.

Colouring: a star colouring (a proper colouring in which every path on four vertices
has at least three colours) lets each nonzero be read from one compressed product:
H_ij is (H v_c(j))_i when j is i's only neighbour of colour c(j), else (H v_c(i))_j,
and one of the two always holds (Gebremedhin, Manne and Pothen, "What color is your
Jacobian?", SIAM Review 2005; the recovery is codegen/hessian.py's `recover`, pasted into
order-2 modules). Greedy, in natural order (a tridiagonal Hessian gets 3 colours, an
arrowhead 2, where a distance-2 colouring would need n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symgrad.ir import BOOLEAN, LEAVES, Node, Op, toposort

# Second derivative 0 (linear, or piecewise linear with our kink conventions).
LINEAR = frozenset({Op.ADD, Op.SUB, Op.NEG, Op.WHERE, Op.TRANSPOSE, Op.BROADCAST, Op.SUM,
                    Op.RELU, Op.ABS, Op.MAX, Op.MIN, Op.MOD, Op.SIGN, Op.HEAVISIDE,
                    Op.FLOOR, Op.CEIL}) | BOOLEAN | LEAVES
BILINEAR = frozenset({Op.MUL, Op.MATMUL})     # couple one arg's params with the other's
# A Hessian is computed dense (one HVP per column, no pattern stored) above this
# structural density, or where the colouring saves less than half the products.
DENSE_ABOVE = 0.5


@dataclass(frozen=True)
class HessianSparsity:
    """The structural pattern (a symmetric scipy.sparse.csr_matrix of bools over the flat
    params, diagonal included) and the star colouring used (one colour per flat param)."""

    pattern: object
    colors: np.ndarray

    def __iter__(self):
        """`pattern, colors = symgrad.hessian_sparsity(model)`."""
        return iter((self.pattern, self.colors))

    @property
    def n_colors(self) -> int:
        return int(self.colors.max()) + 1 if self.colors.size else 0

    @property
    def density(self) -> float:
        n = self.pattern.shape[0]
        return self.pattern.nnz / (n * n) if n else 0.0

    def clique_bound(self) -> int:
        """A lower bound on the colours of any star colouring (which is proper): the
        size of a clique of the pattern, grown greedily from each vertex."""
        return greedy_clique(self.pattern)


def greedy_clique(pattern) -> int:
    indptr, indices = pattern.indptr, pattern.indices
    n = pattern.shape[0]
    neighbours = [set(indices[indptr[i]:indptr[i + 1]].tolist()) - {i} for i in range(n)]
    best = 1 if n else 0
    for i in range(n):
        clique = [i]
        for j in sorted(neighbours[i], key=lambda k: -len(neighbours[k])):
            if all(j in neighbours[c] for c in clique):
                clique.append(j)
        best = max(best, len(clique))
    return best


def coupled_pairs(roots, params, sizes=None, limit: float | None = None
                  ) -> set[tuple[int, int]] | None:
    """The pairs (i, j), i <= j, of params (indices into `params`, of `sizes` entries
    each) that meet in the args of some nonlinear node; None as soon as the pattern's
    entries would pass `limit` (dense: no need to enumerate them). Only nodes under a
    nonlinear node's args get their dependency sets (a sum of 10^4 terms, linear all the
    way up, costs nothing)."""
    index = {p: i for i, p in enumerate(params)}
    sizes = sizes or [1] * len(params)
    order = toposort([r for r in roots if r is not None])
    needed: set[Node] = set()
    for n in reversed(order):           # users before args
        if n in needed or (n.op not in LINEAR and not n.is_bool):
            needed.update(n.args)
    deps: dict[Node, frozenset] = {}
    pairs: set[tuple[int, int]] = set()
    entries = sum(sizes)
    empty = frozenset()
    for n in order:
        if n in index:
            deps[n] = frozenset((index[n],))
            continue
        if n.op in LEAVES or n.is_bool:
            deps[n] = empty
            continue
        args = [deps.get(a, empty) for a in n.args]
        if n in needed:
            deps[n] = frozenset().union(*args)
        if n.op in LINEAR:
            continue
        if n.op in BILINEAR:
            coupled = [(args[0], args[1])]
        elif n.op is Op.POW and n.args[1].op is Op.CONST and n.args[1].attr in (0.0, 1.0):
            coupled = []
        elif n.op is Op.DIV:         # linear in x: x with y, and y with itself
            coupled = [(args[0], args[1]), (args[1], args[1])]
        else:
            both = frozenset().union(*args)
            coupled = [(both, both)]
        for a, b in coupled:
            if limit is not None and sum(sizes[i] for i in a) * sum(sizes[j] for j in b) \
                    > limit:
                return None     # one node's block alone passes the limit
            new = {(i, j) if i <= j else (j, i) for i in a for j in b} - pairs
            entries += sum(2 * sizes[i] * sizes[j] if i != j else sizes[i] * (sizes[i] - 1)
                           for i, j in new)
            if limit is not None and entries > limit:
                return None
            pairs |= new
    return pairs


def hessian_pattern(pairs, sizes) -> object:
    """The structural Hessian pattern over the flat params (scipy.sparse.csr_matrix of
    bools, symmetric, diagonal included) from the coupled `pairs` (i <= j) of params,
    whose numbers of entries are `sizes` (1 for scalars; a matrix param is one dense
    block)."""
    import scipy.sparse as sps

    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    n = int(offsets[-1])
    pairs = pairs | {(j, i) for i, j in pairs}
    if all(size == 1 for size in sizes):        # scalar params: the pairs are entries
        found = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
        r = np.concatenate([np.arange(n), found[:, 0]])
        c = np.concatenate([np.arange(n), found[:, 1]])
    else:
        rows, cols = [np.arange(n)], [np.arange(n)]
        for i, j in sorted(pairs):
            bi = np.arange(offsets[i], offsets[i + 1])
            bj = np.arange(offsets[j], offsets[j + 1])
            rows.append(np.repeat(bi, bj.size))
            cols.append(np.tile(bj, bi.size))
        r, c = np.concatenate(rows), np.concatenate(cols)
    m = sps.csr_matrix((np.ones(r.size, dtype=bool), (r, c)), shape=(n, n))
    m.sum_duplicates()
    m.sort_indices()
    return m


def star_coloring(pattern) -> np.ndarray:
    """A greedy star colouring of the pattern's graph (off-diagonal entries are edges):
    colour v with the smallest colour that no neighbour has and that closes no
    two-coloured path on four vertices through v."""
    indptr, indices = pattern.indptr, pattern.indices
    n = pattern.shape[0]
    adj = [indices[indptr[i]:indptr[i + 1]] for i in range(n)]
    adj = [a[a != i].tolist() for i, a in enumerate(adj)]
    color = [-1] * n
    for v in range(n):
        forbidden = set()
        coloured = [w for w in adj[v] if color[w] >= 0]
        seen: dict[int, int] = {}       # colour -> how many of v's neighbours have it
        for w in coloured:
            forbidden.add(color[w])
            seen[color[w]] = seen.get(color[w], 0) + 1
        for w in coloured:
            cw = color[w]
            for x in adj[w]:
                if x == v or color[x] < 0:
                    continue
                # v-w-x-y with c(y) = c(w) (v would repeat x's colour: c(v) c(w) c(v)
                # c(w)), or x-w-v-w2 with c(w2) = c(w) (v between two of colour c(w)).
                if seen[cw] > 1 or any(color[y] == cw for y in adj[x] if y != w):
                    forbidden.add(color[x])
        c = 0
        while c in forbidden:
            c += 1
        color[v] = c
    return np.asarray(color, dtype=np.int64)


def analyse(model, dense_above: float = DENSE_ABOVE) -> HessianSparsity | None:
    """The pattern and colouring of `model`'s Hessian (a symgrad.Model), or None where
    it is better computed dense: a structural density above `dense_above`, or a
    colouring with more than half as many colours as flat params (a dense Hessian then
    costs about as many HVPs, and stores no pattern)."""
    sizes = [_size(p) for p in model.param_nodes]
    n = sum(sizes)
    pairs = coupled_pairs(model.forward, model.param_nodes, sizes, dense_above * n * n)
    if n == 0 or pairs is None:
        return None
    pattern = hessian_pattern(pairs, sizes)
    found = HessianSparsity(pattern, star_coloring(pattern))
    return found if found.n_colors <= n / 2 else None


def hessian_sparsity(model) -> HessianSparsity:
    """The structural pattern of `model`'s Hessian over its flat params (scipy.sparse
    boolean CSR, symmetric, diagonal included; matrix params as dense blocks) and the
    star colouring that `Kernel.hessian` uses (every param its own colour where the
    pattern is dense: one HVP per column)."""
    from codegen.hessian import DENSE_HESSIAN_LIMIT
    from symgrad.errors import OptionError

    found = analyse(model)
    if found is not None:
        return found
    sizes = [_size(p) for p in model.param_nodes]
    n = sum(sizes)
    if n > DENSE_HESSIAN_LIMIT:
        raise OptionError(f"the Hessian of this model's {n} flat params is structurally "
                          f"dense; its pattern alone would hold {n * n} entries")
    pattern = hessian_pattern(coupled_pairs(model.forward, model.param_nodes, sizes), sizes)
    return HessianSparsity(pattern, np.arange(n, dtype=np.int64))


def _size(p: Node) -> int:
    return int(np.prod(p.shape)) if p.shape else 1
