"""Draw a `GraphPicture` with matplotlib (Agg canvas: no display).

Kept apart from picture.py so that matplotlib is imported only when an SVG or PNG is
asked for. Where things go is symgrad/inspect/layout.py's layered layout: params and
inputs on the left, the output on the right, every edge in a lane of its own around the
boxes; here the boxes are drawn at the layout's size, in its units.
"""

from __future__ import annotations

import io
import textwrap

from symgrad.errors import MissingDependencyError
from symgrad.inspect.layout import BOX_HEIGHT, BOX_WIDTH, layered_layout
from symgrad.inspect.picture import COLORS, DrawnNode, GraphPicture

INCH_PER_LAYER, INCH_PER_SLOT = 1.9, 1.3


def render(picture: GraphPicture, fmt: str) -> bytes:
    """The picture as SVG (UTF-8 bytes) or PNG bytes."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"drawing SVG or PNG needs matplotlib (pip install "
                                     f"'symgrad[viz]'): {exc}; DOT output needs "
                                     f"nothing") from None

    layout = layout_of(picture)
    width = max(4.0, INCH_PER_LAYER * layout.layers + 1.0)
    height = max(3.0, INCH_PER_SLOT * layout.slots + 1.6)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    # the axes hold exactly the layers and slots, so a unit is INCH_PER_* inches
    ax = fig.add_axes((0.5 / width, 0.8 / height, INCH_PER_LAYER * layout.layers / width,
                       INCH_PER_SLOT * layout.slots / height))
    ax.set_axis_off()
    ax.set_xlim(-0.5, layout.layers - 0.5)
    ax.set_ylim(-layout.slots + 0.5, 0.5)
    labels = {(s, d): lab for s, d, lab in picture.edges if lab}
    for src, dst, points in layout.paths:
        _draw_path(ax, points, labels.get((src, dst)))
    for n in picture.nodes:
        x, y = layout.centres[n.key]
        _draw_box(ax, n, x, y)
        _annotate(ax, n, x, y)
    title = textwrap.fill(picture.title, width=int(width * 9), subsequent_indent="    ")
    fig.text(0.01, 1 - 0.1 / height, title, fontsize=11, va="top", weight="bold")
    fig.text(0.01, 0.3 / height, legend(picture), fontsize=8, color="#57606a")
    if picture.note:
        fig.text(0.01, 0.08 / height, "note: " + picture.note, fontsize=9,
                 color=COLORS["grad"])
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "symgrad", "svg.fonttype": "path"}):
        metadata = {"Date": None} if fmt == "svg" else {"Software": "symgrad"}
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def layout_of(picture: GraphPicture):
    """The layered layout of the picture's nodes and edges."""
    return layered_layout([n.key for n in picture.nodes],
                          {n.key: n.layer for n in picture.nodes},
                          [(s, d) for s, d, _ in picture.edges])


def legend(picture: GraphPicture) -> str:
    """What the marks mean; values and gradients only where the picture has them."""
    parts = []
    if any(n.value is not None for n in picture.nodes):
        parts.append("value above each node (green), gradient below (red)")
    parts.append("blue square: param, orange diamond: input, gold ring: output")
    return "; ".join(parts)


def _draw_path(ax, points, label: str | None) -> None:
    xs, ys = zip(*points)
    ax.plot(xs[:-1], ys[:-1], color=COLORS["edge"], linewidth=1.2, zorder=1,
            solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2], zorder=1,
                arrowprops={"arrowstyle": "-|>", "color": COLORS["edge"], "lw": 1.2,
                            "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12})
    if label:
        (xa, ya), (xb, yb) = points[-2], points[-1]
        ax.text(xa + 0.65 * (xb - xa), ya + 0.65 * (yb - ya), label, fontsize=8,
                ha="center", va="center", zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})


def _draw_box(ax, n: DrawnNode, x: float, y: float) -> None:
    from matplotlib import patches
    w, h = BOX_WIDTH, BOX_HEIGHT
    fill = COLORS["output"] if n.output else COLORS[n.kind]
    style = {"facecolor": fill, "edgecolor": COLORS["ring"] if n.output else "#24292f",
             "linewidth": 3.0 if n.output else 1.2, "linestyle": "--" if n.cut else "-",
             "zorder": 3}
    if n.kind == "param":
        shape = patches.Rectangle((x - w / 2, y - h / 2), w, h, **style)
    elif n.kind == "input":
        shape = patches.Polygon([(x - w / 2, y), (x, y + h / 2), (x + w / 2, y),
                                 (x, y - h / 2)], closed=True, **style)
    else:
        shape = patches.Ellipse((x, y), w, h, **style)
    ax.add_patch(shape)


def _annotate(ax, n: DrawnNode, x: float, y: float) -> None:
    size = 10 if max(map(len, n.label.splitlines())) <= 6 else 8
    ax.text(x, y, n.label, ha="center", va="center", fontsize=size, weight="bold",
            zorder=5)
    edge = BOX_HEIGHT / 2 + 0.04
    if n.value is not None:
        ax.text(x, y + edge, n.value, ha="center", va="bottom", fontsize=9,
                color=COLORS["value"], zorder=5)
    if n.grad is not None:
        ax.text(x, y - edge, n.grad, ha="center", va="top", fontsize=9,
                color=COLORS["grad"], zorder=5)
    if n.output:
        ax.text(x + BOX_WIDTH / 2 + 0.04, y + BOX_HEIGHT / 2, n.name, ha="left",
                va="bottom", fontsize=11, weight="bold", zorder=5)
