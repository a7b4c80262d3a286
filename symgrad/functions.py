"""symgrad's own SymPy functions: sigmoid, relu, softplus.

Ordinary `sympy.Function` subclasses, so `sympy.diff`, `pprint` and `latex`
work on them. Their derivatives follow the conventions of the reverse-mode
rules: sigmoid' = sigmoid (1 - sigmoid), softplus' = sigmoid, and
relu' = Heaviside(x, 0), i.e. 0 at the kink as in PyTorch.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import ArgumentIndexError


class _Activation(sp.Function):
    nargs = 1
    _latex_name = ""

    def _eval_is_real(self):
        return self.args[0].is_real

    def _latex(self, printer, exp=None):
        arg = printer._print(self.args[0])
        tex = rf"\operatorname{{{self._latex_name}}}{{\left({arg}\right)}}"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _check_index(self, argindex):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)


class sigmoid(_Activation):
    """The logistic function 1 / (1 + exp(-x))."""

    _latex_name = "sigmoid"

    def fdiff(self, argindex=1):
        self._check_index(argindex)
        return self * (1 - self)

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))


class relu(_Activation):
    """max(0, x), with derivative 0 at x = 0 (PyTorch's convention)."""

    _latex_name = "relu"

    def fdiff(self, argindex=1):
        self._check_index(argindex)
        return sp.Heaviside(self.args[0], 0)

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            return sp.Max(0, x)

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(0, x)


class softplus(_Activation):
    """log(1 + exp(x)), evaluated in a stable form by the kernels."""

    _latex_name = "softplus"

    def fdiff(self, argindex=1):
        self._check_index(argindex)
        return sigmoid(self.args[0])

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))
