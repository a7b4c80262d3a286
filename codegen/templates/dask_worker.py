"""The Dask worker's entry, appended to the module symgrad ships to a cluster's workers
(symgrad/distributed.py): the model with reduction "sum" and no penalty, so that each
task returns one chunk's plain sums and the client combines them.

A template: pasted into generated modules by codegen/templates/__init__.py (minus this
docstring and the lines marked not embedded); the names it reads are the generated
module's, listed in codegen/templates/contract.py.
"""

import numba  # symgrad: not embedded

from codegen.templates.contract import *  # noqa: F401,F403  # symgrad: not embedded


def _dask_chunk(kind, theta, vector, threads, *arrays):
    """One chunk's sums over its rows, flat: [loss] ("loss"), [loss, gradient...]
    ("loss_and_grad"), [loss, jvp] ("jvp") or [jvp, H v...] ("hvp"). `arrays` are the chunk's inputs in
    INPUTS order; `threads` caps Numba's threads in this task (Numba's default threading
    layer aborts when parallel kernels are entered from several threads at once)."""
    if numba.get_num_threads() != threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    columns = _columns(dict(zip(INPUTS, arrays)))
    parallel = _parallel(columns)
    if kind == "loss":
        out = np.empty(1)
        (_loss_core_par if parallel else _loss_core)(theta, *columns, out)
    elif kind == "loss_and_grad":
        out = np.empty(1 + theta.shape[0])
        (_loss_and_grad_core_par if parallel else _loss_and_grad_core)(theta, *columns, out)
    elif kind == "jvp":
        out = np.empty(2)
        (_jvp_core_par if parallel else _jvp_core)(np.concatenate((theta, vector)),
                                                    *columns, out)
    elif kind == "hvp":
        out = np.empty(1 + theta.shape[0])
        (_hvp_core_par if parallel else _hvp_core)(np.concatenate((theta, vector)),
                                                    *columns, out)
    else:
        raise ArgumentError(f"unknown kind of chunk task {kind!r}")
    return out
