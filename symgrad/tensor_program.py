"""The schedule of a matrix model: a list of kernels over whole arrays.

* `MatMul`: a BLAS product of two arrays (or transposed views of them);
* `View`: a transpose, which costs nothing;
* `Loop`: one fused pass over an iteration space (rows, cols). Its body is a
  scalar `Program` (the same form scalar models use, with regions, so a
  `WHERE` branch stays lazy within the pass); it loads its operands with
  broadcast indexing, stores only the values used outside the pass, and
  accumulates the sums (SUM nodes) whose input it produces;
* `RowLogSumExp`: a stable log-sum-exp per row (max shifted out).

Fusion: walking the nodes in topological order, an elementwise node joins the
latest loop over its own shape that holds one of its args, when every other arg
is available before that loop starts; otherwise it opens a new loop. A SUM joins
the loop that produces its input. So each maximal elementwise chain is one pass
over memory, and no temporary is stored unless something outside the pass
reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from symgrad.ir import LEAVES, Node, Op, Shape, input_, node, toposort
from symgrad.program import Program, schedule


@dataclass
class MatMul:
    out: Node
    a: Node
    b: Node


@dataclass
class View:
    out: Node       # a TRANSPOSE


@dataclass
class RowLogSumExp:
    out: Node


@dataclass(frozen=True)
class Loop:
    """A fused pass, complete: made by `_lower` from a `_Draft` when fusion is done."""
    shape: Shape
    members: tuple[Node, ...]          # elementwise nodes computed here
    reductions: tuple[Node, ...]       # SUM nodes accumulated here
    body: Program                      # the members as a scalar program over loads
    loads: tuple[Node, ...]            # program input j reads loads[j]
    stores: tuple[tuple[Node, int], ...]        # (member, program output)
    accumulates: tuple[tuple[Node, int], ...]   # (SUM node, program output)


@dataclass
class _Draft:
    """A loop while fusion is still adding nodes to it."""
    shape: Shape
    members: list[Node] = field(default_factory=list)
    reductions: list[Node] = field(default_factory=list)


Kernel = MatMul | View | RowLogSumExp | Loop


@dataclass
class TensorProgram:
    params: tuple[Node, ...]
    inputs: tuple[Node, ...]
    kernels: list[Kernel]
    outputs: tuple[Node, ...]


def tensor_schedule(outputs: Sequence[Node], params: Sequence[Node], inputs: Sequence[Node]
                    ) -> TensorProgram:
    order = toposort(outputs)
    fusion = _Fusion()
    for n in order:
        if n.op not in LEAVES:
            fusion.place(n)
    fusion.sink(order, outputs)
    used_outside = _used_outside(order, outputs, fusion.kernel_of)
    kernels = [_lower(k, used_outside) if isinstance(k, _Draft) else k
               for k in fusion.kernels if not isinstance(k, _Draft) or k.members or k.reductions]
    return TensorProgram(tuple(params), tuple(inputs), kernels, tuple(outputs))


class _Fusion:
    """The state of fusion: the kernels so far (loops still drafts) and which kernel
    produces each node (leaves are in none)."""

    def __init__(self) -> None:
        self.kernels: list[MatMul | View | RowLogSumExp | _Draft] = []
        self.kernel_of: dict[Node, int] = {}

    def place(self, n: Node) -> None:
        """Put node n in a kernel: products, transposes and log-sum-exps get their own, a
        SUM joins the loop producing its input, an elementwise node the latest loop of
        its shape that holds one of its args and can read all of them."""
        if n.op is Op.MATMUL:
            self._new(MatMul(n, *n.args), n)
        elif n.op is Op.TRANSPOSE:
            self._new(View(n), n)
        elif n.op is Op.LOGSUMEXP:
            self._new(RowLogSumExp(n), n)
        elif n.op is Op.SUM:
            k = self._loop_holding(n.args[0])
            if k is None:
                self._new(_Draft(n.args[0].shape, reductions=[n]), n)
            else:
                self.kernels[k].reductions.append(n)
                self.kernel_of[n] = k
        else:
            held = {self._loop_holding(a) for a in n.args} - {None}
            for k in sorted((k for k in held if self.kernels[k].shape == n.shape), reverse=True):
                if all(self._usable_in(a, k) for a in n.args):
                    self.kernels[k].members.append(n)
                    self.kernel_of[n] = k
                    return
            self._new(_Draft(n.shape, members=[n]), n)

    def _new(self, kernel, n: Node) -> None:
        self.kernels.append(kernel)
        self.kernel_of[n] = len(self.kernels) - 1

    def _loop_holding(self, a: Node) -> int | None:
        """The loop that computes `a` as a member, if any."""
        k = self.kernel_of.get(a)
        return k if k is not None and isinstance(self.kernels[k], _Draft) \
            and a in self.kernels[k].members else None

    def _usable_in(self, a: Node, k: int) -> bool:
        """Whether loop k can read a: made before it starts, or one of its own members."""
        return a not in self.kernel_of or self.kernel_of[a] < k or self._loop_holding(a) == k

    def sink(self, order, outputs) -> None:
        """Move a loop member into the one later loop that reads it, when everything it
        reads is stored anyway: recomputing it there is cheaper than storing and loading
        it (the backward pass's relu mask `out > 0` is recomputed from the stored `out`)."""
        kernels, kernel_of = self.kernels, self.kernel_of
        readers: dict[Node, set[int]] = {n: set() for n in order}
        for n in order:
            for a in n.args:
                readers[a].add(kernel_of.get(n, -1))
        stored = _used_outside(order, outputs, kernel_of)
        for n in reversed(order):
            k = self._loop_holding(n)
            if k is None or n in outputs or len(readers[n]) != 1:
                continue
            (target,) = readers[n]
            loop = kernels[target] if target > k else None
            if not isinstance(loop, _Draft) or loop.shape != n.shape:
                continue
            if all(a.op is Op.CONST or a not in kernel_of or
                   (a in stored and readers[a] - {k} != set()) for a in n.args):
                kernels[k].members.remove(n)
                members = loop.members
                position = next((i for i, m in enumerate(members) if n in m.args),
                                len(members))
                members.insert(position, n)
                kernel_of[n] = target
                stored.discard(n)
                for a in n.args:
                    readers[a].discard(k)
                    readers[a].add(target)


def _used_outside(order, outputs, kernel_of) -> set[Node]:
    """Nodes read by another kernel (or returned): those are stored in arrays."""
    used: set[Node] = set(outputs)
    for n in order:
        for a in n.args:
            if kernel_of.get(a) != kernel_of.get(n) or n.op not in _FUSED_USE:
                used.add(a)
    return used


# Uses that read a same-loop value as a local scalar (a SUM reads its input there too).
_FUSED_USE = frozenset(op for op in Op if op not in LEAVES and op not in (
    Op.MATMUL, Op.TRANSPOSE, Op.LOGSUMEXP))


def _lower(draft: _Draft, used_outside: set[Node]) -> Loop:
    """The finished loop: its members as a scalar program over per-element loads."""
    members = set(draft.members)
    scalar: dict[Node, Node] = {}
    loads: list[Node] = []
    load_index: dict[Node, int] = {}

    def operand(a: Node) -> Node:
        if a in members:
            return scalar[a]
        if a.op is Op.CONST:
            return a
        if a not in load_index:
            load_index[a] = len(loads)
            loads.append(a)
        return input_(f"load{load_index[a]}")

    for m in draft.members:
        if m.op is Op.BROADCAST:
            scalar[m] = operand(m.args[0])
        else:
            scalar[m] = node(m.op, *(operand(a) for a in m.args), attr=m.attr)
    outputs: list[Node] = []
    stores, accumulates = [], []
    for m in draft.members:
        if m in used_outside:
            stores.append((m, len(outputs)))
            outputs.append(scalar[m])
    for r in draft.reductions:
        accumulates.append((r, len(outputs)))
        outputs.append(operand(r.args[0]))
    body = schedule(outputs, (), [f"load{j}" for j in range(len(loads))])
    return Loop(draft.shape, tuple(draft.members), tuple(draft.reductions), body, tuple(loads),
                tuple(stores), tuple(accumulates))
