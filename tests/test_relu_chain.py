"""A scalar chain of relu layers, h = relu(w_i h + 0.01): each relu opens a branch region
and reverse mode nests them (issue 12 measures its compile time; compile_scaling.py's
random DAGs do not have this shape). Here: the gradients are right at a depth that
compiles in seconds, with some samples killed by a relu partway down the chain."""

import numpy as np
import sympy as sp
from oracle import assert_grads_close, elementary, loss_and_grad

import symgrad
from symgrad.functions import relu

DEPTH = 24


def relu_chain(depth: int):
    x, y = sp.symbols("x y", real=True)
    ws = sp.symbols(f"w0:{depth}", real=True)
    h = x
    for w in ws:
        h = relu(w * h + sp.Float(0.01))
    return (h - y) ** 2, list(ws), [x, y]


def test_relu_chain_gradients_match_sympy():
    loss, ws, inputs = relu_chain(DEPTH)
    rng = np.random.default_rng(12)
    values = {w.name: float(v) for w, v in zip(ws, rng.uniform(0.6, 1.4, DEPTH))}
    values[ws[DEPTH // 2].name] = 1.0
    # a negative x dies at the first layer; the rest live through the whole chain
    data = {"x": np.array([0.7, -0.4, 1.3, 0.05]), "y": np.array([0.2, 0.1, -0.5, 1.0])}
    kernel = symgrad.compile(symgrad.Model(loss, ws, inputs))
    want = loss_and_grad(elementary(loss), ws, inputs, values, data)
    assert_grads_close(kernel.loss_and_grad(values, data), want, rtol=1e-12, atol=1e-15,
                       what="relu chain")
    # x < 0 dies at the first relu: w0 gets exactly 0 (relu'(z < 0) = 0) and so does w1,
    # which multiplies the dead h = 0; later layers see the 0.01 offsets and learn
    _, grads = kernel.loss_and_grad(values, {"x": np.array([-0.4]), "y": np.array([0.3])})
    assert grads["w0"] == 0.0 and grads["w1"] == 0.0
    assert all(grads[w.name] != 0.0 for w in ws[2:])
