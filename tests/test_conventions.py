"""Kinks and domains: every row of the tables in docs/conventions.md.

The tables state the value and gradient of small formulas at kinks (relu at 0, ties
of Max and Min, Abs at 0) and outside their domains (log(0), sqrt(0), x log x at 0,
1/0, 0/0, x^-k at 0). Each row is checked through reverse mode and the direct
method, each through `symgrad.interpret`, the generated code run as Python and the
compiled kernel, and the PyTorch column against torch (float64) where it is
installed. The expected values come from the document, which derives them from the
stated conventions and IEEE arithmetic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import interpret
from symgrad.functions import relu, sigmoid, softplus
from symgrad.matrix import elementwise, total
from conftest import torch_or_skip

DOC = Path(__file__).resolve().parent.parent / "docs" / "conventions.md"
SYMBOLS = {name: sp.Symbol(name, real=True) for name in ("x", "y", "z")}
NAMESPACE = {**SYMBOLS, "relu": relu, "sigmoid": sigmoid, "softplus": softplus}
METHODS = ("reverse", "symbolic")


@dataclass(frozen=True)
class Row:
    table: str
    formula: str
    point: tuple[tuple[str, float], ...]
    value: float
    gradient: dict[str, tuple[float, ...]]      # by method
    torch: tuple[float, ...] | None

    @property
    def expr(self) -> sp.Expr:
        return sp.sympify(self.formula, locals=NAMESPACE)

    def __str__(self) -> str:
        return f"{self.formula} at {', '.join(f'{k}={v}' for k, v in self.point)}"


def _number(text: str) -> float:
    return float(text.strip())        # float() reads inf, -inf and nan


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(_number(t) for t in text.split(","))


def read_table(heading: str) -> list[Row]:
    """The rows of the first table under `## heading` in docs/conventions.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith("`"):
            continue
        formula, at, value, reverse, symbolic, torch = cells
        point = tuple((k.strip(), _number(v)) for k, v in
                      (part.split("=") for part in at.split(",")))
        rows.append(Row(heading, formula.strip("`"), point, _number(value),
                        {"reverse": _numbers(reverse), "symbolic": _numbers(symbolic)},
                        None if torch == "-" else _numbers(torch)))
    return rows


ROWS = read_table("Kinks") + read_table("Outside the domain: IEEE results")


def same(got: float, want: float) -> bool:
    """Equal, NaN equal to NaN, infinities with their sign (0.0 and -0.0 alike)."""
    got = float(got)
    return (math.isnan(got) and math.isnan(want)) or got == want


def test_tables_cover_the_documented_cases():
    kinks = {(r.formula, r.point) for r in ROWS if r.table == "Kinks"}
    domains = {(r.formula, r.point) for r in ROWS if r.table != "Kinks"}
    assert {("relu(x)", (("x", 0.0),)), ("Abs(x)", (("x", 0.0),)),
            ("Max(x, y)", (("x", 1.0), ("y", 1.0))),
            ("Min(x, y)", (("x", 1.0), ("y", 1.0)))} <= kinks
    assert {("log(x)", (("x", 0.0),)), ("sqrt(x)", (("x", 0.0),)),
            ("x*log(x)", (("x", 0.0),)), ("1/x", (("x", 0.0),)),
            ("x/y", (("x", 0.0), ("y", 0.0))), ("x**(-2)", (("x", 0.0),))} <= domains
    for row in ROWS:
        assert {s.name for s in row.expr.free_symbols} == {k for k, _ in row.point}, row
        assert all(len(g) == len(row.point) for g in row.gradient.values()), row


def test_kinks_are_the_same_in_both_methods():
    for row in ROWS:
        if row.table == "Kinks":
            assert row.gradient["reverse"] == row.gradient["symbolic"], row


# ------------------------------------------------------------ one model per row

def row_model(row: Row) -> symgrad.Model:
    return symgrad.Model(row.expr, [SYMBOLS[k] for k, _ in row.point], name=str(row))


def check(row: Row, method: str, value: float, grads: list[float], path: str) -> None:
    want = row.gradient[method]
    assert same(value, row.value), f"{row} ({method}, {path}): value {value}"
    assert all(same(g, w) for g, w in zip(grads, want)), \
        f"{row} ({method}, {path}): gradient {grads}, documented {list(want)}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("row", ROWS, ids=str)
def test_row_through_interpret(row, method):
    derivation = symgrad.derivation.derive(row_model(row), method)
    value, grads = interpret.loss_and_grad(derivation, dict(row.point))
    check(row, method, value, [grads[k] for k, _ in row.point], "interpret")


# ----------------------------------------------- all rows in one kernel per method

SELECT = [sp.Symbol(f"s{i}", real=True) for i in range(len(ROWS))]


def renamed(i: int, row: Row) -> tuple[sp.Expr, list[sp.Symbol]]:
    own = {SYMBOLS[k]: sp.Symbol(f"r{i}_{k}", real=True) for k, _ in row.point}
    return row.expr.xreplace(own), list(own.values())


@pytest.fixture(scope="module")
def kernels():
    """sum_i s_i row_i, each row on its own params: the input s_i selects one row per
    call; the other rows sit at 1, where every row is finite, times 0."""
    terms, params = [], []
    for i, row in enumerate(ROWS):
        expr, own = renamed(i, row)
        terms.append(SELECT[i] * expr)
        params += own
    model = symgrad.Model(sp.Add(*terms), params, SELECT, name="conventions")
    return {method: symgrad.compile(model, method) for method in METHODS}


def row_arguments(i: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    params = {f"r{j}_{k}": 1.0 for j, row in enumerate(ROWS) for k, _ in row.point}
    params.update({f"r{i}_{k}": v for k, v in ROWS[i].point})
    data = {s.name: np.array([1.0 if j == i else 0.0]) for j, s in enumerate(SELECT)}
    return params, data


@pytest.mark.parametrize("method", METHODS)
def test_rows_through_generated_python(kernels, method):
    mod = kernels[method].module
    for i, row in enumerate(ROWS):
        params, data = row_arguments(i)
        p, _ = mod._pack(params)
        out = np.empty(1 + len(p))
        with np.errstate(all="ignore"):
            mod._loss_and_grad_core.py_func(p, *mod._columns(data), out)
        grads = mod._unpack(out[1:], None)
        check(row, method, out[0], [grads[f"r{i}_{k}"] for k, _ in row.point], "python")


@pytest.mark.parametrize("method", METHODS)
def test_rows_through_compiled_kernels(kernels, method):
    kernel = kernels[method]
    for i, row in enumerate(ROWS):
        params, data = row_arguments(i)
        value, grads = kernel.loss_and_grad(params, data)
        check(row, method, value, [grads[f"r{i}_{k}"] for k, _ in row.point], "compiled")
        assert same(kernel.loss(params, data), row.value), row


# --------------------------------------------------------------------- matrix

def test_matrix_models_follow_the_same_kinks():
    """ReLU and Abs layers at 0, and log at 0, in a matrix model (reverse mode)."""
    W = sp.MatrixSymbol("W", 1, 3)
    model = symgrad.Model(total(elementwise(relu, W)) + total(elementwise(sp.Abs, W))
                          + total(elementwise(sp.log, W)), [W])
    mod = symgrad.compile(model).module
    theta, given = mod._pack({"W": np.array([[0.0, 2.0, -1.0]])})
    out = np.empty(1 + len(theta))
    with np.errstate(all="ignore"):
        mod._loss_and_grad_core.py_func(theta, *mod._columns(None), out)
    grads = mod._unpack(out[1:], given)["W"].ravel()
    # relu' + abs' + log': 0 + 0 + inf at 0; 1 + 1 + 0.5 at 2; 0 - 1 - 1 at -1.
    assert [same(g, w) for g, w in zip(grads, [math.inf, 2.5, -2.0])] == [True] * 3
    assert math.isnan(out[0])       # log(-1) is NaN, and so is the total


# ---------------------------------------------------------------------- torch

def _torch_functions(torch):
    def maximum(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.maximum(out, x)
        return out

    def minimum(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = torch.minimum(out, x)
        return out

    zero = torch.zeros((), dtype=torch.float64)
    return {
        "relu(x)": torch.relu, "Max(x, y)": maximum, "Min(x, y)": minimum,
        "Max(x, 0)": lambda x: torch.maximum(x, zero),
        "Max(x, y, z)": maximum, "Min(x, y, z)": minimum,
        "Abs(x)": torch.abs, "sign(x)": torch.sign,
        "Piecewise((x, x < 0), (2*x, True))": lambda x: torch.where(x < 0, x, 2 * x),
        "log(x)": torch.log, "sqrt(x)": torch.sqrt, "x*log(x)": lambda x: x * torch.log(x),
        "1/x": lambda x: 1 / x, "x/y": lambda x, y: x / y,
        "x**(-2)": lambda x: x ** -2, "x**(-3)": lambda x: x ** -3,
        "x**(-0.5)": lambda x: x ** -0.5, "x**1.5": lambda x: x ** 1.5,
        "exp(x)": torch.exp, "x**y": lambda x, y: x ** y,
        "floor(x)": torch.floor, "ceiling(x)": torch.ceil, "Mod(x, y)": torch.remainder,
        "asin(x/2)": lambda x: torch.asin(x / 2), "acosh(x + 1)": lambda x: torch.acosh(x + 1),
        "atanh(x/2)": lambda x: torch.atanh(x / 2),
        "loggamma(x)": torch.lgamma,
    }


@pytest.mark.parametrize("row", [r for r in ROWS if r.torch is not None], ids=str)
def test_pytorch_column(row):
    torch = torch_or_skip()
    fn = _torch_functions(torch)[row.formula]
    args = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for _, v in row.point]
    out = fn(*args)
    out.backward()
    assert same(out.item(), row.value), row
    got = [a.grad.item() for a in args]
    assert all(same(g, w) for g, w in zip(got, row.torch)), (row, got)


def test_pytorch_differs_only_where_documented():
    """The rows where symgrad's reverse mode and PyTorch differ are the ones the text
    explains (x**y at x = 0); everywhere else they agree."""
    differ = [str(r) for r in ROWS if r.torch is not None
              and not all(same(a, b) for a, b in zip(r.gradient["reverse"], r.torch))]
    assert differ == ["x**y at x=0.0, y=2.0"]
    text = DOC.read_text(encoding="utf-8")
    assert re.search(r"`x\*\*y` with a param exponent", text)


README = DOC.parent.parent / "README.md"


def test_readme_summary_agrees_with_the_tables():
    """The README's conventions table repeats some rows (value and reverse-mode gradient,
    each cell's first word): they must say what the tables here say."""
    rows = {(r.formula, r.point): r for r in ROWS if len(r.point) == 1}
    checked = 0
    for formula, at, value, gradient in re.findall(
            r"^\| `([^`]+)` at (\S+) \| ([^|]+) \| ([^|]+) \|$",
            README.read_text(encoding="utf-8"), re.MULTILINE):
        try:
            numbers = _number(value.split()[0]), _number(gradient.split()[0])
        except ValueError:              # a cell in words (a convention, not a number)
            continue
        row = rows[formula, (("x", _number(at)),)]
        assert same(numbers[0], row.value), (formula, value, row.value)
        assert same(numbers[1], row.gradient["reverse"][0]), (formula, gradient, row)
        checked += 1
    assert checked >= 5
