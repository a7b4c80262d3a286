"""See the derivation: gradient formulas, the adjoint program step by step, and a
picture of the computational graph.

    g = symgrad.grad(model)              # reverse mode; method="symbolic" for sympy.diff
    print(g)                             # text formulas; g.latex(), g.pretty()
    print(g.steps(at={"x": -2, "y": 5, "z": -4}))
    g.graph(at={"x": -2, "y": 5, "z": -4}).save("graph.svg")   # or .png, .dot

In Jupyter, `g` shows its LaTeX and `g.graph(...)` its SVG.
"""

from __future__ import annotations

from symgrad.inspect.formulas import Formulas, Progress, gradient_formulas
from symgrad.model import Model


def grad(model: Model, method: str = "reverse", progress: Progress | None = None
         ) -> Formulas:
    """Every parameter's gradient formula by `method` ("reverse" or "symbolic").

    The result prints as text and has `.latex()`, `.pretty()`, `.steps(at)` and
    `.graph(at)`; `progress`, if given, is called with a line before long phases.
    """
    return gradient_formulas(model, method, progress)


__all__ = ["Formulas", "grad"]
