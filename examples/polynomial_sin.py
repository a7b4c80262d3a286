"""Fit sin(x) on [-pi, pi] by a cubic a + b x + c x^2 + d x^3, by hand.

The lecture's PyTorch example, through symgrad: 2000 points, a sum-of-squares
loss, plain gradient descent with learning rate 1e-6 for 2000 steps in our own
Python loop over `loss_and_grad`, printing the loss every 100 steps.

    symgrad compile examples/polynomial_sin.py -o build/poly_kernels.py
"""

import math
import os

import numpy as np
import sympy as sp

import symgrad

x, y = sp.symbols("x y", real=True)            # per-sample data
a, b, c, d = sp.symbols("a b c d", real=True)  # parameters
pred = a + b * x + c * x**2 + d * x**3
model = symgrad.Model(loss=(pred - y) ** 2, params=[a, b, c, d], inputs=[x, y],
                      reduction="sum")


def data() -> dict[str, np.ndarray]:
    xs = np.linspace(-math.pi, math.pi, 2000)
    return {"x": xs, "y": np.sin(xs)}


def initial_params(seed: int = 0) -> dict[str, float]:
    values = np.random.default_rng(seed).standard_normal(4)
    return dict(zip("abcd", values.tolist()))


def train(kernel, params, batch, steps=2000, lr=1e-6, every=100, log=print):
    """Plain gradient descent; returns the final params and the losses printed."""
    history = []
    for t in range(steps):
        loss, grads = kernel.loss_and_grad(params, batch)
        if t % every == every - 1:
            history.append((t, loss))
            log(f"{t:5d} {loss:.6f}")
        params = {k: v - lr * grads[k] for k, v in params.items()}
    return params, history


def main(method: str = "reverse") -> None:
    kernel = symgrad.compile(model, method=method)
    os.makedirs("build", exist_ok=True)
    kernel.save("build/poly_kernels.py")
    print("wrote build/poly_kernels.py")
    params, _ = train(kernel, initial_params(), data())
    p = params
    print(f"Result: y = {p['a']:.6f} + {p['b']:.6f} x + {p['c']:.6f} x^2 + {p['d']:.6f} x^3")


if __name__ == "__main__":
    main()
