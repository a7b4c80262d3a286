"""Compile an order-2 module's HVP cores in a worker process, into Numba's cache.

`symgrad.compile(model, order=2)` starts `python -m symgrad.precompile MODULE.py` when
the machine has a second core: while the caller's first `loss_and_grad` compiles in its
own process, the worker compiles `_hvp_chunk` and the HVP cores (serial, then parallel)
and Numba saves each beside the module file; the caller's first `hvp`, `hessian` or
Newton step waits until the core it will run is in the cache (or the worker has ended)
and loads it from there. TorchInductor's compile workers do the same for its kernels. The HVP program is about 2.6x the
gradient's statements, and Numba compiles each function on one core (4-5 s for the
gradient of a 61-param tanh net, 6-7 s for its HVP): in parallel, an order-2 kernel is
ready in 1.4-1.8x the order-1 time instead of 2-3x (benchmarks/results/compile_ratio.txt).
SYMGRAD_BACKGROUND_COMPILE=0 turns it off; a failure in the worker only means the
caller compiles the cores itself.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def wanted() -> bool:
    """Whether to compile in a worker: a second core, the JIT on, not turned off."""
    import numba

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    return (cores >= 2 and not numba.config.DISABLE_JIT
            and os.environ.get("SYMGRAD_BACKGROUND_COMPILE", "1") != "0")


def cached(module_file: str, function: str) -> bool:
    """Whether Numba's cache beside `module_file` already holds `function`."""
    path = Path(module_file)
    return any((path.parent / "__pycache__").glob(f"{path.stem}.{function}-*.nbi"))


_RUNNING: list[subprocess.Popen] = []


def start(module_file: str) -> subprocess.Popen | None:
    """The worker process compiling `module_file`'s HVP cores, or None (not wanted, or
    already in the cache)."""
    if not wanted() or cached(module_file, "_hvp_core"):
        return None
    # symgrad importable in the worker wherever this process found it
    home = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": home + (os.pathsep + path if path else "")}
    try:
        worker = subprocess.Popen([sys.executable, "-m", "symgrad.precompile", module_file],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None
    if not _RUNNING:
        atexit.register(_stop_running)
    _RUNNING[:] = [w for w in _RUNNING if w.poll() is None] + [worker]
    return worker


def wait(worker: subprocess.Popen, module_file: str, function: str) -> None:
    """Wait until `function` is in Numba's cache or the worker has ended (it compiles
    the serial core first: a small batch need not wait for the parallel one)."""
    while worker.poll() is None and not cached(module_file, function):
        time.sleep(0.02)


def _stop_running() -> None:
    """At exit: stop the workers still compiling (nobody will load what they save)."""
    for worker in _RUNNING:
        if worker.poll() is None:
            worker.terminate()


def compile_hvp(module) -> None:
    """Call the module's HVP cores once on a batch of 2 (serial and parallel variants)."""
    from symgrad.kernel import _sample_flat

    theta, columns = _sample_flat(module)
    both = np.concatenate((theta, theta))
    out = np.empty(1 + theta.shape[0])
    module._hvp_core(both, *columns, out)
    if module._hvp_core_par is not module._hvp_core:
        module._hvp_core_par(both, *columns, out)


def main(argv: list[str]) -> int:
    from symgrad.kernel import _load

    (module_file,) = argv
    compile_hvp(_load(Path(module_file).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
