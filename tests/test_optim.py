"""Optimizers through Kernel.train_step: PyTorch's update rules, step for step.

Two references: torch.optim itself (where torch is installed), and a NumPy
transcription of the update equations as PyTorch's documentation states them, run
on a hand-written gradient, so the rules are checked without torch too. One small
compiled kernel (Linear(3, 2), MSE mean) serves every test.
"""

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, nn, optim
from conftest import torch_or_skip

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, 3)
Y = sp.MatrixSymbol("Y", n, 2)
net = nn.Sequential(nn.Linear(3, 2))
NAMES = ["0.weight", "0.bias"]
STEPS = 5

rng = np.random.default_rng(42)
DATA = {"X": rng.standard_normal((8, 3)), "Y": rng.standard_normal((8, 2))}

CONFIGS = {
    "sgd": optim.SGD(lr=0.1),
    "sgd momentum": optim.SGD(lr=0.1, momentum=0.9),
    "sgd dampening": optim.SGD(lr=0.1, momentum=0.9, dampening=0.3),
    "sgd nesterov": optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "sgd weight decay": optim.SGD(lr=0.1, momentum=0.5, weight_decay=0.05),
    "rmsprop": optim.RMSprop(lr=0.01),
    "rmsprop weight decay": optim.RMSprop(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1),
    "adam": optim.Adam(lr=0.01),
    "adam weight decay": optim.Adam(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adam small beta1": optim.Adam(lr=0.02, betas=(0.3, 0.9)),
}


@pytest.fixture(scope="module")
def kernel():
    model = symgrad.Model(losses.mse(net(X), Y), net.params, [X, Y])
    return symgrad.compile(model)


def _init():
    return net.init(seed=1)


def numpy_loss_and_grad(p, data=DATA):
    x, y = data["X"], data["Y"]
    o = x @ p["0.weight"].T + p["0.bias"]
    d_o = 2.0 * (o - y) / o.size
    return ((o - y) ** 2).mean(), {"0.weight": d_o.T @ x, "0.bias": d_o.sum(axis=0)}


def docs_updates(config, params, steps):
    """The update rules as torch.optim's documentation writes them (t counts from 1)."""
    p = {k: v.copy() for k, v in params.items()}
    buf = {k: np.zeros_like(v) for k, v in p.items()}
    second = {k: np.zeros_like(v) for k, v in p.items()}
    trajectory, history = [], []
    for t in range(1, steps + 1):
        loss, grads = numpy_loss_and_grad(p)
        history.append(loss)
        for k, value in p.items():
            g = grads[k] + config.weight_decay * value
            if isinstance(config, optim.SGD):
                if config.momentum != 0:
                    buf[k] = g if t == 1 else \
                        config.momentum * buf[k] + (1 - config.dampening) * g
                    g = g + config.momentum * buf[k] if config.nesterov else buf[k]
                p[k] = value - config.lr * g
            elif isinstance(config, optim.RMSprop):
                second[k] = config.alpha * second[k] + (1 - config.alpha) * g * g
                p[k] = value - config.lr * g / (np.sqrt(second[k]) + config.eps)
            else:
                beta1, beta2 = config.betas
                buf[k] = beta1 * buf[k] + (1 - beta1) * g
                second[k] = beta2 * second[k] + (1 - beta2) * g * g
                m_hat = buf[k] / (1 - beta1 ** t)
                v_hat = second[k] / (1 - beta2 ** t)
                p[k] = value - config.lr * m_hat / (np.sqrt(v_hat) + config.eps)
        trajectory.append({k: v.copy() for k, v in p.items()})
    return trajectory, history


def symgrad_steps(kernel, config, params, steps):
    """`steps` separate train_step calls, each continuing from the returned state."""
    trajectory, history, state = [], [], None
    for _ in range(steps):
        params, h, state = kernel.train_step(params, DATA, config, 1, state)
        trajectory.append(params)
        history.extend(h)
    return trajectory, history, state


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_updates_follow_the_documented_equations(kernel, name):
    config = CONFIGS[name]
    got, history, state = symgrad_steps(kernel, config, _init(), STEPS)
    want, want_history = docs_updates(config, _init(), STEPS)
    for step, (g, w) in enumerate(zip(got, want)):
        for k in NAMES:
            assert _rel(g[k], w[k]) < 1e-12, f"{name}: step {step}, {k}"
    np.testing.assert_allclose(history, want_history, rtol=1e-12)
    assert state["step"] == STEPS


def test_hyper_parameters_change_the_trajectory(kernel):
    finals = {name: symgrad_steps(kernel, config, _init(), 3)[0][-1]["0.weight"]
              for name, config in CONFIGS.items()}
    names = list(finals)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.allclose(finals[a], finals[b], rtol=1e-9, atol=0), (a, b)


def _torch_optimizer(torch, config, params):
    if isinstance(config, optim.SGD):
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               dampening=config.dampening, weight_decay=config.weight_decay,
                               nesterov=config.nesterov)
    if isinstance(config, optim.RMSprop):
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.alpha, eps=config.eps,
                                   weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, betas=config.betas, eps=config.eps,
                            weight_decay=config.weight_decay)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_steps_equal_torch_optim(kernel, name):
    torch = torch_or_skip()
    config = CONFIGS[name]
    init = _init()
    layer = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(init["0.weight"]))
        layer.bias.copy_(torch.tensor(init["0.bias"]))
    opt = _torch_optimizer(torch, config, layer.parameters())
    x, y = torch.tensor(DATA["X"]), torch.tensor(DATA["Y"])
    got, history, _ = symgrad_steps(kernel, config, init, STEPS)
    for step in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        opt.step()
        assert history[step] == pytest.approx(loss.item(), rel=1e-12)
        assert _rel(got[step]["0.weight"], layer.weight.detach().numpy()) < 1e-12, step
        assert _rel(got[step]["0.bias"], layer.bias.detach().numpy()) < 1e-12, step


# -------------------------------------------------------------- train / train_step

def test_train_history_and_equivalence_to_train_steps(kernel):
    config = CONFIGS["adam weight decay"]
    final, history = kernel.train(_init(), DATA, config, steps=6)
    assert history.shape == (6,)
    assert history[0] == pytest.approx(numpy_loss_and_grad(_init())[0], rel=1e-13)
    stepped, stepped_history, _ = symgrad_steps(kernel, config, _init(), 6)
    np.testing.assert_allclose(history, stepped_history, rtol=1e-14)
    for k in NAMES:
        np.testing.assert_allclose(final[k], stepped[-1][k], rtol=1e-14)
        assert final[k].shape == _init()[k].shape
    # Two calls of 2 and 4 steps continue where the first stopped (Adam's step count).
    params, h1, state = kernel.train_step(_init(), DATA, config, 2)
    params, h2, state = kernel.train_step(params, DATA, config, 4, state)
    assert state["step"] == 6
    np.testing.assert_allclose(np.concatenate([h1, h2]), history, rtol=1e-14)
    for k in NAMES:
        np.testing.assert_allclose(params[k], final[k], rtol=1e-14)


def test_train_does_not_modify_its_arguments(kernel):
    params = _init()
    before = {k: v.copy() for k, v in params.items()}
    _, _, state = kernel.train_step(params, DATA, CONFIGS["sgd momentum"], 2)
    buffers = state["buffers"].copy()
    kernel.train_step(params, DATA, CONFIGS["sgd momentum"], 2, state)
    assert all(np.array_equal(params[k], before[k]) for k in params)
    np.testing.assert_array_equal(state["buffers"], buffers)


def test_zero_steps_return_params_unchanged(kernel):
    final, history = kernel.train(_init(), DATA, CONFIGS["sgd"], steps=0)
    assert history.shape == (0,)
    for k in NAMES:
        np.testing.assert_array_equal(final[k], _init()[k])


def test_dict_optimizer_equals_dataclass(kernel):
    a, ha = kernel.train(_init(), DATA, {"name": "sgd", "lr": 0.1, "momentum": 0.9,
                                          "nesterov": True}, steps=3)
    b, hb = kernel.train(_init(), DATA, CONFIGS["sgd nesterov"], steps=3)
    np.testing.assert_array_equal(ha, hb)
    np.testing.assert_array_equal(a["0.weight"], b["0.weight"])


# ------------------------------------------------------------------- errors

@pytest.mark.parametrize("optimizer, match", [
    ({"name": "adagrad", "lr": 0.1}, "adagrad"),
    ("sgd", "optimizer must be"),
    ({"lr": 0.1}, "optimizer must be"),
    ({"name": "sgd", "lr": 0.1, "betas": (0.9, 0.99)}, "betas"),
    ({"name": "adam", "lr": 0.1, "momentum": 0.9}, "momentum"),
    ({"name": "sgd"}, "needs a value for 'lr'"),
    ({"name": "sgd", "lr": -0.1}, "lr"),
    (lambda: optim.SGD(lr=-0.1), "lr"),
    (lambda: optim.SGD(lr=float("nan")), "lr"),
    (lambda: optim.RMSprop(lr=0.01, alpha=-0.5), "alpha"),
    (lambda: optim.Adam(lr=0.01, eps=-1.0), "eps"),
    (lambda: optim.SGD(lr=0.1, momentum=-0.9), "momentum"),
    (lambda: optim.SGD(lr=0.1, weight_decay=-1.0), "weight_decay"),
    (lambda: optim.SGD(lr=0.1, nesterov=True), "nesterov"),
    (lambda: optim.SGD(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: optim.Adam(lr=0.01, betas=(1.0, 0.999)), "beta1"),
    (lambda: optim.Adam(lr=0.01, betas=(0.9, 1.5)), "beta2"),
    (None, "needs an optimizer"),
])
def test_bad_optimizer_arguments(kernel, optimizer, match):
    """Dicts fail at train time; symgrad.optim objects already when they are made."""
    with pytest.raises(symgrad.ArgumentError, match=match) as info:
        kernel.train_step(_init(), DATA, optimizer() if callable(optimizer) else optimizer, 1)
    assert isinstance(info.value, symgrad.SymgradError)


def test_state_from_another_optimizer_or_model_is_rejected(kernel):
    _, _, sgd_state = kernel.train_step(_init(), DATA, CONFIGS["sgd momentum"], 1)
    with pytest.raises(symgrad.ArgumentError, match="does not belong"):
        kernel.train_step(_init(), DATA, CONFIGS["adam"], 1, sgd_state)
    foreign = {**sgd_state, "buffers": np.zeros((2, 3))}
    with pytest.raises(symgrad.ArgumentError, match="does not belong"):
        kernel.train_step(_init(), DATA, CONFIGS["sgd momentum"], 1, foreign)


@pytest.mark.parametrize("steps", [-1, 1.5, True, "3"])
def test_bad_step_counts(kernel, steps):
    with pytest.raises(symgrad.ArgumentError, match="steps"):
        kernel.train(_init(), DATA, CONFIGS["sgd"], steps=steps)
