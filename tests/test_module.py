"""The saved module: standalone (numpy, numba, stdlib only; runs where SymPy cannot be
imported) with the Kernel's numbers; written all-or-nothing; user-chosen names never
become code."""

import ast
import errno
import io
import json
import os
import subprocess
import sys
import tokenize

import numpy as np
import pytest
import sympy as sp

import symgrad

# Run in a fresh interpreter: make sympy, symgrad and codegen unimportable, load the
# module at argv[1] as a file, call it as the request in argv[2] says, print JSON.
STANDALONE = r'''
import importlib.abc, importlib.util, json, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("sympy", "symgrad", "codegen"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Blocked())
for name in ("sympy", "symgrad", "codegen"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the blocker let {name} through")

import numpy as np

path, request = sys.argv[1], json.load(open(sys.argv[2]))
spec = importlib.util.spec_from_file_location("standalone_kernel", path)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)

data = request["data"]
data = None if data is None else {k: np.array(v, dtype=np.float64) for k, v in data.items()}
loss = module.loss(request["params"], data)
total, grads = module.loss_and_grad(request["params"], data)
missing = dict(request["params"])
missing.pop(module.PARAMS[0])
try:
    module.loss(missing, data)
    error = None
except module.SymgradError as exc:
    error = [type(exc).__name__, isinstance(exc, module.ArgumentError),
             isinstance(exc, ValueError), str(exc)]
print(json.dumps({
    "loss": loss.hex(), "total": total.hex(), "grads": {k: v.hex() for k, v in grads.items()},
    "PARAMS": list(module.PARAMS), "INPUTS": list(module.INPUTS), "error": error,
    "loaded": sorted(m for m in sys.modules
                     if m.partition(".")[0] in ("sympy", "symgrad", "codegen")),
}))
'''


def run_standalone(tmp_path, module_path, params, data, jit=True):
    """The JSON the STANDALONE script prints, and its whole stdout."""
    script, request = tmp_path / "standalone.py", tmp_path / "request.json"
    script.write_text(STANDALONE)
    data = None if data is None else {k: np.asarray(v).tolist() for k, v in data.items()}
    request.write_text(json.dumps({"params": params, "data": data}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if not jit:
        env["NUMBA_DISABLE_JIT"] = "1"
    done = subprocess.run([sys.executable, str(script), str(module_path), str(request)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stdout


def as_hex(loss, grads):
    return loss.hex(), {k: v.hex() for k, v in grads.items()}


U, V = sp.symbols("u v", real=True)
W = sp.symbols("w0:3", real=True)
# Branches, nonsmooth ops and symgrad's own functions: the whole printer's vocabulary.
BUSY_LOSS = (symgrad.softplus(W[0] * U + W[1]) - V * W[2] * U
             + sp.Piecewise((W[1] ** 2 * U, U > 0), (sp.Abs(W[0] * V), True))
             + sp.Max(W[2], U) * sp.log(1 + sp.exp(W[0] * V)) + symgrad.sigmoid(W[1] * U))


def busy_model():
    return symgrad.Model(BUSY_LOSS, W, [U, V], reduction="mean", penalty=W[0] ** 2 / 4)


@pytest.fixture(scope="module")
def busy_kernel():
    return symgrad.compile(busy_model())


def busy_call():
    rng = np.random.default_rng(11)
    params = {"w0": 0.3, "w1": -1.2, "w2": 0.8}
    return params, {"u": rng.standard_normal(9000), "v": rng.standard_normal(9000)}


def test_saved_module_runs_without_sympy_and_matches_bitwise(busy_kernel, tmp_path):
    params, data = busy_call()
    path = busy_kernel.save(tmp_path / "busy_kernels.py")
    assert path.read_text(encoding="utf-8") == busy_kernel.source
    got, _ = run_standalone(tmp_path, path, params, data)
    loss, grads = busy_kernel.loss_and_grad(params, data)
    assert got["loaded"] == []
    assert (got["total"], got["grads"]) == as_hex(loss, grads)
    assert got["loss"] == busy_kernel.loss(params, data).hex()
    assert got["PARAMS"] == ["w0", "w1", "w2"] and got["INPUTS"] == ["u", "v"]
    # Standalone, errors are the module's own classes, still ArgumentError and ValueError.
    assert got["error"][:3] == ["MissingArgumentError", True, True]
    assert "'w0'" in got["error"][3]


STDLIB = set(sys.stdlib_module_names)


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            found.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("__import__", "exec", "eval", "compile")
    return found


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_saved_module_imports_only_numpy_numba_and_stdlib(busy_kernel, method):
    source = busy_kernel.source if method == "reverse" else \
        symgrad.compile(busy_model(), method=method).source
    imports = imported_modules(source)
    assert {"numpy", "numba"} <= imports
    assert imports - {"numpy", "numba"} <= STDLIB, imports


# ---- all-or-nothing writes ----

def listing(directory):
    return sorted(p.name for p in directory.iterdir())


def test_save_under_a_file_creates_nothing(busy_kernel, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(symgrad.OutputPathError, match="is not a directory"):
        busy_kernel.save(tmp_path / "file.txt" / "missing" / "k.py")
    assert listing(tmp_path) == ["file.txt"]


def test_save_into_missing_folders_makes_them(busy_kernel, tmp_path):
    busy_kernel.save(tmp_path / "missing" / "k.py")
    assert listing(tmp_path / "missing") == ["k.py"]


@pytest.mark.parametrize("interrupt", [OSError(errno.EIO, "Input/output error"),
                                       KeyboardInterrupt()], ids=["oserror", "interrupt"])
def test_failed_rename_keeps_the_old_file_and_no_temp(busy_kernel, tmp_path, monkeypatch,
                                                      interrupt):
    target = tmp_path / "k.py"
    target.write_text("previous contents\n")

    def failing_replace(src, dst):
        raise interrupt

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(symgrad.OutputPathError if isinstance(interrupt, OSError)
                       else KeyboardInterrupt):
        busy_kernel.save(target)
    monkeypatch.undo()
    assert listing(tmp_path) == ["k.py"]
    assert target.read_text() == "previous contents\n"


WRITE_FAILS = r'''
import resource, signal, sys
import sympy as sp
import symgrad
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # a too-big write then fails with EFBIG
a = sp.Symbol("a", real=True)
kernel = symgrad.compile(symgrad.Model(a**2, [a]))
assert len(kernel.source) > 4096
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    kernel.save(sys.argv[1])
except symgrad.OutputPathError as exc:
    print("OutputPathError", exc)
'''


def test_a_write_failing_midway_leaves_the_old_file_and_no_temp(tmp_path):
    """A real mid-write failure (the file-size limit), not a patched function."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / "k.py"
    target.write_text("previous contents\n")
    script = tmp_path / "write_fails.py"
    script.write_text(WRITE_FAILS)
    done = subprocess.run([sys.executable, str(script), str(target)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OutputPathError") and str(target) in done.stdout
    assert listing(out) == ["k.py"]
    assert target.read_text() == "previous contents\n"


def test_save_replaces_an_existing_file(busy_kernel, tmp_path):
    target = tmp_path / "k.py"
    target.write_text("old\n")
    assert busy_kernel.save(str(target)) == target
    assert target.read_text(encoding="utf-8") == busy_kernel.source
    assert listing(tmp_path) == ["k.py"]


# ---- symbol names are data, never code ----

def hostile_names(marker):
    return [
        f'__import__("pathlib").Path({str(marker)!r}).touch()',
        '__import__("os").system("echo pwned")',
        "lambda", "class", "None", "import os", "it's \"quoted\"", "'''", '"""',
        "new\nline", "carriage\rreturn", "back\\slash\\", "nul\x00byte", "# comment",
        "αβγ", "x", "𝑥", "ｘ", "p0", "x0", "t0", "out", "params", "np", "numba", "n", "{}",
    ]


def test_hostile_symbol_names_stay_data(tmp_path):
    marker = tmp_path / "pwned"
    names = hostile_names(marker)
    params = [sp.Symbol(name, real=True) for name in names]
    column = sp.Symbol('d0"); __import__("os").system("echo pwned") #', real=True)
    loss = sum((i + 1) * p * column for i, p in enumerate(params)) + sum(p**2 for p in params)
    model = symgrad.Model(loss, params, [column],
                          name='m"\n__import__("os").system("echo pwned")')
    kernel = symgrad.compile(model)
    values = {name: float(i % 5) for i, name in enumerate(names)}
    data = {column.name: np.arange(6.0)}
    loss_value, grads = kernel.loss_and_grad(values, data)
    assert list(grads) == names
    # Per sample: sum_i (i + 1) p_i u + p_i^2, over u = 0, 1, ..., 5.
    assert grads == {n: (i + 1) * 15.0 + 12 * values[n] for i, n in enumerate(names)}
    assert loss_value == sum((i + 1) * values[n] * 15.0 + 6 * values[n] ** 2
                             for i, n in enumerate(names))

    source = kernel.source
    assert source.isascii()
    code_tokens = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                   if tok.type not in (tokenize.STRING, tokenize.COMMENT)]
    assert not {"__import__", "system", "pathlib", "touch", "os", "pwned"} & set(code_tokens)

    path = kernel.save(tmp_path / "hostile_kernels.py")
    got, stdout = run_standalone(tmp_path, path, values, data, jit=False)
    assert len(stdout.splitlines()) == 1     # only the JSON: no "echo pwned" ran
    assert not marker.exists()
    assert got["PARAMS"] == names and got["INPUTS"] == [column.name]
    assert (got["total"], got["grads"]) == as_hex(loss_value, grads)


@pytest.mark.parametrize("first", ["codegen.module", "codegen.printer"])
def test_codegen_can_be_imported_before_symgrad(first):
    done = subprocess.run([sys.executable, "-c", f"import {first}, symgrad"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


LOAD_BY_PATH = """
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("by_path", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)          # not registered in sys.modules by the caller
loss, grads = module.loss_and_grad({"w0": 0.3, "w1": -1.2, "w2": 0.8},
                                   {"u": np.linspace(-1, 1, 50), "v": np.linspace(0, 2, 50)})
hits = sum(module._loss_and_grad_core.stats.cache_hits.values())
print(json.dumps([loss, hits, sys.modules["by_path"] is module]))
"""


def test_module_loaded_by_path_without_registering_uses_the_cache_next_time(busy_kernel,
                                                                              tmp_path):
    """spec_from_file_location + exec_module, as the README shows, in two processes: the
    second loads Numba's cache (before the module registered itself, it failed inside
    Numba with "No module named '<dynamic>'")."""
    path = busy_kernel.save(tmp_path / "by_path_kernels.py")
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", LOAD_BY_PATH, str(path)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0][0] == runs[1][0] and runs[0][2] and runs[1][2]
    assert runs[0][1] == 0 and runs[1][1] == 1
