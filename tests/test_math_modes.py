"""compile(math="vector" | "libm") and the chunk functions' block sums.

The vector functions themselves are checked in test_vector_math.py; here: both modes
give the same kernels' results to rounding, the option reaches the generated text, and
the sums follow the documented fixed order (codegen/block_sums.add_block_sums).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from test_scalar_math import chunk_functions

import symgrad
from codegen import numba_cpu
from codegen.block_sums import add_block_sums
from symgrad.errors import OptionError

x, y = sp.symbols("x y", real=True)
w, b = sp.symbols("w b", real=True)
LOSS = (symgrad.softplus(w * x + b) - y * sp.tanh(w * x) + sp.exp(-b * y) * sp.log(1 + x**2)
        + symgrad.sigmoid(b * x))


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(0, 3, n), "y": rng.normal(0, 1, n)}


def test_vector_and_libm_agree_to_rounding():
    model = symgrad.Model(LOSS, [w, b], [x, y])
    params, data = {"w": 0.7, "b": -0.3}, _data(10_000)
    got = symgrad.compile(model, math="vector").loss_and_grad(params, data)
    want = symgrad.compile(model, math="libm").loss_and_grad(params, data)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    for name in want[1]:
        np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-12)


def test_the_option_reaches_the_generated_text():
    model = symgrad.Model(LOSS, [w, b], [x, y])
    vector = symgrad.compile(model, math="vector").source
    libm = symgrad.compile(model, math="libm").source
    assert "math=vector" in vector.splitlines()[2] and "math=libm" in libm.splitlines()[2]
    assert "vtanh(" in chunk_functions(vector) and "def vtanh" in vector
    assert "vtanh(" not in chunk_functions(libm) and "def vtanh" not in libm


def test_unknown_math_mode_is_refused():
    with pytest.raises(OptionError, match="math must be one of"):
        symgrad.compile(symgrad.Model(LOSS, [w, b], [x, y]), math="svml")


def test_long_bodies_fall_back_to_libm():
    """Past VECTOR_CALL_LIMIT call sites the chunk function calls libm (each vector call
    site costs compile time), and the header says so."""
    ws = sp.symbols(f"w0:{numba_cpu.VECTOR_CALL_LIMIT + 1}", real=True)
    h = x
    for v in ws:
        h = sp.tanh(v * h)
    source = symgrad.compile(symgrad.Model((h - y) ** 2, list(ws), [x, y]), math="vector").source
    assert "(libm: over" in source.splitlines()[2]
    assert "vtanh(" not in chunk_functions(source)


def _tree_sum(values: np.ndarray) -> float:
    """The documented order: blocks of BLOCK values; in each, value k in lane k mod 32
    (zero padded to a multiple of 32), the lanes accumulated in order as four vectors
    of 8, the vectors added as (0+1)+(2+3), their 8 lanes as ((0+1)+(2+3))+((4+5)+(6+7)),
    blocks in order."""
    total = 0.0
    for start in range(0, len(values), numba_cpu.BLOCK):
        part = values[start:start + numba_cpu.BLOCK]
        groups = -(-len(part) // 32)
        block = np.zeros(32 * groups)
        block[:len(part)] = part
        vectors = block.reshape(groups, 4, 8)
        acc = vectors[0].copy()
        for g in range(1, groups):
            acc = acc + vectors[g]
        v = (acc[0] + acc[1]) + (acc[2] + acc[3])
        total += (((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])))
    return total


@pytest.mark.parametrize("m", [1, 7, 8, 31, 32, 33, 100, 255, 256])
def test_add_block_sums_follows_the_documented_tree(m):
    rng = np.random.default_rng(m)
    buf = rng.normal(size=(3, numba_cpu.BLOCK)) * 10.0 ** rng.integers(-8, 8, (3, 1))
    rows = buf[:, :m].copy()
    sums = np.array([1.0, -2.0, 0.5])
    add_block_sums(buf, m, sums)
    want = [s + _tree_sum(r) for s, r in zip([1.0, -2.0, 0.5], rows)]
    assert sums.tolist() == want          # bitwise: the order is fixed


def test_kernel_sums_in_the_documented_order():
    """The loss of a one-chunk batch is exactly the tree sum of the per-sample losses."""
    model = symgrad.Model((w * x - y) ** 2, [w], [x, y])
    data = _data(3_000, seed=3)
    loss, _ = symgrad.compile(model).loss_and_grad({"w": 1.25}, data)
    per_sample = (1.25 * data["x"] - data["y"]) ** 2
    assert loss == _tree_sum(per_sample)


@pytest.mark.parametrize("n", [1, 255, 600])
def test_matrix_totals_over_one_column_sum_in_blocks(n):
    """A matrix loop over the rows of one column that totals its values (Linear(3,1)
    with a summed MSE) stores them in blocks for add_block_sums: right over a partial
    last block and several blocks."""
    from symgrad import losses, nn

    rows = sp.Symbol("n", integer=True, positive=True)
    X, Y = sp.MatrixSymbol("X", rows, 3), sp.MatrixSymbol("Y", rows, 1)
    net = nn.Sequential(nn.Linear(3, 1))
    model = symgrad.Model(losses.mse(net(X), Y, reduction="sum"), net.params, [X, Y],
                          name="blocked totals")
    kernel = symgrad.compile(model)
    assert "add_block_sums(buf_, m_, sums_)" in kernel.source
    rng = np.random.default_rng(n)
    params = net.init(1)
    data = {"X": rng.normal(size=(n, 3)), "Y": rng.normal(size=(n, 1))}
    loss, grads = kernel.loss_and_grad(params, data)
    W, bias = params["0.weight"], params["0.bias"]
    r = (data["X"] @ W.T + bias - data["Y"])[:, 0]
    # the documented order (bitwise where both BLAS round the 3-term products alike)
    np.testing.assert_allclose(loss, _tree_sum(r * r), rtol=1e-14)
    np.testing.assert_allclose(grads["0.bias"].ravel(), [2.0 * r.sum()], rtol=1e-12)
    np.testing.assert_allclose(grads["0.weight"].ravel(), 2.0 * data["X"].T @ r, rtol=1e-12)
