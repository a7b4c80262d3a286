"""Second order, shown: the Hessian-vector product program, the Hessian at a point, and
a picture of the Hessian's sparsity pattern with its colouring.

Reverse (forward-over-reverse): the tangent of the gradient's DAG along a direction v
(entries `v[p]`), folded back into SymPy with every intermediate used more than once
named (h1, h2, ...), as the gradient formulas are. Symbolic: sympy.hessian's trees, one
per entry, nothing shared (the contrast at second order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp

from symgrad.derivation import METHODS, derive
from symgrad.errors import OptionError
from symgrad.inspect.formulas import _join, fold, is_matrix
from symgrad.model import Model
from symgrad.second_order import derive_second


@dataclass(frozen=True)
class HessianFormulas:
    """(H v)[p] per param by forward-over-reverse (`method` "reverse"; `definitions` the
    shared intermediates), or the entries H[p, q] of sympy.hessian ("symbolic")."""

    model: Model
    method: str
    definitions: tuple[tuple[sp.Symbol, sp.Expr], ...]
    entries: tuple[tuple[str, sp.Expr, sp.Expr], ...]     # (label, per-sample, penalty)

    def text(self) -> str:
        m = self.model
        if self.method == "reverse":
            lines = [f"Hessian-vector products of {m.name or 'the model'} by forward-over-"
                     f"reverse: the tangent of the gradient's DAG along v = (v[p] for each "
                     f"param p); intermediates used more than once are named h1, h2, ..."]
        else:
            lines = [f"Hessian of {m.name or 'the model'} by sympy.hessian: one tree per "
                     f"entry (upper triangle; the Hessian is symmetric), nothing shared"]
        per_sample = bool(m.inputs) and not is_matrix(m)
        if per_sample:
            lines.append(f"each entry is {m.reduction}_i( per-sample part ) + penalty part, "
                         f"over the samples i of the batch")
        lines.append("")
        lines += [f"{name} = {sp.sstr(body)}" for name, body in self.definitions]
        if self.definitions:
            lines.append("")
        for label, sample, penalty in self.entries:
            terms = []
            if sample != 0:
                terms.append(f"{m.reduction}_i( {sp.sstr(sample)} )" if per_sample
                             else sp.sstr(sample))
            if penalty != 0:
                terms.append(sp.sstr(penalty))
            lines.append(f"{label} = {_join(terms)}")
        return "\n".join(lines) + "\n"

    __str__ = text


def hessian_formulas(model: Model, method: str = "reverse") -> HessianFormulas:
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    params = model.param_names
    if method == "symbolic":
        if is_matrix(model):
            raise OptionError("--order 2 --method symbolic (sympy.hessian) is for scalar "
                              "models; use --method reverse")
        zero = sp.zeros(len(params))
        sample = sp.hessian(model.loss, model.real_params)
        penalty = zero if model.penalty is None else \
            sp.hessian(model.penalty, model.real_params)
        f = "L" if model.inputs else "f"
        entries = tuple((f"d2{f}/d{p} d{q}", sample[i, j], penalty[i, j])
                        for i, p in enumerate(params) for j, q in enumerate(params) if j >= i)
        return HessianFormulas(model, method, (), entries)
    first = derive(model, "reverse")
    second = derive_second(model, first)
    definitions, sample, penalty = fold(model, second.sample_hvps, second.penalty_hvps,
                                        second.directions)
    entries = tuple((f"(H v)[{p}]", sample[p], penalty[p]) for p in params)
    return HessianFormulas(model, method, definitions, entries)


def hessian_at(model: Model, at: Mapping[str, float], method: str = "reverse"
               ) -> np.ndarray:
    """The Hessian at a point (params and, for a model with inputs, one sample's inputs;
    the penalty's Hessian included), one HVP per column through the interpreter."""
    from symgrad.inspect.point import check_point
    from symgrad.interpret import jvp_and_hvp

    point = check_point(model, at)
    first = derive(model, method)
    second = derive_second(model, first)
    params = {p: point[p] for p in model.param_names}
    data = {x: np.array([point[x]]) for x in model.input_names} or None
    columns = []
    for p in model.param_names:
        unit = {q: float(q == p) for q in model.param_names}
        _, product = jvp_and_hvp(first, second, params, unit, data)
        columns.append([product[q] for q in model.param_names])
    return np.array(columns).T


def format_matrix(h: np.ndarray, names) -> str:
    width = max(10, *(len(n) for n in names))
    lines = [" " * width + "".join(f"{n:>{width + 2}}" for n in names)]
    for name, row in zip(names, h):
        lines.append(f"{name:>{width}}" + "".join(f"{v:>{width + 2}.6g}" for v in row))
    return "\n".join(lines)


def spy(sparsity, names, path: str) -> None:
    """Draw the structural pattern, each entry in its column's colour (one HVP per colour
    computes every entry), with the colour count and the pattern's size in the title."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from symgrad.files import write_atomic

    pattern = sparsity.pattern.tocoo()
    n = pattern.shape[0]
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    palette = plt.get_cmap("tab10" if sparsity.n_colors <= 10 else "turbo")
    colours = sparsity.colors[pattern.col]
    size = min(900.0, max(0.5, (0.8 * 360.0 / max(n, 1)) ** 2))    # squares about a cell
    ax.scatter(pattern.col, pattern.row, c=[palette(c % 10 if sparsity.n_colors <= 10 else
                                                    c / max(sparsity.n_colors - 1, 1))
                                            for c in colours], s=size, marker="s")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_aspect("equal")
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
    ax.set_title(f"Hessian pattern: {pattern.nnz} of {n}x{n} entries; "
                 f"{sparsity.n_colors} colours = {sparsity.n_colors} HVPs", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.rsplit(".", 1)[-1].lower() if "." in path else "png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
