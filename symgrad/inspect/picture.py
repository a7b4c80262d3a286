"""A picture of the computational graph, as in the lecture's figures.

Each node shows its operation; with a point, its forward value above it (green)
and its gradient below it (red). Shared subexpressions are one node (the IR is
interned), params are blue squares, inputs orange diamonds, the output has a
gold ring. Constants are folded into their user's label (`+1`, `×0.01`, `^2`),
as the lecture's `*-1` and `+1` gates. Nodes are laid out in layers by topological
depth, params and inputs on the left, the output on the right, each edge routed
around the boxes (inspect/layout.py).

Graphs larger than `max_nodes` are cut to the nodes nearest the output, with a
note in the picture (and in `.note`). Renders: DOT text (written here, no
Graphviz needed, deterministic), SVG and PNG (matplotlib's Agg canvas, imported
only when drawing).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from symgrad.errors import OptionError
from symgrad.inspect.point import check_point
from symgrad.inspect.sweep import Sweep, sweep
from symgrad.ir import LEAVES, Node, Op
from symgrad.model import Model

MAX_NODES = 60
FORMATS = ("svg", "png", "dot")

SYMBOLS: dict[Op, str] = {
    Op.ADD: "+", Op.SUB: "−", Op.MUL: "×", Op.DIV: "÷", Op.NEG: "−x", Op.POW: "^",
    Op.EXP: "exp", Op.EXPM1: "expm1", Op.LOG: "log", Op.LOG1P: "log1p", Op.SQRT: "√",
    Op.SIN: "sin", Op.COS: "cos", Op.TAN: "tan", Op.TANH: "tanh", Op.ABS: "|x|",
    Op.ASIN: "asin", Op.ACOS: "acos", Op.ATAN: "atan", Op.SINH: "sinh", Op.COSH: "cosh",
    Op.ASINH: "asinh", Op.ACOSH: "acosh", Op.ATANH: "atanh", Op.ERF: "erf", Op.ERFC: "erfc",
    Op.GAMMA: "Γ", Op.LGAMMA: "lnΓ", Op.POLYGAMMA: "ψ", Op.FLOOR: "⌊x⌋", Op.CEIL: "⌈x⌉",
    Op.ATAN2: "atan2", Op.MOD: "mod",
    Op.SIGN: "sign", Op.SIGMOID: "σ", Op.RELU: "relu", Op.SOFTPLUS: "softplus",
    Op.HEAVISIDE: "H", Op.MAX: "max", Op.MIN: "min",
    Op.LT: "<", Op.LE: "≤", Op.GT: ">", Op.GE: "≥", Op.EQ: "=", Op.NE: "≠",
    Op.AND: "and", Op.OR: "or", Op.NOT: "not", Op.WHERE: "where",
    Op.MATMUL: "@", Op.TRANSPOSE: "T", Op.BROADCAST: "bcast", Op.SUM: "Σ",
    Op.LOGSUMEXP: "logsumexp", Op.TANH_BACKWARD: "tanh'",
}
# Which arg is which, for ops where the order matters (drawn on the edges).
ARG_ROLES: dict[Op, tuple[str, ...]] = {
    Op.SUB: ("+", "−"), Op.DIV: ("num", "den"), Op.POW: ("base", "exp"),
    Op.WHERE: ("if", "then", "else"), Op.MATMUL: ("left", "right"),
    Op.ATAN2: ("y", "x"), Op.MOD: ("x", "y"),
    **{op: ("lhs", "rhs") for op in (Op.LT, Op.LE, Op.GT, Op.GE)},
}
COLORS = {"param": "#cfe2ff", "input": "#ffe3c2", "op": "#ffffff", "output": "#fff3b0",
          "value": "#1a7f37", "grad": "#cf222e", "edge": "#57606a", "ring": "#d4a106"}


@dataclass(frozen=True)
class DrawnNode:
    key: str                 # stable id: n0, n1, ... in topological order
    kind: str                # "param", "input" or "op"
    label: str               # the operation (constants inline) or the leaf's name
    name: str                # the name --steps uses (x, v1, f)
    value: str | None
    grad: str | None
    output: bool
    cut: bool                # some of its args are not drawn
    layer: int


@dataclass(frozen=True)
class GraphPicture:
    """A drawable graph: `.dot()`, `.svg()`, `.png()`, `.save(path)`; Jupyter shows the SVG."""

    title: str
    nodes: tuple[DrawnNode, ...]
    edges: tuple[tuple[str, str, str], ...]    # (from key, to key, label)
    note: str | None                           # set when the graph was cut

    def dot(self) -> str:
        """Graphviz DOT text; byte-identical for the same graph and point."""
        lines = [f"// {self.title}", "digraph symgrad {", "  rankdir=LR;",
                 '  node [fontname="Helvetica", fontsize=12];',
                 '  edge [fontname="Helvetica", fontsize=9, color="#57606a"];']
        caption = self.title + (f"\\n{self.note}" if self.note else "")
        lines.append(f'  labelloc="t"; label="{_dot_string(caption)}";')
        shapes = {"param": "box", "input": "diamond", "op": "ellipse"}
        for n in self.nodes:
            parts = []
            if n.value is not None:
                parts.append(f'<font color="{COLORS["value"]}">{_html(n.value)}</font>')
            parts.append(f"<b>{_html(n.label)}</b>")
            if n.grad is not None:
                parts.append(f'<font color="{COLORS["grad"]}">{_html(n.grad)}</font>')
            fill = COLORS["output"] if n.output else COLORS[n.kind]
            attrs = [f"shape={shapes[n.kind]}", "style=" + ('"filled,dashed"' if n.cut
                                                           else "filled"),
                     f'fillcolor="{fill}"', f"label=<{'<br/>'.join(parts)}>",
                     f'tooltip="{_dot_string(n.name)}"']
            if n.output:
                attrs += ["peripheries=2", f'color="{COLORS["ring"]}"',
                          f'xlabel="{_dot_string(n.name)}"']
            lines.append(f"  {n.key} [{', '.join(attrs)}];")
        for src, dst, label in self.edges:
            extra = f' [label="{_dot_string(label)}"]' if label else ""
            lines.append(f"  {src} -> {dst}{extra};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def svg(self) -> str:
        return self._render("svg").decode("utf-8")

    def png(self) -> bytes:
        return self._render("png")

    def _repr_svg_(self) -> str:
        return self.svg()

    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write the picture atomically; the format comes from `format` or the extension."""
        from symgrad.files import write_atomic

        fmt = output_format(path, format)
        content = {"dot": self.dot, "svg": self.svg}.get(fmt, self.png)()
        return write_atomic(path, content)

    def _render(self, fmt: str) -> bytes:
        from symgrad.inspect import draw
        return draw.render(self, fmt)


def output_format(path: str | os.PathLike | None, format: str | None) -> str:
    """The format to write: `format` if given (it must agree with the path's
    extension when that is a known one), else the extension; OptionError otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".") if path is not None else ""
    if format is not None and format not in FORMATS:
        raise OptionError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format is None:
        if suffix not in FORMATS:
            raise OptionError(f"cannot tell the picture format from {str(path)!r}: use a "
                              f".svg, .png or .dot file name, or give --format")
        return suffix
    if suffix in FORMATS and suffix != format:
        raise OptionError(f"--format {format} does not match the file name {str(path)!r}")
    return format


def graph_picture(model: Model, at: Mapping[str, float] | None = None,
                  max_nodes: int = MAX_NODES) -> GraphPicture:
    """The model's forward graph, with values and gradients when `at` (one value per
    param and input) is given. Gradients are of the one-sample loss (+ penalty)."""
    if max_nodes < 1:
        raise OptionError(f"max_nodes must be at least 1, got {max_nodes}")
    point = None if at is None else check_point(model, at)
    s = sweep(model, point, with_inputs=True)
    return _picture(s, max_nodes)


def _picture(s: Sweep, max_nodes: int) -> GraphPicture:
    everything = [n for n in s.order if n.op is not Op.CONST]
    kept = _nearest(s.root, max_nodes)
    # Leaves first, in the model's declaration order, so that columns start in it.
    declared = {name: i for i, name in enumerate((*s.model.param_names,
                                                   *s.model.input_names))}
    leaves = sorted((n for n in everything if n in kept and n.op in LEAVES),
                    key=lambda n: declared.get(n.attr, len(declared)))
    drawn = leaves + [n for n in everything if n in kept and n.op not in LEAVES]
    keys = {n: f"n{i}" for i, n in enumerate(drawn)}
    grads = s.gradient_of() if s.at is not None else {}
    layer: dict[Node, int] = {}
    nodes = []
    for n in drawn:
        inside = [a for a in n.args if a in kept]
        layer[n] = 1 + max((layer[a] for a in inside), default=-1)
        kind = {Op.PARAM: "param", Op.INPUT: "input", Op.SIZE: "input"}.get(n.op, "op")
        value = s.values.get(n) if s.at is not None else None
        grad = grads.get(n)
        nodes.append(DrawnNode(
            keys[n], kind, _leaf_label(s, n) if n.op in LEAVES else _label(n), s.name(n),
            None if value is None else _short(value),
            None if grad is None or n.is_bool else _short(grad),
            n is s.root, any(a.op is not Op.CONST and a not in kept for a in n.args),
            layer[n]))
    edges = []
    for n in drawn:
        roles = ARG_ROLES.get(n.op)
        live = [a for a in n.args if a.op is not Op.CONST]
        for i, a in enumerate(n.args):
            if a not in kept or n.args.index(a) != i:
                continue
            label = roles[i] if roles and len(live) > 1 else ""
            if n.args.count(a) > 1:
                label = f"×{n.args.count(a)}"
            edges.append((keys[a], keys[n], label))
    title = f"{s.model.name or 'model'}: computational graph"
    if s.at is not None:
        title += " at " + ", ".join(f"{k}={_short(v)}" for k, v in s.at.items())
    note = None
    if len(drawn) < len(everything):
        note = (f"showing the {len(drawn)} nodes nearest the output, of {len(everything)}; "
                f"{len(everything) - len(drawn)} not drawn (dashed nodes have hidden inputs)")
    return GraphPicture(title, tuple(nodes), tuple(edges), note)


def _nearest(root: Node, limit: int) -> set[Node]:
    """The `limit` non-constant nodes closest to the root (breadth-first over args)."""
    kept: set[Node] = {root}
    queue = deque([root])
    while queue and len(kept) < limit:
        n = queue.popleft()
        for a in n.args:
            if a.op is Op.CONST or a in kept:
                continue
            if len(kept) >= limit:
                break
            kept.add(a)
            queue.append(a)
    return kept


def _leaf_label(s: Sweep, n: Node) -> str:
    """A leaf's name, with its shape below it for a matrix (`W`, `4×3`)."""
    if not n.shape:
        return s.name(n)
    return f"{s.name(n)}\n{'×'.join(map(str, n.shape))}"


def _label(n: Node) -> str:
    """The op's symbol, with constant args written in (`+1`, `max(0, ·)`)."""
    symbol = SYMBOLS[n.op]
    if n.op is Op.POLYGAMMA and n.attr:
        symbol = f"ψ{n.attr}"     # polygamma(n, x); ψ alone is digamma
    consts = [_short(a.attr, 6) if a.op is Op.CONST else None for a in n.args]
    if all(c is None for c in consts):
        label = symbol
    elif symbol.isalpha() or len(n.args) > 2:
        label = f"{symbol}({', '.join(c or '·' for c in consts)})"
    elif consts[0] is not None:
        label = f"{consts[0]}{symbol}"
    else:
        label = f"{symbol}{consts[1]}"
    return label


def _short(v: float | bool, digits: int = 4) -> str:
    if isinstance(v, bool):
        return str(v)
    text = f"{v:.{digits}g}"
    return "0" if text == "-0" else text


def _html(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", "<br/>")


def _dot_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
