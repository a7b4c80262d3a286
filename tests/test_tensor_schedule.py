"""The fused schedule of matrix models (symgrad.tensor_program) and the argument checks
of their generated modules.

Structure, not speed: the lecture's 1000-100-10 net gets the minimum number of BLAS
products, one pass over memory per elementwise chain and no dead stores, and its
module text is the same on every compile. Nothing here is compiled by Numba: the
checks all run before a jitted core is called.
"""

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, nn
from symgrad.derivation import derive
from symgrad.tensor_program import Loop, MatMul, RowLogSumExp, View, tensor_schedule

ROOT = Path(__file__).resolve().parent.parent
N_IN, N_HIDDEN, N_OUT, BATCH = 1000, 100, 10, 64


def build_model(layers=(N_IN, N_HIDDEN, N_OUT), activation=nn.ReLU, loss="mse"):
    return mlp(layers, activation, loss)[0]


def mlp(layers, activation, loss):
    """(Model, its nn.Sequential): Linear layers with `activation` between them."""
    n = sp.Symbol("n", integer=True, positive=True)
    X = sp.MatrixSymbol("X", n, layers[0])
    Y = sp.MatrixSymbol("Y", n, layers[-1])
    parts = []
    for i, (a, b) in enumerate(itertools.pairwise(layers)):
        parts += [nn.Linear(a, b)] + ([activation()] if i < len(layers) - 2 else [])
    net = nn.Sequential(*parts)
    out = net(X)
    value = losses.mse(out, Y, reduction="sum") if loss == "mse" else \
        losses.cross_entropy(out, Y)
    return symgrad.Model(value, params=net.params, inputs=[X, Y], predict=out), net


def schedules(model):
    d = derive(model)
    assert d.penalty is None and all(g is not None for g in d.sample_grads)
    params, inputs = model.param_nodes, model.input_nodes
    outputs = [d.sample_loss, *d.sample_grads]
    return (tensor_schedule([d.sample_loss], params, inputs),
            tensor_schedule(outputs, params, inputs))


def _count(program, kind):
    return sum(isinstance(k, kind) for k in program.kernels)


@pytest.fixture(scope="module")
def lecture_net():
    model = build_model()
    return model, symgrad.compile(model), *schedules(model)


# ---------------------------------------------------------------- BLAS products

def test_loss_needs_two_products_and_gradient_five(lecture_net):
    _, _, loss_program, grad_program = lecture_net
    assert _count(loss_program, MatMul) == 2
    # 2 forward + one per weight gradient (2) + the hidden layer's cotangent (1); no dX.
    assert _count(grad_program, MatMul) == 2 + 2 + 1


def test_no_product_computes_a_gradient_for_the_input(lecture_net):
    _, _, _, grad_program = lecture_net
    shapes = [k.out.shape for k in grad_program.kernels if isinstance(k, MatMul)]
    assert ("n", N_IN) not in shapes
    assert sorted(map(str, shapes)) == sorted(map(str, [
        ("n", N_HIDDEN), ("n", N_OUT),              # forward
        (N_HIDDEN, N_IN), (N_OUT, N_HIDDEN),        # dW1, dW2
        ("n", N_HIDDEN)]))                          # cotangent of the hidden layer


def test_emitted_module_has_the_scheduled_products(lecture_net):
    _, kernel, _, _ = lecture_net
    source = kernel.source
    grad_core = source.split("def _loss_and_grad_core")[1].split("\ndef ")[0]
    loss_core = source.split("def _loss_core")[1].split("\ndef ")[0]
    assert grad_core.count("np.dot(") == 5
    assert loss_core.count("np.dot(") == 2
    assert "(5 matrix products)" in source


def test_deeper_and_tanh_nets_get_the_minimum_too():
    # L layers: L forward products, L weight gradients, L - 1 hidden cotangents.
    model = build_model(layers=(8, 7, 6, 5), activation=nn.Tanh, loss="ce")
    loss_program, grad_program = schedules(model)
    assert _count(loss_program, MatMul) == 3
    assert _count(grad_program, MatMul) == 3 + 3 + 2
    assert _count(grad_program, RowLogSumExp) == 1


# -------------------------------------------------------------------- fusion

def _producer(program):
    kernel_of = {}
    for k, kernel in enumerate(program.kernels):
        if isinstance(kernel, Loop):
            for m in (*kernel.members, *kernel.reductions):
                kernel_of[m] = k
        else:
            kernel_of[kernel.out] = k
    return kernel_of


def _reads(kernel):
    if isinstance(kernel, MatMul):
        return [kernel.a, kernel.b]
    if isinstance(kernel, (View, RowLogSumExp)):
        return [kernel.out.args[0]]
    return list(kernel.loads)


def test_every_read_value_is_produced_earlier(lecture_net):
    model, _, loss_program, grad_program = lecture_net
    leaves = set(model.param_nodes) | set(model.input_nodes)
    for program in (loss_program, grad_program):
        kernel_of = _producer(program)
        for k, kernel in enumerate(program.kernels):
            for a in _reads(kernel):
                assert a in leaves or a.op.name in ("CONST", "SIZE") or kernel_of[a] < k


def test_no_loop_stores_a_value_nothing_else_reads(lecture_net):
    _, _, loss_program, grad_program = lecture_net
    for program in (loss_program, grad_program):
        read_elsewhere = set(program.outputs)
        for k, kernel in enumerate(program.kernels):
            read_elsewhere.update(_reads(kernel))
        for kernel in program.kernels:
            if isinstance(kernel, Loop):
                for member, _ in kernel.stores:
                    assert member in read_elsewhere, member
                assert all(r in read_elsewhere for r, _ in kernel.accumulates)


def test_each_elementwise_chain_is_one_loop(lecture_net):
    _, _, loss_program, grad_program = lecture_net
    # loss: (bias, relu) on the hidden layer; (bias, - Y, square, sums) on the output.
    assert _count(loss_program, Loop) == 2
    # + the backward pass's (relu mask, bias-gradient sum) on the hidden layer; the
    # output cotangent 2 (o - y) and its column sum join the output's loop.
    assert _count(grad_program, Loop) == 3
    loops = [k for k in grad_program.kernels if isinstance(k, Loop)]
    assert [loop.shape for loop in loops] == [("n", N_HIDDEN), ("n", N_OUT), ("n", N_HIDDEN)]
    # The loss and both bias gradients are sums accumulated inside those passes.
    assert sum(len(loop.reductions) for loop in loops) >= 3
    assert all(loop.members or loop.reductions for loop in loops)


def test_loss_program_stores_no_temporaries_but_the_hidden_layer(lecture_net):
    _, _, loss_program, _ = lecture_net
    stored = [m for k in loss_program.kernels if isinstance(k, Loop) for m, _ in k.stores]
    assert [m.op.name for m in stored] == ["RELU"]


# -------------------------------------------------------------- determinism

_HASH_SCRIPT = """
import hashlib, sys
sys.path.insert(0, {tests!r})
import symgrad, test_tensor_schedule as t
print(hashlib.sha256(symgrad.compile(t.build_model()).source.encode()).hexdigest())
"""


def test_generated_source_is_byte_identical_across_compiles(lecture_net):
    _, kernel, _, _ = lecture_net
    again = symgrad.compile(build_model())          # fresh SymPy objects, same model
    assert again.source == kernel.source
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    script = _HASH_SCRIPT.format(tests=str(ROOT / "tests"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hashlib.sha256(kernel.source.encode()).hexdigest()


# ---------------------------------------------------------- data validation

@pytest.fixture(scope="module")
def valid(lecture_net):
    _, kernel, _, _ = lecture_net
    rng = np.random.default_rng(0)
    data = {"X": rng.standard_normal((BATCH, N_IN)), "Y": rng.standard_normal((BATCH, N_OUT))}
    return kernel, _params(), data


def _params():
    rng = np.random.default_rng(1)
    return {"0.weight": rng.standard_normal((N_HIDDEN, N_IN)) * 0.01,
            "0.bias": np.zeros(N_HIDDEN),
            "2.weight": rng.standard_normal((N_OUT, N_HIDDEN)) * 0.1,
            "2.bias": np.zeros(N_OUT)}


@pytest.mark.parametrize("change, error, match", [
    ({"X": np.zeros((BATCH, 999))}, symgrad.ShapeError, r"'X'.*\(n, 1000\).*\(64, 999\)"),
    ({"X": np.zeros((BATCH, N_IN, 1))}, symgrad.ShapeError, "'X'"),
    ({"Y": np.zeros((BATCH - 1, N_OUT))}, symgrad.LengthMismatchError,
     "'X' and 'Y'.*64 and 63"),
    ({"X": np.zeros((BATCH, N_IN), dtype=np.int64)}, symgrad.DTypeError, "'X'.*int64"),
    ({"Y": np.zeros((BATCH, N_OUT), dtype=bool)}, symgrad.DTypeError, "'Y'.*bool"),
    ({"Y": np.zeros(BATCH)}, symgrad.ShapeError, "'Y'"),
    ({"Z": np.zeros(3)}, symgrad.UnknownArgumentError, "'Z'"),
])
def test_bad_data_is_rejected_with_named_errors(valid, change, error, match):
    kernel, params, data = valid
    # predict reads X only: what is wrong with the targets Y is no error of its
    predict = [kernel.predict] if "Y" not in change else []
    for entry in (kernel.loss, kernel.loss_and_grad, *predict):
        with pytest.raises(error, match=match) as info:
            entry(params, {**data, **change})
        assert isinstance(info.value, symgrad.SymgradError)


def test_missing_data_is_rejected(valid):
    kernel, params, data = valid
    with pytest.raises(symgrad.MissingArgumentError, match="'Y'"):
        kernel.loss(params, {"X": data["X"]})
    with pytest.raises(symgrad.MissingArgumentError, match="data"):
        kernel.loss(params, None)


@pytest.mark.parametrize("name, value, error, match", [
    ("0.weight", np.zeros((N_IN, N_HIDDEN)), symgrad.ShapeError, r"\(100, 1000\)"),
    ("0.bias", np.zeros(N_HIDDEN + 1), symgrad.ShapeError,
     r"'0.bias' must have shape \(100,\) or \(1, 100\), got \(101,\)"),
    ("2.bias", np.full(N_OUT, np.nan), symgrad.NonFiniteError, "'2.bias'.*nan"),
    ("2.weight", "weights", symgrad.DTypeError, "'2.weight'"),
])
def test_bad_params_are_rejected_with_named_errors(valid, name, value, error, match):
    kernel, params, data = valid
    with pytest.raises(error, match=match):
        kernel.loss_and_grad({**params, name: value}, data)


def test_class_labels_are_checked_against_the_class_count():
    model = build_model(layers=(3, 4), loss="ce")
    kernel = symgrad.compile(model)
    params = {"0.weight": np.zeros((4, 3)), "0.bias": np.zeros(4)}
    x = np.zeros((5, 3))
    for labels in (np.array([0, 1, 2, 3, 4]), np.array([0, -1, 2, 3, 1])):
        with pytest.raises(symgrad.ShapeError, match=r"class labels must lie in \[0, 4\)"):
            kernel.loss(params, {"X": x, "Y": labels})
    with pytest.raises(symgrad.LengthMismatchError, match="5 and 4"):
        kernel.loss(params, {"X": x, "Y": np.array([0, 1, 2, 3])})
    with pytest.raises(symgrad.DTypeError, match=r"'Y'.*np\.asarray\(\.\.\., dtype=float\)"):
        kernel.loss(params, {"X": x, "Y": np.zeros((5, 4), dtype=np.int64)})
    # float labels: the message says what the input takes
    with pytest.raises(symgrad.ShapeError, match=r"'Y' must have shape \(n, 4\), got \(5,\): "
                                                 r"pass one-hot rows of 4, or integer class"):
        kernel.loss(params, {"X": x, "Y": np.array([0.0, 1.0, 2.0, 3.0, 1.0])})


def test_losses_name_both_shapes_when_they_differ():
    n = sp.Symbol("n", integer=True, positive=True)
    pred, target = sp.MatrixSymbol("P", n, 10), sp.MatrixSymbol("T", n, 3)
    for loss in (losses.mse, losses.cross_entropy, losses.hinge,
                 losses.binary_cross_entropy_with_logits):
        with pytest.raises(symgrad.errors.ShapeMismatchError,
                           match=r"needs the prediction and the target in one shape, got "
                                 r"\(n, 10\) and \(n, 3\), in \w+\(P, T\)"):
            loss(pred, target)
