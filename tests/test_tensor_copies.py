"""Matrix cores compute each gradient where it belongs (symgrad issue 11, part 4).

A weight's gradient product is computed by `np.dot(a, b, view)` straight into its
param's view of the flat output `out`, a bias gradient (a column sum) accumulates
there, a stored loop array that is a gradient (weight decay) is stored there, and
no element-by-element copy loop into `out` is left. float32 keeps its products in
single precision, widened into `out` by one slice assignment per weight. Values
are checked against the hand-written backpropagation of test_matrix_grad.
"""

import itertools
import re

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, nn, optim

import test_matrix_grad as tm
from test_tensor_schedule import mlp

VIEW = re.compile(r"^(A\d+) = out\[(\d+):(\d+)\]\.reshape\(\(\d+, \d+\)\)$")


def _core(kernel, name="_loss_and_grad_core"):
    body = kernel.source.split(f"def {name}(")[1].split("\n\n\n")[0]
    return [line.strip() for line in body.splitlines()[2:]]     # after the docstring


def _out_lines(lines):
    return [line for line in lines if "out[" in line]


@pytest.fixture(scope="module")
def relu_net():
    model, net = mlp((50, 20, 5), nn.ReLU, "mse")
    return model, net, symgrad.compile(model)


@pytest.fixture(scope="module")
def tanh_ce_net():
    model, net = mlp((12, 9, 8, 4), nn.Tanh, "ce")
    return model, net, symgrad.compile(model)


def _assert_written_in_place(kernel, n_weights, n_biases):
    lines = _core(kernel)
    outs = _out_lines(lines)
    # No loop copies into out: every line that touches out names a view or the loss.
    assert not any(re.search(r"out\[\d+ \+ ", line) for line in outs), outs
    assert outs[-1].startswith("out[0] = ")
    views = [VIEW.match(line) for line in outs[:-1]]
    assert all(views), outs
    names = {m.group(1) for m in views}
    # Each weight's product writes into its view; each bias sum is zeroed there first.
    products = [line for line in lines if line.startswith("np.dot(")]
    assert len(products) == n_weights
    assert all(line.rsplit(", ", 1)[1].rstrip(")") in names for line in products)
    assert sum(f"{name}[:, :] = 0.0" in lines for name in names) == n_biases
    assert len(names) == n_weights + n_biases
    # The views tile out[1:] exactly, in param order.
    spans = sorted((int(m.group(2)), int(m.group(3))) for m in views)
    assert spans[0][0] == 1 and all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert spans[-1][1] == 1 + kernel.module.N_THETA


def test_relu_net_core_has_no_copy_into_out(relu_net):
    _, _, kernel = relu_net
    _assert_written_in_place(kernel, n_weights=2, n_biases=2)


def test_tanh_ce_core_has_no_copy_into_out(tanh_ce_net):
    _, _, kernel = tanh_ce_net
    _assert_written_in_place(kernel, n_weights=3, n_biases=3)


def _numpymlp(net, act, params, x, y, loss):
    """Forward and backward of a Linear/act stack by hand (weights (out, in))."""
    layers = [(params[f"{i}.weight"], params[f"{i}.bias"]) for i in range(0, len(net.params), 2)]
    hs = [x]
    for k, (w, b) in enumerate(layers):
        z = hs[-1] @ w.T + b
        hs.append(act(z) if k < len(layers) - 1 else z)
    o = hs[-1]
    if loss == "mse":
        value, d = ((o - y) ** 2).sum(), 2.0 * (o - y)
    else:
        value, d = tm._ce(o, y)
    grads = {}
    for k in reversed(range(len(layers))):
        i = 2 * k
        grads[f"{i}.weight"] = d.T @ hs[k]
        grads[f"{i}.bias"] = d.sum(axis=0)
        if k:
            d = d @ layers[k][0]
            d = d * (hs[k] > 0) if act is _relu else d * (1.0 - hs[k] ** 2)
    return value, grads


def _relu(z):
    return np.maximum(z, 0.0)


def _problem(net, n_in, n_out, batch=11, seed=4, onehot=False):
    rng = np.random.default_rng(seed)
    y = (np.eye(n_out)[rng.integers(0, n_out, batch)] if onehot
         else rng.standard_normal((batch, n_out)))
    return net.init(seed), {"X": rng.standard_normal((batch, n_in)), "Y": y}


def test_relu_net_matches_numpy(relu_net):
    _, net, kernel = relu_net
    params, data = _problem(net, 50, 5)
    loss, grads = kernel.loss_and_grad(params, data)
    want_loss, want = _numpymlp(net, _relu, params, data["X"], data["Y"], "mse")
    assert loss == pytest.approx(want_loss, rel=1e-12)
    tm._assert_grads(grads, want, rtol=1e-10, atol=1e-12)


def test_tanh_ce_net_matches_numpy(tanh_ce_net):
    _, net, kernel = tanh_ce_net
    params, data = _problem(net, 12, 4, onehot=True)
    loss, grads = kernel.loss_and_grad(params, data)
    want_loss, want = _numpymlp(net, np.tanh, params, data["X"], data["Y"], "ce")
    assert loss == pytest.approx(want_loss, rel=1e-12)
    tm._assert_grads(grads, want, rtol=1e-10, atol=1e-12)


def test_training_steps_match_numpy_sgd(relu_net):
    """The training loop reuses `out` across steps: every step sees fresh gradients."""
    _, net, kernel = relu_net
    params, data = _problem(net, 50, 5, seed=9)
    lr = 1e-3
    final, history = kernel.train(params, data, optimizer=optim.SGD(lr=lr), steps=4)
    p = {k: v.copy() for k, v in params.items()}
    for s in range(4):
        value, grads = _numpymlp(net, _relu, p, data["X"], data["Y"], "mse")
        assert history[s] == pytest.approx(value, rel=1e-11)
        p = {k: v - lr * grads[k] for k, v in p.items()}
    tm._assert_grads(final, p, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", list(tm.MODELS))
def test_every_loss_matches_hand_written_backprop(kind):
    """The five losses of test_matrix_grad (l2: the weight gradients are a fused loop's
    stored arrays, stored straight into out), run as plain Python."""
    loss, penalty, _ = tm.MODELS[kind]
    kernel = symgrad.compile(symgrad.Model(loss, params=tm.net.params,
                                           inputs=[tm.X, tm.Y], penalty=penalty))
    outs = _out_lines(_core(kernel))
    assert not any(re.search(r"out\[\d+ \+ ", line) for line in outs), outs
    assert not any("[:, :] = A" in line for line in outs), outs
    params, data = tm._problem(kind)
    value, grads = tm.run_uncompiled(kernel, params, data, "loss_and_grad")
    want_loss, want = tm.numpy_loss_and_grad(kind, params, data["X"], data["Y"])
    assert value == pytest.approx(want_loss, rel=1e-12)
    tm._assert_grads(grads, want, rtol=1e-10, atol=1e-13)


def test_weight_decay_gradients_are_stored_into_out_when_compiled():
    loss, penalty, _ = tm.MODELS["l2"]
    kernel = symgrad.compile(symgrad.Model(loss, params=tm.net.params,
                                           inputs=[tm.X, tm.Y], penalty=penalty))
    lines = _core(kernel)
    views = {m.group(1) for m in map(VIEW.match, lines) if m}
    stored = {line.split("[")[0] for line in lines if re.match(r"A\d+\[i, j\] = ", line)}
    assert views & stored                     # a weight gradient stored in its view
    params, data = tm._problem("l2", seed=8)
    value, grads = kernel.loss_and_grad(params, data)
    want_loss, want = tm.numpy_loss_and_grad("l2", params, data["X"], data["Y"])
    assert value == pytest.approx(want_loss, rel=1e-12)
    tm._assert_grads(grads, want, rtol=1e-10, atol=1e-13)


def test_a_gradient_shared_by_two_params_is_computed_once_and_copied_once():
    n = sp.Symbol("n", integer=True, positive=True)
    X, Y = sp.MatrixSymbol("X", n, 4), sp.MatrixSymbol("Y", n, 3)
    A, B = sp.MatrixSymbol("A", 4, 3), sp.MatrixSymbol("B", 4, 3)
    pred = X * (A + B)
    kernel = symgrad.compile(symgrad.Model(losses.mse(pred, Y, reduction="sum"),
                                           params=[A, B], inputs=[X, Y], predict=pred))
    outs = _out_lines(_core(kernel))
    assert outs == ["A5 = out[1:13].reshape((4, 3))", "out[0] = s3",
                    "out[13:25].reshape((4, 3))[:, :] = A5"]
    rng = np.random.default_rng(2)
    params = {"A": rng.standard_normal((4, 3)), "B": rng.standard_normal((4, 3))}
    data = {"X": rng.standard_normal((6, 4)), "Y": rng.standard_normal((6, 3))}
    _, grads = kernel.loss_and_grad(params, data)
    want = data["X"].T @ (2.0 * (data["X"] @ (params["A"] + params["B"]) - data["Y"]))
    np.testing.assert_allclose(grads["A"], want, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(grads["A"], grads["B"])


def test_predict_returns_its_own_array_without_a_copy(relu_net):
    _, net, kernel = relu_net
    lines = _core(kernel, "_predict_core")
    assert lines[-1].startswith("return A") and ".copy()" not in lines[-1]
    params, data = _problem(net, 50, 5)
    first, second = kernel.predict(params, data), kernel.predict(params, data)
    assert not np.shares_memory(first, second)
    w1, b1, w2, b2 = (params[k] for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    want = np.maximum(data["X"] @ w1.T + b1, 0.0) @ w2.T + b2
    np.testing.assert_allclose(first, want, rtol=1e-12, atol=1e-12)


def test_float32_widens_products_into_out_with_one_slice_each(tanh_ce_net):
    model, net, kernel64 = tanh_ce_net
    kernel = symgrad.compile(model, dtype="float32")
    assert kernel.module.DTYPE is np.float32
    outs = _out_lines(_core(kernel))
    assert not any(re.search(r"out\[\d+ \+ ", line) for line in outs), outs
    widened = [line for line in outs
               if re.match(r"out\[\d+:\d+\]\.reshape\(.*\)\[:, :\] = A", line)]
    assert len(widened) == 3                  # the three weights (SGEMM results)
    # the bias sums are float64 accumulators: written in place as in float64
    assert sum(bool(VIEW.match(line)) for line in outs) == 3
    params, data = _problem(net, 12, 4, onehot=True, seed=6)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    d32 = {k: v.astype(np.float32) for k, v in data.items()}
    loss, grads = kernel.loss_and_grad(p32, d32)
    want_loss, want = kernel64.loss_and_grad(p32, d32)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    tm._assert_grads(grads, want, rtol=1e-4, atol=1e-6)
    final, history = kernel.train(p32, d32, optimizer=optim.SGD(lr=0.1), steps=3)
    assert np.isfinite(history).all() and history[-1] < history[0]
    pred = kernel.predict(p32, d32)
    assert pred.dtype == np.float32 and pred.shape == (11, 4)
    np.testing.assert_allclose(pred, kernel64.predict(p32, d32), rtol=1e-4, atol=1e-5)
