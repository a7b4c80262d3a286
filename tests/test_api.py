"""The public API as users call it: `symgrad.Model`, `symgrad.compile` and the Kernel's
`loss` / `loss_and_grad`, checked against hand-written NumPy; determinism of the
generated source; results independent of the thread count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import sympy as sp

import symgrad

ROOT = Path(__file__).resolve().parent.parent

X, Y = sp.symbols("x y", real=True)
A, B = sp.symbols("a b", real=True)
SAMPLE_LOSS = (A * sp.exp(B * X) - Y) ** 2
PENALTY = (A**2 + 3 * B**2) / 2
PARAMS = {"a": 0.7, "b": -0.4}


def batch(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, n)
    return {"x": x, "y": np.sin(x) + 0.1 * rng.standard_normal(n)}


def reference(params, data, reduction="sum", penalty=False):
    """Loss and gradients of SAMPLE_LOSS (+ PENALTY), written by hand in NumPy."""
    a, b = params["a"], params["b"]
    x, y = data["x"], data["y"]
    e = np.exp(b * x)
    r = a * e - y
    per_sample = [r**2, 2 * r * e, 2 * r * a * x * e]
    reduce = np.mean if reduction == "mean" else np.sum
    loss, ga, gb = (reduce(v) for v in per_sample)
    if penalty:
        loss, ga, gb = loss + (a**2 + 3 * b**2) / 2, ga + a, gb + 3 * b
    return loss, {"a": ga, "b": gb}


@pytest.fixture(scope="module")
def kernels():
    """One kernel per (reduction, penalty) combination, compiled once for this file."""
    out = {}
    for reduction in ("sum", "mean"):
        for penalty in (False, True):
            model = symgrad.Model(SAMPLE_LOSS, [A, B], [X, Y], reduction=reduction,
                                  penalty=PENALTY if penalty else None)
            out[reduction, penalty] = symgrad.compile(model)
    return out


@pytest.fixture(scope="module")
def lecture_kernel():
    x, y, z = sp.symbols("x y z", real=True)
    return symgrad.compile(symgrad.Model((x + y) * z, [x, y, z]))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("penalty", [False, True], ids=["no-penalty", "penalty"])
def test_loss_and_grad_match_numpy(kernels, reduction, penalty):
    for n in (1, 3, 5000):
        data = batch(n, seed=n)
        loss, grads = kernels[reduction, penalty].loss_and_grad(PARAMS, data)
        ref_loss, ref_grads = reference(PARAMS, data, reduction, penalty)
        assert isinstance(loss, float) and list(grads) == ["a", "b"]
        assert all(isinstance(g, float) for g in grads.values())
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        assert grads == pytest.approx(ref_grads, rel=1e-11)


def test_penalty_is_added_once_not_per_sample(kernels):
    one = batch(1)
    many = {k: np.repeat(v, 7) for k, v in one.items()}
    sample, _ = kernels["sum", False].loss_and_grad(PARAMS, one)
    penalty = (PARAMS["a"] ** 2 + 3 * PARAMS["b"] ** 2) / 2
    assert kernels["sum", True].loss(PARAMS, many) == pytest.approx(7 * sample + penalty,
                                                                    rel=1e-14)
    assert kernels["mean", True].loss(PARAMS, many) == pytest.approx(sample + penalty,
                                                                     rel=1e-14)


@pytest.mark.parametrize("key", [("sum", False), ("sum", True), ("mean", False),
                                 ("mean", True)], ids=lambda k: f"{k}")
def test_loss_equals_loss_of_loss_and_grad(kernels, key):
    data = batch(9000, seed=3)
    assert kernels[key].loss(PARAMS, data) == kernels[key].loss_and_grad(PARAMS, data)[0]


def test_mean_is_sum_divided_by_n(kernels):
    data = batch(10_000, seed=4)
    total, total_grads = kernels["sum", False].loss_and_grad(PARAMS, data)
    mean, mean_grads = kernels["mean", False].loss_and_grad(PARAMS, data)
    assert mean == total / 10_000
    assert mean_grads == {k: v / 10_000 for k, v in total_grads.items()}


def test_empty_batch_with_sum_gives_zero_loss_and_grads(kernels):
    empty = {"x": np.zeros(0), "y": np.zeros(0)}
    assert kernels["sum", False].loss_and_grad(PARAMS, empty) == (0.0, {"a": 0.0, "b": 0.0})
    assert kernels["sum", False].loss(PARAMS, empty) == 0.0
    # Only the penalty is left.
    loss, grads = kernels["sum", True].loss_and_grad(PARAMS, empty)
    assert loss == pytest.approx((0.7**2 + 3 * 0.4**2) / 2, rel=1e-15)
    assert grads == pytest.approx({"a": 0.7, "b": 3 * -0.4}, rel=1e-15)


def test_model_without_inputs_takes_no_data_or_an_empty_dict(lecture_kernel):
    point = {"x": -2.0, "y": 5.0, "z": -4.0}
    expected = (-12.0, {"x": -4.0, "y": -4.0, "z": 3.0})
    assert lecture_kernel.loss_and_grad(point) == expected
    assert lecture_kernel.loss_and_grad(point, None) == expected
    assert lecture_kernel.loss_and_grad(point, {}) == expected
    assert lecture_kernel.loss(point) == lecture_kernel.loss(point, {}) == -12.0


@pytest.mark.parametrize("convert", [
    int, float, np.float64, np.float32, np.int64, np.int8, np.uint16,
    lambda v: np.array(v), lambda v: np.array(v, dtype=np.float32),
    lambda v: np.array(v, dtype=np.int32),
], ids=["int", "float", "f64", "f32", "i64", "i8", "u16", "0d", "0d-f32", "0d-i32"])
def test_params_accept_python_and_numpy_scalars(lecture_kernel, convert):
    point = {"x": convert(2), "y": convert(5), "z": convert(4)}
    assert lecture_kernel.loss_and_grad(point) == (28.0, {"x": 4.0, "y": 4.0, "z": 7.0})


def test_float_data_of_other_layouts_and_precisions_is_accepted(kernels):
    data = batch(50, seed=5)
    expected = kernels["sum", False].loss_and_grad(PARAMS, data)
    strided = {k: np.repeat(v, 2)[::2] for k, v in data.items()}
    assert kernels["sum", False].loss_and_grad(PARAMS, strided) == expected
    as_lists = {k: v.tolist() for k, v in data.items()}
    assert kernels["sum", False].loss_and_grad(PARAMS, as_lists) == expected
    single = {k: v.astype(np.float32) for k, v in data.items()}
    widened = {k: v.astype(np.float64) for k, v in single.items()}
    assert (kernels["sum", False].loss_and_grad(PARAMS, single)
            == kernels["sum", False].loss_and_grad(PARAMS, widened))


def test_thread_count_does_not_change_a_single_bit(kernels):
    """Fixed 4096-sample chunks summed in order: 1 and 2 threads agree bitwise."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    data = batch(20_000, seed=6)            # 5 chunks
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1):
            numba.set_num_threads(threads)
            for kernel in kernels.values():
                loss, grads = kernel.loss_and_grad(PARAMS, data)
                results.append((threads, loss.hex(), [g.hex() for g in grads.values()],
                                kernel.loss(PARAMS, data).hex()))
    finally:
        numba.set_num_threads(before)
    per_run = len(kernels)
    one, two, again = (results[i * per_run:(i + 1) * per_run] for i in range(3))
    assert [r[1:] for r in one] == [r[1:] for r in two] == [r[1:] for r in again]


# ---- determinism of the generated source ----

MODELS_SCRIPT = r'''
import hashlib, importlib.util, json, sys
import sympy as sp
import symgrad

def example(name):
    spec = importlib.util.spec_from_file_location("example_" + name,
                                                  f"{ROOT}/examples/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model

def busy():
    """Many symbols, branches and nonsmooth ops: plenty of room for ordering to leak."""
    w = sp.symbols("w0:7", real=True)
    u, v = sp.symbols("u v", real=True)
    z = w[0] * u + w[1] * v + w[2]
    loss = (symgrad.softplus(z) - v * z
            + sp.Piecewise((w[3] * u**2, u > 0), (sp.Abs(w[4] * v), v < 1), (w[5], True))
            + sp.Max(w[5], u, w[6] * v) + symgrad.sigmoid(w[6] * z) * sp.log(1 + u**2)
            + symgrad.relu(w[4] - u) * sp.tanh(w[1] * w[2]))
    return symgrad.Model(loss, w, [u, v], reduction="mean",
                         penalty=sum(wi**2 for wi in w) / 10)

def models():
    out = {name: example(name) for name in
           ("lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer")}
    out["busy"] = busy()
    return out

def digests():
    return {f"{label}/{method}": hashlib.sha256(
                symgrad.compile(model, method=method).source.encode()).hexdigest()
            for label, model in models().items() for method in ("reverse", "symbolic")}

if __name__ == "__main__":
    print(json.dumps(digests()))
'''.replace("{ROOT}", str(ROOT))


def _in_process_digests():
    namespace = {"__name__": "symgrad_models"}
    exec(compile(MODELS_SCRIPT, "models_script", "exec"), namespace)
    return namespace


def test_same_model_built_twice_gives_identical_source():
    namespace = _in_process_digests()
    first = namespace["digests"]()
    sp.core.cache.clear_cache()
    assert namespace["digests"]() == first


def test_source_does_not_depend_on_hash_seed_or_process(tmp_path):
    script = tmp_path / "models.py"
    script.write_text(MODELS_SCRIPT)
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    assert runs[0] == _in_process_digests()["digests"]()
    assert len(set(runs[0].values())) == len(runs[0])   # the models do differ


def test_unused_params_get_zero_gradients_and_params_may_be_empty():
    unused = symgrad.compile(symgrad.Model(A**2 * X, [A, B], [X]))
    assert unused.loss_and_grad({"a": 3, "b": 1}, {"x": np.ones(4)}) == (36.0, {"a": 24.0,
                                                                            "b": 0.0})
    no_params = symgrad.compile(symgrad.Model(X**2, [], [X], reduction="mean", penalty=2))
    assert no_params.loss_and_grad({}, {"x": np.array([1.0, 2.0])}) == (4.5, {})
