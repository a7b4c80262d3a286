"""symgrad.measure: tree sizes equal sympy.count_ops, sizes are consistent, budgets hold."""

import json
import runpy
import sys
import time
from pathlib import Path

import pytest
import sympy as sp

import symgrad
from symgrad.cli import main as cli_main
from symgrad.derivation import derive
from symgrad.measure import (
    FAILED,
    NOT_RUN,
    OVER_BUDGET,
    Measure,
    direct_trees,
    follow,
    sizes,
    tree_ops,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symgrad.bench.models import hinge_network, tanh_network  # noqa: E402

EXAMPLES = ["lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer"]


def example(name):
    return runpy.run_path(str(ROOT / "examples" / f"{name}.py"))["model"]


def tanh_chain(depth, bias=True):
    """loss = (tanh(w_L ... tanh(w_1 x + b_1) ... + b_L) - y)^2 with scalar symbols."""
    x, y = sp.symbols("x y", real=True)
    ws = sp.symbols(f"w1:{depth + 1}", real=True)
    bs = sp.symbols(f"b1:{depth + 1}", real=True)
    h = x
    for w, b in zip(ws, bs):
        h = sp.tanh(w * h + (b if bias else 0))
    return symgrad.Model((h - y) ** 2, [*ws, *bs] if bias else list(ws), [x, y],
                         name=f"chain {depth}")


def test_tree_ops_equals_sympy_count_ops():
    x, y, z = sp.symbols("x y z", real=True)
    odd = [-x, -x - y, -x + y, -x / y, 1 / x, -1 / (x * y), sp.exp(x), sp.E,
           sp.Rational(-1, 3), 2 * x**-2, sp.Max(x, y, z), sp.Heaviside(x), sp.sqrt(x),
           sp.Piecewise((x, x > 0), (y, True)), sp.sign(x) * sp.exp(-x) / (1 + sp.exp(-x))**2,
           sp.Float(2.5) * x - 3, sp.Integer(1), x]
    for e in odd:
        assert tree_ops(e) == sp.count_ops(e), e
    for model in (tanh_network(2), hinge_network(4, 3), example("polynomial_sin")):
        sample, penalty = direct_trees(model)
        trees = sample + penalty
        assert tree_ops(trees) == sp.count_ops(trees)


def test_direct_dag_is_the_symbolic_derivation():
    model = example("hinge_two_layer")
    s = sizes(model)
    assert s.direct_dag.ops == derive(model, "symbolic").sizes()["total_ops"]
    assert s.reverse.ops == derive(model, "reverse").sizes()["total_ops"]
    assert s.forward_ops == derive(model, "reverse").sizes()["forward_ops"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_sizes_of_examples_are_consistent(name):
    s = sizes(example(name))
    for m in (s.reverse, s.direct_trees, s.direct_cse, s.direct_dag):
        assert m.ok and m.ops is not None and m.seconds >= 0
    assert s.reverse.ops >= s.forward_ops > 0
    assert s.direct_dag.ops >= s.forward_ops
    assert s.direct_cse.ops <= s.direct_trees.ops
    assert s.direct_cse.seconds >= s.direct_trees.seconds   # diff, then cse
    assert 1.0 <= s.reverse_ratio <= 3.0
    text = s.format()
    assert f"{s.direct_trees.ops:,}" in text and "reverse mode DAG" in text


def test_cheap_gradient_ratio_at_most_3_on_tanh_chains_and_networks():
    for depth in range(1, 7):
        for bias in (True, False):
            s = sizes(tanh_chain(depth, bias))
            assert s.reverse.ops >= s.forward_ops
            assert s.reverse_ratio <= 3.0, (depth, bias, s.reverse_ratio)
        d = derive(tanh_network(depth), "reverse").sizes()   # the direct method: too slow here
        assert d["total_ops"] / d["forward_ops"] <= 3.0


def test_trees_swell_faster_than_the_dag():
    small, big = sizes(tanh_chain(2)), sizes(tanh_chain(6))
    tree_growth = big.direct_trees.ops / small.direct_trees.ops
    dag_growth = big.reverse.ops / small.reverse.ops
    assert tree_growth > dag_growth
    assert big.direct_cse.ops < big.direct_trees.ops    # cse recovers part of the swell
    assert big.direct_dag.ops > big.reverse.ops         # but not all: reverse shares more


def test_over_budget_is_reported_not_waited_for():
    model = tanh_network(3)     # sympy.diff of its 61 params takes about a second
    start = time.perf_counter()
    s = sizes(model, budget_s=0.01)
    assert time.perf_counter() - start < 20
    for m in (s.direct_trees, s.direct_cse, s.direct_dag):
        assert m.status == OVER_BUDGET and m.ops is None
    assert "symbolic derivation (sympy.diff, lowering) ran past" in s.direct_dag.detail
    assert "over budget" in s.format()
    assert s.budget_s == 0.01
    with pytest.raises(ValueError):
        sizes(model, budget_s=0)


def test_follow_kills_on_timeout_and_marks_later_steps():
    events = [("start", "a", 10.0), ("done", "a", 1), ("start", "b", 0.01)]
    killed = []

    def receive(timeout):
        if events:
            return events.pop(0)
        raise TimeoutError

    out = follow(receive, lambda: killed.append(True), ["a", "b", "c"], labels={"b": "step B"})
    assert out["a"] == 1 and killed == [True]
    assert out["b"].status == OVER_BUDGET and "step B ran past" in out["b"].detail
    assert out["c"].status == NOT_RUN

    def gone(timeout):
        raise EOFError("child died")

    out = follow(gone, lambda: None, ["a"])
    assert out["a"] == Measure(status=FAILED, detail="child died")


def test_cli_bench_sizes(tmp_path, capsys):
    out = tmp_path / "sizes.json"
    rc = cli_main(["bench", "sizes", str(ROOT / "examples" / "lecture_graph.py"),
                   "--budget", "30", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "sizes of lecture_graph.py: 3 params" in text and "direct: diff trees" in text
    data = json.loads(out.read_text())
    assert data["forward_ops"] == 2 and data["reverse"]["status"] == "ok"
    assert data["reverse_ratio"] == data["reverse"]["ops"] / 2
    assert cli_main(["bench", "sizes", str(ROOT / "examples" / "lecture_graph.py"),
                     "--budget", "-1"]) == 2
