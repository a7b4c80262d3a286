"""Hostile input: the error catalogue, odd arrays, bad model files, huge expressions.

* Every entry of docs/errors.md: its example raises the class of its heading, and
  the message names the culprit. (tests/test_errors.py checks many more variants.)
* What is documented as not an error works: non-contiguous, read-only and float32
  arrays.
* Model files that declare a parameter twice fail with a named error through the
  API and the CLI, never run a symbol name as code, and leave no file behind.
  (Hostile symbol names in generated code and atomic writes: tests/test_module.py.)
* Very deep (100,000 levels) and very wide (100,000 terms) losses: Model
  construction, derivation and source generation work, without RecursionError;
  what SymPy itself cannot do (sympy.diff of the deep one) is a named error.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.errors
from codegen import runtime
from codegen.module import generate
from symgrad.files import write_atomic
from symgrad.options import CompileOptions
from symgrad.cli import main
from symgrad.derivation import derive
from symgrad.matrix import total
from symgrad.modelfile import load_model

ROOT = Path(__file__).resolve().parent.parent
ERRORS_DOC = ROOT / "docs" / "errors.md"


# ------------------------------------------------------------ the error catalogue

def catalogue() -> list[tuple[str, str, str]]:
    """(class name, culprit the message must name, code) for each `### \\`Name\\``
    entry; a code block opening a `##` section before its first entry is shared
    setup, run before each of that section's examples."""
    entries, setup, current = [], "", None
    lines = ERRORS_DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            setup, current = "", None
        elif m := re.fullmatch(r"### `(\w+)`", line):
            current = {"name": m.group(1), "names": None, "code": None}
            entries.append(current)
        elif current is not None and line.startswith("Names: `"):
            current["names"] = re.findall(r"`([^`]*)`", line)
        elif current is not None and line.startswith("Fix: `"):
            current["fix"] = line[len("Fix: `"):-1]
        elif line == "```python":
            end = lines.index("```", i + 1)
            code = "\n".join(lines[i + 1:end]) + "\n"
            if current is None:
                setup = code
            elif current["code"] is None:
                current["code"] = setup + code
            i = end
        i += 1
    return [(e["name"], e["names"] + [e.get("fix", "")], e["code"]) for e in entries]


CATALOGUE = catalogue()


def error_classes() -> set[type]:
    found = set()
    for module in (symgrad.errors, runtime):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, symgrad.SymgradError):
                found.add(cls)
    return found


def test_catalogue_lists_every_error_class_once():
    names = [name for name, _, _ in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) == {cls.__name__ for cls in error_classes()}
    assert all(names_[:-1] and code for _, names_, code in CATALOGUE)
    missing_fix = [name for name, names_, _ in CATALOGUE if not names_[-1]]
    assert not missing_fix, f"entries without a Fix: line: {missing_fix}"


@pytest.mark.parametrize("name, culprit, code", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue_example_raises_its_class(name, culprit, code):
    """The message names the culprit(s) and says the fix (the last entry of culprit)."""
    cls = getattr(symgrad, name)
    with pytest.raises(cls) as caught:
        exec(compile(code, f"docs/errors.md: {name}", "exec"), {"__name__": "example"})
    assert isinstance(caught.value, symgrad.SymgradError)
    for named in culprit:
        assert named in str(caught.value), str(caught.value)


# ------------------------------------------------------------ not errors

A, B = sp.symbols("a b", real=True)
X, Y = sp.symbols("x y", real=True)


@pytest.fixture(scope="module")
def scalar_kernel():
    return symgrad.compile(symgrad.Model((A * X + B - Y) ** 2, [A, B], [X, Y]))


def test_non_contiguous_read_only_and_float32_data_work(scalar_kernel):
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((3, 40))
    params = {"a": 0.7, "b": -0.2}
    x, y = wide[0, ::2].copy(), wide[1, ::2].copy()
    want = scalar_kernel.loss_and_grad(params, {"x": x, "y": y})
    strided = {"x": wide[0, ::2], "y": wide[1, ::2]}           # step 2: not contiguous
    column = {"x": np.asfortranarray(wide.T)[::2, 0], "y": y}  # a column of a matrix
    frozen = {"x": x.copy(), "y": y.copy()}
    for arr in frozen.values():
        arr.setflags(write=False)
    assert not strided["x"].flags.c_contiguous and not frozen["x"].flags.writeable
    for data in (strided, column, frozen):
        assert scalar_kernel.loss_and_grad(params, data) == want
        assert scalar_kernel.loss(params, data) == pytest.approx(want[0], rel=1e-15)
    assert not frozen["x"].flags.writeable          # untouched
    single = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    converted = {k: v.astype(np.float64) for k, v in single.items()}
    assert scalar_kernel.loss_and_grad(params, single) == \
        scalar_kernel.loss_and_grad(params, converted)
    readonly_params = np.array(0.7)
    readonly_params.setflags(write=False)
    assert scalar_kernel.loss({"a": readonly_params, "b": -0.2}, {"x": x, "y": y}) == want[0]


def test_matrix_models_take_transposed_and_read_only_arrays():
    n = sp.Symbol("n")
    Xm, Wm = sp.MatrixSymbol("X", n, 3), sp.MatrixSymbol("W", 3, 2)
    Tm = sp.MatrixSymbol("T", n, 2)
    kernel = symgrad.compile(symgrad.Model(total(sp.HadamardPower(Xm * Wm - Tm, 2)),
                                           [Wm], [Xm, Tm]))
    mod = kernel.module
    rng = np.random.default_rng(4)
    X0, W0, T0 = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), \
        rng.standard_normal((5, 2))

    def run(params, data):
        theta, given = mod._pack(params)
        out = np.empty(1 + len(theta))
        mod._loss_and_grad_core.py_func(theta, *mod._columns(data), out)
        return out[0], mod._unpack(out[1:], given)["W"]

    want = run({"W": W0}, {"X": X0, "T": T0})
    frozen = W0.copy()
    frozen.setflags(write=False)
    transposed = np.ascontiguousarray(X0.T).T            # Fortran order, same values
    for params, data in [({"W": np.asfortranarray(W0)}, {"X": transposed, "T": T0[:, :]}),
                         ({"W": frozen}, {"X": X0[::1, :], "T": np.asfortranarray(T0)})]:
        loss, grad = run(params, data)
        assert loss == want[0]
        np.testing.assert_array_equal(grad, want[1])
    assert not frozen.flags.writeable


# ------------------------------------------------------------ hostile model files

CANARY = "symgrad_hostile_canary"
CODE_NAME = f"x'); open('{CANARY}', 'w').write('ran'); ('"

DUPLICATE_FILES = {
    "param twice": "a, b = sp.symbols('a b')\nmodel = symgrad.Model(a * b, [a, b, a])\n",
    "same name, two symbols": ("a1 = sp.Symbol('a')\na2 = sp.Symbol('a', real=True)\n"
                               "model = symgrad.Model(a1 * a2, [a1, a2])\n"),
    "param and input": "a, x = sp.symbols('a x')\nmodel = symgrad.Model(a * x, [a, x], [x])\n",
    "code-like name twice": (f"c = sp.Symbol({CODE_NAME!r})\n"
                             f"model = symgrad.Model(c ** 2, [c, c])\n"),
    "code-like name, two symbols": (f"c1 = sp.Symbol({CODE_NAME!r})\n"
                                    f"c2 = sp.Symbol({CODE_NAME!r}, positive=True)\n"
                                    f"model = symgrad.Model(c1 * c2, [c1], [c2])\n"),
}


@pytest.mark.parametrize("case", sorted(DUPLICATE_FILES))
def test_model_file_declaring_a_param_twice(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "dup_model.py"
    path.write_text("import sympy as sp\nimport symgrad\n" + DUPLICATE_FILES[case])
    with pytest.raises(symgrad.DuplicateSymbolError) as caught:
        load_model(path)
    message = str(caught.value)
    assert re.search(r"'a'|'x'|x'\); open", message), message

    out = tmp_path / "out" / "kernel.py"
    out.parent.mkdir()
    rc = main(["compile", str(path), "-o", str(out)])
    _, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("symgrad: error: DuplicateSymbolError: ")
    assert list(out.parent.iterdir()) == []                  # no file, no temp file
    assert not (tmp_path / CANARY).exists()                  # the name stayed text


def test_cli_failure_leaves_an_existing_output_unchanged(tmp_path, capsys):
    path = tmp_path / "dup_model.py"
    path.write_text("import sympy as sp\nimport symgrad\n" + DUPLICATE_FILES["param twice"])
    out = tmp_path / "kernel.py"
    out.write_text("previous contents\n")
    assert main(["compile", str(path), "-o", str(out)]) == 2
    capsys.readouterr()
    assert out.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup_model.py", "kernel.py"]


def test_many_params_are_checked_in_linear_time():
    """50,000 params: declaring them, and finding the one listed twice, are linear."""
    params = [sp.Symbol(f"p{k}", real=True) for k in range(50_000)]
    start = time.perf_counter()
    model = symgrad.Model(sp.Add(*params[:10]), params)
    with pytest.raises(symgrad.DuplicateSymbolError, match="'p49999'"):
        symgrad.Model(params[0], [*params, params[-1]])
    assert len(model.params) == 50_000
    assert time.perf_counter() - start < 20       # quadratic checks took minutes


# ------------------------------------------------------------ deep and wide

W, BB = sp.symbols("w b", real=True)


def deep_loss(levels: int) -> sp.Expr:
    """`levels` (or up to 2 more) nested SymPy nodes: x w, x + b, sin(x) and
    log(1 + exp(x)) in turn (unevaluated: SymPy's simplification recurses on deep args)."""
    e, depth, k = W, 0, 0
    while depth < levels:
        kind = k % 4
        if kind == 0:
            e = sp.Mul(e, W, evaluate=False)
        elif kind == 1:
            e = sp.Add(e, BB, evaluate=False)
        elif kind == 2:
            e = sp.sin(e, evaluate=False)
        else:
            e = sp.log(sp.Add(1, sp.exp(e, evaluate=False), evaluate=False), evaluate=False)
            depth += 2
        depth += 1
        k += 1
    return e


def wide_loss(terms: int) -> sp.Expr:
    """A polynomial with `terms` terms: w + w^2 + ... + w^terms + b."""
    return sp.Add(*[W ** k for k in range(1, terms + 1)], BB)


def pipeline(build, tmp_path: Path, interpret: bool | None = False):
    """Build, Model, derive (reverse), generate the module text, write it; seconds each.
    Unrolled by default (the front end and the printer at scale); interpret=None lets a
    program this large go to the interpreter, as compile() would."""
    seconds = {}
    start = time.perf_counter()
    loss = build()
    seconds["build (SymPy)"] = time.perf_counter() - start
    start = time.perf_counter()
    model = symgrad.Model(loss, [W, BB], name="hostile")
    seconds["Model"] = time.perf_counter() - start
    start = time.perf_counter()
    d = derive(model)
    seconds["derive"] = time.perf_counter() - start
    start = time.perf_counter()
    source = generate(d, CompileOptions(interpret=interpret), version=symgrad.__version__,
                      numba_version="-",
                      model_name="hostile")
    seconds["generate"] = time.perf_counter() - start
    start = time.perf_counter()
    path = write_atomic(tmp_path / "hostile_kernel.py", source)
    seconds["write"] = time.perf_counter() - start
    assert path.read_text(encoding="utf-8") == source
    assert [p.name for p in tmp_path.iterdir()] == ["hostile_kernel.py"]
    assert "def loss_and_grad(params, data=None, check_finite=False):" in source
    print(" ".join(f"{k} {v:.1f} s;" for k, v in seconds.items()))
    return model, d, source


def test_deep_expression(tmp_path):
    """100,000 nested levels, 2/3 of them IR ops, all of it one chain."""
    levels = 100_000
    model, d, _ = pipeline(lambda: deep_loss(levels), tmp_path)
    assert d.sizes()["forward_ops"] >= 0.6 * levels
    assert dict(d.rewrites)["log(1 + exp(x)) -> softplus(x)"] == (levels + 5) // 6
    assert repr(model).startswith("Model(loss=")
    # sympy.diff recurses: the direct method is a named error, not a RecursionError.
    with pytest.raises(symgrad.ExpressionTooDeepError, match="method='reverse'"):
        derive(model, "symbolic")
    # An unsupported function around it is reported by name (its argument elided).
    # (an undefined function: SymPy's own special functions inspect their argument
    # recursively when they are built)
    with pytest.raises(symgrad.UnsupportedFunctionError, match="unsupported function f in"):
        symgrad.Model(sp.Function("f")(model.loss), [W, BB])


def test_wide_expression(tmp_path):
    """100,000 terms: one long sum (its left fold is 100,000 deep as well)."""
    terms = 100_000
    _, d, source = pipeline(lambda: wide_loss(terms), tmp_path)
    assert d.sizes()["forward_ops"] >= 2 * terms - 1
    assert source.count(" ** ") >= terms


# CI runs the whole of `make test` with NUMBA_BOUNDSCHECK=1 (.ci/run), so that a kernel
# indexing past an array raises IndexError instead of corrupting memory. This shows the
# switch reaches generated kernels: a core called directly (no argument checks) with a
# data column shorter than the first one.
BOUNDSCHECK_CHILD = r"""
import numpy as np, sympy as sp, symgrad
x, y, a = sp.symbols("x y a", real=True)
kernel = symgrad.compile(symgrad.Model(a * x * y, [a], [x, y]))
out = np.empty(2)
try:
    kernel.module._loss_and_grad_core(np.ones(1), np.ones(8), np.ones(3), out)
except IndexError as exc:
    print("IndexError:", exc)
"""


def test_boundscheck_mode_turns_overruns_into_index_errors(tmp_path):
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "SYMGRAD_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", BOUNDSCHECK_CHILD], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("IndexError: index is out of bounds"), done.stdout
