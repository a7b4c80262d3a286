"""The lecture's cubic fit with a module: features (x, x^2, x^3), Linear(3, 1) and
Flatten, MSE with reduction "sum"; plain updates with learning rate 1e-6, then
the same model trained with RMSprop at learning rate 1e-3 (PyTorch's
`torch.nn.Sequential(Linear(3, 1), Flatten(0, 1))` example).

    python examples/linear_rmsprop.py
    symgrad train examples/linear_rmsprop.py --steps 2000 --optimizer rmsprop --lr 1e-3
"""

import math

import numpy as np
import sympy as sp

import symgrad
from symgrad import losses, nn, optim

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, 3)          # features x, x^2, x^3
Y = sp.MatrixSymbol("Y", n, 1)          # targets sin(x)
net = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))
pred = net(X)
model = symgrad.Model(loss=losses.mse(pred, Y, reduction="sum"), params=net.params,
                      inputs=[X, Y], predict=pred, name="linear_rmsprop")


def data() -> dict[str, np.ndarray]:
    x = np.linspace(-math.pi, math.pi, 2000)
    return {"X": np.stack([x, x**2, x**3], axis=1), "Y": np.sin(x)}


def params(seed: int = 0) -> dict[str, np.ndarray]:
    return net.init(seed)


def main() -> None:
    kernel = symgrad.compile(model)
    batch = data()
    for title, optimizer in (("plain updates, lr 1e-6", optim.SGD(lr=1e-6)),
                             ("RMSprop, lr 1e-3", optim.RMSprop(lr=1e-3))):
        final, history = kernel.train(params(), batch, optimizer=optimizer, steps=2000)
        print(title)
        for t in range(99, 2000, 500):
            print(f"  {t:5d} {history[t]:.6f}")
        w, b = final["0.weight"][0], final["0.bias"][0]
        print(f"  Result: y = {b:.6f} + {w[0]:.6f} x + {w[1]:.6f} x^2 + {w[2]:.6f} x^3")


if __name__ == "__main__":
    main()
