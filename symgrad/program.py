"""The schedule: a differentiated model as ordered, named statements.

A `Program` lowers output nodes (per-sample loss, gradients, ...) to the
flat SSA form the printers emit:

* `prologue`: statements that read no input (params and constants only), hoisted
  out of the per-sample loop and computed once per call;
* `body`: statements evaluated once per sample;
* `Guard` statements define the booleans that keep a `WHERE` branch from running
  when it is not taken (regions, see `passes/regions.py`); a guarded statement
  has the value 0 (or False) where its guard is false.

Names are deterministic: `p<i>` params, `x<j>` inputs, `t<k>` temporaries,
`m<k>` guards, in topological order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symgrad.ir import Node, Op, depends_on_inputs, toposort
from symgrad.passes.regions import Region, Regions, conditions


Operand = str | float      # a variable name, or a constant's value


@dataclass(frozen=True)
class Assign:
    name: str
    node: Node
    args: tuple[Operand, ...]   # in node.args order
    guard: str | None = None


@dataclass(frozen=True)
class Guard:
    name: str
    parent: str | None
    cond: str                   # name of the boolean variable
    branch: bool


Stmt = Assign | Guard


@dataclass(frozen=True)
class Program:
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    prologue: tuple[Stmt, ...]
    body: tuple[Stmt, ...]
    outputs: tuple[Operand, ...]      # each output, in the order given
    output_varies: tuple[bool, ...]   # whether each output is computed in the body

    @property
    def n_statements(self) -> int:
        return sum(isinstance(s, Assign) for s in (*self.prologue, *self.body))


def schedule(outputs: Sequence[Node], params: Sequence[str], inputs: Sequence[str]) -> Program:
    regions = Regions(outputs)
    order = toposort(outputs, lambda n: conditions(regions.of[n]))
    varies = depends_on_inputs(order)
    hoist = {n: not varies[n] and not any(varies[c] for c in conditions(regions.of[n]))
             for n in order}
    param_index = {name: i for i, name in enumerate(params)}
    input_index = {name: j for j, name in enumerate(inputs)}

    names: dict[Node, str] = {}
    guard_names: dict[Region, str] = {}
    body_guards: set[str] = set()
    prologue: list[Stmt] = []
    body: list[Stmt] = []

    def operand(n: Node) -> Operand:
        return n.attr if n.op is Op.CONST else names[n]

    def guard_for(region: Region | None) -> str | None:
        if region is None:
            return None
        if region not in guard_names:
            parent = guard_for(region.parent)
            guard_names[region] = name = f"m{len(guard_names)}"
            into = body if varies[region.cond] or (parent in body_guards) else prologue
            if into is body:
                body_guards.add(name)
            into.append(Guard(name, parent, operand(region.cond), region.branch))
        return guard_names[region]

    temp = 0
    for n in order:
        if n.op is Op.CONST:
            continue
        if n.op is Op.PARAM:
            names[n] = f"p{param_index[n.attr]}"
            continue
        if n.op is Op.INPUT:
            names[n] = f"x{input_index[n.attr]}"
            continue
        into = prologue if hoist[n] else body
        guard = guard_for(regions.of[n])
        names[n] = f"t{temp}"
        temp += 1
        into.append(Assign(names[n], n, tuple(operand(a) for a in n.args), guard))

    return Program(
        params=tuple(params),
        inputs=tuple(inputs),
        prologue=tuple(prologue),
        body=tuple(body),
        outputs=tuple(operand(o) for o in outputs),
        output_varies=tuple(varies[o] for o in outputs),
    )

