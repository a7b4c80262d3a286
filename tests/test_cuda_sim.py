"""CUDA modules under Numba's CUDA simulator: every kernel runs, and every entry point
matches the CPU module (float64: rtol 1e-12).

NUMBA_ENABLE_CUDASIM must be set before Numba is imported, so the checks run in one
child process (this file run as a script: one import of SymPy and Numba for all
checks), with NUMBA_DISABLE_JIT=1 so that the CPU reference modules run as plain
Python too (no CPU compiles). The child prints one JSON object, check name ->
[ok, detail]; the tests below assert on it. Sizes: n = 0, n = 1 and sizes past the
tiny grid caps of `cuda_models.SIM_LAUNCH` (so grid-stride loops take several passes
and the last block is ragged). Data stays off IEEE edge points: the simulator runs
kernels as Python, where `1.0 / 0.0` between two Python floats raises. With
SYMGRAD_CUDA_TESTS=gpu (benchmarks/gpu_check.sh) the child runs the same checks with
real kernels on a GPU.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
import traceback

import cuda_models as cm
import numpy as np
import pytest

CHECKS = [
    *(f"scalar:{name}" for name in (*cm.SCALAR_EXAMPLES, "every_op", "special")),
    "matrix:mse", "matrix:ce", "float32:ce",
    *(f"train:{model}:{opt}" for model in ("hinge_two_layer", "ce")
      for opt in ("sgd", "rmsprop", "adam")), "train:ce:adamw",
    "device-arrays", "errors", "deterministic", "shared-branches",
    "example:linear_rmsprop", "example:two_layer_net",
    "second-order:hinge_two_layer", "second-order:ce",
    "every-kernel-launched",        # last: it reads what the others launched
]


# SYMGRAD_CUDA_TESTS=gpu (benchmarks/gpu_check.sh): the same checks on a real GPU.
ON_GPU = os.environ.get("SYMGRAD_CUDA_TESTS") == "gpu"


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ)
    if not ON_GPU:
        env.update(NUMBA_ENABLE_CUDASIM="1", NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(cm.ROOT), str(cm.ROOT / "tests")])
    done = subprocess.run([sys.executable, "-W", "ignore", __file__], env=env, cwd=cm.ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("check", CHECKS)
def test_cuda_module_under_simulator(report, check):
    ok, detail = report[check]
    assert ok, detail


# Load a generated module by path with sympy, symgrad and codegen unimportable, under
# the simulator, and print loss_and_grad as JSON.
STANDALONE = r"""
import importlib.abc, importlib.util, json, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("sympy", "symgrad", "codegen"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Blocked())
spec = importlib.util.spec_from_file_location("standalone_cuda", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
request = json.loads(sys.argv[2])
loss, grads = module.loss_and_grad(request["params"], request["data"])
print(json.dumps([loss, grads]))
"""


def test_cuda_module_is_standalone(tmp_path):
    """The module runs with numpy and numba only (here under the simulator)."""
    import numba

    from codegen import cuda_module
    from symgrad.derivation import derive
    from symgrad.interpret import loss_and_grad
    model = cm.example("hinge_two_layer")
    derivation = derive(model)
    path = tmp_path / "hinge_cuda.py"
    path.write_text(cuda_module.generate(derivation, version="test",
                                         numba_version=numba.__version__, launch=cm.SIM_LAUNCH))
    params, data = cm.scalar_params(model, 1), cm.scalar_data(model, 11, seed=2)
    request = json.dumps({"params": params, "data": {k: v.tolist() for k, v in data.items()}})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", STANDALONE, str(path), request],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    loss, grads = json.loads(done.stdout.strip().splitlines()[-1])
    want_loss, want_grads = loss_and_grad(derivation, params, data)     # NumPy's answer
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose([grads[k] for k in want_grads], list(want_grads.values()),
                               rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the child

class _Counted:
    """A kernel that records its launches (the host code looks kernels up by name)."""

    def __init__(self, kernel, key, launched):
        self.kernel, self.key, self.launched = kernel, key, launched

    def __getitem__(self, config):
        self.launched.add(self.key)
        return self.kernel[config]


def _python(kernel):
    """A kernel's Python function (the simulator's kernels call it `fn`)."""
    return getattr(kernel, "py_func", None) or kernel.fn


class _Context:
    def __init__(self):
        import numba

        import symgrad
        self.numba, self.symgrad = numba, symgrad
        self.launched: set[str] = set()
        self.kernels: dict[str, str] = {}       # kernel source -> "module kernel" label
        self.modules: dict = {}

    def cuda(self, key, model, dtype="float64", launch=cm.SIM_LAUNCH, order=1):
        """The model's CUDA module with the simulator's launch shapes, its kernels counted."""
        from codegen import cuda_module
        from symgrad.derivation import derive
        from symgrad.kernel import _load
        from symgrad.second_order import derive_second
        if (key, dtype) not in self.modules:
            from symgrad.options import CompileOptions
            d = derive(model)
            source = cuda_module.generate(
                d, CompileOptions(target="cuda", dtype=dtype, order=order),
                version=self.symgrad.__version__, numba_version=self.numba.__version__,
                model_name=model.name, param_nodes=model.param_nodes,
                input_nodes=model.input_nodes, prediction=model.predict_node,
                matrix=model.is_matrix, launch=launch,
                second=derive_second(model, d) if order == 2 else None)
            module = _load(source)
            wrapped = {}
            for name in module.KERNEL_SIGNATURES:
                kernel = getattr(module, name)
                text = inspect.getsource(_python(kernel)).split(":", 1)[1]
                self.kernels.setdefault(text, f"{key} {dtype} {name}")
                wrapped[name] = _Counted(kernel, text, self.launched)
            for name, counted in wrapped.items():
                setattr(module, name, counted)
            module.OPTIMIZER_KERNELS = tuple(wrapped.get(_python(k).__name__, k)
                                             for k in module.OPTIMIZER_KERNELS)
            self.modules[key, dtype] = module
        return self.modules[key, dtype]

    def cpu(self, model, dtype="float64", order=1):
        module = self.symgrad.compile(model, dtype=dtype, order=order).module
        # As plain Python (NUMBA_DISABLE_JIT), divide like the compiled code: `nf = float(n)`
        # at n = 0 gives 1/nf = inf instead of ZeroDivisionError.
        module.float = np.float64
        return module


def _close(got, want, rtol=1e-12):
    """Equal to rtol relative to the largest magnitude of `want` (NaN equals NaN)."""
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, rtol)
        return
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        for k in want:
            _close(got[k], want[k], rtol)
        return
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True)


def _entry_points(cuda, cpu, params, data, rtol=1e-12, predict=False):
    _close(cuda.loss_and_grad(params, data), cpu.loss_and_grad(params, data), rtol)
    _close(cuda.loss(params, data), cpu.loss(params, data), rtol)
    if predict:
        _close(cuda.predict(params, data), cpu.predict(params, data), rtol)


def check_scalar(ctx, name):
    model = {"every_op": cm.every_op_model, "special": cm.special_functions_model}.get(
        name, lambda: cm.example(name))()
    cuda, cpu = ctx.cuda(name, model), ctx.cpu(model)
    params = cm.scalar_params(model, 1)
    for n in (0, 1, 29) if model.inputs else (None,):
        data = cm.scalar_data(model, n, seed=n or 0)
        if n == 0 and model.reduction == "mean":
            with pytest.raises(ctx.symgrad.EmptyBatchError):
                cuda.loss(params, data)
            continue
        _entry_points(cuda, cpu, params, data)


def check_matrix(ctx, which, dtype="float64", sizes=(0, 1, 37), rtol=1e-12):
    model, net = cm.mlp(which)
    cuda, cpu = ctx.cuda(which, model, dtype), ctx.cpu(model, dtype)
    params = net.init(3)
    for n in sizes:
        _entry_points(cuda, cpu, params, cm.mlp_data(n, seed=n), rtol, predict=True)


OPTIMIZERS = {
    "sgd": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "rmsprop": ("RMSprop", {"lr": 0.01, "weight_decay": 0.01, "momentum": 0.5,
                            "centered": True}),
    "adam": ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    "adamw": ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
}


def check_train(ctx, which, opt):
    """Two train_step calls (the second continues from the first's state) agree with
    the CPU module: params, loss history and optimizer buffers."""
    cls, hyper = OPTIMIZERS[opt]
    optimizer = getattr(ctx.symgrad.optim, cls)(**hyper)
    if which == "ce":
        model, net = cm.mlp("ce")
        params, data = net.init(4), cm.mlp_data(29, seed=5)
    else:
        model = cm.example(which)
        params, data = cm.scalar_params(model, 2), cm.scalar_data(model, 29, seed=6)
    cuda, cpu = ctx.cuda(which, model), ctx.cpu(model)
    got, want = cuda.train_step(params, data, optimizer, steps=2), \
        cpu.train_step(params, data, optimizer, steps=2)
    for _ in range(2):
        _close(got[0], want[0])
        _close(got[1], want[1])
        _close(got[2]["buffers"], want[2]["buffers"])
        assert got[2]["step"] == want[2]["step"]
        got = cuda.train_step(got[0], data, optimizer, steps=2, state=got[2])
        want = cpu.train_step(want[0], data, optimizer, steps=2, state=want[2])


def check_device_arrays(ctx):
    """Device params and data are used in place; gradients, predictions and new params
    come back as device arrays, with the same bits as the NumPy path."""
    from numba import cuda as numba_cuda
    model, net = cm.mlp("mse")
    module = ctx.cuda("mse", model)
    params, data = net.init(5), cm.mlp_data(21, seed=7)
    d_params = {k: numba_cuda.to_device(np.asarray(v, dtype=np.float64))
                for k, v in params.items()}
    d_data = {k: numba_cuda.to_device(v) for k, v in data.items()}
    loss, grads = module.loss_and_grad(d_params, d_data)
    host_loss, host_grads = module.loss_and_grad(params, data)
    assert loss == host_loss
    for k, g in grads.items():
        assert module.is_device_array(g), k
        assert np.array_equal(g.copy_to_host(), host_grads[k]), k
    prediction = module.predict(d_params, d_data)
    assert module.is_device_array(prediction)
    assert np.array_equal(prediction.copy_to_host(), module.predict(params, data))
    new, history, _ = module.train_step(d_params, d_data, ctx.symgrad.optim.SGD(lr=0.1))
    assert all(module.is_device_array(v) for v in new.values())
    host_new, host_history, _ = module.train_step(params, data, ctx.symgrad.optim.SGD(lr=0.1))
    assert np.array_equal(history, host_history)
    for k in new:
        assert np.array_equal(new[k].copy_to_host(), host_new[k]), k


def check_errors(ctx):
    """The CPU module's argument checks, for NumPy and device arrays alike."""
    from numba import cuda as numba_cuda
    model, net = cm.mlp("mse")
    module = ctx.cuda("mse", model)
    params, data = net.init(5), cm.mlp_data(4, seed=8)
    missing = dict(params)
    missing.pop("0.weight")
    errors = ctx.symgrad
    cases = [
        (errors.MissingArgumentError, missing, data),
        (errors.ShapeError, params, {**data, "X": np.zeros((4, 2))}),
        (errors.DTypeError, params, {**data, "X": numba_cuda.to_device(data["X"].astype(
            np.float32))}),
        (errors.ShapeError, params, {**data, "X": numba_cuda.to_device(np.zeros((4, 2)))}),
        (errors.LengthMismatchError, params, {**data, "Y": numba_cuda.to_device(
            np.zeros((5, 3)))}),
    ]
    for error, p, d in cases:
        with pytest.raises(error) as caught:
            module.loss_and_grad(p, d)
        assert isinstance(caught.value, module.ArgumentError)
    # check_finite=True: the first bad row of host and device arrays, on every entry point
    bad = data["X"].copy()
    bad[2, 1] = np.inf
    for x in (bad, numba_cuda.to_device(bad)):
        for call in (lambda d: module.loss(params, d, True),
                     lambda d: module.loss_and_grad(params, d, True),
                     lambda d: module.predict(params, {"X": d["X"]}, True),
                     lambda d: module.train(params, d, {"name": "sgd", "lr": 0.1}, 1, None,
                                            True)):
            with pytest.raises(errors.NonFiniteError, match="input 'X' .* row 2"):
                call({**data, "X": x})
    # predict reads only the inputs the prediction needs (the targets may be left out)
    _close(module.predict(params, {"X": data["X"]}), module.predict(params, data))


def check_deterministic(ctx):
    """Same inputs, same bits: block partial sums are added in block order."""
    model, net = cm.mlp("ce")
    module = ctx.cuda("ce", model)
    params, data = net.init(6), cm.mlp_data(37, seed=9)
    first, second = module.loss_and_grad(params, data), module.loss_and_grad(params, data)
    assert first[0] == second[0]
    assert all(np.array_equal(first[1][k], second[1][k]) for k in first[1])


def check_example(ctx, name):
    """A shipped matrix example: every entry point, at a tiny batch."""
    model = cm.example(name)
    wide = cm.SIM_LAUNCH_WIDE if name == "two_layer_net" else cm.SIM_LAUNCH
    cuda, cpu = ctx.cuda(name, model, launch=wide), ctx.cpu(model)
    params = cm.matrix_params(model, 10)
    data = cm.matrix_data(model, 5 if name == "linear_rmsprop" else 2, seed=11)
    _entry_points(cuda, cpu, params, data, predict=True)
    sgd = ctx.symgrad.optim.SGD(lr=1e-3)
    (got, got_history), (want, want_history) = (cuda.train(params, data, sgd, steps=2),
                                                cpu.train(params, data, sgd, steps=2))
    _close(got, want)
    _close(got_history, want_history)


def check_second_order(ctx, name):
    """jvp, hvp and hessian (dense, and the sparse one of a model without inputs) agree
    with the CPU module's; the hvp of device params comes back on the device."""
    if name == "ce":
        model, net = cm.mlp("ce")
        params, data = net.init(7), cm.mlp_data(23, seed=12)
    else:
        model = cm.example(name)
        params = cm.scalar_params(model, 3)
        data = cm.scalar_data(model, 19, seed=13) if model.inputs else None
    vector = {k: -0.5 * np.asarray(v) + 0.25 for k, v in params.items()}
    if not model.is_matrix:
        vector = {k: float(v) for k, v in vector.items()}
    cuda, cpu = ctx.cuda(f"{name}:order2", model, order=2), ctx.cpu(model, order=2)
    _entry_points(cuda, cpu, params, data)
    _close(cuda.jvp(params, vector, data), cpu.jvp(params, vector, data))
    _close(cuda.hvp(params, vector, data), cpu.hvp(params, vector, data))
    got, want = cuda.hessian(params, data), cpu.hessian(params, data)
    assert type(got) is type(want), (type(got), type(want))
    _close(got.toarray() if hasattr(got, "toarray") else got,
           want.toarray() if hasattr(want, "toarray") else want)
    if model.is_matrix:
        from numba import cuda as numba_cuda
        on_device = {k: numba_cuda.to_device(np.asarray(v)) for k, v in params.items()}
        product = cuda.hvp(on_device, vector, data)
        assert all(cuda.is_device_array(v) for v in product.values())
        _close({k: v.copy_to_host() for k, v in product.items()},
               cpu.hvp(params, vector, data))


def check_every_kernel_launched(ctx):
    missing = sorted(label for text, label in ctx.kernels.items() if text not in ctx.launched)
    assert not missing, f"kernels never launched: {missing}"


def check_shared_branches(ctx):
    """test_shared_branches.py's per-sample and matrix cases: no NaN from a node shared
    by branches not taken."""
    import test_shared_branches as sb
    loss, params, inputs, values, data = sb.SCALAR_CASES["per_sample_data"]
    want = sb._exact(loss, params, inputs, values, data)
    model = ctx.symgrad.Model(loss, params, inputs, name="shared")
    cuda = ctx.cuda("shared", model)
    _close(cuda.loss_and_grad(values, data), want)
    _close(cuda.loss(values, data), want[0])
    cuda = ctx.cuda("shared-matrix", sb.matrix_model())
    want = sb.matrix_expected(sb.MATRIX_W, sb.MATRIX_X)
    loss, grads = cuda.loss_and_grad({"W": sb.MATRIX_W}, {"X": sb.MATRIX_X})
    _close((loss, grads["W"]), want)
    _close(cuda.loss({"W": sb.MATRIX_W}, {"X": sb.MATRIX_X}), want[0])


def _run_checks() -> dict[str, list]:
    ctx = _Context()
    runners = {"matrix:mse": lambda: check_matrix(ctx, "mse"),
               "matrix:ce": lambda: check_matrix(ctx, "ce"),
               "float32:ce": lambda: check_matrix(ctx, "ce", "float32", (37,), rtol=1e-5),
               "device-arrays": lambda: check_device_arrays(ctx),
               "errors": lambda: check_errors(ctx),
               "deterministic": lambda: check_deterministic(ctx),
               "shared-branches": lambda: check_shared_branches(ctx),
               "every-kernel-launched": lambda: check_every_kernel_launched(ctx)}
    results = {}
    for check in CHECKS:
        kind, _, rest = check.partition(":")
        if check in runners:
            run = runners[check]
        elif kind == "scalar":
            run = lambda name=rest: check_scalar(ctx, name)
        elif kind == "train":
            model, opt = rest.split(":")
            run = lambda m=model, o=opt: check_train(ctx, m, o)
        elif kind == "second-order":
            run = lambda name=rest: check_second_order(ctx, name)
        else:
            run = lambda name=rest: check_example(ctx, name)
        start = time.perf_counter()
        try:
            run()
            results[check] = [True, f"{time.perf_counter() - start:.2f} s"]
        except BaseException:           # noqa: BLE001 -- reported to the parent test
            results[check] = [False, traceback.format_exc()[-3000:]]
    return results


if __name__ == "__main__":
    # The simulator's block manager busy-polls its threads while they run: with Python's
    # default 5 ms GIL switch interval these checks take ~8x longer.
    sys.setswitchinterval(1e-5)
    assert ON_GPU or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", \
        "run me from test_cuda_sim.py"
    print(json.dumps(_run_checks()))
