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
    "rmsprop momentum": optim.RMSprop(lr=0.01, momentum=0.9),
    "rmsprop centered": optim.RMSprop(lr=0.01, alpha=0.9, centered=True, weight_decay=0.05),
    "rmsprop centered momentum": optim.RMSprop(lr=0.01, alpha=0.3, momentum=0.5,
                                               centered=True),
    "adamw": optim.AdamW(lr=0.01),
    "adamw strong decay": optim.AdamW(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.5),
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
    third = {k: np.zeros_like(v) for k, v in p.items()}
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
                mean_sq = second[k]
                if config.centered:
                    third[k] = config.alpha * third[k] + (1 - config.alpha) * g
                    mean_sq = mean_sq - third[k] ** 2
                step = g / (np.sqrt(mean_sq) + config.eps)
                if config.momentum > 0:
                    buf[k] = config.momentum * buf[k] + step
                    step = buf[k]
                p[k] = value - config.lr * step
            else:
                beta1, beta2 = config.betas
                if isinstance(config, optim.AdamW):     # decoupled: no decay in g
                    g = grads[k]
                    value = value * (1 - config.lr * config.weight_decay)
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
                                   weight_decay=config.weight_decay, momentum=config.momentum,
                                   centered=config.centered)
    if isinstance(config, optim.AdamW):
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, eps=config.eps,
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


# ------------------------------------------------------------ Newton and L-BFGS

@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_lbfgs_iterates_equal_torch_lbfgs(kernel, line_search):
    torch = torch_or_skip()
    config = optim.LBFGS(lr=1.0 if line_search else 0.2, history=4, max_iter=6,
                         line_search=line_search)
    init = _init()
    layer = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(init["0.weight"]))
        layer.bias.copy_(torch.tensor(init["0.bias"]))
    opt = torch.optim.LBFGS(layer.parameters(), lr=config.lr, history_size=4, max_iter=6,
                            line_search_fn=line_search)
    x, y = torch.tensor(DATA["X"]), torch.tensor(DATA["Y"])

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        return loss

    params, state = init, None
    for step in range(3):
        params, history, state = kernel.train_step(params, DATA, config, 1, state)
        want = opt.step(closure).item()
        assert history[0] == pytest.approx(want, rel=1e-12), step
        assert _rel(params["0.weight"], layer.weight.detach().numpy()) < 1e-10, step
        assert _rel(params["0.bias"], layer.bias.detach().numpy()) < 1e-10, step
    assert state["n_iter"] == opt.state[layer.weight]["n_iter"]
    assert state["func_evals"] == opt.state[layer.weight]["func_evals"]


def _least_squares():
    """The exact minimizer of the Linear(3, 2) MSE: a least-squares fit with a bias."""
    design = np.hstack([DATA["X"], np.ones((DATA["X"].shape[0], 1))])
    coef = np.linalg.lstsq(design, DATA["Y"], rcond=None)[0]
    return coef[:3].T, coef[3]


def test_lbfgs_reaches_the_least_squares_fit(kernel):
    final, history = kernel.train(_init(), DATA, optim.LBFGS(tolerance_grad=1e-12,
                                                          tolerance_change=1e-15), steps=3)
    weight, bias = _least_squares()
    np.testing.assert_allclose(final["0.weight"], weight, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(final["0.bias"], bias, rtol=1e-6, atol=1e-8)
    assert history[0] > history[-1]


@pytest.fixture(scope="module")
def second_order_kernel():
    model = symgrad.Model(losses.mse(net(X), Y), net.params, [X, Y])
    return symgrad.compile(model, order=2)


def test_newton_solves_a_quadratic_in_one_step(second_order_kernel):
    final, history = second_order_kernel.train(_init(), DATA, optim.Newton(), steps=2)
    weight, bias = _least_squares()
    np.testing.assert_allclose(final["0.weight"], weight, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(final["0.bias"], bias, rtol=1e-10, atol=1e-12)
    assert history[1] < history[0]


def test_newton_converges_on_chained_rosenbrock_with_the_sparse_hessian():
    xs = sp.symbols("x0:20", real=True)
    loss = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(19))
    k = symgrad.compile(symgrad.Model(loss, list(xs)), order=2)
    # (from -1.2, 1, -1.2, ... it finds the chain's local minimum near x0 = -1: f = 3.99)
    start = {f"x{i}": 0.5 for i in range(20)}
    final, history, state = k.train_step(start, None, optim.Newton(sparse=True), steps=60)
    np.testing.assert_allclose([final[f"x{i}"] for i in range(20)], 1.0, atol=1e-8)
    assert history[-1] < 1e-12 and state["step"] == 60
    assert all(b <= a for a, b in zip(history, history[1:]))     # Armijo: never uphill


def test_newton_needs_an_order_2_kernel(kernel):
    with pytest.raises(symgrad.OptionError, match="order=2"):
        kernel.train(_init(), DATA, optim.Newton(), steps=1)


def test_second_order_optimizer_arguments_are_checked(kernel, second_order_kernel):
    with pytest.raises(symgrad.ArgumentError, match="damping"):
        optim.Newton(damping=-1.0)
    with pytest.raises(symgrad.ArgumentError, match="history"):
        optim.LBFGS(history=0)
    with pytest.raises(symgrad.ArgumentError, match="line_search"):
        optim.LBFGS(line_search="armijo")
    _, _, state = kernel.train_step(_init(), DATA, optim.LBFGS(), 1)
    with pytest.raises(symgrad.OptionError, match="state is from 'LBFGS'"):
        second_order_kernel.train_step(_init(), DATA, optim.Newton(), 1, state)
