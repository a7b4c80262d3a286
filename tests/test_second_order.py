"""Second order: every JVP rule, Hessian-vector products and Hessians, both methods.

JVP rules: each op's case from test_rules (a tiny model lowering to that op) gets its
directional derivative (pure forward mode over the loss) and its Hessian-vector product
(forward-over-reverse, and sympy.diff twice) compared with sympy.diff and sympy.hessian
at 30 digits (rtol 1e-10) and with central differences of the gradient. Compiled
kernels: hvp against hessian @ v, hessian against sympy.hessian and central differences
of loss_and_grad, sparse against dense, scalar and matrix models, both methods.
"""

from __future__ import annotations

import numpy as np
import oracle
import pytest
import sympy as sp
from test_rules import CASES, POINTS_PER_CASE, RTOL, Case, model_of, points

import symgrad
from symgrad import ir, losses, nn
from symgrad.derivation import METHODS, derive
from symgrad.errors import MissingArgumentError, OptionError
from symgrad.interpret import jvp_and_hvp, loss_and_grad
from symgrad.ir import Op
from symgrad.jvp import JVP
from symgrad.second_order import derive_second

DIRECTIONS = [{"a": 0.7, "b": -1.3}, {"a": -0.4, "b": 0.9}, {"a": 1.1, "b": 0.5}]


def _second(case: Case, method: str):
    model = model_of(case)
    first = derive(model, method)
    return model, first, derive_second(model, first)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_jvp_and_hvp_match_sympy_hessian(case, method):
    model, first, second = _second(case, method)
    for point, v in zip(points(case), DIRECTIONS):
        want = oracle.jvp_and_hvp(model.loss, model.real_params, (), point, v)
        got = jvp_and_hvp(first, second, point, v)
        oracle.assert_grads_close(got, want, RTOL, 1e-13, f"{case.id} {method} at {point}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_jvp_and_hvp_match_central_differences(case):
    model, first, second = _second(case, "reverse")
    assert len(DIRECTIONS) >= POINTS_PER_CASE
    for point, v in zip(points(case, seed=1), DIRECTIONS):
        jvp, hvp = jvp_and_hvp(first, second, point, v)
        h = 1e-6
        up = {k: point[k] + h * v[k] for k in point}
        down = {k: point[k] - h * v[k] for k in point}
        (l_up, g_up), (l_down, g_down) = loss_and_grad(first, up), loss_and_grad(first, down)
        oracle.assert_close(jvp, (l_up - l_down) / (2 * h), 1e-6, 1e-8, f"{case.id} jvp")
        for name in point:
            oracle.assert_close(hvp[name], (g_up[name] - g_down[name]) / (2 * h), 1e-6, 1e-7,
                                f"{case.id} (H v)[{name}] at {point}")


def test_every_op_has_a_jvp_rule():
    assert [op.name for op in Op if op not in JVP] == []


@pytest.mark.parametrize("op", sorted(ir.BACKWARD_ONLY, key=lambda op: op.name))
def test_backward_only_ops_have_correct_jvp_rules(op):
    from symgrad.forward import forward_mode
    rng = np.random.default_rng(6)
    args = [ir.param(f"a{i}") for i in range(ir.ARITY[op])]
    seeds = {a: ir.param(f"t{i}") for i, a in enumerate(args)}
    (tangent,) = forward_mode([ir.make(op, *args)], seeds)
    for _ in range(5):
        at = rng.uniform(-1.5, 1.5, len(args))
        t = rng.uniform(-1, 1, len(args))
        values = {**{a.attr: float(x) for a, x in zip(args, at)},
                  **{s.attr: float(x) for s, x in zip(seeds.values(), t)}}
        got = float(symgrad.interpret.evaluate([tangent], values)[tangent][0])
        h = 1e-6
        want = (float(ir.apply(op, list(at + h * t))) - float(ir.apply(op, list(at - h * t)))) \
            / (2 * h)
        assert np.isclose(got, want, rtol=1e-7, atol=1e-9)


def test_tangents_exist_only_downstream_of_the_seeds():
    x, y = ir.param("x"), ir.param("y")
    out = ir.make(Op.SIN, x) * ir.make(Op.EXP, y)
    (tangent,) = symgrad.forward.forward_mode([out], {x: ir.param("tx")})
    reached = {n.attr for n in ir.toposort([tangent]) if n.op is Op.PARAM}
    assert reached == {"x", "y", "tx"}
    assert symgrad.forward.forward_mode([ir.make(Op.EXP, y)], {x: ir.param("tx")}) == [None]


# ------------------------------------------------------------- compiled kernels

A, B, C = sp.symbols("a b c", real=True)
X, Y = sp.symbols("x y", real=True)
SCALAR = symgrad.Model((sp.tanh(A * X + B) * C - Y) ** 2 + sp.log(1 + sp.exp(A * B * X)),
                       [A, B, C], [X, Y], penalty=A**2 * B + C**4, reduction="mean",
                       name="second-order test")


def _scalar_batch(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal(n), "y": rng.standard_normal(n)}


PARAMS = {"a": 0.3, "b": -0.7, "c": 1.2}
VECTOR = {"a": 0.5, "b": -1.0, "c": 2.0}


@pytest.fixture(scope="module", params=METHODS)
def scalar_kernel(request):
    return symgrad.compile(SCALAR, method=request.param, order=2)


def test_scalar_kernel_matches_sympy_hessian(scalar_kernel):
    data = _scalar_batch(40)
    k = scalar_kernel
    jvp_want, hvp_want = oracle.jvp_and_hvp(SCALAR.loss, SCALAR.real_params,
                                            SCALAR.real_inputs, PARAMS, VECTOR, data, "mean")
    pen = sp.hessian(SCALAR.penalty, SCALAR.real_params).subs(
        {s: PARAMS[s.name] for s in SCALAR.real_params})
    pen_hv = pen * sp.Matrix([VECTOR[s.name] for s in SCALAR.real_params])
    pen_jvp = sum(sp.diff(SCALAR.penalty, s).subs({t: PARAMS[t.name] for t in
                                                   SCALAR.real_params}) * VECTOR[s.name]
                  for s in SCALAR.real_params)
    loss, jvp = k.jvp(PARAMS, VECTOR, data)
    assert loss == pytest.approx(k.loss(PARAMS, data), rel=1e-14)
    oracle.assert_close(jvp, jvp_want + float(pen_jvp), RTOL, 1e-13, "jvp")
    hvp = k.hvp(PARAMS, VECTOR, data)
    for i, name in enumerate(k.param_names):
        oracle.assert_close(hvp[name], hvp_want[name] + float(pen_hv[i]), RTOL, 1e-13, name)
    h = k.hessian(PARAMS, data)
    v = np.array([VECTOR[p] for p in k.param_names])
    np.testing.assert_allclose(h @ v, [hvp[p] for p in k.param_names], rtol=1e-12)


def test_scalar_hessian_matches_central_differences(scalar_kernel):
    data = _scalar_batch()
    k = scalar_kernel
    h = k.hessian(PARAMS, data)
    names = k.param_names
    for j, name in enumerate(names):
        step = 1e-6
        up = k.loss_and_grad({**PARAMS, name: PARAMS[name] + step}, data)[1]
        down = k.loss_and_grad({**PARAMS, name: PARAMS[name] - step}, data)[1]
        column = [(up[p] - down[p]) / (2 * step) for p in names]
        np.testing.assert_allclose(h[:, j], column, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, h.T, rtol=1e-13, atol=1e-14)


def test_second_order_programs_on_the_interpreter_give_the_unrolled_bits():
    """interpret=True runs the jvp and hvp programs on the shared interpreter (a compile
    that does not grow with the model); False unrolls them. The same bits."""
    on_vm, unrolled = (symgrad.compile(SCALAR, order=2, interpret=i) for i in (True, False))
    assert "_HVP_CHUNK_VM" in on_vm.source and "_HVP_CHUNK_VM" not in unrolled.source
    for n in (7, 5000):                                        # one chunk, and two
        data = _scalar_batch(n, seed=n)
        assert on_vm.jvp(PARAMS, VECTOR, data) == unrolled.jvp(PARAMS, VECTOR, data)
        assert on_vm.hvp(PARAMS, VECTOR, data) == unrolled.hvp(PARAMS, VECTOR, data)


def test_a_worker_process_compiles_the_hvp_cores_into_the_cache(tmp_path, monkeypatch):
    """symgrad/precompile.py: compile(order=2) starts a worker that saves the HVP cores
    in Numba's cache beside the module; hvp waits for the core it runs and loads it."""
    from symgrad import precompile

    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    model = symgrad.Model((A * X**3 + B * sp.tanh(C * X) - Y) ** 2, [A, B, C], [X, Y],
                          name="background compile")
    monkeypatch.setenv("SYMGRAD_BACKGROUND_COMPILE", "0")
    assert symgrad.compile(model, order=2)._background is None
    monkeypatch.setenv("SYMGRAD_BACKGROUND_COMPILE", "1")
    if not precompile.wanted():
        pytest.skip("one core: no worker is started")
    k = symgrad.compile(model, order=2)
    assert k._background is not None
    data = _scalar_batch(50)
    got = k.hvp(PARAMS, VECTOR, data)
    assert precompile.cached(k.module.__file__, "_hvp_core")
    assert k.module._hvp_core.stats.cache_hits      # loaded, not compiled here
    want = symgrad.interpret.jvp_and_hvp(k.derivation, k.second_order, PARAMS, VECTOR,
                                         data)[1]
    for p in PARAMS:
        assert got[p] == pytest.approx(want[p], rel=1e-12)


def test_jvp_is_the_gradient_along_the_tangent(scalar_kernel):
    data = _scalar_batch(5000)      # two chunks: the parallel cores
    loss, grads = scalar_kernel.loss_and_grad(PARAMS, data)
    got_loss, jvp = scalar_kernel.jvp(PARAMS, VECTOR, data)
    assert got_loss == loss
    assert jvp == pytest.approx(sum(grads[p] * VECTOR[p] for p in grads), rel=1e-13)
    hvp = scalar_kernel.hvp(PARAMS, VECTOR, data)
    dense = scalar_kernel.hessian(PARAMS, data)
    np.testing.assert_allclose(dense @ [VECTOR[p] for p in scalar_kernel.param_names],
                               [hvp[p] for p in scalar_kernel.param_names], rtol=1e-12)


def _rosenbrock(n: int) -> symgrad.Model:
    xs = sp.symbols(f"x0:{n}", real=True)
    loss = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1))
    return symgrad.Model(loss, list(xs), name=f"chained Rosenbrock, n = {n}")


def test_chained_rosenbrock_is_tridiagonal_with_three_colours():
    model = _rosenbrock(40)
    sparsity = symgrad.hessian_sparsity(model)
    dense = sparsity.pattern.toarray()
    i, j = np.indices(dense.shape)
    assert (dense == (abs(i - j) <= 1)).all()
    assert sparsity.n_colors == 3
    assert sparsity.clique_bound() == 2
    k = symgrad.compile(model, order=2)
    x = {f"x{i}": float(v) for i, v in enumerate(np.random.default_rng(2).uniform(-2, 2, 40))}
    sparse = k.hessian(x)                 # sparse=None: chosen by the pattern's density
    assert sparse.format == "csr" and sparse.nnz == dense.sum()
    full = k.hessian(x, sparse=False)
    assert isinstance(full, np.ndarray)
    np.testing.assert_array_equal(sparse.toarray(), full)
    want = np.array(sp.hessian(model.loss, model.real_params).subs(
        {s: x[s.name] for s in model.real_params}), dtype=float)
    np.testing.assert_allclose(full, want, rtol=1e-12, atol=1e-12)


def test_pattern_holds_every_nonzero_of_the_sympy_hessian():
    for case in CASES:
        model = model_of(case)
        pattern = symgrad.hessian_sparsity(model).pattern.toarray()
        exact = oracle.hessian_of(model.loss, model.real_params)
        for i in range(2):
            for j in range(2):
                if not pattern[i, j]:
                    assert sp.simplify(oracle.elementary(exact[i, j])
                                       .replace(sp.DiracDelta, lambda *a: 0)) == 0, \
                        (case.id, i, j, exact[i, j])


def test_star_colouring_recovers_random_symmetric_matrices():
    import scipy.sparse as sps

    from codegen.hessian import recover
    from symgrad.sparsity import star_coloring
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(1, 30))
        a = rng.random((n, n)) < rng.random() * 0.3
        a = a | a.T | np.eye(n, dtype=bool)
        pattern = sps.csr_matrix(a)
        pattern.sort_indices()
        colors = star_coloring(pattern)
        h = np.where(a, rng.standard_normal((n, n)), 0.0)
        h = h + h.T
        compressed = h @ np.eye(colors.max() + 1)[colors]
        got = sps.csr_matrix((recover(pattern.indptr, pattern.indices, colors, compressed),
                              pattern.indices, pattern.indptr), shape=(n, n)).toarray()
        np.testing.assert_array_equal(got, h)
        for i, j in zip(*np.nonzero(a & ~np.eye(n, dtype=bool))):
            assert colors[i] != colors[j]       # proper


N = sp.Symbol("n", integer=True, positive=True)


def _tanh_net():
    xs, ys = sp.MatrixSymbol("X", N, 3), sp.MatrixSymbol("Y", N, 2)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model = symgrad.Model(losses.mse(net(xs), ys, reduction="mean"), net.params, [xs, ys],
                          penalty=1e-2 * losses.l2(*net.params), name="tanh net")
    rng = np.random.default_rng(3)
    return model, net.init(0), {"X": rng.standard_normal((30, 3)),
                                "Y": rng.standard_normal((30, 2))}


def test_matrix_hessian_against_central_differences():
    # (the direct method's matrix Hessian, through the scalar expansion: linear_rmsprop in
    # test_every_example_has_jvp_hvp_and_hessian)
    model, params, data = _tanh_net()
    kr = symgrad.compile(model, order=2)
    h = kr.hessian(params, data)
    names = kr.param_names
    flat = np.concatenate([np.ravel(params[p]) for p in names])
    shapes = [np.shape(params[p]) for p in names]

    def grad_at(theta):
        split, offset = {}, 0
        for p, shape in zip(names, shapes):
            size = int(np.prod(shape))
            split[p] = theta[offset:offset + size].reshape(shape)
            offset += size
        g = kr.loss_and_grad(split, data)[1]
        return np.concatenate([np.ravel(g[p]) for p in names])

    step = 1e-6
    for j in range(flat.size):
        e = np.zeros_like(flat)
        e[j] = step
        np.testing.assert_allclose(h[:, j], (grad_at(flat + e) - grad_at(flat - e)) / (2 * step),
                                   rtol=1e-5, atol=1e-8)
    rng = np.random.default_rng(4)
    vector = {p: rng.standard_normal(np.shape(params[p])) for p in names}
    hvp = kr.hvp(params, vector, data)
    for p in names:
        assert np.shape(hvp[p]) == np.shape(params[p])
    flat_v = np.concatenate([np.ravel(vector[p]) for p in names])
    np.testing.assert_allclose(np.concatenate([np.ravel(hvp[p]) for p in names]), h @ flat_v,
                               rtol=1e-10, atol=1e-13)
    loss, jvp = kr.jvp(params, vector, data)
    g = kr.loss_and_grad(params, data)[1]
    assert jvp == pytest.approx(sum(float(np.sum(g[p] * vector[p])) for p in names), rel=1e-12)


def test_saved_module_has_the_second_order_entry_points(tmp_path):
    import importlib.util
    scalar_kernel = symgrad.compile(SCALAR, order=2)
    path = scalar_kernel.save(tmp_path / "second.py")
    spec = importlib.util.spec_from_file_location("saved_second_order", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = _scalar_batch(10)
    assert module.hvp(PARAMS, VECTOR, data) == scalar_kernel.hvp(PARAMS, VECTOR, data)
    assert module.jvp(PARAMS, VECTOR, data) == scalar_kernel.jvp(PARAMS, VECTOR, data)


# ------------------------------------------------------------------- errors

def test_order_errors():
    with pytest.raises(OptionError, match="order must be 1"):
        symgrad.compile(SCALAR, order=3)
    k = symgrad.compile(SCALAR)
    with pytest.raises(OptionError, match="order=2"):
        k.hvp(PARAMS, VECTOR)


def test_direction_arguments_are_checked(scalar_kernel):
    with pytest.raises(MissingArgumentError, match="missing vector.*'c'"):
        scalar_kernel.hvp(PARAMS, {"a": 1.0, "b": 2.0}, _scalar_batch(3))
    with pytest.raises(symgrad.errors.NonFiniteError, match="tangent 'b'"):
        scalar_kernel.jvp(PARAMS, {**VECTOR, "b": float("nan")}, _scalar_batch(3))


def test_a_dense_hessian_too_large_for_memory_is_refused():
    from codegen.hessian import hessian_from_products
    from symgrad.errors import HessianTooLargeError

    def never(v):
        raise AssertionError("no product may run")

    with pytest.raises(HessianTooLargeError, match="use hvp"):
        hessian_from_products(never, 50_000, None, None, None)
    assert issubclass(HessianTooLargeError, symgrad.errors.SymgradError)


# ------------------------------------------------------------- every shipped example

# The direct method where it is feasible: sympy.diff twice of the scalar examples and of
# linear_rmsprop's 4-param expansion; two_layer_net's 101,770 params are past it.
# hinge_two_layer's symbolic Hessian (sympy.diff twice, 15 params) takes 25 s cold: in
# `make test-all`.
EXAMPLE_METHODS = [pytest.param(name, method, marks=[pytest.mark.slow] if (
                       name, method) == ("hinge_two_layer", "symbolic") else [])
                   for name in ("lecture_graph", "chain_rule", "polynomial_sin",
                                "hinge_two_layer", "linear_rmsprop", "two_layer_net",
                                "rosenbrock_newton")
                   for method in METHODS if not (name == "two_layer_net" and method == "symbolic")]


@pytest.mark.parametrize("name, method", EXAMPLE_METHODS)
def test_every_example_has_jvp_hvp_and_hessian(name, method):
    import cuda_models as cm

    model = cm.example(name)
    k = symgrad.compile(model, method=method, order=2)
    rng = np.random.default_rng(5)
    if model.is_matrix:
        params = cm.matrix_params(model, 1)
        data = cm.matrix_data(model, 7, seed=2)
        vector = {p: rng.standard_normal(np.shape(v)) for p, v in params.items()}
    else:
        params = cm.scalar_params(model, 1)
        data = cm.scalar_data(model, 7, seed=2) if model.inputs else None
        vector = {p: float(rng.standard_normal()) for p in params}
    names = k.param_names

    def flat(values):
        return np.concatenate([np.ravel(values[p]) for p in names])

    def moved(step):
        return {p: np.asarray(params[p]) + step * np.asarray(vector[p]) if model.is_matrix
                else params[p] + step * vector[p] for p in names}

    loss, grads = k.loss_and_grad(params, data)
    got_loss, jvp = k.jvp(params, vector, data)
    assert got_loss == pytest.approx(loss, rel=1e-13)
    assert jvp == pytest.approx(float(flat(grads) @ flat(vector)), rel=1e-9, abs=1e-9)
    hvp = flat(k.hvp(params, vector, data))
    step = 1e-6
    numeric = (flat(k.loss_and_grad(moved(step), data)[1])
               - flat(k.loss_and_grad(moved(-step), data)[1])) / (2 * step)
    np.testing.assert_allclose(hvp, numeric, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(hvp).max()))
    if flat(params).size > 20000:
        with pytest.raises(symgrad.errors.HessianTooLargeError):
            k.hessian(params, data)
        return
    h = k.hessian(params, data)
    dense = h.toarray() if hasattr(h, "toarray") else h
    np.testing.assert_allclose(dense @ flat(vector), hvp, rtol=1e-10,
                               atol=1e-12 * max(1.0, np.abs(hvp).max()))


def test_warmup_compile_cli_and_sparsity_unpacking(tmp_path, capsys):
    pattern, colors = symgrad.hessian_sparsity(_rosenbrock(12))
    assert pattern.shape == (12, 12) and colors.max() == 2
    k = symgrad.compile(SCALAR, order=2)
    assert {"jit_loss_and_grad", "jit_hvp"} <= set(k.warmup(symgrad.optim.Newton()))
    from pathlib import Path

    from symgrad.cli import main
    out = tmp_path / "second.py"
    example = Path(__file__).resolve().parent.parent / "examples" / "rosenbrock_newton.py"
    assert main(["compile", str(example), "-o", str(out), "--order", "2"]) == 0
    text = out.read_text()
    assert "def hvp(params, vector" in text and "HESSIAN_COLORS = np.array(" in text
