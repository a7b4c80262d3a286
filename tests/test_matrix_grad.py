"""Gradients of matrix models: against central finite differences of the kernel's own
loss, and against backpropagation written by hand in NumPy.

The net is Linear(4, 5) -> tanh -> Linear(5, 3) (PyTorch's layout: weight (out, in),
bias given as a vector), under five losses. The cores run uncompiled (`.py_func`,
the same source Numba compiles); the cross-entropy kernel is also compiled for real.
"""

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, nn

N_IN, N_HIDDEN, N_OUT, BATCH = 4, 5, 3, 7
LAMBDA = 0.03

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, N_IN)
Y = sp.MatrixSymbol("Y", n, N_OUT)
net = nn.Sequential(nn.Linear(N_IN, N_HIDDEN), nn.Tanh(), nn.Linear(N_HIDDEN, N_OUT))
OUT = net(X)
W1, B1, W2, B2 = net.params


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _targets(kind, rng):
    if kind == "ce":
        return np.eye(N_OUT)[rng.integers(0, N_OUT, BATCH)]
    if kind == "bce":
        return rng.uniform(0.0, 1.0, (BATCH, N_OUT))
    if kind == "hinge":
        return rng.choice([-1.0, 1.0], (BATCH, N_OUT))
    return rng.standard_normal((BATCH, N_OUT))


# kind -> (loss expression, penalty, loss and dL/dOut from (out, y) in NumPy)
def _mse(o, y):
    count = o.size
    return ((o - y) ** 2).sum() / count, 2.0 * (o - y) / count


def _ce(o, y):
    m = o.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(o - m).sum(axis=1))
    return (lse - (y * o).sum(axis=1)).mean(), (_softmax(o) - y) / o.shape[0]


def _bce(o, y):
    per = np.maximum(o, 0.0) - o * y + np.log1p(np.exp(-np.abs(o)))
    return per.mean(), (_sigmoid(o) - y) / o.size


def _hinge(o, y):
    margin = 1.0 - y * o
    return np.maximum(margin, 0.0).sum(), np.where(margin > 0.0, -y, 0.0)


MODELS = {
    "mse": (losses.mse(OUT, Y), None, _mse),
    "ce": (losses.cross_entropy(OUT, Y), None, _ce),
    "bce": (losses.binary_cross_entropy_with_logits(OUT, Y), None, _bce),
    "hinge": (losses.hinge(OUT, Y), None, _hinge),
    "l2": (losses.mse(OUT, Y), LAMBDA * losses.l2(W1, W2), _mse),
}


def numpy_loss_and_grad(kind, p, x, y):
    """Forward and backward pass of the net, written out by hand."""
    w1, b1, w2, b2 = (p[s.name] for s in net.params)
    h = np.tanh(x @ w1.T + b1)
    o = h @ w2.T + b2
    loss, d_o = MODELS[kind][2](o, y)
    d_h = d_o @ w2
    d_z = d_h * (1.0 - h * h)
    grads = {W1.name: d_z.T @ x, B1.name: d_z.sum(axis=0),
             W2.name: d_o.T @ h, B2.name: d_o.sum(axis=0)}
    if kind == "l2":
        loss += LAMBDA * ((w1 ** 2).sum() + (w2 ** 2).sum())
        grads[W1.name] = grads[W1.name] + 2 * LAMBDA * w1
        grads[W2.name] = grads[W2.name] + 2 * LAMBDA * w2
    return loss, grads


@pytest.fixture(scope="module")
def kernels():
    out = {}
    for kind, (loss, penalty, _) in MODELS.items():
        model = symgrad.Model(loss, params=net.params, inputs=[X, Y], penalty=penalty)
        out[kind] = symgrad.compile(model)
    return out


def _problem(kind, seed=5):
    rng = np.random.default_rng(seed)
    params = net.init(seed)
    data = {"X": rng.standard_normal((BATCH, N_IN)), "Y": _targets(kind, rng)}
    return params, data


def run_uncompiled(kernel, params, data, entry):
    """An entry point's generated core run as plain Python (no Numba compile)."""
    mod = kernel.module
    theta, given = mod._pack(params)
    out = np.empty(1 + theta.shape[0])
    getattr(mod, f"_{entry}_core").py_func(theta, *mod._columns(data), out)
    return float(out[0]), mod._unpack(out[1:], given)


def central_differences(f, params, h=1e-6):
    grads = {}
    for name, value in params.items():
        g = np.empty_like(value)
        for idx in np.ndindex(value.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            g[idx] = (f(plus) - f(minus)) / (2 * h)
        grads[name] = g
    return grads


def _assert_grads(got, want, rtol, atol):
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("kind", list(MODELS))
def test_gradient_matches_hand_written_backprop(kernels, kind):
    params, data = _problem(kind)
    loss, grads = run_uncompiled(kernels[kind], params, data, "loss_and_grad")
    want_loss, want_grads = numpy_loss_and_grad(kind, params, data["X"], data["Y"])
    assert loss == pytest.approx(want_loss, rel=1e-12)
    _assert_grads(grads, want_grads, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", list(MODELS))
def test_gradient_matches_finite_differences_of_kernel_loss(kernels, kind):
    params, data = _problem(kind)
    if kind == "hinge":   # no sample within the step of the kink
        w1, b1, w2, b2 = params.values()
        o = np.tanh(data["X"] @ w1.T + b1) @ w2.T + b2
        assert np.abs(1.0 - data["Y"] * o).min() > 1e-4
    _, grads = run_uncompiled(kernels[kind], params, data, "loss_and_grad")
    fd = central_differences(
        lambda p: run_uncompiled(kernels[kind], p, data, "loss")[0], params)
    _assert_grads(grads, fd, rtol=1e-6, atol=1e-8)


def test_loss_core_and_loss_and_grad_core_agree(kernels):
    for kind, kernel in kernels.items():
        params, data = _problem(kind, seed=11)
        assert run_uncompiled(kernel, params, data, "loss")[0] == pytest.approx(
            run_uncompiled(kernel, params, data, "loss_and_grad")[0], rel=1e-14)


def test_compiled_kernel_matches_hand_written_backprop(kernels):
    params, data = _problem("ce", seed=3)
    loss, grads = kernels["ce"].loss_and_grad(params, data)
    want_loss, want_grads = numpy_loss_and_grad("ce", params, data["X"], data["Y"])
    assert loss == pytest.approx(want_loss, rel=1e-12)
    _assert_grads(grads, want_grads, rtol=1e-10, atol=1e-13)
    assert kernels["ce"].loss(params, data) == pytest.approx(loss, rel=1e-14)


def test_gradients_have_the_shape_each_param_was_given_in(kernels):
    params, data = _problem("mse")
    params[B1.name] = params[B1.name].reshape(1, N_HIDDEN)     # bias as a (1, k) row
    _, grads = run_uncompiled(kernels["mse"], params, data, "loss_and_grad")
    assert grads[B1.name].shape == (1, N_HIDDEN)
    assert grads[B2.name].shape == (N_OUT,)
    assert grads[W1.name].shape == (N_HIDDEN, N_IN)


def test_batch_size_is_read_at_call_time(kernels):
    """The same kernel on batches of 1 and 13: mean reductions divide by each."""
    for batch in (1, 13):
        rng = np.random.default_rng(batch)
        params = net.init(batch)
        data = {"X": rng.standard_normal((batch, N_IN)),
                "Y": rng.standard_normal((batch, N_OUT))}
        loss, grads = run_uncompiled(kernels["mse"], params, data, "loss_and_grad")
        want_loss, want_grads = numpy_loss_and_grad("mse", params, data["X"], data["Y"])
        assert loss == pytest.approx(want_loss, rel=1e-12)
        _assert_grads(grads, want_grads, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", list(MODELS))
def test_cheap_gradient_principle(kernels, kind):
    """Reverse mode costs a small constant times the forward pass, in DAG ops."""
    sizes = kernels[kind].derivation.sizes()
    assert sizes["forward_ops"] > 0
    assert sizes["total_ops"] / sizes["forward_ops"] <= 3.0, sizes
