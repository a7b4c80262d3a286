"""codegen/vector_math.py: accuracy, IEEE special values, plain-Python twins, SIMD."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import vector_math_accuracy as acc  # noqa: E402
from codegen import vector_math as vm  # noqa: E402

DTYPES = [np.float64, np.float32]
CASES = [(name, dtype) for name in acc.FUNCTIONS for dtype in DTYPES]
IDS = [f"{name}-{np.dtype(dtype).name}" for name, dtype in CASES]


@pytest.mark.parametrize("name, dtype", CASES, ids=IDS)
def test_max_ulp_error_on_random_samples(name, dtype):
    """10^5 samples over every binade of the domain, and the edges, against longdouble."""
    row = acc.measure(name, dtype, 100_000, seed=7)
    assert row["max_ulp"] <= acc.BOUND[name], row


@pytest.mark.parametrize("name", acc.FUNCTIONS)
def test_agrees_with_mpmath(name):
    """A few hundred samples against mpmath directly (the reference's reference)."""
    import mpmath as mp
    x = acc.samples(name, 300, np.float64, seed=3)
    y = acc.evaluate(name, x)
    with mp.workdps(40):
        for xi, yi in zip(x, y):
            exact = acc.mpmath_reference(name, xi)
            if mp.isnan(exact):
                assert np.isnan(yi), (xi, yi)
                continue
            if np.isinf(yi) or mp.isinf(exact) or exact == 0:
                assert yi == float(exact), (xi, yi)
                continue
            e = max(int(mp.floor(mp.log(abs(exact), 2))) - 52, -1074)
            assert abs(mp.mpf(float(yi)) - exact) / mp.mpf(2) ** e <= acc.BOUND[name], (xi, yi)


SPECIALS = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e-320, 1000.0,
            -1000.0, 1e300, -1e300, -1.0, -2.0, 800.0, -800.0, 40.0, -40.0, 120.0, -120.0]


@pytest.mark.parametrize("name, dtype", CASES, ids=IDS)
def test_special_values_are_numpys(name, dtype):
    """Where the result is 0, +-inf, NaN or +-1 (and NumPy's is the exact one rounded),
    it is NumPy's, zeros with their sign."""
    with np.errstate(all="ignore"):
        x = np.array(SPECIALS, dtype=np.float64).astype(dtype)
        exact = acc.reference(name, x).astype(dtype)
    got, want = acc.evaluate(name, x), acc.numpy_function(name, x)
    special = ((want == 0) | np.isinf(want) | np.isnan(want) | (np.abs(want) == 1)) \
        & ((want == exact) | np.isnan(exact))
    assert special.sum() >= 4
    np.testing.assert_array_equal(got[special], want[special])
    zeros = special & (want == 0)
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]))
    assert acc.special_value_mismatches(name, dtype) == []


def test_signed_zeros_and_limits():
    x = np.array([-0.0, 0.0])
    for f in (vm.vexpm1, vm.vlog1p, vm.vtanh):
        assert [np.signbit(f(v)) for v in x] == [True, False], f
    for f in (vm.vexpm1_f32, vm.vlog1p_f32, vm.vtanh_f32):
        assert [np.signbit(f(np.float32(v))) for v in x] == [True, False], f
    assert vm.vsigmoid(-1000.0) == 0.0 and vm.vsigmoid(1000.0) == 1.0
    assert vm.vsigmoid_f32(np.float32(-1000)) == 0 and vm.vsigmoid_f32(np.float32(1000)) == 1
    assert vm.vsoftplus(-1000.0) == 0.0 and vm.vsoftplus(1000.0) == 1000.0
    assert vm.vtanh(-math.inf) == -1.0 and vm.vlog(5e-324) == np.log(5e-324)
    assert vm.vexp(709.782712893384) < math.inf and vm.vexp(709.7827128933841) == math.inf
    assert vm.vexp(-745.1332191019411) == 5e-324 and vm.vexp(-745.1332191019412) == 0.0


def test_float32_functions_return_float32():
    @numba.njit(error_model="numpy")
    def types(x):
        return (vm.vexp_f32(x), vm.vexpm1_f32(x), vm.vlog_f32(x), vm.vlog1p_f32(x),
                vm.vtanh_f32(x), vm.vsigmoid_f32(x), vm.vsoftplus_f32(x))
    types(np.float32(0.5))
    assert str(types.nopython_signatures[0].return_type) == "UniTuple(float32 x 7)"


# --------------------------------------------------- compiled == plain Python

PLAIN = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from codegen import vector_math as vm
x = np.load(sys.argv[2])
out = {}
with np.errstate(all="ignore"):
    for name in %r:
        for suffix, dtype, view in (("", np.float64, np.int64), ("_f32", np.float32, np.int32)):
            f = getattr(vm, "v" + name + suffix)
            y = np.array([f(v) for v in x.astype(dtype)], dtype=dtype)
            out[name + suffix] = y.view(view).tolist()
print(json.dumps(out))
"""


def test_plain_python_gives_the_same_bits(tmp_path):
    x = np.concatenate([acc.edges(), np.random.default_rng(5).uniform(-30, 30, 200),
                        np.exp2(np.random.default_rng(6).uniform(-1074, 1023, 100))])
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run([sys.executable, "-c", PLAIN % (acc.FUNCTIONS,), str(ROOT),
                           str(tmp_path / "x.npy")], env=env, capture_output=True, text=True,
                          check=True)
    plain = json.loads(proc.stdout)
    with np.errstate(all="ignore"):
        for name in acc.FUNCTIONS:
            for dtype, view, suffix in ((np.float64, np.int64, ""), (np.float32, np.int32, "_f32")):
                compiled = acc.evaluate(name, x.astype(dtype)).view(view)
                np.testing.assert_array_equal(compiled, np.array(plain[name + suffix], view),
                                              err_msg=name + suffix)


def test_module_imports_only_numpy_numba_math():
    text = (ROOT / "codegen" / "vector_math.py").read_text()
    import ast
    imports = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imports |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports.add(node.module.split(".")[0])
    assert imports <= {"math", "numba", "numpy"}, imports
    assert "__main__" not in text and "symgrad" not in text


# ------------------------------------------------------------------ SIMD

def _has_avx2() -> bool:
    import llvmlite.binding as ll
    return "+avx2" in ll.get_host_cpu_features().flatten().split(",")


@pytest.mark.skipif(not _has_avx2(), reason="the CPU has no AVX2")
@pytest.mark.parametrize("f, suffix", [(vm.vtanh, "pd"), (vm.vtanh_f32, "ps"),
                                       (vm.vexp, "pd"), (vm.vlog, "pd")])
def test_a_loop_calling_it_vectorizes(f, suffix):
    """Strict IEEE, error_model="numpy", as generated kernels are compiled."""
    import re

    @numba.njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.size):
            out[i] = f(x[i])

    dtype = np.float64 if suffix == "pd" else np.float32
    loop(np.ones(16, dtype), np.empty(16, dtype))
    asm = loop.inspect_asm(loop.signatures[0])
    assert re.search(rf"vmul{suffix}\s+[^\n]*%[yz]mm", asm), "no packed multiply"
    assert re.search(rf"vdiv{suffix}\s+[^\n]*%[yz]mm", asm) or f is vm.vexp


# ------------------------------------------------------------------ slow

@pytest.mark.slow
@pytest.mark.parametrize("name", acc.FUNCTIONS)
def test_float32_exhaustive(name):
    """All 2^32 float32 inputs against float64 libm (a minute or two per function)."""
    row = acc.float32_exhaustive(name)
    assert row["max_ulp"] <= acc.BOUND[name], row
