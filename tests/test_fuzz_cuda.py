"""Random expression DAGs through the CUDA module, under Numba's CUDA simulator, against
sympy.diff evaluated with mpmath.

The recipes, points and kink filter are test_fuzz.py's; each drawn expression is
differentiated by both methods and run through a generated CUDA module (the
simulator's tiny launch shapes, `cuda_models.SIM_LAUNCH`). NUMBA_ENABLE_CUDASIM must
be set before Numba is imported, so hypothesis runs in one child process (this file
run as a script) with the simulator and NUMBA_DISABLE_JIT=1; the test asserts that it
passed and shows hypothesis' falsifying example when it did not.

`make test` draws SYMGRAD_FUZZ_CUDA_EXAMPLES (default 50) expressions, `make fuzz`
5,000, with a fixed seed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import cuda_models as cm

EXAMPLES = int(os.environ.get("SYMGRAD_FUZZ_CUDA_EXAMPLES", "50"))
# test_fuzz.py's singular expressions in shared branches (`make fuzz`: 5,000 too).
BRANCHY_EXAMPLES = int(os.environ.get("SYMGRAD_FUZZ_CUDA_BRANCHY_EXAMPLES",
                                      os.environ.get("SYMGRAD_FUZZ_CUDA_EXAMPLES", "200")))


def test_random_dags_in_cuda_modules_match_sympy():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "NUMBA_DISABLE_JIT": "1",
           "PYTHONPATH": os.pathsep.join([str(cm.ROOT), str(cm.ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-W", "ignore", __file__], env=env, cwd=cm.ROOT,
                          capture_output=True, text=True, timeout=7200, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("checked "), summary
    plain, branchy = (int(n) for n in re.findall(r"(\d+) of", summary))
    assert plain >= EXAMPLES // 2, summary       # most draws are far from kinks
    assert branchy >= BRANCHY_EXAMPLES // 4, summary


# ---------------------------------------------------------------- the child

def _child() -> int:
    import numba
    import test_fuzz as fz
    from hypothesis import assume, given, note, settings
    from hypothesis import strategies as st

    import oracle
    import symgrad
    from codegen import cuda_module
    from symgrad.derivation import derive
    from symgrad.kernel import _load

    assert numba.config.ENABLE_CUDASIM, "the child must run under NUMBA_ENABLE_CUDASIM=1"
    checked = {"plain": 0, "branchy": 0}

    def check(kind, loss, params, data):
        note(f"loss = {loss}")
        assume(fz.far_from_kinks(loss, params, data))
        model = symgrad.Model(loss, fz.PARAMS, fz.INPUTS)
        want, well_conditioned = fz.exact_and_well_conditioned(model, params, data)
        assume(well_conditioned)
        for method in ("reverse", "symbolic"):
            source = cuda_module.generate(
                derive(model, method), version=symgrad.__version__,
                numba_version=numba.__version__, launch=cm.SIM_LAUNCH)
            got = _load(source).loss_and_grad(params, data)
            oracle.assert_grads_close(got, want, fz.RTOL, fz.RTOL, f"cuda {method}")
        checked[kind] += 1

    @settings(fz.FUZZ, max_examples=EXAMPLES)
    @given(recipe=fz.recipes, seed=st.integers(0, 2**32 - 1))
    def cuda_module_matches_sympy(recipe, seed):
        check("plain", fz.build(recipe), *fz.sample_point(seed))

    @settings(fz.FUZZ, max_examples=BRANCHY_EXAMPLES)
    @given(recipe=fz.branchy_recipes, seed=st.integers(0, 2**32 - 1))
    def cuda_module_matches_sympy_with_singular_shared_branches(recipe, seed):
        check("branchy", fz.build_branchy(recipe), *fz.sample_point_with_zeros(seed))

    cuda_module_matches_sympy()
    cuda_module_matches_sympy_with_singular_shared_branches()
    print(f"checked {checked['plain']} of {EXAMPLES} drawn expressions; "
          f"{checked['branchy']} of {BRANCHY_EXAMPLES} with singular shared branches")
    return 0


if __name__ == "__main__":
    sys.exit(_child())
