"""Support code for generated CUDA modules: device math, device-array checks, the
workspace cache, deterministic reduction passes and the optimizer kernels.

Embedded verbatim in every generated CUDA module (after `codegen/runtime.py` and
`codegen/optimizers.py`, whose errors and `optimizer_spec` it uses), and importable
on its own for tests. The module defines BLOCK and MAX_BLOCKS before this code;
kernels read them as compile-time constants.

Device math: Numba's CUDA target types `math.exp`, `math.sqrt`, ... (libdevice) but
not `np.exp` or `np.sqrt`, while the simulator runs kernels as plain Python, where
`math.log(0.0)` raises instead of giving -inf. So kernels call `_exp`, `_sqrt`, ...:
libdevice on a GPU, NumPy's IEEE ufuncs in the simulator.

Shared memory in the simulator: see `_thread_safe_shared_arrays`.
"""

import math
import os
import sys
import threading

import numba
import numpy as np
from numba import cuda

from codegen.runtime import DTypeError, ShapeError  # symgrad: not embedded

BLOCK, MAX_BLOCKS, TILE, TILE_THREADS, MAX_TILES = 256, 1024, 64, 16, 512  # symgrad: not embedded
SPLIT_TARGET, SPLIT_MIN_DEPTH = 256, 256  # symgrad: not embedded

SIMULATOR = bool(getattr(numba.config, "ENABLE_CUDASIM", 0)) or \
    os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _thread_safe_shared_arrays():
    """Give the simulator's `cuda.shared.array` a lock (once per process).

    The simulator runs each thread of a block as a Python thread, and its
    `FakeCUDAShared.array` (Numba 0.68, numba-cuda alike) finds the block's array by
    the calling line, creating it when missing, without a lock: when a thread switch
    falls between one thread's lookup and its store, a second thread also finds the
    array missing and creates its own, and one of the two then works on a private copy.
    Its tile loads and partial sums never reach the other threads, so a product or a
    sum comes out wrong: rarely, more often on a loaded machine. This is the same lookup
    (same key: the caller's file and line) under a lock. A GPU needs none of this."""
    from numba.cuda.simulator import kernelapi
    shared = getattr(kernelapi, "FakeCUDAShared", None)
    if shared is None or getattr(shared.array, "thread_safe", False) or not hasattr(
            kernelapi, "numpy_support"):
        return
    unlocked = shared.array
    lock = threading.Lock()

    def array(self, shape, dtype, *args, **kwargs):
        if shape == 0 or args or kwargs:    # dynamic shared memory: one buffer, no lookup
            return unlocked(self, shape, dtype, *args, **kwargs)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            held = self._allocations.get(key)
            if held is None:
                held = self._allocations[key] = np.empty(shape, dtype)
        return held

    array.thread_safe = True
    shared.array = array


if SIMULATOR:
    _exp, _expm1, _log1p, _sqrt, _pow = np.exp, np.expm1, np.log1p, np.sqrt, np.power
    _thread_safe_shared_arrays()
else:
    _exp, _expm1, _log1p, _sqrt, _pow = math.exp, math.expm1, math.log1p, math.sqrt, math.pow


def is_device_array(value):
    """A Numba device array (or the simulator's), or any CUDA array interface object
    (CuPy, PyTorch)."""
    return bool(getattr(value, "__cuda_ndarray__", False)) or \
        hasattr(value, "__cuda_array_interface__")


def as_device(value):
    """A Numba device array viewing `value`'s memory (no copy)."""
    if getattr(value, "__cuda_ndarray__", False):
        return value
    return cuda.as_cuda_array(value)


def stand_in(kind, name, value, dtype, copy=False):
    """A host array of `value`'s shape and dtype, for the host-side checks (which see
    only names, shapes and dtypes); np.empty touches no memory, `copy` copies the values
    (for check_finite). A device array must already have the kernels' dtype and be
    C-contiguous: converting it would copy."""
    value = as_device(value)
    if np.dtype(value.dtype) != np.dtype(dtype):
        raise DTypeError(f"{kind} {name!r} is a device array of dtype {value.dtype}; device "
                         f"arrays must have dtype {np.dtype(dtype).name} (no conversion on "
                         f"the device)")
    if not value.is_c_contiguous():
        raise ShapeError(f"{kind} {name!r} is a device array that is not C-contiguous")
    if copy:
        return value.copy_to_host()
    return np.empty(value.shape, dtype) if kind == "input" else np.zeros(value.shape, dtype)


def split_device(kind, values, dtype, copy=False):
    """(values with device arrays replaced by stand-ins, {name: device array})."""
    if not isinstance(values, dict):
        return values, {}
    device = {k: as_device(v) for k, v in values.items() if is_device_array(v)}
    if not device:
        return values, {}
    return {k: stand_in(kind, k, v, dtype, copy) if k in device else v
            for k, v in values.items()}, device


def to_device_columns(names, checked, device):
    """The checked host arrays copied to the device; device arrays as they are (reshaped
    like the checked stand-in, e.g. a vector for an (n, 1) input)."""
    out = []
    for name, arr in zip(names, checked):
        if name in device:
            given = device[name]
            out.append(given if tuple(given.shape) == arr.shape else given.reshape(arr.shape))
        else:
            out.append(cuda.to_device(arr))
    return tuple(out)


_WORKSPACE = {}


def workspace(key, spec):
    """Device arrays of the shapes and dtypes in `spec`, reused while the spec stays the
    same (the batch size, usually): kernels run in order on one stream, so a call's
    temporaries are free when the next call starts."""
    held = _WORKSPACE.get(key)
    if held is None or held[0] != spec:
        arrays = tuple(cuda.device_array(shape, dtype) for shape, dtype in spec)
        held = _WORKSPACE[key] = (spec, arrays)
    return held[1]


_VIEWS = {}


def param_views(theta, layout):
    """Each param's view of the flat device vector theta, from (start, stop, shape) per
    param. Kept while theta is the same object (a training run): a device-array view
    costs microseconds of Python, each call. The cache holds theta, so its identity
    cannot be reused by another array."""
    held = _VIEWS.get(layout)
    if held is None or held[0] is not theta:
        views = tuple(theta[a:b].reshape(shape) if shape else theta[a:b]
                      for a, b, shape in layout)
        held = _VIEWS[layout] = (theta, views)
    return held[1]


def blocks_for(count, per_block, cap):
    """Blocks covering `count` items (at least 1; at most `cap`, grid-stride loops do the
    rest). A function of the sizes only, so partial sums are the same on every run."""
    return max(1, min(cap, (count + per_block - 1) // per_block))


@cuda.jit
def _sum_columns(partial, result):
    """result[k] = partial[0, k] + partial[1, k] + ... in order: the second,
    deterministic pass over per-block partial sums."""
    for k in range(cuda.grid(1), result.shape[0], cuda.gridsize(1)):
        s = 0.0
        for b in range(partial.shape[0]):
            s += partial[b, k]
        result[k] = s


@cuda.jit
def _sum_all(partial, result):
    """result[0] = the sum of every partial: one block, each thread sums a fixed
    stride in order, then a tree in shared memory."""
    sh = cuda.shared.array(BLOCK, numba.float64)
    tid = cuda.threadIdx.x
    rows, cols = partial.shape[0], partial.shape[1]
    s = 0.0
    for e in range(tid, rows * cols, BLOCK):
        s += partial[e // cols, e % cols]
    sh[tid] = s
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if tid < step:
            sh[tid] += sh[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        result[0] = sh[0]


CUBLAS = None      # CuPy, while products run through cuBLAS (use_cublas); else tiled kernels


def use_cublas(enable=True):
    """Run the matrix products through CuPy's cuBLAS instead of the module's tiled kernels
    (needs CuPy; same stream, no copies). The tiled kernels stay the default: the module
    needs nothing beyond Numba."""
    global CUBLAS
    if enable:
        import cupy
        CUBLAS = cupy
    else:
        CUBLAS = None


def matmul(kernel, a, b, c, ta, tb, key):
    """c = op(a) @ op(b), op a transpose where ta (tb): the tiled kernel (which reads a
    transposed operand with swapped indices), or cuBLAS when enabled and the dtypes agree.

    A product with few output tiles and a long inner dim (a weight gradient: the inner dim
    is the batch) is split along the inner dim so that enough blocks run; each split writes
    its own slice of a scratch array, and a second kernel adds the slices in order."""
    rows, cols = c.shape
    if CUBLAS is not None and a.dtype == b.dtype == c.dtype and c.size:
        x, y = CUBLAS.asarray(a), CUBLAS.asarray(b)
        CUBLAS.matmul(x.T if ta else x, y.T if tb else y, out=CUBLAS.asarray(c))
        return
    depth = a.shape[0] if ta else a.shape[1]
    gx, gy = blocks_for(cols, TILE, MAX_TILES), blocks_for(rows, TILE, MAX_TILES)
    splits = max(1, min(-(-SPLIT_TARGET // (gx * gy)), depth // SPLIT_MIN_DEPTH))
    threads = (TILE_THREADS, TILE_THREADS)
    if splits == 1:
        kernel[(gx, gy, 1), threads](a, b, c.reshape((1, rows, cols)))
        return
    (scratch,) = workspace(key, (((splits, rows, cols), c.dtype),))
    kernel[(gx, gy, splits), threads](a, b, scratch)
    _sum_splits[blocks_for(rows * cols, BLOCK, MAX_BLOCKS), BLOCK](scratch, c)


@cuda.jit
def _sum_splits(scratch, c):
    """c = scratch[0] + scratch[1] + ... in order (split-K's second pass)."""
    cols = c.shape[1]
    for e in range(cuda.grid(1), c.shape[0] * cols, cuda.gridsize(1)):
        i, j = e // cols, e % cols
        s = scratch[0, i, j]
        for z in range(1, scratch.shape[0]):
            s += scratch[z, i, j]
        c[i, j] = s


if os.environ.get("SYMGRAD_CUDA_MATMUL", "") == "cublas" and not SIMULATOR:
    use_cublas()


def sum_columns(partial, result):
    """Finish column (or row) sums: `result` is the (1, k) or (k, 1) sum array."""
    flat = result.reshape(result.shape[0] * result.shape[1])
    _sum_columns[blocks_for(flat.shape[0], BLOCK, MAX_BLOCKS), BLOCK](partial, flat)


def sum_all(partial, result):
    _sum_all[1, BLOCK](partial, result)


# ---- optimizers: codegen/optimizers.py's arithmetic, one thread per parameter ----

def device_train(loss_and_grad_core, theta, columns, kind, hyper, state, first_step, steps,
                 history):
    """`steps` updates of the device vector theta in place; the loss and gradient stay
    on the device, and state and history are copied back once at the end."""
    out = cuda.device_array(1 + theta.shape[0])
    d_state = cuda.to_device(state)
    d_hyper = cuda.to_device(hyper)
    d_history = cuda.device_array(max(1, steps))
    update = OPTIMIZER_KERNELS[kind]
    blocks = blocks_for(theta.shape[0], BLOCK, MAX_BLOCKS)
    for s in range(steps):
        loss_and_grad_core(theta, *columns, out)
        update[blocks, BLOCK](theta, out, d_state, d_hyper, first_step + s, d_history, s)
    d_state.copy_to_host(state)
    if steps:
        history[:] = d_history.copy_to_host()[:steps]


def device_vector(values):
    """A host vector's copy on the device (the params of one call)."""
    return cuda.to_device(np.ascontiguousarray(values))
