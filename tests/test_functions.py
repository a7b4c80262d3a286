"""Every supported SymPy function through the compiled CPU kernels, both methods.

test_rules.py checks each VJP rule in symgrad's own interpreter; here each function of
`symgrad.supported_functions()` goes through the generated Numba module (scalar and
matrix), against `sympy.diff` at 30 digits and central differences, on random data
away from kinks. The README's list of functions is this table, checked both ways.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import oracle
import pytest
import sympy as sp
from sympy.codegen.cfunctions import Sqrt, exp2, expm1, hypot, log1p, log2, log10
from sympy.codegen.numpy_nodes import logaddexp, logaddexp2, maximum, minimum

import symgrad
from symgrad import catalog, matrix
from symgrad.errors import UnsupportedFunctionError

ROOT = Path(__file__).resolve().parent.parent
A, B, X = sp.symbols("a b x", real=True)
U = A * X + B            # the argument: U in about [-1.5, 1.5] for the data below
V = 2 + B * X            # a second argument, positive

# One use of each supported function, at arguments inside its domain.
USES: dict[str, sp.Expr] = {
    "exp": sp.exp(U), "log": sp.log(2 + U), "sqrt": sp.sqrt(2 + U), "sin": sp.sin(U),
    "cos": sp.cos(U), "tan": sp.tan(U / 2), "tanh": sp.tanh(U), "Abs": sp.Abs(U) * A,
    "sign": sp.sign(U) * A, "asin": sp.asin(U / 2), "acos": sp.acos(U / 2),
    "atan": sp.atan(U), "sinh": sp.sinh(U), "cosh": sp.cosh(U), "asinh": sp.asinh(U),
    "acosh": sp.acosh(2 + U**2), "atanh": sp.atanh(U / 2), "erf": sp.erf(U),
    "erfc": sp.erfc(U), "gamma": sp.gamma(3 + U), "loggamma": sp.loggamma(3 + U),
    "polygamma": sp.polygamma(1, 3 + U), "floor": sp.floor(3 * U) * A,
    "ceiling": sp.ceiling(3 * U) * A, "atan2": sp.atan2(U, V), "Mod": sp.Mod(U, V) * A,
    "Max": sp.Max(U, V / 2), "Min": sp.Min(U, V / 2), "Heaviside": sp.Heaviside(U) * A,
    "Piecewise": sp.Piecewise((U**2, U > 0), (sp.sin(U), True)),
    "sigmoid": symgrad.sigmoid(U), "relu": symgrad.relu(U) * A,
    "softplus": symgrad.softplus(U), "log1p": log1p(U / 2), "expm1": expm1(U),
    "Sqrt": Sqrt(2 + U), "sec": sp.sec(U / 2), "csc": sp.csc(2 + U / 2),
    "cot": sp.cot(2 + U / 2), "sech": sp.sech(U), "csch": sp.csch(2 + U),
    "coth": sp.coth(2 + U), "frac": sp.frac(3 * U) * A, "sinc": sp.sinc(U),
    "exp2": exp2(U), "log2": log2(2 + U), "log10": log10(2 + U), "hypot": hypot(U, V),
    "logaddexp": logaddexp(U, V), "logaddexp2": logaddexp2(U, V),
    "maximum": maximum(U, V / 2), "minimum": minimum(U, V / 2),
}


def test_every_supported_function_has_a_use_here_and_nothing_else():
    assert sorted(USES) == sorted(catalog.supported_functions())


def _data(loss: sp.Expr, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    while True:
        params = {"a": float(rng.uniform(0.3, 0.8)), "b": float(rng.uniform(-0.5, 0.5))}
        x = rng.uniform(-1.0, 1.0, 5)
        points = [{A: params["a"], B: params["b"], X: v} for v in x]
        if oracle.distance_to_kinks(loss, points) > 1e-3:
            return params, {"x": x}


# Compiled in groups of GROUP functions (a model is a Numba compile of a few seconds;
# test_rules.py checks each rule on its own in the interpreter).
GROUP = 6
GROUPS = [sorted(USES)[i:i + GROUP] for i in range(0, len(USES), GROUP)]


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
@pytest.mark.parametrize("names", GROUPS, ids=lambda names: "-".join(names))
def test_compiled_kernel_matches_sympy_diff(names, method):
    loss = sum((USES[name] for name in names), A * B)       # every param has a gradient
    model = symgrad.Model(loss, [A, B], inputs=[X])
    kernel = symgrad.compile(model, method)
    params, data = _data(loss, seed=len(names[0]))
    got = kernel.loss_and_grad(params, data)
    want = oracle.loss_and_grad(loss, [A, B], [X], params, data)
    oracle.assert_grads_close(got, want, 1e-10, 1e-12, f"{names} {method}")
    numeric = oracle.central_differences(lambda p: kernel.loss_and_grad(p, data)[0], params)
    for p in params:
        oracle.assert_close(got[1][p], numeric[p], 1e-6, 1e-8, f"{names} {method} d/d{p}")


def test_matrix_model_applies_special_functions_elementwise():
    """The tensor backend prints the same functions in its loops (one model, all of the
    new elementwise ones), checked against the scalar form of the same loss."""
    n = sp.Symbol("n", integer=True, positive=True)
    Xm, W = sp.MatrixSymbol("X", n, 2), sp.MatrixSymbol("W", 1, 2)
    h = Xm * W.T
    parts = [sp.atan, sp.erf, sp.asinh, lambda z: sp.loggamma(3 + z),
             lambda z: sp.polygamma(0, 3 + z), lambda z: sp.floor(3 * z) * z,
             lambda z: sp.Mod(z, 0.7), lambda z: sp.acosh(2 + z**2), sp.cosh]
    total = sum((matrix.total(h.applyfunc(f)) for f in parts[1:]),
                matrix.total(h.applyfunc(parts[0])))
    model = symgrad.Model(total, [W], inputs=[Xm])
    kernel = symgrad.compile(model)
    rng = np.random.default_rng(3)
    w = rng.uniform(-0.6, 0.6, (1, 2))
    xs = rng.uniform(-1.0, 1.0, (7, 2))
    loss, grads = kernel.loss_and_grad({"W": w}, {"X": xs})
    w0, w1, x0, x1 = sp.symbols("w0 w1 x0 x1", real=True)
    z = w0 * x0 + w1 * x1
    scalar = sum(f(z) for f in parts)
    want_loss, want = 0.0, np.zeros(2)
    for row in xs:
        point = {w0: w[0, 0], w1: w[0, 1], x0: row[0], x1: row[1]}
        assert oracle.distance_to_kinks(scalar, [point]) > 1e-3
        want_loss += oracle.value(scalar, point)
        want += [oracle.value(oracle.elementary(sp.diff(scalar, v)), point) for v in (w0, w1)]
    oracle.assert_close(loss, want_loss, 1e-10)
    np.testing.assert_allclose(grads["W"].ravel(), want, rtol=1e-10)


def test_functions_without_instructions_compile_unrolled_even_when_large():
    """The interpreter has no instruction for the new functions: automatic choice
    compiles such a model unrolled, and forcing the interpreter says why it cannot."""
    model = symgrad.Model(sp.erf(U) + A * B, [A, B], inputs=[X])
    assert "interpreter" not in symgrad.compile(model).source.splitlines()[4]
    with pytest.raises(symgrad.OptionError, match="ERF"):
        symgrad.compile(model, interpret=True)


def test_unsupported_function_error_names_it_and_points_to_the_list():
    with pytest.raises(UnsupportedFunctionError) as info:
        symgrad.compile(symgrad.Model(sp.besselj(0, A) + A, [A]))
    message = str(info.value)
    assert "besselj" in message and "Supported functions" in message
    assert "symgrad.supported_functions()" in message


def test_readme_lists_exactly_the_supported_functions():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- functions: start -->\n(.*?)<!-- functions: end -->", readme,
                      re.S)
    assert block, "README has no generated function list"
    assert block.group(1) == catalog.readme_block(), \
        "README's function list is stale: run `symgrad functions --write README.md`"
