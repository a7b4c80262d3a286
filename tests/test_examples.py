"""The examples: each model through a kernel against hand-written NumPy (in process),
and each script run as `python examples/NAME.py` printing what its docstring promises."""

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import symgrad

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ["lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer", "linear_rmsprop",
         "two_layer_net", "rosenbrock_newton"]


@functools.cache
def example(name):
    """The example module, imported without running its main()."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def kernel(name, method="reverse"):
    return symgrad.compile(example(name).model, method=method)


@pytest.fixture
def one_thread():
    """Training loops make thousands of small calls: on a busy machine each parallel launch
    can wait for a descheduled thread. Results do not depend on the thread count."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def run_example(name, cwd, *args):
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}     # as one_thread
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_tested():
    untested = sorted({p.stem for p in EXAMPLES.glob("*.py")} - set(NAMES))
    assert not untested, f"add tests for examples {untested} to tests/test_examples.py"


# ---- lecture graph: q = x + y, f = q z ----

@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_lecture_graph_values(method):
    f, grads = kernel("lecture_graph", method).loss_and_grad(example("lecture_graph").POINT)
    assert (f, grads) == (-12.0, {"x": -4.0, "y": -4.0, "z": 3.0})


def test_lecture_graph_script(tmp_path):
    lines = run_example("lecture_graph", tmp_path).splitlines()
    assert [line.split(":", 1)[0].strip() for line in lines] == ["reverse", "symbolic"]
    for line in lines:
        assert line.split(":", 1)[1].strip() == "f = -12; df/dx = -4, df/dy = -4, df/dz = 3"


# ---- chain rule: d/dx f(g(x)) = 18x + 12 ----

@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_chain_rule_values(method):
    for x in (-2.0, -0.3, 0.0, 0.5, 3.0, 1e3):
        loss, grads = kernel("chain_rule", method).loss_and_grad({"x": x})
        assert loss == pytest.approx(9 * x**2 + 12 * x + 3, rel=1e-14, abs=1e-14)
        assert grads["x"] == pytest.approx(18 * x + 12, rel=1e-14)


def test_chain_rule_script(tmp_path):
    rows = [line for line in run_example("chain_rule", tmp_path).splitlines()
            if line.startswith("x =")]
    assert len(rows) == 4
    for row in rows:
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", row)]
        x, expected, reverse, symbolic = numbers
        assert expected == pytest.approx(18 * x + 12) == reverse == symbolic


# ---- polynomial fit of sin(x) by gradient descent ----

def numpy_descent(params, data, steps=2000, lr=1e-6, every=100):
    """The example's training loop with gradients written by hand."""
    a, b, c, d = (params[k] for k in "abcd")
    x, y = data["x"], data["y"]
    history = []
    for t in range(steps):
        r = a + b * x + c * x**2 + d * x**3 - y
        if t % every == every - 1:
            history.append((t, np.sum(r**2)))
        grads = [2 * np.sum(r * f) for f in (1.0, x, x**2, x**3)]
        a, b, c, d = (v - lr * g for v, g in zip((a, b, c, d), grads))
    return dict(zip("abcd", (a, b, c, d))), history


@pytest.fixture(scope="module")
def poly_reference():
    module = example("polynomial_sin")
    return numpy_descent(module.initial_params(), module.data())


def test_polynomial_trajectory_matches_numpy(poly_reference, one_thread):
    module = example("polynomial_sin")
    params, history = module.train(kernel("polynomial_sin"), module.initial_params(),
                                   module.data(), log=lambda line: None)
    ref_params, ref_history = poly_reference
    assert [t for t, _ in history] == [t for t, _ in ref_history] == list(range(99, 2000, 100))
    for (_, loss), (_, ref) in zip(history, ref_history):
        assert loss == pytest.approx(ref, rel=1e-9)
    assert params == pytest.approx(ref_params, rel=1e-9)
    losses = [loss for _, loss in history]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))
    assert losses[-1] < 20


def test_polynomial_script(tmp_path, poly_reference):
    out = run_example("polynomial_sin", tmp_path)
    assert (tmp_path / "build" / "poly_kernels.py").read_text(encoding="utf-8") == \
        kernel("polynomial_sin").source
    printed = [(int(t), float(v)) for t, v in re.findall(r"^\s*(\d+) (\d+\.\d+)$", out, re.M)]
    ref_params, ref_history = poly_reference
    assert [t for t, _ in printed] == [t for t, _ in ref_history]
    for (_, loss), (_, ref) in zip(printed, ref_history):
        assert loss == pytest.approx(ref, abs=1e-6)        # printed with 6 decimals
    result = re.search(r"Result: y = (\S+) \+ (\S+) x \+ (\S+) x\^2 \+ (\S+) x\^3", out)
    assert [float(v) for v in result.groups()] == \
        pytest.approx([ref_params[k] for k in "abcd"], abs=1e-6)


# ---- hinge loss of a two-layer ReLU net, with L2 ----

def hinge_reference(module, params, data):
    """Loss and gradients by hand: relu hidden layer, hinge, lambda * squared weights."""
    n_in, n_hidden, lam = module.N_IN, module.N_HIDDEN, module.LAMBDA
    w1 = np.array([[params[f"w1_{i + 1}{j + 1}"] for j in range(n_in)]
                   for i in range(n_hidden)])
    w2 = np.array([params[f"w2_{j + 1}"] for j in range(n_hidden)])
    x = np.stack([data[f"x{j + 1}"] for j in range(n_in)])        # (n_in, n)
    y = data["y"]
    pre = w1 @ x
    hidden = np.maximum(pre, 0.0)
    margin = 1 - y * (w2 @ hidden)
    loss = np.sum(np.maximum(margin, 0.0)) + lam * (np.sum(w1**2) + np.sum(w2**2))
    d_score = np.where(margin > 0, -y, 0.0)                           # d loss / d score
    g_w2 = hidden @ d_score + 2 * lam * w2
    g_w1 = ((w2[:, None] * (pre > 0)) * d_score) @ x.T + 2 * lam * w1
    grads = {f"w1_{i + 1}{j + 1}": g_w1[i, j] for i in range(n_hidden) for j in range(n_in)}
    grads.update({f"w2_{j + 1}": g_w2[j] for j in range(n_hidden)})
    return loss, grads


def test_hinge_methods_agree_with_each_other_and_numpy():
    module = example("hinge_two_layer")
    params, data = module.initial_params(), module.data()
    ref_loss, ref_grads = hinge_reference(module, params, data)
    reverse = kernel("hinge_two_layer", "reverse").loss_and_grad(params, data)
    symbolic = kernel("hinge_two_layer", "symbolic").loss_and_grad(params, data)
    assert reverse[0] == pytest.approx(ref_loss, rel=1e-12)
    assert reverse[1] == pytest.approx(ref_grads, rel=1e-10, abs=1e-12)
    assert symbolic[0] == pytest.approx(reverse[0], rel=1e-14)
    assert symbolic[1] == pytest.approx(reverse[1], rel=1e-12, abs=1e-14)


def test_hinge_script(tmp_path):
    out = run_example("hinge_two_layer", tmp_path)
    diff = re.search(r"max \|symbolic - reverse\| over all gradients: (\S+)", out)
    assert float(diff.group(1)) <= 1e-9
    losses = [float(v) for v in re.findall(r"^step\s+\d+\s+loss (\S+)$", out, re.M)]
    assert len(losses) == 4
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))


# ---- the module-based workloads (trajectories vs PyTorch: tests/test_torch_reference.py) ----

def test_linear_rmsprop_loss_and_grad_match_numpy():
    ex = example("linear_rmsprop")
    params, batch = ex.params(), ex.data()
    loss, grads = kernel("linear_rmsprop").loss_and_grad(params, batch)
    w, b = params["0.weight"], params["0.bias"]
    r = batch["X"] @ w.T[:, 0] + b[0] - batch["Y"]
    assert np.isclose(loss, np.sum(r**2), rtol=1e-12)
    assert np.allclose(grads["0.weight"], 2 * (r @ batch["X"])[None, :], rtol=1e-12)
    assert np.allclose(grads["0.bias"], [2 * r.sum()], rtol=1e-12)


def test_linear_rmsprop_script(tmp_path):
    out = run_example("linear_rmsprop", tmp_path)
    assert "plain updates, lr 1e-6" in out and "RMSprop, lr 1e-3" in out
    finals = [float(m) for m in re.findall(r"^\s+1599 (\S+)$", out, flags=re.M)]
    assert len(finals) == 2 and all(f < 20 for f in finals)
    assert out.count("Result: y =") == 2


def test_two_layer_net_script(tmp_path):
    out = run_example("two_layer_net", tmp_path)
    losses = [float(m) for m in re.findall(r"^\s*\d+ (\S+)$", out, flags=re.M)]
    assert len(losses) == 10 and losses[-1] < 1e-3 * losses[0]
    assert "us/step" in out


# ---- chained Rosenbrock: Newton with the sparse Hessian (n = 60 here; 10,000 by default) ----

def test_rosenbrock_newton_script(tmp_path):
    out = run_example("rosenbrock_newton", tmp_path, "60")
    assert "Hessian pattern: 178 entries (tridiagonal), 3 colours" in out
    newton = re.search(r"Newton: f = (\S+) -> (\S+), below 1e-20 after (\d+) steps", out)
    assert float(newton.group(1)) == 0.25**2 * 100 * 59 + 0.25 * 59     # at x = 0.5
    assert float(newton.group(2)) == 0.0 and int(newton.group(3)) < 40
    assert "max |x - 1| = 0.00e+00" in out
    lbfgs = re.search(r"L-BFGS: f = \S+ -> (\S+) after", out)
    assert float(lbfgs.group(1)) < 1e-6
    trust = re.search(r"trust-ncg \(hessp=kernel.hvp\): f = (\S+)", out)
    assert float(trust.group(1)) < 1e-12
