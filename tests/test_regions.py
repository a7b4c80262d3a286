"""Piecewise: only the taken branch reaches the result, forward and backward.

`Piecewise((log(x a), x > 0), (0, True))` at x <= 0 must give a finite loss and
gradient: neither log(x a) nor its derivative 1/(x a) may leak into it there.
Checked in the interpreter, in the generated code, and in compiled kernels. The
interpreter runs under strict floating point (`oracle.strict_floating_point`): any
log(0), 0/0 or sqrt(-1) raises, and here only an evaluated untaken branch can
produce one. (Compiled per-sample code may compute an untaken branch's plain
arithmetic and discard it; its function calls stay behind the guard:
tests/test_scalar_math.py.)
"""

from __future__ import annotations

import numpy as np
import oracle
import pytest
import sympy as sp

import symgrad
from symgrad import ir
from symgrad.derivation import METHODS, derive
from symgrad.interpret import loss_and_grad
from symgrad.ir import Op
from symgrad.passes.regions import Regions, lca
from symgrad.program import Assign, schedule

A, B = sp.symbols("a b", real=True)
X = sp.Symbol("x", real=True)
XS = np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0])

# name -> (loss, params, inputs, param values, data): each has samples in every branch.
MODELS = {
    "log_branch": (sp.Piecewise((sp.log(X * A), X > 0), (0, True)),
                   [A], [X], {"a": 2.0}, {"x": XS}),
    # log(a (x - 1)) is NaN for x < 1 and its derivative 0/0 at x = 1 (as sympy.diff
    # writes it); sqrt(a x) is NaN for x < 0 and its derivative 0/0 at x = 0.
    "nested": (sp.Piecewise((sp.log(A * (X - 1)), X > 1),
                            (sp.Piecewise((sp.sqrt(A * X) * B, X > 0), (A * B * X, True)), True)),
               [A, B], [X], {"a": 2.0, "b": -0.5}, {"x": XS}),
    # The condition reads params only: the branch is chosen once per call.
    "param_condition": (sp.Piecewise((sp.log(A) * X, A > 0), (A**2 * X, True)),
                        [A], [X], {"a": -1.0}, {"x": XS}),
}


def expected(name):
    loss, params, inputs, values, data = MODELS[name]
    model = symgrad.Model(loss, params, inputs)
    return model, oracle.loss_and_grad(model.loss, model.real_params, model.real_inputs,
                                       values, data)


def generated_loss_and_grad(kernel, params, data):
    p = np.array([params[name] for name in kernel.params])
    columns = [np.ascontiguousarray(data[name], dtype=np.float64) for name in kernel.inputs]
    out = np.empty(1 + len(kernel.params))
    kernel.module._loss_and_grad_core.py_func(p, *columns, out)
    return float(out[0]), dict(zip(kernel.params, out[1:].tolist()))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_interpreter_never_evaluates_untaken_branch(name, method):
    model, want = expected(name)
    _, _, _, values, data = MODELS[name]
    derivation = derive(model, method)
    with oracle.strict_floating_point():
        got = loss_and_grad(derivation, values, data)
    oracle.assert_grads_close(got, want, 1e-12, 1e-14, f"{name} {method}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_code_never_evaluates_untaken_branch(name, method):
    model, want = expected(name)
    _, _, _, values, data = MODELS[name]
    kernel = symgrad.compile(model, method)
    with oracle.strict_floating_point():
        got = generated_loss_and_grad(kernel, values, data)
    oracle.assert_grads_close(got, want, 1e-12, 1e-14, f"{name} {method} (py_func)")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["log_branch", "nested"])
def test_compiled_kernel_never_evaluates_untaken_branch(name, method):
    model, want = expected(name)
    _, _, _, values, data = MODELS[name]
    got = symgrad.compile(model, method).loss_and_grad(values, data)
    assert np.isfinite(got[0]) and all(np.isfinite(list(got[1].values())))
    oracle.assert_grads_close(got, want, 1e-12, 1e-14, f"{name} {method} (compiled)")


def test_gradient_of_param_read_only_in_a_branch_is_zero_outside_it():
    """d/da of Piecewise((log(x a), x > 0), (0, True)) is 1/a for x > 0 and 0 elsewhere."""
    model = symgrad.Model(MODELS["log_branch"][0], [A], [X])
    for method in METHODS:
        for x, want in ((-1.0, 0.0), (0.0, 0.0), (3.0, 0.5)):
            _, grads = loss_and_grad(derive(model, method), {"a": 2.0}, {"x": np.array([x])})
            assert grads["a"] == want, (method, x)


# ------------------------------------------------------- regions themselves

def _lowered(expr, params=(A, B), inputs=(X,)):
    return symgrad.Model(expr, list(params), list(inputs)).forward[0]


def test_branch_only_node_lives_in_its_branch_and_shared_node_in_root():
    log_a = sp.log(A)
    out = _lowered(sp.Piecewise((sp.sin(A * X) + log_a, X > 0), (log_a, True)))
    regions = Regions([out])
    by_op = {n.op: n for n in ir.toposort([out])}
    sin_region = regions.of[by_op[Op.SIN]]
    assert sin_region is not None and sin_region.branch is True
    assert sin_region.cond is by_op[Op.GT] and sin_region.parent is None
    assert regions.of[by_op[Op.LOG]] is None        # used by both branches
    assert regions.of[by_op[Op.GT]] is None         # conditions are evaluated outside
    assert regions.of[out] is None


def test_nested_branch_regions_chain_to_the_root():
    inner = sp.Piecewise((sp.sin(A), X < -1), (sp.cos(A), True))
    out = _lowered(sp.Piecewise((sp.exp(A), X > 1), (inner * B, True)))
    regions = Regions([out])
    by_op = {n.op: n for n in ir.toposort([out])}
    sin_region = regions.of[by_op[Op.SIN]]
    cos_region = regions.of[by_op[Op.COS]]
    assert [r.branch for r in sin_region.chain()] == [False, True]
    assert [r.branch for r in cos_region.chain()] == [False, False]
    assert sin_region.parent is cos_region.parent is regions.of[by_op[Op.MUL]]
    assert lca(sin_region, cos_region) is sin_region.parent
    assert lca(sin_region, regions.of[by_op[Op.EXP]]) is None


def test_schedule_guards_branch_statements_only():
    model = symgrad.Model(MODELS["log_branch"][0], [A], [X])
    d = derive(model)
    program = schedule(d.roots(), d.params, d.inputs)
    assigns = {s.node.op: s for s in program.body if isinstance(s, Assign)}
    assert assigns[Op.LOG].guard is not None
    assert assigns[Op.GT].guard is None
    assert all(s.guard is None for s in program.body
               if isinstance(s, Assign) and s.node in d.roots())
