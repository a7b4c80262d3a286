"""What the entry points accept beyond the basics: predict() with only the inputs the
prediction reads, and check_finite=True on every entry point, in the kernel and in a
saved module (the CUDA module's are checked in test_cuda_sim.py, "errors")."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import losses, nn

N = sp.Symbol("n", integer=True, positive=True)


@pytest.fixture(scope="module")
def classifier():
    X, Y = sp.MatrixSymbol("X", N, 4), sp.MatrixSymbol("Y", N, 3)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    model = symgrad.Model(losses.cross_entropy(net(X), Y), net.params, inputs=[X, Y],
                          predict=net(X))
    rng = np.random.default_rng(0)
    data = {"X": rng.normal(size=(9, 4)), "Y": rng.integers(0, 3, 9)}
    return symgrad.compile(model), net.init(1), data


@pytest.fixture(scope="module")
def saved(classifier, tmp_path_factory):
    kernel, _, _ = classifier
    path = kernel.save(tmp_path_factory.mktemp("saved") / "classifier.py")
    spec = importlib.util.spec_from_file_location("saved_classifier", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_needs_only_the_inputs_it_reads(classifier, saved):
    kernel, params, data = classifier
    assert kernel.module.PREDICT_INPUTS == ("X",)
    full = kernel.predict(params, data)          # the targets may be passed, and are ignored
    assert full.shape == (9, 3)
    np.testing.assert_array_equal(kernel.predict(params, {"X": data["X"]}), full)
    np.testing.assert_array_equal(saved.predict(params, {"X": data["X"]}), full)
    with pytest.raises(symgrad.UnknownArgumentError, match="'Z'"):
        kernel.predict(params, {"X": data["X"], "Z": data["X"]})
    with pytest.raises(symgrad.MissingArgumentError, match="'X'"):
        kernel.predict(params, {"Y": data["Y"]})
    with pytest.raises(symgrad.MissingArgumentError, match="'Y'"):
        kernel.loss(params, {"X": data["X"]})     # the loss still needs the targets


def _bad(data, row=5):
    bad = dict(data)
    bad["X"] = data["X"].copy()
    bad["X"][row, 2] = np.nan
    return bad


def test_check_finite_names_the_input_and_first_row_on_every_entry_point(classifier, saved):
    kernel, params, data = classifier
    bad = _bad(data)
    sgd = symgrad.optim.SGD(lr=0.1)
    assert np.isnan(kernel.loss(params, bad))        # off by default: NaN, no pass over data
    calls = [lambda: kernel.loss(params, bad, check_finite=True),
             lambda: kernel.loss_and_grad(params, bad, check_finite=True),
             lambda: kernel.predict(params, {"X": bad["X"]}, check_finite=True),
             lambda: kernel.train(params, bad, sgd, 2, check_finite=True),
             lambda: kernel.train_step(params, bad, sgd, 2, check_finite=True),
             lambda: saved.loss(params, bad, True),
             lambda: saved.train(params, bad, sgd, 1, None, True)]
    for call in calls:
        with pytest.raises(symgrad.NonFiniteError, match=r"input 'X' has a NaN .* row 5 "
                                                         r"\(1 row\(s\) of 9"):
            call()
    kernel.loss(params, data, check_finite=True)     # clean data passes


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_check_finite_in_scalar_and_expanded_matrix_kernels(method):
    a, x = sp.symbols("a x", real=True)
    kernel = symgrad.compile(symgrad.Model((a * x - 1) ** 2, [a], inputs=[x]), method)
    xs = np.ones(20)
    xs[[3, 11]] = [np.inf, np.nan]
    with pytest.raises(symgrad.NonFiniteError, match=r"input 'x' .* row 3 \(2 row\(s\)"):
        kernel.loss_and_grad({"a": 1.0}, {"x": xs}, check_finite=True)
    X, W = sp.MatrixSymbol("X", N, 2), sp.MatrixSymbol("W", 1, 2)
    matrix = symgrad.compile(symgrad.Model(symgrad.matrix.total(X * W.T), [W], inputs=[X]),
                             method)      # symbolic: the scalar expansion's kernel
    bad = np.ones((4, 2))
    bad[1, 1] = np.nan
    with pytest.raises(symgrad.NonFiniteError, match="row 1"):
        matrix.loss({"W": np.ones((1, 2))}, {"X": bad}, check_finite=True)
