"""The lecture's "bad choice": a two-layer net with hinge loss and L2 regularization,

    L = sum_i max(0, 1 - y_i W2 max(0, W1 x_i)) + lambda R(W1) + lambda R(W2),

written with scalar symbols (4 inputs, 3 hidden units) and differentiated both
ways: directly (one sympy.diff tree per weight) and by reverse mode over the
DAG. Both give the same numbers; the sizes show why the graph wins.
"""

import time

import numpy as np
import sympy as sp

import symgrad

N_IN, N_HIDDEN = 4, 3
LAMBDA = 0.01

xs = sp.symbols(f"x1:{N_IN + 1}", real=True)
label = sp.Symbol("y", real=True)
W1 = sp.Matrix(N_HIDDEN, N_IN, lambda i, j: sp.Symbol(f"w1_{i + 1}{j + 1}", real=True))
W2 = sp.Matrix(1, N_HIDDEN, lambda i, j: sp.Symbol(f"w2_{j + 1}", real=True))

hidden = (W1 * sp.Matrix(xs)).applyfunc(lambda h: sp.Max(0, h))
score = (W2 * hidden)[0, 0]
hinge = sp.Max(0, 1 - label * score)
l2 = sum(w**2 for w in W1) + sum(w**2 for w in W2)

model = symgrad.Model(loss=hinge, penalty=LAMBDA * l2,
                      params=[*W1, *W2], inputs=[*xs, label], reduction="sum")


def data(n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN))
    y = np.where(x[:, 0] - 0.5 * x[:, 2] > 0, 1.0, -1.0)
    return {**{f"x{j + 1}": x[:, j] for j in range(N_IN)}, "y": y}


def initial_params(seed: int = 1) -> dict[str, float]:
    values = np.random.default_rng(seed).standard_normal(len(model.params)) * 0.5
    return dict(zip(model.param_names, values.tolist()))


def main() -> None:
    batch, params = data(), initial_params()
    results = {}
    for method in ("symbolic", "reverse"):
        start = time.perf_counter()
        kernel = symgrad.compile(model, method=method)
        sizes = kernel.derivation.sizes()
        jit = sum(kernel.warmup().values())
        loss, grads = kernel.loss_and_grad(params, batch)
        results[method] = np.array(list(grads.values()))
        print(f"{method:>8}: loss {loss:.6f}; {sizes['forward_ops']} forward + "
              f"{sizes['backward_ops']} backward ops; derive {kernel.timings['derive']:.3f} s, "
              f"numba {jit:.2f} s, total {time.perf_counter() - start:.2f} s")
    tree_ops = sum(sp.count_ops(sp.diff(model.loss, w)) for w in model.params)
    print(f"sympy.diff trees: {tree_ops} operations over {len(model.params)} weights")
    diff = np.max(np.abs(results["symbolic"] - results["reverse"]))
    print(f"max |symbolic - reverse| over all gradients: {diff:.2e}")
    for step in range(1, 201):
        loss, grads = kernel.loss_and_grad(params, batch)
        params = {k: v - 0.01 * grads[k] for k, v in params.items()}
        if step % 50 == 0:
            print(f"step {step:4d}  loss {loss:.6f}")


if __name__ == "__main__":
    main()
