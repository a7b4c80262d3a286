"""The interpreter for large scalar models (codegen/interpreter.py): the same bits as the
unrolled kernels for every instruction, gradients right on a relu chain, chosen on its
own above the size threshold, registers reused only when a value is dead, and a module
that still runs without symgrad."""

import os
import struct
import subprocess
import sys

import numba
import numpy as np
import pytest
import sympy as sp
from oracle import assert_grads_close, elementary, loss_and_grad
from sympy.codegen.cfunctions import expm1
from test_relu_chain import relu_chain

import symgrad
import symgrad.interpret
import symgrad.losses
from codegen import interpreter, numba_cpu
from codegen.module import loss_and_grad_program, loss_program
from codegen.printer import scalar_math_printer
from symgrad import optim
from symgrad.errors import OptionError
from symgrad.functions import relu, sigmoid, softplus
from symgrad.kernel import derive
from symgrad.program import Guard

A, B, C, D = PARAMS = sp.symbols("a b c d", real=True)
X, Y = INPUTS = sp.symbols("x y", real=True)


def every_op_loss() -> sp.Expr:
    """A loss whose loss and gradient programs use every instruction of the interpreter
    (test_every_instruction_is_covered checks that)."""
    u, v = A * X + B, C * Y - D
    return (sp.tanh(u) * sigmoid(v) + softplus(u - v) + relu(u) * sp.Max(u, v)
            - sp.Min(u, v) / (1 + u ** 2) + sp.exp(-v ** 2) + sp.log(1 + u ** 2)
            + sp.sin(u) * sp.cos(v) + sp.tan(u / 10) + sp.Abs(v) * sp.sign(u)
            + sp.Heaviside(u, sp.Rational(1, 4)) * v + sp.sqrt(1 + v ** 2)
            + u ** 3 / (2 + v ** 4) + (1 + u ** 2) ** sp.Rational(-3, 2) + u ** 7
            + sp.Piecewise((sp.log(u), (u > 0) & (v < 1)),
                           (u ** 2, sp.Or(u < -1, sp.Not(sp.And(v > 0, u < 3)))),
                           (sp.exp(u), True))
            + expm1(v / 3) + sp.log(1 + sp.exp(-v))
            + sp.Piecewise((v, sp.Eq(u, 0)), (u, sp.Ne(v, 2)), (1, True))
            + sp.Piecewise((1 / u, u >= 0.5), (v, u <= 0.1), (0, True)))


def sample(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n) * 2.0, rng.normal(size=n) * 2.0
    x[:40] = 0.0                  # u = b = 0 there: the kinks of relu, sign, heaviside, Eq
    y[40:50] = [0.0, -0.0, 1e3, -1e3, 400.0, 1e-300, 2.0, 2.0 / 3.0, 1.0, -1.0]
    params = {"a": 1.3, "b": 0.0, "c": -0.7, "d": 0.25}
    return params, {"x": x, "y": y}


def bits(value) -> bytes:
    """The value's bits; every NaN alike (IEEE leaves the sign of a NaN that an invalid
    operation makes to the machine, and LLVM need not preserve it)."""
    value = float(value)
    return b"nan" if value != value else struct.pack("<d", value)


def assert_same_bits(got, want, what):
    (gl, gg), (wl, wg) = got, want
    assert bits(gl) == bits(wl), f"{what}: loss {gl!r} != {wl!r}"
    for name in wg:
        assert bits(gg[name]) == bits(wg[name]), f"{what}: d/d{name} {gg[name]!r} != {wg[name]!r}"


@pytest.fixture(scope="module", params=["vector", "libm"])
def kernels(request):
    model = symgrad.Model(every_op_loss(), list(PARAMS), list(INPUTS))
    return (symgrad.compile(model, math=request.param, interpret=True),
            symgrad.compile(model, math=request.param, interpret=False))


def test_every_instruction_is_covered():
    d = derive(symgrad.Model(every_op_loss(), list(PARAMS), list(INPUTS)), "reverse")
    seen = set()
    for program, results in (loss_program(d), loss_and_grad_program(d)):
        encoded = interpreter.encode(program, numba_cpu.batched_outputs(results),
                                     scalar_math_printer("vector"))
        seen |= {interpreter.OPCODES[code[0]] for code, _ in encoded.prologue + encoded.body}
    assert seen == set(interpreter.OPCODES)


def test_interpreter_gives_the_bits_of_the_compiled_kernel(kernels):
    on_vm, compiled = kernels
    assert "_vm_run" in on_vm.source and "_vm_run" not in compiled.source
    params, data = sample(700)      # two whole blocks and a part, kinks and extremes
    assert_same_bits(on_vm.loss_and_grad(params, data), compiled.loss_and_grad(params, data),
                     "loss_and_grad")
    assert bits(on_vm.loss(params, data)) == bits(compiled.loss(params, data))
    assert np.isfinite(on_vm.loss(params, data))
    params, data = sample(300, seed=9)
    data["y"][40:50] = 0.5          # no extremes: the steps stay finite
    for opt in (optim.SGD(lr=1e-9, momentum=0.9), optim.Adam(lr=1e-3)):
        got, got_history = on_vm.train(params, data, opt, steps=3)
        want, want_history = compiled.train(params, data, opt, steps=3)
        assert np.isfinite(got_history).all()
        assert got_history.tobytes() == want_history.tobytes()
        assert all(bits(got[k]) == bits(want[k]) for k in want)


def test_chunks_in_threads_give_the_same_bits(kernels):
    on_vm, compiled = kernels
    params, data = sample(2 * numba_cpu.CHUNK + 300, seed=5)
    want = compiled.loss_and_grad(params, data)     # the compiled parallel core
    threads = numba.get_num_threads()
    try:
        for n in {1, threads}:
            numba.set_num_threads(n)
            assert_same_bits(on_vm.loss_and_grad(params, data), want, f"{n} threads")
    finally:
        numba.set_num_threads(threads)


def test_relu_chain_on_the_interpreter_matches_sympy():
    loss, ws, inputs = relu_chain(12)
    rng = np.random.default_rng(4)
    values = {w.name: float(v) for w, v in zip(ws, rng.uniform(0.6, 1.4, len(ws)))}
    data = {"x": np.array([0.7, -0.4, 1.3, 0.05]), "y": np.array([0.2, 0.1, -0.5, 1.0])}
    kernel = symgrad.compile(symgrad.Model(loss, ws, inputs), interpret=True)
    want = loss_and_grad(elementary(loss), ws, inputs, values, data)
    assert_grads_close(kernel.loss_and_grad(values, data), want, rtol=1e-12, atol=1e-15,
                       what="relu chain on the interpreter")
    _, grads = kernel.loss_and_grad(values, {"x": np.array([-0.4]), "y": np.array([0.3])})
    assert grads["w0"] == 0.0 and grads["w1"] == 0.0 and grads["w5"] != 0.0


def chain_model(depth: int) -> symgrad.Model:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 50 * depth))   # SymPy's assumptions recurse per layer
    try:
        loss, ws, inputs = relu_chain(depth)
        return symgrad.Model(loss, ws, inputs)
    finally:
        sys.setrecursionlimit(limit)


def check_deep_chain(depth: int):
    model = chain_model(depth)
    kernel = symgrad.compile(model)
    assert "run as a program on the interpreter" in "".join(kernel.source.splitlines()[:8])
    rng = np.random.default_rng(depth)
    values = {p: float(v) for p, v in zip(kernel.params, rng.uniform(0.95, 1.05, depth))}
    data = {"x": rng.normal(size=300), "y": rng.normal(size=300)}
    got = kernel.loss_and_grad(values, data)
    want = symgrad.interpret.loss_and_grad(kernel.derivation, values, data)
    assert_grads_close(got, want, rtol=1e-11, atol=1e-12, what=f"relu chain of {depth}")
    assert any(g != 0.0 for g in got[1].values())


def test_a_deep_relu_chain_runs_on_the_interpreter_by_itself():
    small = derive(chain_model(24), "reverse")
    assert not interpreter.interpreted(loss_and_grad_program(small)[0], None)
    check_deep_chain(800)


def test_a_2000_deep_relu_chain():
    # Seconds on the interpreter (issue 12 asked for it as a slow test; it is not one).
    check_deep_chain(2000)


def test_registers_are_reused_only_when_their_value_is_dead():
    d = derive(chain_model(60), "reverse")
    program, results = loss_and_grad_program(d)
    batched = numba_cpu.batched_outputs(results)
    encoded = interpreter.encode(program, batched, scalar_math_printer("vector"))
    statements = program.body
    assert encoded.registers < len(statements) // 2
    # Replay the body on names: each operand row must still hold the value it names.
    held = {i: f"p{i}" for i in range(len(program.params))}
    held.update({len(program.params) + j: f"x{j}" for j in range(len(program.inputs))})
    for (code, _), s in zip(encoded.body, statements):
        op, dest, a, b, c, guard = code
        names = [s.cond] + ([s.parent] if s.parent else []) if isinstance(s, Guard) else \
            [n for n in s.args if isinstance(n, str)] + ([s.guard] if s.guard else [])
        rows = [r for r in (a, b, guard) if r >= 0]
        if interpreter.OPCODES[op] is interpreter.Op.WHERE:
            rows.append(c)
        for name in names:
            assert any(held.get(r) == name for r in rows), f"{name} not in its row at {s}"
        assert dest not in {a, b, guard} and (op != interpreter.CODE[interpreter.Op.WHERE]
                                              or dest != c)
        held[dest] = s.name
    for k, row in zip(batched, encoded.outputs):
        name = program.outputs[k]
        assert not isinstance(name, str) or held.get(row) == name or name[0] in "px"


def test_the_module_runs_without_symgrad(tmp_path):
    loss, ws, inputs = relu_chain(6)
    kernel = symgrad.compile(symgrad.Model(loss, ws, inputs), interpret=True, math="libm")
    path = kernel.save(tmp_path / "chain.py")
    values = {w.name: 1.0 + 0.01 * i for i, w in enumerate(ws)}
    data = {"x": np.linspace(-1, 1, 300), "y": np.linspace(0, 1, 300)}
    want = kernel.loss_and_grad(values, data)
    script = (f"import importlib.util, sys, json, numpy as np\n"
              f"spec = importlib.util.spec_from_file_location('chain', {str(path)!r})\n"
              f"m = importlib.util.module_from_spec(spec); sys.modules['chain'] = m\n"
              f"spec.loader.exec_module(m)\n"
              f"assert 'symgrad' not in sys.modules and 'codegen' not in sys.modules\n"
              f"loss, grads = m.loss_and_grad({values!r}, "
              f"{{'x': np.linspace(-1, 1, 300), 'y': np.linspace(0, 1, 300)}})\n"
              f"print(json.dumps([loss, grads]))\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    import json
    loss_value, grads = json.loads(done.stdout)
    assert_same_bits((loss_value, grads), want, "standalone module")


def test_interpret_option_errors():
    model = symgrad.Model(A * X, [A], [X])
    with pytest.raises(OptionError, match="interpret must be True, False or None"):
        symgrad.compile(model, interpret="yes")
    with pytest.raises(OptionError, match="interpret=True is for scalar models"):
        symgrad.compile(model, target="cuda", interpret=True)
    W, Xm = sp.MatrixSymbol("W", 2, 1), sp.MatrixSymbol("Xm", sp.Symbol("n"), 2)
    matrix = symgrad.Model(symgrad.losses.mse(Xm * W, Xm * W), [W], [Xm])
    with pytest.raises(OptionError, match="interpret=True is for scalar models"):
        symgrad.compile(matrix, interpret=True)


# ---------------------------------------------------- programs that read no input

def _plain_function(n: int = 30) -> symgrad.Model:
    """A model without inputs (a function of its params: a chained Rosenbrock with
    extra ops), whose every value is computed once per call."""
    xs = sp.symbols(f"x0:{n}", real=True)
    loss = sum(100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2
               + sp.tanh(xs[i] * xs[i + 1]) / 10 for i in range(n - 1))
    return symgrad.Model(loss, list(xs), penalty=sum(x**2 for x in xs) / 100)


def test_a_model_without_inputs_runs_on_the_interpreter_bitwise(monkeypatch):
    model = _plain_function()
    unrolled = symgrad.compile(model, interpret=False, order=2)
    # and the programs printed compressed (as those of a 10^4-param model are)
    monkeypatch.setattr(interpreter, "LISTED_INSTRUCTIONS", 10)
    on_vm = symgrad.compile(model, interpret=True, order=2)
    assert "_vm_once(_LOSS_AND_GRAD_ONCE_VM, params, 0)" in on_vm.source
    assert "zlib.decompress" in on_vm.source and "zlib" not in unrolled.source
    rng = np.random.default_rng(0)
    params = {f"x{i}": float(v) for i, v in enumerate(rng.uniform(-1.5, 1.5, 30))}
    vector = {f"x{i}": float(v) for i, v in enumerate(rng.uniform(-1, 1, 30))}
    assert on_vm.loss_and_grad(params) == unrolled.loss_and_grad(params)
    assert on_vm.loss(params) == unrolled.loss(params)
    assert on_vm.jvp(params, vector) == unrolled.jvp(params, vector)
    assert on_vm.hvp(params, vector) == unrolled.hvp(params, vector)
    np.testing.assert_array_equal(on_vm.hessian(params).toarray(),
                                  unrolled.hessian(params).toarray())
    trained = [k.train(params, None, optim.Adam(lr=0.01), 5) for k in (on_vm, unrolled)]
    assert trained[0][0] == trained[1][0]
    np.testing.assert_array_equal(trained[0][1], trained[1][1])


def test_a_penalty_runs_on_the_interpreter_after_the_inputs_rows():
    # its registers follow the params and the inputs' rows, which _vm_once leaves empty
    model = symgrad.Model((A * X + B - Y) ** 2 + sp.tanh(C * X), [A, B, C], [X, Y],
                          penalty=A**2 + sp.sin(B) * C + 0.5, reduction="mean")
    params, data = sample(300)
    params = {k: params[k] for k in "abc"}
    on_vm, unrolled = (symgrad.compile(model, interpret=flag) for flag in (True, False))
    assert "_vm_once(_LOSS_AND_GRAD_ONCE_VM, params, 2)" in on_vm.source
    assert on_vm.loss_and_grad(params, data) == unrolled.loss_and_grad(params, data)


def test_every_instruction_run_once_gives_the_bits_of_the_compiled_kernel():
    """_vm_run_one (the prologue of a program that reads no input, run once): every
    instruction, as the penalty of a model, against the unrolled kernel."""
    penalty = every_op_loss().subs({X: A / 2 + 0.25, Y: C - D})
    model = symgrad.Model((A * X - Y) ** 2, list(PARAMS), list(INPUTS), penalty=penalty)
    d = derive(model, "reverse")
    seen = set()
    for program, results in (loss_program(d), loss_and_grad_program(d)):
        encoded = interpreter.encode(program, numba_cpu.once_outputs(program, results),
                                     scalar_math_printer("vector"), with_body=False)
        seen |= {interpreter.OPCODES[code[0]] for code, _ in encoded.prologue}
    assert seen == set(interpreter.OPCODES)
    on_vm, compiled = (symgrad.compile(model, interpret=flag) for flag in (True, False))
    data = {"x": np.array([0.5, -1.0]), "y": np.array([2.0, 0.0])}
    for a, b, c, d_ in [(1.3, 0.0, -0.7, 0.25), (0.0, 0.0, 0.0, 0.0), (-2.0, 1.5, 2.0, -3.0),
                        (0.4, -0.1, 1e3, 0.5)]:
        params = {"a": a, "b": b, "c": c, "d": d_}
        assert_same_bits(on_vm.loss_and_grad(params, data), compiled.loss_and_grad(params, data),
                         f"at {params}")
        assert bits(on_vm.loss(params, data)) == bits(compiled.loss(params, data))
