"""Kernel.warmup compiles what a training run calls, and nothing else (each Numba
compile costs about a second: benchmarks/compile_cache.py)."""

import numpy as np
import sympy as sp

import symgrad
from symgrad import nn, optim

x, y, a, b = sp.symbols("x y a b", real=True)


def _compiled(module) -> dict[str, int]:
    """Signatures compiled (or loaded from Numba's cache) per jitted function."""
    return {name: len(f.signatures) for name, f in vars(module).items()
            if hasattr(f, "signatures") and hasattr(f, "py_func")}


def test_warmup_compiles_the_training_loop_not_loss_nor_the_parallel_core():
    kernel = symgrad.compile(symgrad.Model((a * x + b - y) ** 3 / 7, [a, b], [x, y]))
    jit = kernel.warmup(optim.RMSprop(lr=1e-3))
    assert set(jit) == {"jit_loss_and_grad", "jit_train"}
    done = _compiled(kernel.module)
    assert done["_train_rmsprop"] == 1 and done["_loss_and_grad_core"] == 1
    assert done["_loss_core"] == 0 and done["_loss_and_grad_core_par"] == 0
    assert done["_train_sgd"] == 0 and done["_train_rmsprop_par"] == 0
    data = {"x": np.linspace(-1, 1, 50), "y": np.linspace(0, 1, 50)}
    kernel.train({"a": 0.5, "b": 0.1}, data, optim.RMSprop(lr=1e-3), 3)
    assert _compiled(kernel.module) == done          # the run compiled nothing new


def test_loss_and_parallel_core_compile_when_asked():
    kernel = symgrad.compile(symgrad.Model((a * x - b * y) ** 2 / 3, [a, b], [x, y]))
    kernel.warmup(parallel=True)
    kernel.warmup_loss()
    done = _compiled(kernel.module)
    assert done["_loss_core"] == 1 and done["_loss_and_grad_core_par"] == 1
    assert "jit_loss" in kernel.timings and "jit_loss_and_grad_parallel" in kernel.timings


def test_warmup_compiles_predict_of_a_matrix_model():
    n = sp.Symbol("n", integer=True, positive=True)
    X, Y = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("Y", n, 2)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    from symgrad import losses
    model = symgrad.Model(losses.mse(net(X), Y, reduction="sum"), net.params, [X, Y],
                          predict=net(X), name="warmup predict")
    kernel = symgrad.compile(model)
    jit = kernel.warmup(optim.SGD(lr=0.1))
    assert set(jit) == {"jit_loss_and_grad", "jit_train", "jit_predict"}
    done = _compiled(kernel.module)
    assert done["_predict_core"] == 1 and done["_loss_core"] == 0
    params = net.init(0)
    data = {"X": np.ones((5, 3)), "Y": np.zeros((5, 2))}
    kernel.train(params, data, optim.SGD(lr=0.1), 2)
    kernel.predict(params, data)
    assert _compiled(kernel.module) == done
