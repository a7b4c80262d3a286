"""codegen/scalar_math.py: the names the chunk functions of scalar modules call."""

from __future__ import annotations

import math
import re

import numba
import numpy as np
import pytest
import sympy as sp

import symgrad
from codegen import scalar_math
from symgrad.derivation import derive
from symgrad.interpret import loss_and_grad

VALUES = [0.0, -0.0, 1.5, -2.0, math.inf, -math.inf, math.nan]


def chunk_functions(source: str) -> str:
    """The text of a scalar module's chunk functions (its per-sample code)."""
    return "\n".join(re.findall(r"^def _\w+_chunk\(.*?(?=^\S)", source,
                                 re.MULTILINE | re.DOTALL))


@numba.njit
def _select(cond, a, b):
    return scalar_math.select(cond, a, b)


@pytest.mark.parametrize("cond", [True, False])
def test_select_returns_the_chosen_value_bit_for_bit(cond):
    for a in VALUES:
        for b in VALUES:
            got, want = _select(cond, a, b), a if cond else b
            assert np.float64(got).tobytes() == np.float64(want).tobytes(), (cond, a, b)
    assert _select(cond, True, False) is cond          # booleans stay booleans
    assert _select(cond, 2, 0.5) == (2.0 if cond else 0.5)   # mixed types unify


def test_math_names_give_ieee_results_when_compiled():
    @numba.njit(error_model="numpy")
    def edges():
        return (scalar_math.log(0.0), scalar_math.sqrt(-1.0), scalar_math.exp(1000.0),
                scalar_math.log1p(-1.0))
    log0, sqrt_neg, exp_big, log1p_neg1 = edges()
    assert log0 == -math.inf and math.isnan(sqrt_neg) and exp_big == math.inf
    assert log1p_neg1 == -math.inf


def test_chunk_functions_print_where_and_heaviside_as_selects():
    x, a, b = sp.symbols("x a b", real=True)
    model = symgrad.Model(symgrad.relu(a * x) + sp.Max(a, b * x) + sp.Abs(x - b), [a, b], [x])
    source = symgrad.compile(model).source
    chunks = chunk_functions(source)
    assert chunks.count("select(") >= 4
    assert " if " not in chunks        # no guarded statements in this model either


def test_guarded_statements_branch_only_around_functions():
    """In a Piecewise, guarded arithmetic is selected and only guarded function calls
    (whose work is worth skipping) keep a conditional expression."""
    x, a, b = sp.symbols("x a b", real=True)
    model = symgrad.Model(sp.Piecewise((sp.log(a * x) * b + a * x, x > 0), (b * x, True)),
                          [a, b], [x])
    source = symgrad.compile(model).source
    chunks = chunk_functions(source)
    conditional = [line.strip() for line in chunks.splitlines() if " if " in line]
    assert conditional and all(re.fullmatch(r"\w+ = \(v?log\(\w+\)\) if m\d+ else 0\.0", line)
                               for line in conditional), conditional
    assert re.search(r"= select\(m\d+, \w+ \* \w+, 0\.0\)", chunks)


def test_and_or_conditions_print_without_short_circuit_and_agree():
    x, y, a = sp.symbols("x y a", real=True)
    loss = sp.Piecewise((a * x, sp.And(x > 0, y > 0)), (a * y, sp.Or(x < -1, y < -1)),
                        (a * a, True))
    model = symgrad.Model(loss, [a], [x, y])
    kernel = symgrad.compile(model)
    chunks = chunk_functions(kernel.source)
    assert re.search(r"= \w+ & \w+$", chunks, re.MULTILINE)
    assert re.search(r"\w+ \| \w+", chunks)
    assert not re.search(r"\b(and|or)\b", chunks)
    data = {"x": np.array([1.0, -2.0, 0.5, -0.5, 2.0]),
            "y": np.array([1.0, 0.5, -2.0, -0.5, -0.1])}
    want = loss_and_grad(derive(model), {"a": 0.7}, data)
    got = kernel.loss_and_grad({"a": 0.7}, data)
    assert got[0] == pytest.approx(want[0], rel=1e-14)
    assert got[1]["a"] == pytest.approx(want[1]["a"], rel=1e-14)
    # branches taken: and, or (x), or (y), neither, neither
    assert got[0] == pytest.approx(0.7 * 1.0 + 0.7 * 0.5 + 0.7 * -2.0 + 2 * 0.7**2, rel=1e-14)
