"""symgrad.nn: PyTorch's parameter names, shapes and initialisation; layers' math;
a torch state_dict used as params gives torch's loss and gradients."""

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, nn
from conftest import torch_or_skip

n = sp.Symbol("n", integer=True, positive=True)
X = sp.MatrixSymbol("X", n, 4)
Y = sp.MatrixSymbol("Y", n, 3)
BATCH = 6


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def run_uncompiled(kernel, params, data, entry):
    """An entry point's generated core run as plain Python (no Numba compile)."""
    mod = kernel.module
    theta, given = mod._pack(params)
    if entry == "predict":
        columns = mod._columns(data, False, mod.PREDICT_INPUTS, mod.PREDICT_SHAPES)
        return mod._predict_core.py_func(theta, *columns)
    columns = mod._columns(data)
    out = np.empty(1 + theta.shape[0])
    getattr(mod, f"_{entry}_core").py_func(theta, *columns, out)
    return float(out[0]), mod._unpack(out[1:], given)


def _data(seed=0, batch=BATCH):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((batch, 4)), "Y": rng.standard_normal((batch, 3))}


# ---------------------------------------------------------- names and shapes

def test_sequential_param_names_and_shapes_follow_pytorch():
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    assert [p.name for p in net.params] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.shape for p in net.params] == [(5, 4), (1, 5), (3, 5), (1, 3)]


def test_linear_alone_and_without_bias():
    layer = nn.Linear(4, 2)
    assert [p.name for p in layer.params] == ["weight", "bias"]
    no_bias = nn.Linear(4, 2, bias=False)
    assert [p.name for p in no_bias.params] == ["weight"]
    assert set(no_bias.init(0)) == {"weight"}
    net = nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False))
    assert [p.name for p in net.params] == ["1.weight"]


def test_linear_rejects_wrong_feature_count():
    with pytest.raises(symgrad.ShapeMismatchError, match="expects 3 input features, got 4"):
        nn.Linear(3, 2)(X)


def test_bias_is_given_as_a_vector_or_a_row():
    net = nn.Sequential(nn.Linear(4, 3))
    model = symgrad.Model(losses.mse(net(X), Y), net.params, [X, Y])
    kernel = symgrad.compile(model)
    params, data = net.init(1), _data()
    as_vector = run_uncompiled(kernel, params, data, "loss_and_grad")
    params["0.bias"] = params["0.bias"].reshape(1, 3)
    as_row = run_uncompiled(kernel, params, data, "loss_and_grad")
    assert as_row[0] == as_vector[0]
    assert as_vector[1]["0.bias"].shape == (3,) and as_row[1]["0.bias"].shape == (1, 3)
    for bad in (params["0.bias"].reshape(3, 1), np.zeros(4), np.zeros((3, 4))):
        with pytest.raises(symgrad.ShapeError, match="0.bias"):
            kernel.loss({**params, "0.bias": bad}, data)


# ----------------------------------------------------------------------- init

def test_init_shapes_bounds_and_seed():
    net = nn.Sequential(nn.Linear(100, 3), nn.ReLU(), nn.Linear(3, 2))
    params = net.init(seed=4)
    assert list(params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert {k: v.shape for k, v in params.items()} == {
        "0.weight": (3, 100), "0.bias": (3,), "2.weight": (2, 3), "2.bias": (2,)}
    for name, fan_in in (("0.weight", 100), ("0.bias", 100), ("2.weight", 3), ("2.bias", 3)):
        bound = 1.0 / np.sqrt(fan_in)
        assert np.abs(params[name]).max() <= bound, name
        assert params[name].dtype == np.float64
    w = params["0.weight"]        # uniform over the whole range, not a narrower one
    assert w.max() > 0.9 * 0.1 and w.min() < -0.9 * 0.1
    again = net.init(seed=4)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    other = net.init(seed=5)
    assert not np.array_equal(params["0.weight"], other["0.weight"])


# ------------------------------------------------------------------- printing

def test_printing_a_net_and_a_model_is_readable():
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3, bias=False),
                        nn.Sigmoid(), nn.Tanh(), nn.Flatten())
    text = repr(net)
    for part in ("Sequential(", "(0): Linear(4, 5, bias=True)", "(1): ReLU()",
                 "(2): Linear(5, 3, bias=False)", "(3): Sigmoid()", "(4): Tanh()",
                 "(5): Flatten()"):
        assert part in text
    assert str(net) == text and "object at 0x" not in text
    model = symgrad.Model(losses.mse(net(X), Y), net.params, [X, Y], name="printed")
    text = repr(model)
    assert text.startswith("Model(loss=")
    assert "params=['0.weight', '0.bias', '2.weight']" in text
    assert "inputs=['X', 'Y']" in text and "object at 0x" not in text


# --------------------------------------------------------------------- layers

def test_flatten_is_identity():
    assert nn.Flatten()(X) is X
    assert nn.Flatten(0, 1)(X) is X
    assert nn.Flatten().params == []


def test_activation_layers_compute_their_functions():
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.Sigmoid(),
                        nn.Linear(5, 3), nn.Tanh(), nn.Flatten())
    pred = net(X)
    model = symgrad.Model(losses.mse(pred, Y), net.params, [X, Y], predict=pred)
    kernel = symgrad.compile(model)
    params, data = net.init(2), _data(2)
    p = params
    h1 = np.maximum(data["X"] @ p["0.weight"].T + p["0.bias"], 0.0)
    h2 = _sigmoid(h1 @ p["2.weight"].T + p["2.bias"])
    want = np.tanh(h2 @ p["4.weight"].T + p["4.bias"])
    got = run_uncompiled(kernel, params, data, "predict")
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    loss, _ = run_uncompiled(kernel, params, data, "loss")
    assert loss == pytest.approx(((want - data["Y"]) ** 2).mean(), rel=1e-13)


def test_activation_layers_have_no_params():
    for layer in (nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.Flatten()):
        assert layer.params == [] and layer.init(0) == {}


# ------------------------------------------------------------- torch weights

@pytest.fixture(scope="module")
def torch_pair():
    torch = torch_or_skip()
    tnn = torch.nn
    torch.manual_seed(0)
    tnet = tnn.Sequential(tnn.Linear(4, 6), tnn.ReLU(), tnn.Linear(6, 5), tnn.Sigmoid(),
                          tnn.Linear(5, 3), tnn.Tanh(), tnn.Flatten()).double()
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.Sigmoid(),
                        nn.Linear(5, 3), nn.Tanh(), nn.Flatten())
    pred = net(X)
    model = symgrad.Model(losses.mse(pred, Y), net.params, [X, Y], predict=pred)
    return torch, tnet, net, symgrad.compile(model)


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


def test_torch_state_dict_names_and_shapes_fit(torch_pair):
    _, tnet, net, _ = torch_pair
    state = {k: v.detach().numpy() for k, v in tnet.state_dict().items()}
    assert list(state) == [p.name for p in net.params]
    init = net.init(0)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in init.items()}


def test_torch_weights_give_torch_loss_and_gradients(torch_pair):
    torch, tnet, _, kernel = torch_pair
    params = {k: v.detach().numpy().copy() for k, v in tnet.state_dict().items()}
    data = _data(3, batch=9)
    tnet.zero_grad()
    out = tnet(torch.tensor(data["X"]))
    loss_t = torch.nn.functional.mse_loss(out, torch.tensor(data["Y"]))
    loss_t.backward()
    loss, grads = kernel.loss_and_grad(params, data)      # compiled by Numba
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    for name, p in tnet.named_parameters():
        assert grads[name].shape == tuple(p.shape), name
        assert _rel(grads[name], p.grad.numpy()) < 1e-12, name
    np.testing.assert_allclose(kernel.predict(params, data), out.detach().numpy(),
                               rtol=1e-12, atol=1e-15)
