"""`Model`: a loss written with SymPy, its parameters and its per-sample inputs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import sympy as sp

from symgrad.errors import (
    DuplicateSymbolError,
    InvalidModelError,
    UndeclaredSymbolError,
)
from symgrad.frontend import Lowering
from symgrad.ir import Node

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
                 reduction: str = "sum", penalty=None, name: str | None = None):
        self.params = _symbols("params", params)
        self.inputs = _symbols("inputs", inputs)
        both = set(self.params) & set(self.inputs)
        if both:
            raise DuplicateSymbolError(f"symbol {sorted(map(str, both))[0]!r} is listed both "
                                       f"as a param and as an input")
        names = [s.name for s in (*self.params, *self.inputs)]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise DuplicateSymbolError(f"two different symbols are named {clash[0]!r} "
                                       f"(e.g. one declared real=True and one not); "
                                       f"names must be unique")
        if reduction not in REDUCTIONS:
            raise InvalidModelError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.name = name
        # Differentiation assumes real symbols (d|x|/dx = sign(x) only for real x).
        self._real = {s: s if s.is_real else sp.Symbol(s.name, real=True)
                      for s in (*self.params, *self.inputs)}
        self.loss = self._expression("loss", loss)
        self.penalty = None if penalty is None else self._expression("penalty", penalty)
        if self.penalty is not None and self.penalty.free_symbols & set(self.real_inputs):
            bad = sorted(str(s) for s in self.penalty.free_symbols & set(self.real_inputs))
            raise InvalidModelError(f"penalty reads input(s) {', '.join(bad)}; a penalty "
                                    f"is added once per batch and may use params only")
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
                        dict(zip(self.real_inputs, self.input_names)), zero_deltas)

    @cached_property
    def forward(self) -> tuple[Node, Node | None]:
        """IR of (per-sample loss, penalty or None)."""
        low = self.lowering()
        return low(self.loss), None if self.penalty is None else low(self.penalty)

    def _expression(self, what: str, expr) -> sp.Expr:
        if isinstance(expr, (int, float)):
            expr = sp.Float(expr) if isinstance(expr, float) else sp.Integer(expr)
        if isinstance(expr, (sp.MatrixBase, sp.MatrixExpr)) or getattr(expr, "is_Matrix", False):
            raise InvalidModelError(f"the {what} must be a scalar expression, got a matrix "
                                    f"of shape {getattr(expr, 'shape', '?')}")
        if not isinstance(expr, sp.Expr):
            raise InvalidModelError(f"the {what} must be a scalar SymPy expression, got "
                                    f"{type(expr).__name__}: {expr!r}"[:300])
        declared = set(self.params) | set(self.inputs) | set(self._real.values())
        undeclared = sorted(str(s) for s in expr.free_symbols - declared)
        if undeclared:
            raise UndeclaredSymbolError(undeclared)
        return expr.xreplace(self._real)

    def __repr__(self) -> str:
        text = f"Model(loss={sp.sstr(self.loss)}"
        if self.penalty is not None:
            text += f", penalty={sp.sstr(self.penalty)}"
        return (text + f", params={list(self.param_names)}, inputs={list(self.input_names)}, "
                f"reduction={self.reduction!r})")


def _symbols(what: str, symbols) -> tuple[sp.Symbol, ...]:
    if isinstance(symbols, sp.Symbol):
        symbols = [symbols]
    out = []
    for s in symbols:
        if not isinstance(s, sp.Symbol):
            raise InvalidModelError(f"{what} must be SymPy Symbols, got {type(s).__name__} "
                                    f"{s!r}"[:300])
        if s in out:
            raise DuplicateSymbolError(f"symbol {s.name!r} is listed twice in {what}")
        out.append(s)
    return tuple(out)
