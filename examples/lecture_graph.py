"""The lecture's computational graph: q = x + y, f = q * z, at x = -2, y = 5, z = -4.

Forward: q = 3, f = -12. Backward: df/dz = q = 3, df/dq = z = -4,
df/dx = df/dy = df/dq * 1 = -4.
"""

import sympy as sp

import symgrad

x, y, z = sp.symbols("x y z", real=True)
q = x + y
model = symgrad.Model(loss=q * z, params=[x, y, z])
POINT = {"x": -2.0, "y": 5.0, "z": -4.0}


def main() -> None:
    for method in ("reverse", "symbolic"):
        kernel = symgrad.compile(model, method=method)
        f, grads = kernel.loss_and_grad(POINT)
        shown = ", ".join(f"df/d{k} = {v:g}" for k, v in grads.items())
        print(f"{method:>8}: f = {f:g}; {shown}")


if __name__ == "__main__":
    main()
