"""Shared memory under Numba's CUDA simulator with forced thread switches.

The simulator runs each thread of a block as a Python thread and finds a block's
`cuda.shared.array` by the calling line, creating it when missing, without a lock. A
thread switch between one thread's lookup and its store lets a second thread create
its own array and work on a private copy: wrong products and sums, rarely (more often
on a loaded machine; test_cuda_sim.py failed that way about once in a few full runs).
Generated CUDA modules lock that lookup under the simulator
(`cuda_support._thread_safe_shared_arrays`). Here `numpy.empty`, which the lookup calls
between its check and its store, sleeps, so that every block's threads switch inside
that window: without the lock most calls below give wrong numbers, with it none does.

The child runs this file as a script (NUMBA_ENABLE_CUDASIM must be set before Numba is
imported), with NUMBA_DISABLE_JIT=1 for the CPU reference module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cuda_models as cm


def _child_env() -> dict[str, str]:
    return {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "NUMBA_DISABLE_JIT": "1",
            "PYTHONPATH": os.pathsep.join([str(cm.ROOT), str(cm.ROOT / "tests")])}


def test_shared_arrays_survive_thread_switches_in_the_lookup():
    done = subprocess.run([sys.executable, "-W", "ignore", __file__], env=_child_env(),
                          cwd=cm.ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["switches"] > 0, "the forced thread switches never happened"
    assert report["wrong"] == [], report
    assert report["locked"], "the generated module did not lock the simulator's lookup"


# ---------------------------------------------------------------- the child

def _child() -> dict:
    import numpy as np
    from numba.cuda.simulator import kernelapi

    import test_cuda_sim as ts

    ctx = ts._Context()
    model, net = cm.mlp("mse")              # two products per layer, block sums
    cuda, cpu = ctx.cuda("mse", model), ctx.cpu(model)
    params, data = net.init(3), cm.mlp_data(37, seed=37)
    want = cpu.loss_and_grad(params, data)

    empty, switches = np.empty, [0]

    def switching_empty(*args, **kwargs):
        switches[0] += 1
        time.sleep(5e-4)                    # release the GIL: another thread runs
        return empty(*args, **kwargs)

    wrong = []
    np.empty = switching_empty
    try:
        for run in range(3):
            try:
                ts._close(cuda.loss_and_grad(params, data), want)
            except AssertionError as error:
                wrong.append(f"run {run}: {str(error).strip().splitlines()[0:3]}")
    finally:
        np.empty = empty
    return {"locked": bool(getattr(kernelapi.FakeCUDAShared.array, "thread_safe", False)),
            "switches": switches[0], "wrong": wrong}


if __name__ == "__main__":
    sys.setswitchinterval(1e-5)             # as test_cuda_sim's child
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run me from the test"
    print(json.dumps(_child()))
