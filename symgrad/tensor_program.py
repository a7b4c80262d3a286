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


@dataclass
class Loop:
    shape: Shape
    members: list[Node] = field(default_factory=list)      # elementwise nodes computed here
    reductions: list[Node] = field(default_factory=list)   # SUM nodes accumulated here
    # Filled in by `finish`:
    body: Program | None = None
    loads: list[Node] = field(default_factory=list)        # program input j reads loads[j]
    stores: list[tuple[Node, int]] = field(default_factory=list)   # (member, program output)
    accumulates: list[tuple[Node, int]] = field(default_factory=list)  # (SUM node, output)


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
    kernel_of: dict[Node, int] = {}     # producing kernel; leaves are not in it
    kernels: list[Kernel] = []

    def ready_before(a: Node, k: int) -> bool:
        return a not in kernel_of or kernel_of[a] < k

    def usable_in(a: Node, k: int) -> bool:
        loop = kernels[k]
        return ready_before(a, k) or (kernel_of.get(a) == k and a in loop.members)

    def new_kernel(kernel: Kernel, n: Node) -> None:
        kernels.append(kernel)
        kernel_of[n] = len(kernels) - 1

    for n in order:
        if n.op in LEAVES:
            continue
        if n.op is Op.MATMUL:
            new_kernel(MatMul(n, *n.args), n)
        elif n.op is Op.TRANSPOSE:
            new_kernel(View(n), n)
        elif n.op is Op.LOGSUMEXP:
            new_kernel(RowLogSumExp(n), n)
        elif n.op is Op.SUM:
            x = n.args[0]
            k = kernel_of.get(x)
            if k is not None and isinstance(kernels[k], Loop) and x in kernels[k].members:
                kernels[k].reductions.append(n)
                kernel_of[n] = k
            else:
                loop = Loop(x.shape, reductions=[n])
                new_kernel(loop, n)
        else:
            candidates = sorted({kernel_of[a] for a in n.args if a in kernel_of
                                 and isinstance(kernels[kernel_of[a]], Loop)
                                 and kernels[kernel_of[a]].shape == n.shape
                                 and a in kernels[kernel_of[a]].members}, reverse=True)
            for k in candidates:
                if all(usable_in(a, k) for a in n.args):
                    kernels[k].members.append(n)
                    kernel_of[n] = k
                    break
            else:
                new_kernel(Loop(n.shape, members=[n]), n)

    _sink(order, outputs, kernels, kernel_of)
    used_outside = _used_outside(order, outputs, kernel_of)
    kernels = [k for k in kernels if not isinstance(k, Loop) or k.members or k.reductions]
    for k, kernel in enumerate(kernels):
        if isinstance(kernel, Loop):
            _finish(kernel, used_outside)
    return TensorProgram(tuple(params), tuple(inputs), kernels, tuple(outputs))


def _used_outside(order, outputs, kernel_of) -> set[Node]:
    """Nodes read by another kernel (or returned): those are stored in arrays."""
    used: set[Node] = set(outputs)
    for n in order:
        for a in n.args:
            if kernel_of.get(a) != kernel_of.get(n) or n.op not in _FUSED_USE:
                used.add(a)
    return used


def _sink(order, outputs, kernels, kernel_of) -> None:
    """Move a loop member into the one later loop that reads it, when everything it reads
    is stored anyway: recomputing it there is cheaper than storing and loading it (the
    backward pass's relu mask `out > 0` is recomputed from the stored `out`)."""
    readers: dict[Node, set[int]] = {n: set() for n in order}
    for n in order:
        for a in n.args:
            readers[a].add(kernel_of.get(n, -1))
    stored = _used_outside(order, outputs, kernel_of)
    for n in reversed(order):
        k = kernel_of.get(n)
        if k is None or n in outputs or not isinstance(kernels[k], Loop) \
                or n not in kernels[k].members or len(readers[n]) != 1:
            continue
        (target,) = readers[n]
        loop = kernels[target] if target > k else None
        if not isinstance(loop, Loop) or loop.shape != n.shape:
            continue
        if all(a.op is Op.CONST or a not in kernel_of or
               (a in stored and readers[a] - {k} != set()) for a in n.args):
            kernels[k].members.remove(n)
            members = loop.members
            position = next((i for i, m in enumerate(members) if n in m.args), len(members))
            members.insert(position, n)
            kernel_of[n] = target
            stored.discard(n)
            for a in n.args:
                readers[a].discard(k)
                readers[a].add(target)


# Uses that read a same-loop value as a local scalar (a SUM reads its input there too).
_FUSED_USE = frozenset(op for op in Op if op not in LEAVES and op not in (
    Op.MATMUL, Op.TRANSPOSE, Op.LOGSUMEXP))


def _finish(loop: Loop, used_outside: set[Node]) -> None:
    """Lower the loop's members to a scalar program over per-element loads."""
    members = set(loop.members)
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

    for m in loop.members:
        if m.op is Op.BROADCAST:
            scalar[m] = operand(m.args[0])
        else:
            scalar[m] = node(m.op, *(operand(a) for a in m.args), attr=m.attr)
    outputs: list[Node] = []
    for m in loop.members:
        if m in used_outside:
            loop.stores.append((m, len(outputs)))
            outputs.append(scalar[m])
    for r in loop.reductions:
        loop.accumulates.append((r, len(outputs)))
        outputs.append(operand(r.args[0]))
    loop.loads = loads
    loop.body = schedule(outputs, (), [f"load{j}" for j in range(len(loads))])
