"""One test per class of bad input: the error's class, and a message that names the culprit.

Every error is a `symgrad.SymgradError`, including those raised by a saved module
that was imported on its own after symgrad was.
"""

import importlib.util
import inspect
import sys

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.errors as E
from symgrad.modelfile import load_model

ALPHA, BETA = sp.symbols("alpha beta", real=True)
XIN, YOUT = sp.symbols("xin yout", real=True)
SAMPLE_LOSS = (ALPHA * XIN + BETA - YOUT) ** 2
GOOD_PARAMS = {"alpha": 1.0, "beta": 0.5}
GOOD_DATA = {"xin": np.arange(4.0), "yout": np.ones(4)}


@pytest.fixture(scope="module")
def kernel():
    """reduction="mean", so an empty batch is an error. Every case fails before any JIT."""
    return symgrad.compile(symgrad.Model(SAMPLE_LOSS, [ALPHA, BETA], [XIN, YOUT],
                                         reduction="mean"))


@pytest.fixture(scope="module")
def plain_kernel():
    return symgrad.compile(symgrad.Model(ALPHA * BETA, [ALPHA, BETA]))


def with_data(**columns):
    return {**GOOD_DATA, **columns}


# (id, params, data, error class, substrings the message must contain)
CALL_CASES = [
    ("missing-param", {"alpha": 1.0}, GOOD_DATA, E.MissingArgumentError, ["'beta'"]),
    ("unknown-param", {**GOOD_PARAMS, "gamma": 2.0}, GOOD_DATA, E.UnknownArgumentError,
     ["'gamma'"]),
    ("missing-input", GOOD_PARAMS, {"xin": np.ones(4)}, E.MissingArgumentError, ["'yout'"]),
    ("unknown-input", GOOD_PARAMS, with_data(zed=np.ones(4)), E.UnknownArgumentError,
     ["'zed'"]),
    ("no-data", GOOD_PARAMS, None, E.MissingArgumentError, ["data", "xin", "yout"]),
    ("lengths", GOOD_PARAMS, with_data(yout=np.ones(5)), E.LengthMismatchError,
     ["'xin'", "'yout'", "4", "5"]),
    ("2-d", GOOD_PARAMS, with_data(xin=np.ones((4, 1))), E.ShapeError, ["'xin'", "(4, 1)"]),
    ("0-d", GOOD_PARAMS, with_data(yout=np.float64(1.0)), E.ShapeError, ["'yout'", "1-D"]),
    ("ragged", GOOD_PARAMS, with_data(yout=[1.0, [2.0, 3.0], 4.0, 5.0]), E.ShapeError,
     ["'yout'"]),
    ("int-data", GOOD_PARAMS, with_data(yout=np.arange(4)), E.DTypeError, ["'yout'", "int"]),
    ("bool-data", GOOD_PARAMS, with_data(xin=np.ones(4, dtype=bool)), E.DTypeError,
     ["'xin'", "bool"]),
    ("complex-data", GOOD_PARAMS, with_data(xin=np.ones(4, dtype=complex)), E.DTypeError,
     ["'xin'", "complex"]),
    ("object-data", GOOD_PARAMS, with_data(xin=np.array([1.0, 2, "3", 4], dtype=object)),
     E.DTypeError, ["'xin'", "object"]),
    ("nan-param", {**GOOD_PARAMS, "beta": float("nan")}, GOOD_DATA, E.NonFiniteError,
     ["'beta'", "nan"]),
    ("inf-param", {**GOOD_PARAMS, "alpha": np.inf}, GOOD_DATA, E.NonFiniteError,
     ["'alpha'", "inf"]),
    ("-inf-param", {**GOOD_PARAMS, "alpha": -np.inf}, GOOD_DATA, E.NonFiniteError,
     ["'alpha'", "inf"]),
    ("params-list", [1.0, 0.5], GOOD_DATA, E.DTypeError, ["params", "dict", "list"]),
    ("params-none", None, GOOD_DATA, E.DTypeError, ["params", "dict", "NoneType"]),
    ("params-array", np.array([1.0, 0.5]), GOOD_DATA, E.DTypeError, ["params", "ndarray"]),
    ("param-str", {**GOOD_PARAMS, "beta": "0.5"}, GOOD_DATA, E.DTypeError, ["'beta'", "str"]),
    ("param-complex", {**GOOD_PARAMS, "beta": 1j}, GOOD_DATA, E.DTypeError, ["'beta'"]),
    ("param-bool", {**GOOD_PARAMS, "beta": True}, GOOD_DATA, E.DTypeError, ["'beta'", "bool"]),
    ("param-vector", {**GOOD_PARAMS, "beta": np.ones(2)}, GOOD_DATA, E.ShapeError,
     ["'beta'", "(2,)"]),
    ("data-list", GOOD_PARAMS, [np.ones(4), np.ones(4)], E.DTypeError, ["data", "list"]),
    ("data-array", GOOD_PARAMS, np.ones((2, 4)), E.DTypeError, ["data", "ndarray"]),
    ("empty-mean", GOOD_PARAMS, {"xin": np.zeros(0), "yout": np.zeros(0)},
     E.EmptyBatchError, ["0 samples", "mean"]),
]


@pytest.mark.parametrize("entry", ["loss", "loss_and_grad"])
@pytest.mark.parametrize("params, data, error, culprits",
                         [case[1:] for case in CALL_CASES], ids=[c[0] for c in CALL_CASES])
def test_bad_call_arguments(kernel, entry, params, data, error, culprits):
    with pytest.raises(error) as caught:
        getattr(kernel, entry)(params, data)
    assert isinstance(caught.value, symgrad.SymgradError)
    assert isinstance(caught.value, symgrad.ArgumentError)
    for culprit in culprits:
        assert culprit in str(caught.value)


@pytest.mark.parametrize("data, error, culprits", [
    ({"xin": np.ones(3)}, E.UnknownArgumentError, ["'xin'", "no inputs"]),
    (np.ones(3), E.DTypeError, ["data", "ndarray"]),
    ([np.ones(3)], E.DTypeError, ["data", "list"]),
], ids=["dict", "array", "list"])
def test_data_for_a_model_without_inputs(plain_kernel, data, error, culprits):
    with pytest.raises(error) as caught:
        plain_kernel.loss_and_grad(GOOD_PARAMS, data)
    for culprit in culprits:
        assert culprit in str(caught.value)


def test_dtype_errors_are_also_type_errors(kernel):
    with pytest.raises(TypeError):
        kernel.loss(GOOD_PARAMS, with_data(xin=np.arange(4)))


# (id, build the model, error class, substrings the message must contain)
MODEL_CASES = [
    ("unsupported-function", lambda: symgrad.Model(sp.besselj(0, ALPHA), [ALPHA]),
     E.UnsupportedFunctionError, ["besselj", "Supported functions"]),
    ("undefined-function", lambda: symgrad.Model(sp.Function("mystery")(ALPHA) + BETA,
                                                 [ALPHA, BETA]),
     E.UnsupportedFunctionError, ["mystery"]),
    ("complex-constant", lambda: symgrad.Model(sp.I * ALPHA, [ALPHA]),
     E.UnsupportedFunctionError, ["I"]),
    ("integral", lambda: symgrad.Model(sp.Integral(ALPHA * XIN, (XIN, 0, 1)), [ALPHA]),
     E.UnsupportedFunctionError, ["Integral"]),
    ("sum", lambda: symgrad.Model(sp.Sum(ALPHA * sp.Symbol("k", integer=True),
                                         (sp.Symbol("k", integer=True), 1, 3)), [ALPHA]),
     E.UnsupportedFunctionError, ["Sum"]),
    ("undeclared-symbol", lambda: symgrad.Model(ALPHA * sp.Symbol("zeta"), [ALPHA]),
     E.UndeclaredSymbolError, ["zeta"]),
    ("undeclared-in-penalty", lambda: symgrad.Model(ALPHA, [ALPHA],
                                                    penalty=sp.Symbol("kappa") * ALPHA),
     E.UndeclaredSymbolError, ["kappa"]),
    ("penalty-reads-input", lambda: symgrad.Model(ALPHA * XIN, [ALPHA], [XIN],
                                                  penalty=XIN * ALPHA),
     E.InvalidModelError, ["xin", "penalty"]),
    ("param-is-input", lambda: symgrad.Model(ALPHA * XIN, [ALPHA, XIN], [XIN]),
     E.DuplicateSymbolError, ["'xin'"]),
    ("param-twice", lambda: symgrad.Model(ALPHA * BETA, [ALPHA, BETA, ALPHA]),
     E.DuplicateSymbolError, ["'alpha'", "twice"]),
    ("input-twice", lambda: symgrad.Model(ALPHA * XIN, [ALPHA], [XIN, XIN]),
     E.DuplicateSymbolError, ["'xin'", "twice"]),
    ("same-name-declared", lambda: symgrad.Model(ALPHA, [ALPHA, sp.Symbol("alpha")]),
     E.DuplicateSymbolError, ["'alpha'"]),
    ("same-name-param-and-input", lambda: symgrad.Model(ALPHA, [ALPHA],
                                                        [sp.Symbol("alpha", positive=True)]),
     E.DuplicateSymbolError, ["'alpha'"]),
    ("same-name-in-loss", lambda: symgrad.Model(ALPHA * sp.Symbol("alpha"), [ALPHA]),
     E.DuplicateSymbolError, ["'alpha'"]),
    ("matrix-loss", lambda: symgrad.Model(sp.Matrix([ALPHA, BETA]), [ALPHA, BETA]),
     E.InvalidModelError, ["matrix", "(2, 1)"]),
    ("string-loss", lambda: symgrad.Model("alpha**2", [ALPHA]),
     E.InvalidModelError, ["str"]),
    ("relation-loss", lambda: symgrad.Model(sp.Eq(ALPHA, 1), [ALPHA]),
     E.InvalidModelError, ["Equality"]),
    ("bad-reduction", lambda: symgrad.Model(ALPHA * XIN, [ALPHA], [XIN], reduction="max"),
     E.InvalidModelError, ["'max'", "reduction"]),
    ("param-not-symbol", lambda: symgrad.Model(ALPHA, ["alpha"]),
     E.InvalidModelError, ["'alpha'", "params"]),
]


@pytest.mark.parametrize("build, error, culprits", [c[1:] for c in MODEL_CASES],
                         ids=[c[0] for c in MODEL_CASES])
def test_bad_models(build, error, culprits):
    with pytest.raises(error) as caught:
        build()
    assert isinstance(caught.value, symgrad.SymgradError)
    for culprit in culprits:
        assert culprit in str(caught.value)


@pytest.mark.parametrize("kwargs, culprit", [
    ({"method": "forward"}, "'forward'"), ({"method": None}, "None"),
    ({"target": "gpu"}, "'gpu'"), ({"target": "CPU"}, "'CPU'"),
])
def test_bad_method_or_target(kwargs, culprit):
    model = symgrad.Model(ALPHA**2, [ALPHA])
    with pytest.raises(symgrad.OptionError) as caught:
        symgrad.compile(model, **kwargs)
    assert culprit in str(caught.value)


def test_compile_needs_a_model():
    with pytest.raises(symgrad.OptionError, match="Model"):
        symgrad.compile(ALPHA**2)


MODEL_FILES = {
    "no-model": ("import sympy\nmodle = 3\n", ["no module-level `model`"]),
    "raises": ("raise RuntimeError('boom at line\\ntwo')\n", ["RuntimeError", "boom"]),
    "syntax": ("def broken(:\n", ["SyntaxError"]),
    "not-a-model": ("model = 42\n", ["int", "symgrad.Model"]),
}


@pytest.mark.parametrize("name", sorted(MODEL_FILES))
def test_bad_model_files(tmp_path, name):
    text, culprits = MODEL_FILES[name]
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    with pytest.raises(symgrad.ModelFileError) as caught:
        load_model(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    for culprit in culprits:
        assert culprit in str(caught.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(symgrad.ModelFileError, match="does not exist"):
        load_model(tmp_path / "nowhere.py")


def test_model_file_raising_a_symgrad_error_keeps_its_class(tmp_path):
    path = tmp_path / "undeclared.py"
    path.write_text("import sympy, symgrad\na = sympy.Symbol('a')\n"
                    "model = symgrad.Model(a * sympy.Symbol('omega'), [a])\n")
    with pytest.raises(symgrad.UndeclaredSymbolError, match="omega"):
        load_model(path)


@pytest.mark.parametrize("where", ["is-a-dir", "under-a-file", "deep-under-a-file"])
def test_unwritable_output_paths(kernel, tmp_path, where):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "adir").mkdir()
    target = {"is-a-dir": tmp_path / "adir", "under-a-file": tmp_path / "file.txt" / "k.py",
              "deep-under-a-file": tmp_path / "file.txt" / "sub" / "k.py"}[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(symgrad.OutputPathError) as caught:
        kernel.save(target)
    assert isinstance(caught.value, OSError)
    assert str(target) in str(caught.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_missing_output_folders_are_made(kernel, tmp_path):
    path = kernel.save(tmp_path / "build" / "nested" / "k.py")
    assert path.read_text(encoding="utf-8") == kernel.source
    assert sorted(p.name for p in (tmp_path / "build" / "nested").iterdir()) == ["k.py"]


def test_every_public_error_is_a_symgrad_error():
    classes = [obj for _, obj in inspect.getmembers(E, inspect.isclass)
               if issubclass(obj, BaseException)]
    assert len(classes) >= 15
    assert all(issubclass(cls, symgrad.SymgradError) for cls in classes)
    for cls in classes:
        assert getattr(symgrad, cls.__name__) is cls


def test_saved_module_raises_symgrads_classes(kernel, tmp_path):
    """A saved module imported by importlib after symgrad: `except symgrad.X` works."""
    path = kernel.save(tmp_path / "saved_errors_kernel.py")
    spec = importlib.util.spec_from_file_location("saved_errors_kernel", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.SymgradError is symgrad.SymgradError
        try:
            module.loss_and_grad({"alpha": 1.0}, GOOD_DATA)
        except symgrad.SymgradError as exc:
            assert type(exc) is symgrad.MissingArgumentError
            assert "'beta'" in str(exc)
        else:
            pytest.fail("no error for a missing param")
        with pytest.raises(symgrad.EmptyBatchError):
            module.loss(GOOD_PARAMS, {"xin": np.zeros(0), "yout": np.zeros(0)})
        with pytest.raises(symgrad.DTypeError):
            module.loss(GOOD_PARAMS, with_data(xin=np.arange(4)))
    finally:
        del sys.modules[spec.name]
