"""Every error symgrad raises is a `SymgradError`.

Model-definition errors live here. Call-time argument errors are defined in
`codegen/runtime.py`, because generated modules embed that file and must not
import symgrad; they are re-exported here so that `except symgrad.SymgradError`
catches both.
"""

from __future__ import annotations

from codegen.runtime import (  # noqa: F401  (re-exported)
    ArgumentError,
    DTypeError,
    EmptyBatchError,
    HessianTooLargeError,
    LengthMismatchError,
    MissingArgumentError,
    NonFiniteError,
    ShapeError,
    SymgradError,
    UnknownArgumentError,
)


class ModelError(SymgradError, ValueError):
    """The model itself is malformed (found when it is defined or compiled)."""


class UnsupportedFunctionError(ModelError):
    """The loss uses a SymPy function or construct symgrad cannot compile."""

    def __init__(self, function: str, subexpression: str, hint: str = ""):
        self.function = function
        self.subexpression = subexpression
        msg = f"unsupported function {function!s} in {subexpression}"
        super().__init__(msg + (f": {hint}" if hint else ""))


class UndeclaredSymbolError(ModelError):
    """A free symbol of the loss is neither a parameter nor an input."""

    def __init__(self, symbols: list[str]):
        self.symbols = symbols
        names = ", ".join(symbols)
        super().__init__(f"symbol(s) {names} appear in the loss but are neither params "
                         f"nor inputs; declare each in Model(params=...) or Model(inputs=...)")


class ShapeMismatchError(ModelError):
    """Two shapes that an operation cannot combine (names both, and where)."""

    def __init__(self, shapes, subexpression: str, detail: str):
        self.shapes = tuple(shapes)
        self.subexpression = subexpression
        super().__init__(f"{detail}, in {subexpression}")


class ExpressionTooDeepError(ModelError):
    """SymPy itself cannot process the expression: it nests deeper than Python's recursion
    limit (symgrad's own passes have no depth limit; method="symbolic" uses sympy.diff)."""


class DuplicateSymbolError(ModelError):
    """A symbol, or a symbol name, is declared twice."""


class InvalidModelError(ModelError):
    """Anything else wrong with a model's declaration (loss kind, reduction, ...)."""


class OptionError(SymgradError, ValueError):
    """An option passed to compile, the CLI or an API call is not one of the known values."""


class ModelFileError(SymgradError):
    """A model file cannot be loaded or does not define a module-level `model`."""


class OutputPathError(SymgradError, OSError):
    """An output file cannot be written; nothing was left at the path."""


class MissingDependencyError(SymgradError, ImportError):
    """An optional package a feature needs is not installed (e.g. matplotlib for pictures)."""


class ChunkingError(SymgradError, ValueError):
    """Dask arrays given as data cannot be split into row chunks for the workers (mixed
    with NumPy arrays, chunked along another axis, or with different row chunks)."""
