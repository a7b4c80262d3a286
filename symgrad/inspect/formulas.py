"""Each parameter's gradient as a formula, by either method.

Reverse mode: the adjoint DAG (the gradient outputs of `derive`) folded back into
SymPy, sympy.cse-style: every intermediate used more than once is defined once
(`h1 = ...`) and the gradients are written in terms of those names. The direct
method: `sympy.diff`'s tree per parameter, with nothing shared (the contrast).

A model's total loss is `reduce over samples of the per-sample loss + penalty`,
so a gradient is `reduce over samples of (per-sample gradient) + penalty
gradient`; the formulas show the per-sample part inside an explicit sum (or mean)
whenever the model has per-sample inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy as sp

from symgrad import direct
from symgrad.derivation import METHODS, derive
from symgrad.errors import OptionError
from symgrad.inspect.to_sympy import model_symbols, to_sympy, with_definitions
from symgrad.ir import Node, count_ops
from symgrad.model import Model

if TYPE_CHECKING:
    from symgrad.inspect.picture import GraphPicture
    from symgrad.inspect.steps import Steps

Progress = Callable[[str], None]
SAMPLE = sp.Symbol("i", integer=True)
BATCH = sp.Symbol("n", integer=True, positive=True)


@dataclass(frozen=True)
class Formulas:
    """The gradient formulas of one model by one method.

    `definitions` are the shared intermediates (reverse mode only), in order;
    `sample[p]` is the per-sample gradient of param p in terms of them and
    `penalty[p]` the penalty's gradient (0 where none). `str()` gives text,
    `.pretty()` Unicode art, `.latex()` an `align*` block; Jupyter shows the LaTeX.
    """

    model: Model
    method: str
    definitions: tuple[tuple[sp.Symbol, sp.Expr], ...]
    sample: dict[str, sp.Expr]
    penalty: dict[str, sp.Expr]
    rewrites: tuple[tuple[str, int], ...] = ()   # stability rewrites the kernels apply

    # ------------------------------------------------------------- values

    @property
    def loss_name(self) -> str:
        """f for a plain function of the params, L for a loss over samples."""
        return "L" if self.model.inputs else "f"

    @property
    def per_sample(self) -> bool:
        """Whether the loss is written for one sample (scalar inputs) and then reduced;
        a matrix model's loss is already the batch's total."""
        return bool(self.model.inputs) and not is_matrix(self.model)

    def gradient(self, param: str) -> sp.Expr:
        """The full per-sample gradient of `param` (penalty part included, names
        expanded), for checking; the sum over samples is left out."""
        expr = sp.Add(self.sample[param], self.penalty[param])
        for name, body in reversed(self.definitions):
            expr = expr.xreplace({name: body})
        return expr

    def steps(self, at: Mapping[str, float] | None = None) -> Steps:
        """Reverse mode's forward and backward sweep, at a point (one value per param
        and input: one sample) or symbolically; `print()` it."""
        from symgrad.inspect.steps import adjoint_steps
        return adjoint_steps(self.model, at)

    def graph(self, at: Mapping[str, float] | None = None,
              max_nodes: int = 60) -> GraphPicture:
        """The computational graph with values and gradients at `at`; shows as SVG in
        Jupyter, `.save("g.png")` writes SVG, PNG or DOT by the extension."""
        from symgrad.inspect.picture import graph_picture
        return graph_picture(self.model, at, max_nodes)

    # ------------------------------------------------------------ display

    def header(self) -> str:
        m = self.model
        how = {"reverse": "reverse mode (the adjoint DAG; intermediates used more than once "
                          "are named h1, h2, ...)",
               "symbolic": "sympy.diff of the whole loss (one tree per parameter, "
                           "nothing shared)"}[self.method]
        lines = [f"Gradients of {m.name or 'the model'} by {how}"]
        loss = _formula(m, m.loss, m.forward[0])
        penalty = "" if m.penalty is None else " + " + _formula(m, m.penalty, m.forward[1])
        if self.per_sample:
            red = m.reduction
            lines.append(f"L = {red}_i( {loss} ){penalty}")
            lines.append(f"    {red}_i( ... ) runs over the samples i of the batch, with "
                         f"the inputs {', '.join(m.input_names)} taking sample i's values")
        else:
            lines.append(f"{self.loss_name} = {loss}{penalty}")
        if self.rewrites:
            lines.append("stability rewrites: " + "; ".join(
                f"{name} ({count})" for name, count in self.rewrites))
        return "\n".join(lines)

    def _terms(self, param: str, show: Callable[[sp.Expr], str],
               reduce: Callable[[sp.Expr], str]) -> str:
        """`reduce(per-sample part) + penalty part`, each shown by `show`, zeros left out."""
        sample, penalty = self.sample[param], self.penalty[param]
        terms = []
        if sample != 0:
            terms.append(reduce(sample) if self.per_sample else show(sample))
        if penalty != 0:
            terms.append(show(penalty))
        return _join(terms)

    def _reduced(self, expr: sp.Expr) -> sp.Expr:
        total = sp.Sum(expr, (SAMPLE, 1, BATCH))
        if self.model.reduction == "mean":
            return sp.Mul(1 / BATCH, total, evaluate=False)
        return total

    def text(self) -> str:
        lines = [self.header(), ""]
        lines += [f"{name} = {sp.sstr(body)}" for name, body in self.definitions]
        if self.definitions:
            lines.append("")
        red = self.model.reduction
        for p in self.model.param_names:
            rhs = self._terms(p, sp.sstr, lambda e: f"{red}_i( {sp.sstr(e)} )")
            lines.append(f"d{self.loss_name}/d{p} = {rhs}")
        return "\n".join(lines) + "\n"

    __str__ = text

    def pretty(self) -> str:
        """Unicode rendering (sympy.pretty), one equation per block."""
        blocks = [self.header()]
        for name, body in self.definitions:
            blocks.append(sp.pretty(sp.Eq(name, body, evaluate=False), use_unicode=True))
        for p in self.model.param_names:
            sample, penalty = self.sample[p], self.penalty[p]
            if self.per_sample and sample != 0:
                sample = self._reduced(sample)
            lhs = sp.Symbol(f"∂{self.loss_name}/∂{p}")
            rhs = sp.Add(sample, penalty, evaluate=False) if sample != 0 != penalty \
                else sample + penalty
            blocks.append(sp.pretty(sp.Eq(lhs, rhs, evaluate=False), use_unicode=True))
        return "\n\n".join(blocks) + "\n"

    def latex_lines(self) -> list[str]:
        """One `lhs &= rhs` row per definition and per parameter."""
        rows = [f"{sp.latex(name)} &= {sp.latex(body)}" for name, body in self.definitions]
        for p in self.model.param_names:
            lhs = rf"\frac{{\partial {self.loss_name}}}{{\partial {sp.latex(sp.Symbol(p))}}}"
            rhs = self._terms(p, sp.latex, lambda e: sp.latex(self._reduced(e)))
            rows.append(f"{lhs} &= {rhs}")
        return rows

    def latex(self) -> str:
        """An amsmath `align*` block, preceded by the header as TeX comments."""
        comments = [f"% {line}" for line in self.header().splitlines()]
        body = " \\\\\n".join(self.latex_lines())
        return "\n".join([*comments, r"\begin{align*}", body, r"\end{align*}"]) + "\n"

    def _repr_latex_(self) -> str:
        return "$$\\begin{aligned}" + " \\\\ ".join(self.latex_lines()) + "\\end{aligned}$$"


def gradient_formulas(model: Model, method: str = "reverse",
                      progress: Progress | None = None) -> Formulas:
    """Formulas for every parameter's gradient by `method` ("reverse" or "symbolic")."""
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    params = model.param_names
    if method == "symbolic":
        if is_matrix(model):
            raise OptionError("method 'symbolic' (sympy.diff) does not support matrix "
                              "models; use method 'reverse'")
        return _symbolic(model, progress)
    if progress:
        progress(f"deriving {_count(params)} by reverse mode...")
    d = derive(model, "reverse")
    if progress:
        progress("folding the adjoint DAG back into SymPy...")
    definitions, sample, penalty = fold(model, d.sample_grads, d.penalty_grads)
    return Formulas(model, method, definitions, sample, penalty, d.rewrites)


def fold(model: Model, sample: Sequence[Node | None], penalty: Sequence[Node | None],
         reserved: Iterable[str] = ()):
    """(definitions, {param: per-sample expr}, {param: penalty expr}) of one output per
    param and part (None: 0), folded into SymPy with the shared intermediates named."""
    params = model.param_names
    symbols = model_symbols(model)
    slots = [("sample", p, g) for p, g in zip(params, sample)]
    slots += [("penalty", p, g) for p, g in zip(params, penalty)]
    present = [s for s in slots if s[2] is not None]
    definitions, exprs = with_definitions([g for _, _, g in present], symbols,
                                          set(symbols) | set(reserved))
    parts: dict[str, dict[str, sp.Expr]] = {"sample": {}, "penalty": {}}
    for (part, p, _), expr in zip(present, exprs):
        parts[part][p] = expr
    return (tuple(definitions), {p: parts["sample"].get(p, sp.S.Zero) for p in params},
            {p: parts["penalty"].get(p, sp.S.Zero) for p in params})


def _symbolic(model: Model, progress: Progress | None) -> Formulas:
    params = model.param_names
    if progress:
        progress(f"deriving {_count(params)} by sympy.diff...")
    sample = direct.symbolic_gradients(model.loss, model.real_params)
    penalty = ([sp.S.Zero] * len(params) if model.penalty is None
               else direct.symbolic_gradients(model.penalty, model.real_params))
    return Formulas(model, "symbolic", (), dict(zip(params, sample)), dict(zip(params, penalty)),
                    derive(model, "symbolic").rewrites)


def _join(terms: list[str]) -> str:
    """Terms joined by + (or - where a term starts with a minus sign); "0" for none."""
    if not terms:
        return "0"
    text = terms[0]
    for t in terms[1:]:
        text += f" - {t[1:].lstrip()}" if t.startswith("-") else f" + {t}"
    return text


def is_matrix(model: Model) -> bool:
    return bool(getattr(model, "is_matrix", False))


def _count(params) -> str:
    return f"{len(params)} gradient{'s' if len(params) != 1 else ''}"


def _formula(model: Model, expr: sp.Expr, graph: Node, limit: int = 400) -> str:
    """The model's own formula, unless it is too big to be worth printing. A matrix
    model's is read back from its IR, in the gradients' notation (matmul, sum,
    logsumexp): SymPy prints its matrix expressions as `Lambda(_d, log(_d)).(...)`."""
    ops = count_ops([graph])
    if ops > 200:
        return f"<{ops} operations, not shown>"
    if is_matrix(model):
        (expr,) = to_sympy([graph], model_symbols(model))
    text = sp.sstr(expr)
    return text if len(text) <= limit else text[: limit - 4] + " ..."
