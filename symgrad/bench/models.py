"""The benchmark's models, built from small specs so a child process can rebuild them.

- `tanh_network(depth, width, inputs)`: `depth` tanh layers of `width` units over
  scalar symbols, a linear output unit, squared error against a target `y`.
- `hinge_network(inputs, hidden)`: the lecture's two-layer net
  y_hat = W2 max(0, W1 x), hinge loss max(0, 1 - y y_hat), plus an L2 penalty
  (as examples/hinge_two_layer.py, at any size).

A spec is a dict such as {"kind": "tanh", "depth": 3, "width": 4, "inputs": 3} or
{"kind": "hinge", "inputs": 4, "hidden": 3}; `build(spec)` makes the Model and
`label(spec)` names it.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgrad

TANH_INPUTS = 3
HINGE_LAMBDA = 0.01


def _symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def _dot(weights, values):
    return sp.Add(*[w * v for w, v in zip(weights, values)])


def tanh_network(depth: int, width: int = 4, inputs: int = TANH_INPUTS) -> symgrad.Model:
    """Scalar tanh network: h_l = tanh(W_l h_(l-1) + b_l), loss (v . h_L + c - y)^2."""
    xs = [_symbol(f"x{j + 1}") for j in range(inputs)]
    target = _symbol("y")
    params: list[sp.Symbol] = []
    h = list(xs)
    for layer in range(1, depth + 1):
        new = []
        for i in range(1, width + 1):
            weights = [_symbol(f"w{layer}_{i}_{j + 1}") for j in range(len(h))]
            bias = _symbol(f"b{layer}_{i}")
            params += [*weights, bias]
            new.append(sp.tanh(_dot(weights, h) + bias))
        h = new
    out_weights = [_symbol(f"v{i + 1}") for i in range(width)]
    out_bias = _symbol("c")
    params += [*out_weights, out_bias]
    prediction = _dot(out_weights, h) + out_bias
    return symgrad.Model((prediction - target) ** 2, params, [*xs, target],
                         name=f"tanh depth {depth} width {width}")


def hinge_network(inputs: int = 4, hidden: int = 3, lam: float = HINGE_LAMBDA
                  ) -> symgrad.Model:
    """L = max(0, 1 - y W2 max(0, W1 x)) per sample, plus lam (|W1|^2 + |W2|^2) once."""
    xs = [_symbol(f"x{j + 1}") for j in range(inputs)]
    label = _symbol("y")
    w1 = [[_symbol(f"w1_{i + 1}_{j + 1}") for j in range(inputs)] for i in range(hidden)]
    w2 = [_symbol(f"w2_{i + 1}") for i in range(hidden)]
    hidden_units = [sp.Max(0, _dot(row, xs)) for row in w1]
    score = _dot(w2, hidden_units)
    params = [w for row in w1 for w in row] + w2
    l2 = sp.Add(*[w**2 for w in params])
    return symgrad.Model(sp.Max(0, 1 - label * score), params, [*xs, label],
                         penalty=lam * l2, name=f"hinge {inputs}x{hidden}")


def logistic_regression(features: int) -> symgrad.Model:
    """log(1 + exp(z)) - label z with z = w . x per sample, mean over the batch
    (symgrad's stabilize pass turns log(1 + exp z) into softplus z)."""
    weights = [_symbol(f"w{j}") for j in range(features)]
    xs = [_symbol(f"x{j}") for j in range(features)]
    label = _symbol("label")
    z = _dot(weights, xs)
    return symgrad.Model(sp.log(1 + sp.exp(z)) - label * z, weights, [*xs, label],
                         reduction="mean", name=f"logistic regression, {features} features")


def build(spec: dict) -> symgrad.Model:
    if spec["kind"] == "tanh":
        return tanh_network(spec["depth"], spec["width"], spec.get("inputs", TANH_INPUTS))
    if spec["kind"] == "hinge":
        return hinge_network(spec["inputs"], spec["hidden"])
    raise ValueError(f"unknown model kind {spec['kind']!r}")


def label(spec: dict) -> str:
    if spec["kind"] == "tanh":
        return f"tanh L={spec['depth']} w={spec['width']}"
    return f"hinge {spec['inputs']}x{spec['hidden']}"


def batch(model: symgrad.Model, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """n samples of standard-normal inputs; a hinge model's label `y` is +-1."""
    rng = np.random.default_rng(seed)
    data = {name: rng.standard_normal(n) for name in model.input_names}
    if "y" in data and model.name and model.name.startswith("hinge"):
        data["y"] = np.where(data["x1"] - 0.5 * data.get("x2", 0.0) > 0, 1.0, -1.0)
    return data


def point(model: symgrad.Model, seed: int = 1, scale: float = 0.5) -> dict[str, float]:
    """Fixed random parameters (scale 0.5, so tanh units are neither flat nor linear)."""
    values = np.random.default_rng(seed).standard_normal(len(model.params)) * scale
    return dict(zip(model.param_names, values.tolist()))
