"""One forward and backward sweep over a model's graph, recorded for display.

The graph is the per-sample loss (plus the penalty, when there is one: for one
sample the total is loss + penalty). Reverse mode runs with a trace, so each
node's turn is known: its complete gradient `g` and what it sends to each arg.
The local derivative of a node with respect to an arg is the same VJP rule
applied to g = 1. With a point, every node, gradient and local derivative gets
its number from `interpret.evaluate`; without one, the sweep is symbolic.

Values inside a `WHERE` branch that is not taken are shown but marked: their
gradients are masked to 0, as in the kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from symgrad.inspect.to_sympy import build, leaf, model_symbols
from symgrad.ir import LEAVES, Node, Op, add, const, fit_shape, node, toposort
from symgrad.interpret import evaluate
from symgrad.model import Model
from symgrad.passes.regions import Regions
from symgrad.reverse import BackwardStep, reverse_mode
from symgrad.rules import rule_for


@dataclass
class Sweep:
    """Everything one sweep shows: names, forward order, trace, numbers (or None)."""

    model: Model
    root: Node
    output: str                              # the root's name: f, or L with inputs
    order: list[Node]                        # forward nodes, args first
    names: dict[Node, sp.Symbol]             # every non-constant node's display name
    symbols: dict[str, sp.Symbol]
    trace: list[BackwardStep]
    # (node, arg slot) -> the local derivative (VJP rule at g = 1) for a scalar node;
    # for a matrix node, the whole contribution in terms of a placeholder upstream
    # gradient named like `dL/dv3` (a matrix "local derivative" is not a factor).
    locals_: dict[tuple[Node, int], Node]
    wrt: list[Node]
    grads: list[Node | None]                 # d root / d wrt, as the kernels compute it
    at: dict[str, float] | None = None
    values: dict[Node, float | bool] = field(default_factory=dict)
    taken: dict[Node, bool] = field(default_factory=dict)

    def name(self, n: Node) -> str:
        if n.op is Op.CONST:
            return sp.sstr(leaf(n, {}))
        return str(self.names[n])

    def definition(self, n: Node) -> sp.Basic:
        """A non-leaf node as one operation over its args' names (`v1*z`)."""
        return build(n, [self.ref(a) for a in n.args])

    def ref(self, n: Node) -> sp.Basic:
        return leaf(n, self.symbols) if n.op in LEAVES else self.names[n]

    def expression(self, n: Node) -> sp.Basic:
        """Any node (e.g. a local derivative) in terms of the forward names."""
        body: dict[Node, sp.Basic] = {}
        for m in toposort([n]):
            if m in self.names or m.op in LEAVES:
                body[m] = self.ref(m)
            else:
                body[m] = build(m, [body[a] for a in m.args])
        return body[n]

    def value(self, n: Node) -> float | bool | None:
        return self.values.get(n) if self.at is not None else None

    def gradient_of(self) -> dict[Node, float]:
        """Each node's gradient at the point (0 inside an untaken branch)."""
        out: dict[Node, float] = {}
        for step in self.trace:
            out[step.node] = float(self.values[step.g]) if self.taken[step.node] else 0.0
        for w, g in zip(self.wrt, self.grads):
            if g is not None:
                out[w] = float(self.values[g])
        return out


def sweep(model: Model, at: Mapping[str, float] | None = None,
          with_inputs: bool = False) -> Sweep:
    """Trace reverse mode over the model's graph; numbers when `at` is given (already
    checked by `point.check_point`). `with_inputs` also differentiates by the inputs."""
    sample_loss, penalty = model.forward
    root = sample_loss if penalty is None else add(sample_loss, penalty)
    order = toposort([root])
    wrt = list(model.param_nodes)
    if with_inputs:
        found = {n.attr: n for n in order if n.op is Op.INPUT}
        wrt += [found[x] for x in model.input_names if x in found]
    trace: list[BackwardStep] = []
    grads = reverse_mode(root, wrt, trace)
    symbols = model_symbols(model)
    output = _fresh("L" if model.inputs else "f", set(symbols))
    names = _names(order, root, output, symbols)
    locals_ = {}
    for step in trace:
        n = step.node
        g = const(1.0) if not n.shape else \
            node(Op.PARAM, attr=f"d{output}/d{names[n]}", shape=n.shape)
        for i, local in enumerate(rule_for(n.op)(g, n, *n.args)):
            if local is not None:
                locals_[(n, i)] = fit_shape(local, n.args[i].shape) if n.shape else local
    s = Sweep(model, root, output, order, names, symbols, trace, locals_, wrt, grads)
    if at is not None:
        _evaluate(s, dict(at))
    return s


def _names(order: list[Node], root: Node, output: str, symbols: dict[str, sp.Symbol]
           ) -> dict[Node, sp.Symbol]:
    reserved = set(symbols) | {output}
    names: dict[Node, sp.Symbol] = {}
    counter = 0
    for n in order:
        if n.op is Op.CONST:
            continue
        if n.op in LEAVES:
            names[n] = symbols.get(n.attr) or sp.Symbol(n.attr, real=True)
        elif n is root:
            names[n] = sp.Symbol(output, real=True)
        else:
            counter += 1
            while f"v{counter}" in reserved:
                counter += 1
            names[n] = sp.Symbol(f"v{counter}", real=True)
    return names


def _fresh(base: str, reserved: set[str]) -> str:
    name = base
    while name in reserved:
        name += "_"
    return name


def _evaluate(s: Sweep, at: dict[str, float]) -> None:
    m = s.model
    params = {p: at[p] for p in m.param_names}
    data = {x: np.array([at[x]]) for x in m.input_names}
    needed = [*s.order, *(st.g for st in s.trace), *s.locals_.values()]
    needed += [c for st in s.trace for c in st.contributions if c is not None]
    needed += [g for g in s.grads if g is not None]
    # Every node a root of its own: each is computed as the math defines it, even
    # inside an untaken branch (then marked as such, with its gradient masked).
    roots = list(dict.fromkeys(needed))
    values = evaluate(roots, params, data, n=1)
    s.at = at
    s.values = {n: (bool(v[0]) if n.is_bool else float(v[0])) for n, v in values.items()}
    regions = Regions([s.root])
    for n in s.order:
        region = regions.of[n]
        s.taken[n] = region is None or all(
            s.values[r.cond] == r.branch for r in region.chain())
