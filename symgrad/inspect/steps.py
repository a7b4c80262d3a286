"""The adjoint program step by step, written as a hand derivation.

Forward: each node in order, as one operation over named values, with its
number (`v1 = x + y = 3`, `f = v1*z = -12`). Backward: the output's gradient
is 1; then, for each node from the output back, the gradient it received and,
for each arg, `df/darg = df/dnode * local derivative` (`+=` when the arg already
received a contribution from another user). Intermediates are named v1, v2, ...
in forward order; the output is f (L for a model with per-sample inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from symgrad.inspect.point import check_point
from symgrad.inspect.sweep import Sweep, sweep
from symgrad.ir import LEAVES, Node, Op
from symgrad.model import Model


@dataclass(frozen=True)
class Contribution:
    """What one node sends to one arg: `df/d{arg} (+)= df/d{node} * local = value`."""

    arg: str
    accumulate: bool          # += (the arg already had a contribution)
    local: str                # the local derivative, in terms of forward names
    local_value: float | None
    value: float | None       # upstream * local at the point


@dataclass(frozen=True)
class BackwardStepView:
    name: str
    definition: str
    g: float | None           # this node's complete gradient at the point
    taken: bool
    contributions: tuple[Contribution, ...]
    matrix: bool = False      # a matrix node: `local` is the whole contribution


@dataclass(frozen=True)
class Steps:
    """A derivation's forward and backward steps; `str()` gives the text.

    `values[name]` are forward values, `gradients[name]` each named node's
    gradient (params included) at the point; both are empty without one.
    """

    output: str
    at: dict[str, float] | None
    leaves: tuple[tuple[str, str], ...]                  # (name, "param" or "input")
    forward: tuple[tuple[str, str, float | bool | None, bool], ...]  # name, def, value, taken
    backward: tuple[BackwardStepView, ...]
    values: dict[str, float | bool]
    gradients: dict[str, float]
    final: dict[str, str]                                # param -> gradient as text
    note: str = ""                                       # how this relates to the batch

    def text(self) -> str:
        f = self.output
        lines = [self.note, ""] if self.note else []
        if self.at is None:
            lines.append("Forward pass (symbolic; give a point, e.g. --at x=1,y=2, "
                         "for numbers):")
        else:
            lines.append("Forward pass:")
            for name, kind in self.leaves:
                lines.append(f"  {name} = {_num(self.values[name])}   ({kind})")
        for name, definition, value, taken in self.forward:
            text = f"  {name} = {definition}"
            if value is not None:
                text += f" = {_num(value)}"
            if not taken:
                text += "   (in a branch not taken)"
            lines.append(text)
        lines.append("")
        lines.append(f"Backward pass (each arg: d{f}/d[arg] += d{f}/d[node] * "
                     f"local derivative):")
        lines.append(f"  d{f}/d{f} = 1")
        for step in self.backward:
            head = f"  {step.name} = {step.definition}"
            if step.g is not None:
                head += f"   with d{f}/d{step.name} = {_num(step.g)}"
            if not step.taken:
                head += "   (branch not taken: passes 0)"
            lines.append(head + ":")
            for c in step.contributions:
                op = "+=" if c.accumulate else "="
                text = f"    d{f}/d{c.arg} {op} d{f}/d{step.name} * {c.local}"
                if step.matrix:
                    text = f"    d{f}/d{c.arg} {op} {c.local}"
                if c.value is not None:
                    text += f" = {_num(step.g if step.taken else 0.0, True)} * " \
                            f"{_num(c.local_value, True)} = {_num(c.value)}"
                lines.append(text)
        lines.append("")
        finals = ", ".join(f"d{f}/d{p} = {v}" for p, v in self.final.items())
        lines.append(f"Gradients: {finals}")
        return "\n".join(lines) + "\n"

    __str__ = text


def adjoint_steps(model: Model, at: Mapping[str, float] | None = None) -> Steps:
    """The forward and backward sweep of reverse mode over the model, at a point
    (one value per param and input: one sample) or symbolically."""
    point = None if at is None else check_point(model, at)
    s = sweep(model, point)
    return _view(s)


def _view(s: Sweep) -> Steps:
    numeric = s.at is not None
    m = s.model
    leaves = tuple((p, "param") for p in m.param_names) + \
        tuple((x, "input, this sample") for x in m.input_names)
    forward = tuple((s.name(n), _definition(s, n), s.value(n), s.taken.get(n, True))
                    for n in s.order if n.op not in LEAVES)
    reached = {step.node for step in s.trace} | set(s.wrt)
    grad_at = s.gradient_of() if numeric else {}
    seen: set[Node] = set()
    received: dict[Node, list[str]] = {}       # for each node, the terms of its gradient
    backward = []
    for step in s.trace:
        node = step.node
        taken = s.taken.get(node, True)
        contributions = []
        for i, (arg, c) in enumerate(zip(node.args, step.contributions)):
            if c is None or arg not in reached:
                continue
            local, local_value = _local(s, node, i)
            value = None
            if numeric:
                value = 0.0 if not taken else (
                    grad_at[node] * local_value if node.op is Op.WHERE else s.values[c])
            contributions.append(Contribution(s.name(arg), arg in seen, local,
                                              local_value, value))
            seen.add(arg)
            upstream = f"d{s.output}/d{s.name(node)}"
            received.setdefault(arg, []).append(
                local if node.shape else upstream + ("" if local == "1" else f" * {local}"))
        backward.append(BackwardStepView(s.name(node), _definition(s, node),
                                         grad_at.get(node), taken, tuple(contributions),
                                         bool(node.shape)))
    values = {s.name(n): s.values[n] for n in s.order if n.op is not Op.CONST} \
        if numeric else {}
    gradients = {s.name(n): g for n, g in grad_at.items()}
    final = {}
    for w in s.wrt:
        if numeric:
            final[w.attr] = _num(grad_at.get(w, 0.0))
        else:
            final[w.attr] = " + ".join(received.get(w, ["0"]))
    return Steps(s.output, s.at, leaves if numeric else (), forward, tuple(backward),
                 values, gradients, final, _note(s))


def _note(s: Sweep) -> str:
    m, out = s.model, s.output
    penalty = " + penalty" if m.penalty is not None else ""
    if getattr(m, "is_matrix", False):
        return f"{out} = the batch's loss{penalty}, as the matrix model writes it."
    if m.inputs:
        return (f"{out} = one sample's loss{penalty}. Over a batch, each param's gradient is "
                f"the {m.reduction} over samples of the per-sample part"
                f"{', plus the penalty part once' if penalty else ''}.")
    return f"{out} = loss{penalty}." if penalty else ""


def _definition(s: Sweep, n: Node) -> str:
    """`v1*z`; a selection reads `a if c else b` rather than SymPy's Piecewise."""
    if n.op is Op.WHERE:
        c, a, b = (sp.sstr(s.ref(x)) for x in n.args)
        return f"{a} if {c} else {b}"
    return sp.sstr(s.definition(n))


def _local(s: Sweep, node: Node, i: int) -> tuple[str, float | None]:
    """The local derivative d node / d arg i, as text and (with a point) a number."""
    if node.op is Op.WHERE:
        cond = s.name(node.args[0])
        text = f"[{cond}]" if i == 1 else f"[not {cond}]"
        if s.at is None:
            return text, None
        holds = bool(s.values[node.args[0]])
        return text, float(holds if i == 1 else not holds)
    local = s.locals_[(node, i)]
    value = float(s.values[local]) if s.at is not None else None
    return sp.sstr(s.expression(local)), value


def _num(v: float | bool | None, parenthesize: bool = False) -> str:
    if v is None:
        return "?"
    if isinstance(v, bool):
        return str(v)
    text = f"{v:.6g}"
    if text == "-0":
        text = "0"
    return f"({text})" if parenthesize and text.startswith("-") else text
