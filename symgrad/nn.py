"""Layers that build SymPy matrix expressions, with PyTorch's conventions.

`Linear(in, out)` has `weight` (out, in) and `bias` (out,) (a 1 x out
MatrixSymbol, given as a vector at call time), and computes X W^T + b for a
batch X (n, in). In a `Sequential`, parameters are named like a PyTorch
state_dict of the same Sequential ("0.weight", "0.bias", "2.weight", ...), so a
PyTorch model's weights drop in: `{k: v.numpy() for k, v in net.state_dict().items()}`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symgrad.errors import ShapeMismatchError
from symgrad.functions import relu, sigmoid
from symgrad.matrix import elementwise, repeat_rows


class Module:
    params: list[sp.MatrixSymbol]

    def named(self, prefix: str) -> Module:
        return self

    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Initial params as PyTorch draws them (uniform in +-1/sqrt(fan_in)); dict name -> array."""
        rng = np.random.default_rng(seed)
        return self._init(rng)

    def _init(self, rng) -> dict[str, np.ndarray]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 name: str = ""):
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias
        self.named(name)

    def named(self, prefix: str) -> Linear:
        dot = f"{prefix}." if prefix else ""
        self.weight = sp.MatrixSymbol(f"{dot}weight", self.out_features, self.in_features)
        self.bias = sp.MatrixSymbol(f"{dot}bias", 1, self.out_features) if self.has_bias else None
        self.params = [self.weight] + ([self.bias] if self.has_bias else [])
        return self

    def __call__(self, x: sp.MatrixExpr) -> sp.MatrixExpr:
        if x.shape[1] != self.in_features:
            raise ShapeMismatchError([x.shape, self.weight.shape], f"{self!r}({x})",
                                     f"Linear expects {self.in_features} input features, got "
                                     f"{x.shape[1]}; make the layer Linear({x.shape[1]}, "
                                     f"{self.out_features}) or give its input "
                                     f"{self.in_features} columns")
        out = x * self.weight.T
        return out + repeat_rows(self.bias, x.shape[0]) if self.has_bias else out

    def _init(self, rng) -> dict[str, np.ndarray]:
        bound = 1.0 / np.sqrt(self.in_features)
        out = {self.weight.name: rng.uniform(-bound, bound, (self.out_features,
                                                             self.in_features))}
        if self.has_bias:
            out[self.bias.name] = rng.uniform(-bound, bound, self.out_features)
        return out

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.has_bias})"


class _Elementwise(Module):
    function = None

    def __init__(self):
        self.params = []

    def __call__(self, x: sp.MatrixExpr) -> sp.MatrixExpr:
        return elementwise(self.function, x)


class ReLU(_Elementwise):
    function = relu


class Sigmoid(_Elementwise):
    function = sigmoid


class Tanh(_Elementwise):
    function = sp.tanh


class Flatten(Module):
    """Identity: symgrad's batches are already 2-D (n, features); a (n, 1) result
    stands for PyTorch's flattened (n,) vector, and targets may be given as vectors."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.params = []

    def __call__(self, x: sp.MatrixExpr) -> sp.MatrixExpr:
        return x


class Sequential(Module):
    def __init__(self, *layers: Module):
        self.layers = [layer.named(str(i)) for i, layer in enumerate(layers)]
        self.params = [p for layer in self.layers for p in layer.params]

    def __call__(self, x: sp.MatrixExpr) -> sp.MatrixExpr:
        for layer in self.layers:
            x = layer(x)
        return x

    def _init(self, rng) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            out.update(layer._init(rng))
        return out

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
