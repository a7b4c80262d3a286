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
import subprocess
import sys

import cuda_models as cm

EXAMPLES = int(os.environ.get("SYMGRAD_FUZZ_CUDA_EXAMPLES", "50"))


def test_random_dags_in_cuda_modules_match_sympy():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "NUMBA_DISABLE_JIT": "1",
           "PYTHONPATH": os.pathsep.join([str(cm.ROOT), str(cm.ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-W", "ignore", __file__], env=env, cwd=cm.ROOT,
                          capture_output=True, text=True, timeout=7200, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("checked "), summary
    checked = int(summary.split()[1])
    assert checked >= EXAMPLES // 2, summary     # most draws are far from kinks


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
    checked = []

    @settings(fz.FUZZ, max_examples=EXAMPLES)
    @given(recipe=fz.recipes, seed=st.integers(0, 2**32 - 1))
    def cuda_module_matches_sympy(recipe, seed):
        loss = fz.build(recipe)
        note(f"loss = {loss}")
        params, data = fz.sample_point(seed)
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
        checked.append(1)

    cuda_module_matches_sympy()
    print(f"checked {len(checked)} of {EXAMPLES} drawn expressions")
    return 0


if __name__ == "__main__":
    sys.exit(_child())
