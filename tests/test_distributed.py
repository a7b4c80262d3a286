"""Dask arrays as data (symgrad/distributed.py): the same calls on a LocalCluster of two
worker processes, against the in-memory kernels. Chunks of 4096 rows (the in-memory
kernels' own chunk) give the same bits; other chunkings agree within rounding."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.bench.models import logistic_regression
from symgrad.errors import ChunkingError, OptionError

da = pytest.importorskip("dask.array", reason="the dask extra: pip install 'symgrad[dask]'")
distributed = pytest.importorskip("distributed")

import cuda_models as cm  # noqa: E402

CHUNK = 4096


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit="2GB")
    with cluster, distributed.Client(cluster) as c:
        yield c


A, B, C, D, X, Y = sp.symbols("a b c d x y", real=True)
CUBIC = symgrad.Model((A + B * X + C * X**2 + D * X**3 - Y) ** 2, [A, B, C, D], [X, Y],
                      reduction="mean", penalty=0.1 * A**2 + B**4, name="cubic, mean, L2")
PARAMS = {"a": 0.1, "b": 0.2, "c": -0.3, "d": 0.05}
VECTOR = {"a": 1.0, "b": -0.5, "c": 0.25, "d": 2.0}


@pytest.fixture(scope="module")
def cubic():
    return symgrad.compile(CUBIC, order=2)


def _cubic_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    return {"x": x, "y": np.sin(x) + 0.1 * rng.standard_normal(n)}


def _dask(data: dict, rows) -> dict:
    return {k: da.from_array(v, chunks=(rows, *v.shape[1:])) for k, v in data.items()}


def test_chunks_of_4096_rows_give_the_in_memory_bits(client, cubic):
    data = _cubic_data(5 * CHUNK + 123)
    on_cluster = _dask(data, CHUNK)
    assert cubic.loss(PARAMS, on_cluster) == cubic.loss(PARAMS, data)
    assert cubic.loss_and_grad(PARAMS, on_cluster) == cubic.loss_and_grad(PARAMS, data)
    assert cubic.jvp(PARAMS, VECTOR, on_cluster) == cubic.jvp(PARAMS, VECTOR, data)
    assert cubic.hvp(PARAMS, VECTOR, on_cluster) == cubic.hvp(PARAMS, VECTOR, data)
    np.testing.assert_array_equal(cubic.hessian(PARAMS, on_cluster),
                                  cubic.hessian(PARAMS, data))


def test_other_chunkings_agree_within_rounding_and_with_each_other(client, cubic):
    data = _cubic_data(20_000, seed=1)
    want_loss, want = cubic.loss_and_grad(PARAMS, data)
    results = [cubic.loss_and_grad(PARAMS, _dask(data, rows)) for rows in (3000, 7001, 20_000)]
    for loss, grads in results:
        assert loss == pytest.approx(want_loss, rel=1e-13)
        for p in PARAMS:
            assert grads[p] == pytest.approx(want[p], rel=1e-13)
    # The same chunking twice, its tasks placed anew: the same bits.
    assert cubic.loss_and_grad(PARAMS, _dask(data, 3000)) == results[0]


def test_training_on_the_cluster_takes_the_in_memory_steps(client, cubic):
    data = _cubic_data(3 * CHUNK, seed=2)
    on_cluster = _dask(data, CHUNK)
    for optimizer in (symgrad.optim.Adam(lr=0.05), symgrad.optim.SGD(lr=0.01, momentum=0.9),
                      symgrad.optim.LBFGS(history=5, max_iter=4)):
        got = cubic.train(PARAMS, on_cluster, optimizer, 3)
        want = cubic.train(PARAMS, data, optimizer, 3)
        assert got[0] == want[0], optimizer
        np.testing.assert_array_equal(got[1], want[1])
    newton = symgrad.optim.Newton()
    got, want = (cubic.train(PARAMS, d, newton, 2) for d in (on_cluster, data))
    for p in PARAMS:
        assert got[0][p] == pytest.approx(want[0][p], rel=1e-12)


def test_minibatches_are_chunks_in_order(client, cubic):
    data = _cubic_data(3 * CHUNK, seed=3)
    on_cluster = _dask(data, CHUNK)
    adam = symgrad.optim.Adam(lr=0.05)
    seen = []
    got, history, state = cubic.train_step(PARAMS, on_cluster, adam, 4, chunks_per_step=2,
                                           callback=lambda step, loss: seen.append(step))
    assert seen == [0, 1, 2, 3] and state["step"] == 4
    params, want_state = dict(PARAMS), None
    for step in range(4):                   # chunks (0, 1), (2, 0), (1, 2), (0, 1)
        rows = np.concatenate([np.arange(c * CHUNK, (c + 1) * CHUNK)
                               for c in ((2 * step) % 3, (2 * step + 1) % 3)])
        params, h, want_state = cubic.train_step(params, {k: v[rows] for k, v in data.items()},
                                                 adam, 1, want_state)
        assert h[0] == pytest.approx(history[step], rel=1e-13)
    for p in PARAMS:
        assert got[p] == pytest.approx(params[p], rel=1e-12)


@pytest.mark.parametrize("name", [n for n in cm.EXAMPLES if cm.example(n).inputs])
def test_every_example_with_inputs_runs_on_dask_data(client, name):
    model = cm.example(name)
    k = symgrad.compile(model)
    if model.is_matrix:
        params, data = cm.matrix_params(model, 1), cm.matrix_data(model, 50, seed=2)
    else:
        params, data = cm.scalar_params(model, 1), cm.scalar_data(model, 50, seed=2)
    want_loss, want = k.loss_and_grad(params, data)
    loss, grads = k.loss_and_grad(params, _dask(data, 16))
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for p in k.param_names:
        np.testing.assert_allclose(grads[p], want[p], rtol=1e-11, atol=1e-12)
        assert np.shape(grads[p]) == np.shape(want[p])


def test_a_matrix_model_with_a_penalty_on_dask_data(client):
    """Matrix kernels (BLAS over each chunk), the penalty's gradient and HVP added once
    on the client, training: the in-memory results within rounding."""
    n = sp.Symbol("n", integer=True, positive=True)
    xs, ys = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("Y", n, 2)
    layer = symgrad.nn.Linear(3, 2)
    model = symgrad.Model(symgrad.losses.mse(layer(xs), ys, reduction="sum"),
                          layer.params, [xs, ys], reduction="mean",
                          penalty=0.01 * symgrad.losses.l2(*layer.params))
    k = symgrad.compile(model, order=2)
    rng = np.random.default_rng(6)
    data = {"X": rng.standard_normal((300, 3)), "Y": rng.standard_normal((300, 2))}
    params = layer.init(1)
    vector = {p: rng.standard_normal(np.shape(v)) for p, v in params.items()}
    on_cluster = _dask(data, 64)

    def close(got, want, rtol):
        for p in want:
            np.testing.assert_allclose(got[p], want[p], rtol=rtol, atol=1e-14)
            assert np.shape(got[p]) == np.shape(want[p])

    loss, grads = k.loss_and_grad(params, on_cluster)
    want_loss, want = k.loss_and_grad(params, data)
    assert loss == pytest.approx(want_loss, rel=1e-13)
    close(grads, want, 1e-12)
    close(k.hvp(params, vector, on_cluster), k.hvp(params, vector, data), 1e-12)
    adam = symgrad.optim.Adam(lr=0.1)
    close(k.train(params, on_cluster, adam, 3)[0], k.train(params, data, adam, 3)[0], 1e-10)


def test_bad_chunking_is_refused_with_the_fix(client, cubic):
    data = _cubic_data(1000)
    with pytest.raises(ChunkingError, match=r"different row chunks.*rechunk"):
        cubic.loss(PARAMS, {"x": da.from_array(data["x"], chunks=100),
                            "y": da.from_array(data["y"], chunks=200)})
    with pytest.raises(ChunkingError, match="'y' is a numpy.ndarray"):
        cubic.loss(PARAMS, {"x": da.from_array(data["x"], chunks=100), "y": data["y"]})
    with pytest.raises(symgrad.SymgradError, match="'y'"):
        cubic.loss(PARAMS, {"x": da.from_array(data["x"], chunks=100),
                            "y": da.from_array(np.ones((1000, 2)), chunks=(100, 1))})
    with pytest.raises(OptionError, match="chunks_per_step"):
        cubic.train(PARAMS, _dask(data, 100), symgrad.optim.SGD(lr=0.1), 1, chunks_per_step=11)
    with pytest.raises(OptionError, match="dask arrays"):
        cubic.train(PARAMS, data, symgrad.optim.SGD(lr=0.1), 1, chunks_per_step=1)
    w = sp.MatrixSymbol("w", 2, 1)
    xs = sp.MatrixSymbol("X", sp.Symbol("n"), 2)
    inner_mean = symgrad.Model(symgrad.losses.mse(xs * w, sp.ZeroMatrix(sp.Symbol("n"), 1)),
                               [w], [xs])
    with pytest.raises(OptionError, match="reduction='mean' to symgrad.Model"):
        symgrad.compile(inner_mean).loss({"w": np.ones((2, 1))},
                                         {"X": da.ones((10, 2), chunks=(5, 2))})


def test_a_worker_killed_mid_training_changes_nothing(client, cubic):
    data = _cubic_data(4 * CHUNK, seed=4)
    adam = symgrad.optim.Adam(lr=0.05)
    want = cubic.train(PARAMS, data, adam, 6)

    def kill_one(step, loss):
        if step == 2:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)

    got = cubic.train(PARAMS, _dask(data, CHUNK), adam, 6, callback=kill_one)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    client.wait_for_workers(2, timeout=60)


def test_data_larger_than_the_workers_memory_streams_from_npy_shards(tmp_path):
    """1 GB of memory-mapped .npy shards (dask.array.to_npy_stack) through workers
    limited to 500 MB each (a worker with Numba and the kernel holds about 300 MB): each
    task maps one shard, so none is killed, and the result is the in-memory one (within
rounding: each worker adds its shard's 122 chunks of 4096 rows first)."""
    features = 9
    model = logistic_regression(features)
    k = symgrad.compile(model)
    rows = 122 * CHUNK
    stack = da.random.default_rng(0).standard_normal((27 * rows, features + 1),
                                                     chunks=(rows, features + 1))
    da.to_npy_stack(tmp_path, stack, axis=0)
    shards = da.from_npy_stack(tmp_path, mmap_mode="r")
    assert shards.nbytes > 2 * 500e6
    data = {f"x{j}": shards[:, j] for j in range(features)}
    data["label"] = (shards[:, features] > 0).astype(np.float64)
    params = {w: 0.1 * (j - 4) for j, w in enumerate(model.param_names)}
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit="500MB")
    with cluster, distributed.Client(cluster) as c:
        pids = c.run(os.getpid)
        got = k.loss_and_grad(params, data, client=c)
        assert c.run(os.getpid) == pids           # the same worker processes throughout
    whole = np.concatenate([np.load(tmp_path / f"{i}.npy", mmap_mode="r")
                            for i in range(27)])
    memory = {f"x{j}": whole[:, j] for j in range(features)}
    memory["label"] = (whole[:, features] > 0).astype(np.float64)
    want = k.loss_and_grad(params, memory)
    assert got[0] == pytest.approx(want[0], rel=1e-13)
    for name, value in want[1].items():
        assert got[1][name] == pytest.approx(value, rel=1e-12, abs=1e-15)
