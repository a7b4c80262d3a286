"""The IR: interning, the dump format, verify(), deep graphs, gradient cost.

Deep graphs: every walk over a user's graph must be iterative, so a chain far
deeper than Python's recursion limit derives and generates source. The
cheap-gradient tests bound how many operations reverse mode adds, counted by
`Derivation.sizes()` over the interned DAG.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import ir
from symgrad.derivation import derive
from symgrad.interpret import loss_and_grad
from symgrad.ir import Node, Op, const, dump, input_, make, node, param, unary, verify
from symgrad.modelfile import load_model

A, B = sp.symbols("a b", real=True)
X, Y = sp.symbols("x y", real=True)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ------------------------------------------------------------------ interning

def test_building_the_same_expression_twice_gives_the_identical_node():
    def build():
        a, x = param("a"), input_("x")
        return make(Op.TANH, a * x + const(1.5)) / (a - x)

    first, second = build(), build()
    assert first is second
    assert all(p is q for p, q in zip(ir.toposort([first]), ir.toposort([second])))


def test_lowering_the_same_sympy_expression_twice_gives_the_identical_node():
    expr = sp.sin(A * X) * sp.exp(A * X) + A
    first = symgrad.Model(expr, [A], [X]).forward[0]
    second = symgrad.Model(expr, [A], [X]).forward[0]
    assert first is second


def test_shared_subexpression_is_one_node():
    out = symgrad.Model(sp.sin(A * X) + sp.sin(A * X) ** 2, [A], [X]).forward[0]
    order = ir.toposort([out])
    assert sum(n.op is Op.SIN for n in order) == 1
    assert sum(n.op is Op.MUL for n in order) == 1


def test_zero_and_negative_zero_constants_are_different_nodes():
    assert const(0.0) is const(0.0)
    assert const(0.0) is not const(-0.0)
    assert math.copysign(1.0, const(-0.0).attr) == -1.0
    assert const(math.nan) is const(math.nan)      # NaN is interned like any value


def test_same_op_with_different_attrs_are_different_nodes():
    a = param("a")
    assert unary(Op.HEAVISIDE, a, attr=0.5) is unary(Op.HEAVISIDE, a, attr=0.5)
    assert unary(Op.HEAVISIDE, a, attr=0.5) is not unary(Op.HEAVISIDE, a, attr=0.0)
    assert param("a") is not input_("a")


# --------------------------------------------------------------------- dump

def test_dump_text_of_a_small_graph():
    a, x = param("a"), input_("x")
    ax = a * x
    loss = make(Op.TANH, ax - const(2.5)) * unary(Op.HEAVISIDE, a, attr=0.5)
    assert dump([loss, ax], ["loss", "a*x"]) == (
        "%0 = PARAM 'a'\n"
        "%1 = INPUT 'x'\n"
        "%2 = MUL %0 %1\n"
        "%3 = CONST 2.5\n"
        "%4 = SUB %2 %3\n"
        "%5 = TANH %4\n"
        "%6 = HEAVISIDE %0 [0.5]\n"
        "%7 = MUL %5 %6\n"
        "return 'loss' %7\n"
        "return 'a*x' %2\n"
    )


def test_dump_writes_user_names_as_ascii_literals():
    p = param("w'\n\u00e9")
    assert dump([p], ["out"]) == "%0 = PARAM \"w'\\n\\xe9\"\nreturn 'out' %0\n"


# ------------------------------------------------------------------- verify

def test_verify_accepts_derived_graphs():
    model = symgrad.Model(sp.Piecewise((sp.log(A * X), X > 0), (A**2, True)), [A], [X])
    for method in ("reverse", "symbolic"):
        verify(derive(model, method).roots())


def _malformed() -> list[tuple[Node, str]]:
    a = param("a")
    cycle = Node(Op.NEG, ())
    object.__setattr__(cycle, "args", (cycle,))      # frozen: only by force
    return [
        (Node(Op.ADD, (a,)), "ADD takes 2 args"),
        (Node(Op.WHERE, (a, a, a)), "WHERE needs a boolean operand"),
        (Node(Op.MUL, (a, node(Op.GT, a, a))), "MUL needs a float operand"),
        (Node(Op.CONST, (), "1.5"), "CONST needs a float"),
        (Node(Op.PARAM, (), 3), "PARAM needs a str name"),
        (cycle, "cycle"),
    ]


@pytest.mark.parametrize("bad, message", _malformed(), ids=lambda v: str(v)[:20])
def test_verify_rejects_malformed_node(bad, message):
    with pytest.raises(ValueError, match=message):
        verify([bad])
    if "cycle" not in message:
        # ... also when it is buried under well-formed nodes.
        with pytest.raises(ValueError, match=message):
            verify([make(Op.SIN, param("b")) + Node(Op.EXP, (bad,))])


# ------------------------------------------------------- deep graphs, no recursion

def _chain_loss(steps: int) -> sp.Expr:
    """h <- sin(h) a + x, `steps` times from h = x: 3 ops per step, as deep as it is long."""
    h = X
    for _ in range(steps):   # evaluate=False: SymPy's own simplification is the slow part
        h = sp.Add(sp.Mul(sp.sin(h, evaluate=False), A, evaluate=False), X, evaluate=False)
    return h


def _chain_value_and_grad(steps: int, a: float, x: float) -> tuple[float, float]:
    """The chain and d/da by forward-mode recurrence: dh' = cos(h) dh a + sin(h)."""
    h, dh = x, 0.0
    for _ in range(steps):
        h, dh = math.sin(h) * a + x, math.cos(h) * dh * a + math.sin(h)
    return h, dh


def _check_deep_chain(steps: int, evaluate: bool) -> None:
    assert 3 * steps > 5 * sys.getrecursionlimit()
    model = symgrad.Model(_chain_loss(steps), [A], [X])
    kernel = symgrad.compile(model)          # derives by reverse mode, writes and imports
    sizes = kernel.derivation.sizes()
    assert sizes["forward_ops"] >= 3 * steps
    assert "def _loss_and_grad_core(" in kernel.source
    if evaluate:
        got = loss_and_grad(kernel.derivation, {"a": 0.7}, {"x": np.array([0.3])})
        want = _chain_value_and_grad(steps, 0.7, 0.3)
        assert got[0] == pytest.approx(want[0], rel=1e-12)
        assert got[1]["a"] == pytest.approx(want[1], rel=1e-9)


def test_chain_of_10_000_nodes_derives_and_generates_without_recursion_error():
    _check_deep_chain(3_334, evaluate=True)


@pytest.mark.slow     # 25-40 s of CPU; over a minute of wall time on a loaded machine
def test_chain_of_100_000_nodes_derives_and_generates_within_a_minute():
    start = time.process_time()     # CPU time: other processes' load does not count
    _check_deep_chain(33_334, evaluate=False)
    assert time.process_time() - start < 60


# ------------------------------------------------------------ gradient cost

def _ratio(model: symgrad.Model, method: str = "reverse") -> float:
    sizes = derive(model, method).sizes()
    return sizes["total_ops"] / sizes["forward_ops"]


def _chain_model(activation, depth: int) -> symgrad.Model:
    weights = sp.symbols(f"w1:{depth + 1}", real=True)
    h = X
    for w in weights:
        h = activation(w * h)
    return symgrad.Model((h - Y) ** 2, weights, [X, Y])


@pytest.mark.parametrize("depth", range(1, 9))
def test_reverse_mode_cost_of_a_sin_chain_is_at_most_three_forward_passes(depth):
    assert _ratio(_chain_model(sp.sin, depth)) <= 3


@pytest.mark.parametrize("depth", range(1, 9))
def test_reverse_mode_cost_of_a_tanh_chain_is_bounded(depth):
    """Per layer: forward 2 ops (MUL, TANH); backward 3 (TANH_BACKWARD reads the output,
    the MUL's two contributions are 2), so the ratio tends to (2 + 3) / 2 = 2.5."""
    assert _ratio(_chain_model(sp.tanh, depth)) <= 3


@pytest.mark.parametrize("depth", range(1, 9))
def test_reverse_mode_cost_of_a_sigmoid_chain_is_bounded(depth):
    """As for tanh, except that the stability pass writes sigmoid' = out (1 - out) as
    out sigmoid(-x) (no cancellation near out = 1): one more op per layer, so the
    ratio tends to (2 + 6) / 2 = 4."""
    assert _ratio(_chain_model(symgrad.sigmoid, depth)) <= 4


def test_reverse_mode_cost_of_a_deep_tanh_chain_is_at_most_three_forward_passes():
    assert _ratio(_chain_model(sp.tanh, 8)) <= 3


@pytest.mark.parametrize("example", ["lecture_graph", "chain_rule", "polynomial_sin",
                                     "hinge_two_layer"])
def test_reverse_mode_cost_of_the_examples_is_at_most_three_forward_passes(example):
    model = load_model(EXAMPLES / f"{example}.py")
    assert _ratio(model) <= 3


def test_direct_method_cost_grows_with_depth_past_reverse_mode():
    shallow, deep = _chain_model(sp.tanh, 2), _chain_model(sp.tanh, 8)
    assert _ratio(deep, "symbolic") > 1.5 * _ratio(shallow, "symbolic")
    assert _ratio(deep, "symbolic") > 1.5 * _ratio(deep, "reverse")
