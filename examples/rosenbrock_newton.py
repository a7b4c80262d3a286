"""The chained Rosenbrock function of n = 10,000 params, minimized by Newton's method with
its sparse Hessian: star colouring makes the 10,000 x 10,000 Hessian cost 3 HVPs.

    f(x) = sum_{i < n-1} 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2,  minimum 0 at x = 1

symgrad reads the Hessian's structure from the DAG (x[i] meets only x[i-1] and x[i+1]
in a nonlinear node: tridiagonal), colours it, and computes it from one Hessian-vector
product per colour (forward-over-reverse). `optim.Newton` solves with it (SciPy's sparse
LU); L-BFGS (gradients only) and SciPy's trust-ncg with `hessp=kernel.hvp` are shown
beside it.

    python examples/rosenbrock_newton.py            # n = 10,000 (about a minute to build)
    python examples/rosenbrock_newton.py 1000       # any n >= 2
    symgrad train examples/rosenbrock_newton.py --optimizer newton --steps 20   # n = 10
"""

import sys
import time

import numpy as np
import sympy as sp

import symgrad
from symgrad import optim

N = 10_000


def rosenbrock(n: int) -> symgrad.Model:
    xs = sp.symbols(f"x0:{n}", real=True)
    loss = sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2
                    for i in range(n - 1)])
    return symgrad.Model(loss, list(xs), name=f"chained Rosenbrock, n = {n}")


def start(n: int) -> dict[str, float]:
    """x = 0.5 everywhere. (From the alternating start -1.2, 1, -1.2, ... the chain's
    valley is long: Newton-type methods need O(n) steps, e.g. SciPy's trust-ncg with its
    own analytic Hessian products takes 866 iterations at n = 200.)"""
    return {f"x{i}": 0.5 for i in range(n)}


# The model file's own model (for `symgrad grad`, `train`, `hessian`): n = 10.
model = rosenbrock(10)


def params() -> dict[str, float]:
    return start(10)


def data() -> None:
    return None         # a function of its params only


def median_seconds(call, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        begun = time.perf_counter()
        call()
        times.append(time.perf_counter() - begun)
    return float(np.median(times))


def main(n: int = N) -> None:
    begun = time.perf_counter()
    model = rosenbrock(n)
    kernel = symgrad.compile(model, order=2)
    x0 = start(n)
    kernel.hessian(x0)      # JIT (or load) the cores
    print(f"n = {n}: built and compiled in {time.perf_counter() - begun:.1f} s")
    sparsity = kernel.second_order.sparsity
    print(f"Hessian pattern: {sparsity.pattern.nnz} entries (tridiagonal), "
          f"{sparsity.n_colors} colours")
    hvp = median_seconds(lambda: kernel.hvp(x0, x0))
    hessian = median_seconds(lambda: kernel.hessian(x0))
    print(f"one HVP {hvp * 1e3:.1f} ms, the sparse Hessian {hessian * 1e3:.1f} ms "
          f"({hessian / hvp:.1f} HVPs)")

    begun = time.perf_counter()
    final, history = kernel.train(x0, None, optim.Newton(sparse=True), steps=60)
    x = np.array([final[f"x{i}"] for i in range(n)])
    steps = int(np.argmax(history < 1e-20)) if (history < 1e-20).any() else len(history)
    print(f"Newton: f = {history[0]:.6g} -> {kernel.loss(final):.3g}, below 1e-20 after "
          f"{steps} steps ({time.perf_counter() - begun:.2f} s for 60); "
          f"max |x - 1| = {np.abs(x - 1).max():.2e}")

    begun = time.perf_counter()
    final, history, state = kernel.train_step(x0, None, optim.LBFGS(history=10), steps=25)
    print(f"L-BFGS: f = {history[0]:.6g} -> {kernel.loss(final):.3g} after "
          f"{state['n_iter']} iterations, {state['func_evals']} gradients "
          f"({time.perf_counter() - begun:.2f} s)")

    from scipy.optimize import minimize

    names = kernel.param_names

    def as_dict(v):
        return dict(zip(names, v.tolist()))

    def fun(v):
        loss, grads = kernel.loss_and_grad(as_dict(v))
        return loss, np.array([grads[p] for p in names])

    def hessp(v, p):
        product = kernel.hvp(as_dict(v), as_dict(p))
        return np.array([product[q] for q in names])

    begun = time.perf_counter()
    result = minimize(fun, np.array([x0[p] for p in names]), jac=True, hessp=hessp,
                      method="trust-ncg", options={"gtol": 1e-8, "maxiter": 200})
    print(f"SciPy trust-ncg (hessp=kernel.hvp): f = {result.fun:.3g} after {result.nit} "
          f"iterations, {result.nhev} HVPs ({time.perf_counter() - begun:.2f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)
