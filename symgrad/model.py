"""`Model`: a loss written with SymPy, its parameters and its per-sample inputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property

import sympy as sp

from symgrad.errors import (
    DuplicateSymbolError,
    InvalidModelError,
    UndeclaredSymbolError,
)
from symgrad.frontend import Lowering, free_symbols, replace_symbols
from symgrad.frontend_matrix import dims
from symgrad.ir import Node, Op, div, format_shape, node, sum_

REDUCTIONS = ("sum", "mean")


class Model:
    """One sample's loss, reduced over the batch, plus an optional penalty.

    `loss` is a scalar SymPy expression of the `params` (scalars shared by every
    sample) and the `inputs` (one value per sample). The total loss is
    `reduce(loss over samples) + penalty`, with `reduction` "sum" or "mean";
    `penalty` (params only, e.g. an L2 term) is added once, not per sample.
    With no inputs the model is a plain function of its params.
    """

    def __init__(self, loss, params: Sequence[sp.Symbol], inputs: Sequence[sp.Symbol] = (),
                 reduction: str = "sum", penalty=None, name: str | None = None,
                 predict=None):
        self.params = _symbols("params", params)
        self.inputs = _symbols("inputs", inputs)
        both = set(self.params) & set(self.inputs)
        if both:
            raise DuplicateSymbolError(f"symbol {sorted(map(str, both))[0]!r} is listed both "
                                       f"as a param and as an input; list it once: params "
                                       f"are learned, inputs are data")
        names = [s.name for s in (*self.params, *self.inputs)]
        clash = sorted(n for n, count in Counter(names).items() if count > 1)
        if clash:
            raise DuplicateSymbolError(f"two different symbols are named {clash[0]!r} "
                                       f"(e.g. one declared real=True and one not); "
                                       f"names must be unique")
        if reduction not in REDUCTIONS:
            raise InvalidModelError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.name = name
        # Differentiation assumes real symbols (d|x|/dx = sign(x) only for real x).
        self._real = {s: s if isinstance(s, sp.MatrixSymbol) or s.is_real
                      else sp.Symbol(s.name, real=True) for s in (*self.params, *self.inputs)}
        self.sizes = _size_symbols(self.params, self.inputs)
        self.is_matrix = any(isinstance(s, sp.MatrixSymbol) for s in (*self.params, *self.inputs))
        self.loss = self._expression("loss", loss)
        self.penalty = None if penalty is None else self._expression("penalty", penalty)
        if self.penalty is not None and free_symbols(self.penalty) & set(self.real_inputs):
            bad = sorted(str(s) for s in free_symbols(self.penalty) & set(self.real_inputs))
            raise InvalidModelError(f"penalty reads input(s) {', '.join(bad)}; a penalty "
                                    f"is added once per batch and may use params only")
        self.prediction = None if predict is None else self._expression("predict", predict,
                                                                           matrix=True)
        self.forward  # lower now, so unsupported functions are reported at definition

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.params)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    @property
    def real_params(self) -> tuple[sp.Symbol, ...]:
        return tuple(self._real[s] for s in self.params)

    @property
    def real_inputs(self) -> tuple[sp.Symbol, ...]:
        return tuple(self._real[s] for s in self.inputs)

    def lowering(self, zero_deltas: bool = False) -> Lowering:
        return Lowering(dict(zip(self.real_params, self.param_names)),
                        dict(zip(self.real_inputs, self.input_names)), zero_deltas,
                        sizes={s: s.name for s in self.sizes})

    @cached_property
    def forward(self) -> tuple[Node, Node | None]:
        """IR of (per-sample loss, penalty or None).

        For a matrix model the loss is the batch's total as written (divided by the
        batch size for reduction="mean"), and the backend does not reduce it again.
        """
        low = self.lowering()
        loss = self._scalar("loss", low(self.loss))
        if self.is_matrix and self.reduction == "mean":
            if not self.sizes:
                raise InvalidModelError("reduction='mean' needs a batch dimension: "
                                        "no input has a symbolic size")
            loss = div(loss, node(Op.SIZE, attr=next(iter(self.sizes)).name))
        penalty = None if self.penalty is None else self._scalar("penalty", low(self.penalty))
        return loss, penalty

    @cached_property
    def param_nodes(self) -> tuple[Node, ...]:
        """The IR leaf of each param, in order (with its shape)."""
        memo = self.lowering().memo
        return tuple(memo[s] for s in self.real_params)

    @cached_property
    def input_nodes(self) -> tuple[Node, ...]:
        memo = self.lowering().memo
        return tuple(memo[s] for s in self.real_inputs)

    @cached_property
    def predict_node(self) -> Node | None:
        return None if self.prediction is None else self.lowering()(self.prediction)

    def _scalar(self, what: str, n: Node) -> Node:
        if n.shape == (1, 1):
            return sum_(n)
        if n.shape:
            raise InvalidModelError(f"the {what} must be a scalar (or a 1x1 matrix), got "
                                    f"shape {format_shape(n.shape)}")
        return n

    def _expression(self, what: str, expr, matrix: bool = False) -> sp.Expr:
        if isinstance(expr, (int, float)):
            expr = sp.Float(expr) if isinstance(expr, float) else sp.Integer(expr)
        shape = getattr(expr, "shape", None)
        if isinstance(expr, sp.MatrixBase) or (
                isinstance(expr, sp.MatrixExpr) and not matrix
                and not (self.is_matrix and shape == (1, 1))):
            raise InvalidModelError(f"the {what} must be a scalar expression, got a matrix "
                                    f"of shape {shape}")
        if not isinstance(expr, sp.Expr):
            raise InvalidModelError(f"the {what} must be a scalar SymPy expression, got "
                                    f"{type(expr).__name__}: {expr!r}"[:300])
        declared = (set(self.params) | set(self.inputs) | set(self._real.values())
                    | set(self.sizes))
        # Iterative walks: SymPy's free_symbols and xreplace recurse, so deep losses overflow.
        undeclared = sorted(str(s) for s in free_symbols(expr) - declared)
        known = set(self.param_names) | set(self.input_names)
        if clash := [name for name in undeclared if name in known]:
            raise DuplicateSymbolError(f"the {what} uses a symbol named {clash[0]!r} that is "
                                       f"not the declared {clash[0]!r} (different assumptions, "
                                       f"e.g. real=True); use the same Symbol object")
        if undeclared:
            raise UndeclaredSymbolError(undeclared)
        return replace_symbols(expr, {s: r for s, r in self._real.items() if s is not r})

    def __repr__(self) -> str:
        text = f"Model(loss={_sstr(self.loss)}"
        if self.penalty is not None:
            text += f", penalty={_sstr(self.penalty)}"
        return (text + f", params={list(self.param_names)}, inputs={list(self.input_names)}, "
                f"reduction={self.reduction!r})")


def _sstr(expr) -> str:
    try:
        return sp.sstr(expr)
    except RecursionError:      # SymPy's printer recurses
        return "<expression nested too deep to print>"


def _size_symbols(params, inputs) -> tuple[sp.Symbol, ...]:
    """The symbolic dims (the batch size): allowed in inputs' shapes, not in params'."""
    sizes: list[sp.Symbol] = []
    for s in (*params, *inputs):
        if not isinstance(s, sp.MatrixSymbol):
            continue
        try:
            shape = dims(s.shape)
        except ValueError as exc:
            raise InvalidModelError(f"{s.name}: {exc}") from None
        symbolic = [d for d in s.shape if isinstance(d, sp.Symbol)]
        if symbolic and s in params:
            raise InvalidModelError(f"param {s.name} has a symbolic shape {shape}; params "
                                    f"need concrete sizes (only inputs carry the batch size)")
        sizes += [d for d in symbolic if d not in sizes]
    if len(sizes) > 1:
        raise InvalidModelError(f"inputs use several symbolic sizes "
                                f"({', '.join(map(str, sizes))}); use one batch size")
    return tuple(sizes)


def _symbols(what: str, symbols) -> tuple[sp.Symbol, ...]:
    if isinstance(symbols, (sp.Symbol, sp.MatrixSymbol)):
        symbols = [symbols]
    out, seen = [], set()
    for s in symbols:
        if not isinstance(s, (sp.Symbol, sp.MatrixSymbol)):
            raise InvalidModelError(f"{what} must be SymPy Symbols or MatrixSymbols, got "
                                    f"{type(s).__name__} {s!r}"[:300])
        if s in seen:
            raise DuplicateSymbolError(f"symbol {s.name!r} is listed twice in {what}")
        out.append(s)
        seen.add(s)
    return tuple(out)
