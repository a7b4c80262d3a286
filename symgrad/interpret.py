"""NumPy evaluator of IR graphs over a batch: the test oracle and the value source
for inspection.

Values follow `ir.SEMANTICS`. A node inside a `WHERE` branch is computed only
for the samples where its region's guard holds (elsewhere it is 0 or False), as
the generated kernels do, so the untaken branch is never evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from symgrad.ir import Node, Op, apply, toposort
from symgrad.passes.regions import Region, Regions, conditions


def evaluate(roots: Sequence[Node], params: Mapping[str, float],
             data: Mapping[str, np.ndarray] | None = None, n: int | None = None
             ) -> dict[Node, np.ndarray]:
    """Value of every node reachable from roots, each an array of length n."""
    data = {k: np.asarray(v, dtype=np.float64) for k, v in (data or {}).items()}
    if n is None:
        n = len(next(iter(data.values()))) if data else 1
    regions = Regions(roots)
    order = toposort(roots, lambda node: conditions(regions.of[node]))
    values: dict[Node, np.ndarray] = {}
    masks: dict[Region, np.ndarray] = {}

    def mask_of(region: Region | None) -> np.ndarray | None:
        if region is None:
            return None
        if region not in masks:
            parent = mask_of(region.parent)
            cond = values[region.cond].astype(bool)
            m = cond if region.branch else ~cond
            masks[region] = m if parent is None else (m & parent)
        return masks[region]

    for node in order:
        if node.op is Op.CONST:
            values[node] = np.full(n, node.attr)
        elif node.op is Op.PARAM:
            values[node] = np.full(n, float(params[node.attr]))
        elif node.op is Op.INPUT:
            values[node] = data[node.attr]
        else:
            values[node] = _compute(node, values, regions, mask_of, n)
    return values


def _compute(node, values, regions, mask_of, n):
    args = [values[a] for a in node.args]
    mask = mask_of(regions.of[node])
    dtype = bool if node.is_bool else np.float64
    if mask is None:
        return np.asarray(apply(node.op, args, node.attr), dtype=dtype)
    out = np.zeros(n, dtype=dtype)
    idx = np.nonzero(mask)[0]
    if idx.size:
        out[idx] = apply(node.op, [a[idx] for a in args], node.attr)
    return out


def evaluate_outputs(roots: Sequence[Node], params, data=None, n=None) -> list[np.ndarray]:
    values = evaluate(roots, params, data, n)
    return [values[r] for r in roots]


def loss_and_grad(derivation, params, data=None) -> tuple[float, dict[str, float]]:
    """The total loss and gradients of a derivation, as the kernels define them."""
    d = derivation
    n = len(next(iter(data.values()))) if d.inputs else 1
    per_sample = [r for r in (d.sample_loss, *d.sample_grads) if r is not None]
    values = evaluate(per_sample, params, data, n)
    once = [r for r in (d.penalty, *d.penalty_grads) if r is not None]
    values.update({r: v[0] for r, v in evaluate(once, params, n=1).items() if r in once})

    def total(sample: Node | None, penalty: Node | None) -> float:
        result = 0.0
        if sample is not None:
            result = float(np.sum(values[sample]))
            if d.reduction == "mean":
                result /= n
        return result + (0.0 if penalty is None else float(values[penalty]))

    grads = {p: total(g, pg) for p, g, pg in zip(d.params, d.sample_grads, d.penalty_grads)}
    return total(d.sample_loss, d.penalty), grads


def evaluate_tensor(roots: Sequence[Node], params: Mapping[str, np.ndarray],
                    data: Mapping[str, np.ndarray] | None = None) -> dict[Node, np.ndarray]:
    """Values of a matrix model's nodes (arrays of the nodes' shapes). Branches are
    evaluated eagerly and selected, with floating-point warnings silenced."""
    data = {k: np.asarray(v, dtype=np.float64) for k, v in (data or {}).items()}
    sizes: dict[str, int] = {}
    values: dict[Node, np.ndarray] = {}
    order = toposort(roots)
    for node in order:
        if node.op is Op.INPUT:
            arr = data[node.attr].reshape(node.shape[0] if isinstance(node.shape[0], int)
                                          else -1, *node.shape[1:])
            sizes.update({d: arr.shape[i] for i, d in enumerate(node.shape)
                          if isinstance(d, str)})
    for node in order:
        if node.op is Op.CONST:
            values[node] = np.float64(node.attr)
        elif node.op is Op.PARAM:
            values[node] = np.asarray(params[node.attr], dtype=np.float64).reshape(node.shape)
        elif node.op is Op.INPUT:
            values[node] = data[node.attr].reshape(
                tuple(sizes[d] if isinstance(d, str) else d for d in node.shape))
        elif node.op is Op.SIZE:
            values[node] = np.float64(sizes[node.attr])
        elif node.op is Op.BROADCAST:
            shape = tuple(sizes[d] if isinstance(d, str) else d for d in node.shape)
            values[node] = np.broadcast_to(values[node.args[0]], shape)
        else:
            values[node] = apply(node.op, [values[a] for a in node.args], node.attr)
    return values



def jvp_and_hvp(derivation, second, params, vector, data=None
                ) -> tuple[float, dict[str, float]]:
    """(the JVP, H v per param) of a scalar model's second-order graphs (a
    second_order.SecondOrder of `derivation`) along `vector`, as the kernels define them."""
    from dataclasses import replace

    from symgrad.ir import const

    d = derivation
    as_first_order = replace(d, sample_loss=second.sample_jvp or const(0.0),
                             penalty=second.penalty_jvp, sample_grads=second.sample_hvps,
                             penalty_grads=second.penalty_hvps)
    values = {**params, **{v: vector[p] for p, v in zip(d.params, second.directions)}}
    return loss_and_grad(as_first_order, values, data)
