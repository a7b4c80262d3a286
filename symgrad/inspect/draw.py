"""Draw a `GraphPicture` with networkx and matplotlib (Agg canvas: no display).

Kept apart from picture.py so that matplotlib is imported only when an SVG or
PNG is asked for. Columns are topological depths; within a column nodes are
ordered by the mean position of their users, then of their args (one barycentre
sweep each way), which keeps most edges from crossing on small graphs.
"""

from __future__ import annotations

import io
import textwrap

from symgrad.errors import MissingDependencyError
from symgrad.inspect.picture import COLORS, DrawnNode, GraphPicture

NODE_SIZE = 1500           # points^2
SHAPES = {"param": "s", "input": "D", "op": "o"}


def render(picture: GraphPicture, fmt: str) -> bytes:
    """The picture as SVG (UTF-8 bytes) or PNG bytes."""
    try:
        import matplotlib
        import networkx as nx
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"drawing SVG or PNG needs matplotlib and networkx "
                                     f"(pip install 'symgrad[viz]'): {exc}; DOT output "
                                     f"needs neither") from None

    graph = nx.DiGraph()
    for n in picture.nodes:
        graph.add_node(n.key)
    for src, dst, label in picture.edges:
        graph.add_edge(src, dst, label=label)
    columns = _columns(picture, graph)
    pos = nx.multipartite_layout(graph, subset_key=columns, align="vertical")
    pos = {k: (x, -y) for k, (x, y) in pos.items()}       # first of a column on top
    width = max(4.0, 1.9 * len(columns) + 1.0)
    height = max(3.0, 1.3 * max(len(c) for c in columns.values()) + 1.6)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.1, 0.96, 0.8))
    ax.set_axis_off()
    by_key = {n.key: n for n in picture.nodes}
    _draw_nodes(nx, ax, graph, pos, picture.nodes)
    nx.draw_networkx_edges(graph, pos, ax=ax, node_size=NODE_SIZE, arrowsize=14,
                           edge_color=COLORS["edge"], width=1.2)
    labels = {(s, d): lab for s, d, lab in picture.edges if lab}
    if labels:
        nx.draw_networkx_edge_labels(graph, pos, edge_labels=labels, ax=ax, font_size=8,
                                     label_pos=0.3, rotate=False)
    for key, (x, y) in pos.items():
        _annotate(ax, by_key[key], x, y)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    span_x = max(max(xs) - min(xs), 1e-9)
    span_y = max(max(ys) - min(ys), 1e-9)
    pad_x = span_x / max(len(columns) - 1, 1) * 0.5 + 0.05
    pad_y = span_y / max(max(len(c) for c in columns.values()) - 1, 1) * 0.5 + 0.05
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    title = textwrap.fill(picture.title, width=int(width * 9), subsequent_indent="    ")
    fig.text(0.01, 0.985, title, fontsize=11, va="top", weight="bold")
    legend = ("value above each node (green), gradient below (red); "
              "blue square: param, orange diamond: input, gold ring: output")
    fig.text(0.01, 0.04, legend, fontsize=8, color="#57606a")
    if picture.note:
        fig.text(0.01, 0.01, "note: " + picture.note, fontsize=9, color=COLORS["grad"])
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "symgrad", "svg.fonttype": "path"}):
        metadata = {"Date": None} if fmt == "svg" else {"Software": "symgrad"}
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def _columns(picture: GraphPicture, graph) -> dict[int, list[str]]:
    """Nodes per topological depth, each column ordered to reduce edge crossings."""
    columns: dict[int, list[str]] = {}
    for n in picture.nodes:
        columns.setdefault(n.layer, []).append(n.key)
    depths = sorted(columns)
    for neighbours, order in ((graph.successors, depths[::-1]),
                              (graph.predecessors, depths)):
        place = {k: i for c in columns.values() for i, k in enumerate(c)}
        for d in order:
            columns[d].sort(key=lambda key: _centre(key, neighbours, place))
            place.update({k: i for i, k in enumerate(columns[d])})
    return {d: columns[d] for d in depths}


def _centre(key: str, neighbours, place: dict[str, int]) -> float:
    near = [place[k] for k in neighbours(key)]
    return sum(near) / len(near) if near else place[key]


def _draw_nodes(nx, ax, graph, pos, nodes: tuple[DrawnNode, ...]) -> None:
    for kind, shape in SHAPES.items():
        group = [n for n in nodes if n.kind == kind]
        if not group:
            continue
        fill = [COLORS["output"] if n.output else COLORS[kind] for n in group]
        edge = [COLORS["ring"] if n.output else "#24292f" for n in group]
        width = [3.0 if n.output else 1.2 for n in group]
        collection = nx.draw_networkx_nodes(
            graph, pos, nodelist=[n.key for n in group], node_shape=shape,
            node_color=fill, edgecolors=edge, linewidths=width, node_size=NODE_SIZE, ax=ax)
        collection.set_linestyle(["--" if n.cut else "-" for n in group])


def _annotate(ax, n: DrawnNode, x: float, y: float) -> None:
    size = 10 if max(map(len, n.label.splitlines())) <= 6 else 8
    gap = 30 if n.kind == "input" else 24      # diamonds reach higher than circles
    ax.text(x, y, n.label, ha="center", va="center", fontsize=size, weight="bold",
            zorder=5)
    if n.value is not None:
        ax.annotate(n.value, (x, y), xytext=(0, gap), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9, color=COLORS["value"], zorder=5)
    if n.grad is not None:
        ax.annotate(n.grad, (x, y), xytext=(0, -gap), textcoords="offset points",
                    ha="center", va="top", fontsize=9, color=COLORS["grad"], zorder=5)
    if n.output:
        ax.annotate(n.name, (x, y), xytext=(26, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=11, weight="bold", zorder=5)
