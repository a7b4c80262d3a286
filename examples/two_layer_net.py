"""The lecture's two-layer network: 1000 inputs, 100 hidden units with ReLU, 10
outputs; 64 random samples with random targets; MSE with reduction "sum"; SGD
with learning rate 1e-4 for 500 steps, printing the loss every 50 steps
(PyTorch's `Sequential(Linear(1000, 100), ReLU(), Linear(100, 10))` example).

    python examples/two_layer_net.py
    symgrad train examples/two_layer_net.py --steps 500 --optimizer sgd --lr 1e-4
"""

import time

import numpy as np
import sympy as sp

import symgrad
from symgrad import losses, nn, optim

N_IN, N_HIDDEN, N_OUT, BATCH = 1000, 100, 10, 64

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, N_IN)
Y = sp.MatrixSymbol("Y", n, N_OUT)
net = nn.Sequential(nn.Linear(N_IN, N_HIDDEN), nn.ReLU(), nn.Linear(N_HIDDEN, N_OUT))
pred = net(X)
model = symgrad.Model(loss=losses.mse(pred, Y, reduction="sum"), params=net.params,
                      inputs=[X, Y], predict=pred, name="two_layer_net")


def data(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((BATCH, N_IN)), "Y": rng.standard_normal((BATCH, N_OUT))}


def params(seed: int = 0) -> dict[str, np.ndarray]:
    return net.init(seed)


def main() -> None:
    start = time.perf_counter()
    kernel = symgrad.compile(model)
    jit = sum(kernel.warmup(optim.SGD(lr=1e-4)).values())
    print(f"derive + emit {time.perf_counter() - start - jit:.2f} s, numba {jit:.2f} s")
    start = time.perf_counter()
    final, history = kernel.train(params(), data(), optimizer=optim.SGD(lr=1e-4), steps=500)
    elapsed = time.perf_counter() - start
    for t in range(49, 500, 50):
        print(f"{t:4d} {history[t]:.6f}")
    print(f"500 steps in {elapsed:.3f} s ({elapsed / 500 * 1e6:.0f} us/step)")


if __name__ == "__main__":
    main()
