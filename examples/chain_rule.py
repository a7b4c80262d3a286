"""The lecture's chain-rule example: f(u) = u^2 + 2u, g(x) = 3x + 1.

Directly, f(g(x)) = 9x^2 + 12x + 3, so df/dx = 18x + 12; by the chain rule,
(2 g(x) + 2) * 3 = 18x + 12. Both methods must agree with that at every x.
"""

import sympy as sp

import symgrad

x = sp.Symbol("x", real=True)


def f(u):
    return u**2 + 2 * u


def g(v):
    return 3 * v + 1


model = symgrad.Model(loss=f(g(x)), params=[x])


def main() -> None:
    kernels = {m: symgrad.compile(model, method=m) for m in ("reverse", "symbolic")}
    print(f"f(g(x)) = {sp.expand(model.loss)}; d/dx = {sp.expand(sp.diff(model.loss, x))}")
    for value in (-2.0, 0.0, 0.5, 3.0):
        row = [f"x = {value:5.2f}", f"18x + 12 = {18 * value + 12:7.2f}"]
        for method, kernel in kernels.items():
            _, grads = kernel.loss_and_grad({"x": value})
            row.append(f"{method} {grads['x']:7.2f}")
        print("   ".join(row))


if __name__ == "__main__":
    main()
