"""A layered (Sugiyama-style) layout for graph pictures: where each node's box sits and
the path each edge takes, edges routed around the boxes.

Layers run left to right: the params and inputs in the first, each op one layer right of
its deepest argument, the output last. An edge that spans several layers passes through
a placeholder slot in every layer between (a "dummy" node), so it runs in a lane of its
own instead of straight across the boxes between its ends: a path leaves its source box
on the right, crosses each gap between two layers in one straight segment, goes through
each layer it passes horizontally at its lane's height, and enters its target box on the
left. Boxes are BOX_WIDTH x BOX_HEIGHT in units where layers are 1 apart and slots 1
apart, so no path meets a box but its own two (tests/test_inspect_picture.py checks it
for every shipped example). The order within each layer comes from barycentre sweeps
(each slot moved to the mean position of its neighbours, down and up, a few rounds),
keeping the order with the fewest crossings; ties keep the earlier order, so the layout
is deterministic. Pure Python: no matplotlib or networkx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BOX_WIDTH = 0.5      # of the distance between layers
BOX_HEIGHT = 0.5     # of the distance between slots
SWEEPS = 8

Point = tuple[float, float]


@dataclass(frozen=True)
class Layout:
    """Box centres by node key, each edge's path (src key, dst key, points), the size."""

    centres: dict[str, Point]
    paths: tuple[tuple[str, str, tuple[Point, ...]], ...]
    layers: int
    slots: int            # the most slots in one layer (dummies included)


def layered_layout(keys: Sequence[str], layer_of: dict[str, int],
                   edges: Sequence[tuple[str, str]]) -> Layout:
    """Lay out nodes `keys` (in their initial order within a layer) in the layers
    `layer_of`, every edge (src, dst) going from a lower layer to a higher one."""
    layers: dict[int, list[str]] = {}
    for key in keys:
        layers.setdefault(layer_of[key], []).append(key)
    depth = max(layers, default=0) + 1
    for d in range(depth):
        layers.setdefault(d, [])
    # Chains of dummies for long edges: edge i passes through ("~i", layer) slots.
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    chains: list[list[str]] = []
    for i, (src, dst) in enumerate(edges):
        assert layer_of[src] < layer_of[dst], f"edge {src} -> {dst} does not go right"
        chain = [src] + [f"~{i}.{d}" for d in range(layer_of[src] + 1, layer_of[dst])] + [dst]
        for d, key in zip(range(layer_of[src] + 1, layer_of[dst]), chain[1:-1]):
            layers[d].append(key)
        for a, b in zip(chain, chain[1:]):
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
        chains.append(chain)
    order = {d: list(layers[d]) for d in range(depth)}
    best, best_crossings = _copy(order), _crossings(order, succ)
    for _ in range(SWEEPS):
        for d in range(1, depth):
            _sort_by_barycentre(order, d, pred, d - 1)
        for d in range(depth - 2, -1, -1):
            _sort_by_barycentre(order, d, succ, d + 1)
        crossings = _crossings(order, succ)
        if crossings < best_crossings:
            best, best_crossings = _copy(order), crossings
    slots = max((len(v) for v in best.values()), default=1)
    centres = {}
    for d, column in best.items():
        offset = (slots - len(column)) / 2.0        # each layer centred vertically
        for i, key in enumerate(column):
            centres[key] = (float(d), -(offset + i))
    half = BOX_WIDTH / 2.0
    paths = []
    for (src, dst), chain in zip(edges, chains):
        x0, y0 = centres[src]
        points = [(x0 + half, y0)]
        for dummy in chain[1:-1]:
            x, y = centres[dummy]
            points += [(x - half, y), (x + half, y)]
        x1, y1 = centres[dst]
        points.append((x1 - half, y1))
        paths.append((src, dst, tuple(points)))
    real = {key: centres[key] for key in keys}
    return Layout(real, tuple(paths), depth, slots)


def _copy(order: dict[int, list[str]]) -> dict[int, list[str]]:
    return {d: list(v) for d, v in order.items()}


def _sort_by_barycentre(order, d: int, neighbours: dict[str, list[str]], other: int) -> None:
    place = {key: i for i, key in enumerate(order[other])}
    current = {key: i for i, key in enumerate(order[d])}

    def centre(key: str) -> tuple[float, int]:
        near = [place[k] for k in neighbours.get(key, ()) if k in place]
        return (sum(near) / len(near) if near else float(current[key]), current[key])

    order[d].sort(key=centre)


def _crossings(order: dict[int, list[str]], succ: dict[str, list[str]]) -> int:
    """Pairs of edges between neighbouring layers that cross."""
    total = 0
    for d in range(len(order) - 1):
        below = {key: i for i, key in enumerate(order[d + 1])}
        ends = [(i, below[b]) for i, a in enumerate(order[d]) for b in succ.get(a, ())
                if b in below]
        for k, (a1, b1) in enumerate(ends):
            for a2, b2 in ends[k + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def box_contains_segment(centre: Point, a: Point, b: Point, margin: float = 1e-9) -> bool:
    """Whether segment a-b passes through the inside of the box around `centre` (touching
    its border does not count)."""
    cx, cy = centre
    lo_x, hi_x = cx - BOX_WIDTH / 2 + margin, cx + BOX_WIDTH / 2 - margin
    lo_y, hi_y = cy - BOX_HEIGHT / 2 + margin, cy + BOX_HEIGHT / 2 - margin
    # Liang-Barsky clipping of the segment against the open box
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - lo_x), (dx, hi_x - a[0]), (-dy, a[1] - lo_y), (dy, hi_y - a[1])):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return t0 < t1
