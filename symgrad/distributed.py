"""Data-parallel kernels on Dask distributed: a kernel's `loss`, `loss_and_grad`, `jvp`,
`hvp`, `hessian`, `train` and `train_step` with dask arrays as data (docs/scale-out.md).

How a call runs:
- The model is generated again with reduction "sum" and no penalty, and that module,
  with codegen/templates/dask_worker.py's `_dask_chunk` appended, is uploaded to the
  client's workers once (`client.upload_file`: a standalone file, which workers that
  join or restart later receive too) and compiled once per worker by a warm-up task.
  Tasks name its function, so nothing is pickled by value or compiled per task.
- One task per row chunk: `_dask_chunk(kind, theta, vector, threads, *chunk)`, the
  chunk's sums as one flat vector.
- The client adds the vectors in chunk order (a left fold from zero: the order of the
  in-memory kernels over their 4096-row chunks), divides by the total row count for
  reduction "mean" and adds the penalty (compiled alone from the same IR, run here
  once). The result does not depend on the workers or the placement of tasks, and
  equals the in-memory kernel's bits when each chunk is one in-memory chunk (scalar
  models, chunks of 4096 rows).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

from symgrad.errors import ChunkingError, OptionError
from symgrad.ir import Op, toposort
from symgrad.kernel import is_dask_array

# Numba threads per task. Numba's default threading layer aborts when parallel kernels
# are entered from several threads of one process: run one worker thread per process
# (LocalCluster(threads_per_worker=1)) and let the processes be the parallelism.
NUMBA_THREADS = 1
# theta larger than this is scattered to every worker once per call (client.scatter,
# broadcast=True) instead of travelling inside each task.
SCATTER_ABOVE_BYTES = 1 << 20


def cluster_of(kernel) -> Cluster:
    """The kernel's Cluster, made on first use."""
    if kernel._cluster is None:
        kernel._cluster = Cluster(kernel)
    return kernel._cluster


def active_client(client=None):
    """`client`, or the active dask.distributed Client."""
    if client is not None:
        return client
    try:
        from distributed import get_client
    except ImportError as error:
        raise OptionError("dask arrays as data need dask.distributed: pip install "
                          "'symgrad[dask]'") from error
    try:
        return get_client()
    except ValueError as error:
        raise OptionError("dask arrays as data run on a dask.distributed Client: start "
                          "one (distributed.Client(...), or LocalCluster) or pass "
                          "client=") from error


class Rows:
    """The row chunks of a call's data, checked: each chunk's row count, and its inputs
    in INPUTS order as futures (data persisted on the cluster) or delayed blocks."""

    def __init__(self, module, data: Mapping):
        names = tuple(module.INPUTS)
        if not names:
            raise ChunkingError("this model has no inputs, so there is no data to split "
                                "across workers; call it without data")
        arrays = {}
        for name, value in data.items():
            if not is_dask_array(value):
                raise ChunkingError(
                    f"input {name!r} is a {type(value).__module__}.{type(value).__name__} "
                    f"while other inputs are dask arrays: give every input as a dask array "
                    f"with the same row chunks (dask.array.from_array({name}, "
                    f"chunks=(rows, ...)))")
            arrays[name] = value
        # Names, ranks, trailing shapes and dtypes: the module's own checks, on one row.
        module._columns({name: np.zeros((1, *a.shape[1:]), dtype=a.dtype)
                         for name, a in arrays.items()})
        first = None
        for name in names:
            a = arrays[name]
            if any(np.isnan(c) for c in a.chunks[0]):
                raise ChunkingError(f"input {name!r} has chunks of unknown size; call "
                                    f"{name}.compute_chunk_sizes() first")
            for axis in range(1, a.ndim):
                if len(a.chunks[axis]) != 1:
                    raise ChunkingError(
                        f"input {name!r} is chunked along axis {axis} "
                        f"({len(a.chunks[axis])} chunks); symgrad splits data by rows only: "
                        f"{name}.rechunk({{{axis}: -1}})")
            if first is None:
                first = name
            elif a.chunks[0] != arrays[first].chunks[0]:
                raise ChunkingError(
                    f"inputs {first!r} and {name!r} have different row chunks "
                    f"({_show(arrays[first].chunks[0])} and {_show(a.chunks[0])}); rechunk "
                    f"one like the other: {name}.rechunk({{0: {first}.chunks[0]}})")
        self.sizes = tuple(int(c) for c in arrays[first].chunks[0])
        self.futures = _persisted_blocks([arrays[name] for name in names])
        self.blocks = None
        if self.futures is None:
            blocks = [arrays[name].to_delayed(optimize_graph=True).reshape(-1)
                      for name in names]
            self.blocks = [tuple(b[i] for b in blocks) for i in range(len(self.sizes))]


def _persisted_blocks(arrays) -> list[tuple] | None:
    """Per row chunk, the futures holding each array's block, where every block of every
    array is in the cluster's memory (client.persist): tasks then take the futures
    directly, with no graph to build per call. None otherwise."""
    from dask.core import flatten
    from distributed import futures_of

    per_array = []
    for a in arrays:
        held = {f.key: f for f in futures_of(a)}
        keys = list(flatten(a.__dask_keys__()))      # one block per row chunk
        if not held or any(k not in held for k in keys):
            return None
        per_array.append([held[k] for k in keys])
    return list(zip(*per_array))


def _show(chunks) -> str:
    text = ", ".join(str(c) for c in chunks[:4])
    return f"({text}{', ...' if len(chunks) > 4 else ''})"


class Cluster:
    """A kernel's worker module: generated once, uploaded and warmed once per client."""

    def __init__(self, kernel):
        from codegen import templates
        from symgrad.kernel import _load, generate_source
        from symgrad.model import Model

        if kernel.options is None or kernel.model is None:
            raise OptionError("dask arrays as data need a kernel from symgrad.compile")
        if kernel.options.target != "cpu":
            raise OptionError(f"dask arrays as data run on target='cpu' kernels (each "
                              f"worker runs the CPU module); this kernel's target is "
                              f"{kernel.options.target!r}")
        model = kernel.model
        sums = Model(model.loss, model.params, model.inputs, reduction="sum",
                     name=f"{model.name or 'model'} (chunk sums for Dask workers)")
        sizes = sorted({n.attr for n in toposort([sums.forward[0]]) if n.op is Op.SIZE})
        if sizes:
            raise OptionError(
                f"the loss reads the batch size {sizes[0]} (e.g. losses.mse(..., "
                f"reduction='mean') divides by it), which a chunk cannot know; write the "
                f"loss as a sum and pass reduction='mean' to symgrad.Model, which divides "
                f"once by the whole batch")
        self.kernel = kernel
        source, *_ = generate_source(sums, kernel.options)
        self.source = source + "\n\n" + templates.text("dask_worker") + "\n"
        self.worker_module = _load(self.source, "_symgrad_dask")
        # Its file in the kernel cache (an in-process scheduler that loads an uploaded
        # file re-imports the module from its own scratch directory).
        self.path = self.worker_module.__file__
        self.mean = model.reduction == "mean"
        # The penalty, added once on the client: the model's penalty alone, compiled from
        # the same IR as the in-memory kernel's, so the same bits.
        self.penalty = None if model.penalty is None else _load(generate_source(
            Model(0, model.params, (), penalty=model.penalty,
                  name=f"{model.name or 'model'} (penalty)"), kernel.options)[0])
        self._ready: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ shipping

    def ship(self, client, kind: str) -> None:
        """Upload the worker module to `client`'s workers (once) and compile `kind` on
        each worker (once per kind)."""
        with self._lock:
            done = self._ready.setdefault(client.id, set())
            if kind in done:
                return
            if not done:
                client.upload_file(self.path)
            workers = list(client.scheduler_info()["workers"])
            theta, vector, arrays = self._warm_arguments()
            futures = [client.submit(self.worker_module._dask_chunk, kind, theta, vector,
                                     NUMBA_THREADS, *arrays, workers=[w],
                                     allow_other_workers=False, pure=False)
                       for w in workers]
            client.gather(futures)
            done.add(kind)

    def _warm_arguments(self):
        from symgrad.kernel import _sample_flat
        theta, columns = _sample_flat(self.kernel.module)
        return theta, theta.copy(), columns

    # ------------------------------------------------------------------ one pass

    def sums(self, client, kind: str, theta: np.ndarray, vector: np.ndarray | None,
             rows: Rows, chunks: list[int] | None = None) -> tuple[np.ndarray, int]:
        """(the chunks' sums added in chunk order, their row count): one task per chunk
        (the chunks `chunks`, in that order, or all)."""
        import dask

        self.ship(client, kind)
        chosen = range(len(rows.sizes)) if chunks is None else chunks
        big = theta.nbytes > SCATTER_ABOVE_BYTES
        theta_arg = client.scatter(theta, broadcast=True, hash=False) if big else theta
        vector_arg = (client.scatter(vector, broadcast=True, hash=False)
                      if big and vector is not None else vector)
        run = self.worker_module._dask_chunk
        if rows.futures is not None:
            futures = [client.submit(run, kind, theta_arg, vector_arg, NUMBA_THREADS,
                                     *rows.futures[i], pure=False) for i in chosen]
        else:
            task = dask.delayed(run, pure=True)
            futures = client.compute([task(kind, theta_arg, vector_arg, NUMBA_THREADS,
                                           *rows.blocks[i]) for i in chosen],
                                     optimize_graph=False)
        parts = client.gather(futures)
        total = np.zeros_like(parts[0])
        for part in parts:
            total += part
        return total, sum(rows.sizes[i] for i in chosen)

    def finish(self, kind: str, total: np.ndarray, n: int, theta: np.ndarray,
               vector: np.ndarray | None) -> np.ndarray:
        """The reduction (mean: divided once by n), then the penalty's `kind` output at
        theta (and vector) added: the in-memory cores' `total / n + penalty`."""
        if self.mean:
            total = total / n
        if self.penalty is None:
            return total
        m = self.penalty
        core = {"loss": m._loss_core, "loss_and_grad": m._loss_and_grad_core,
                "jvp": getattr(m, "_jvp_core", None), "hvp": getattr(m, "_hvp_core", None)}
        pen = np.empty_like(total)
        core[kind](theta if vector is None else np.concatenate((theta, vector)), pen)
        return total + pen


# ---------------------------------------------------------------------- the calls

class ClusterProblem:
    """A kernel's total loss and gradient (and Hessian) over dask data as functions of
    the flat params: the interface of solvers.FlatProblem, for Newton and L-BFGS."""

    def __init__(self, kernel, params, data, client=None):
        self.kernel, self.module = kernel, kernel.module
        self.theta, self.given = self.module._pack(params)
        self.rows = Rows(self.module, data)
        self.client = active_client(client)
        self.cluster = cluster_of(kernel)
        self.evaluations = 0

    def run(self, kind: str, theta: np.ndarray, vector: np.ndarray | None = None,
            chunks: list[int] | None = None) -> np.ndarray:
        """The flat `kind` result at theta (loss_and_grad: [loss, gradient...])."""
        theta = np.ascontiguousarray(theta, dtype=self.theta.dtype)
        total, n = self.cluster.sums(self.client, kind, theta, vector, self.rows, chunks)
        return self.cluster.finish(kind, total, n, theta, vector)

    def loss_and_grad(self, theta: np.ndarray, chunks: list[int] | None = None
                      ) -> tuple[float, np.ndarray]:
        out = self.run("loss_and_grad", theta, chunks=chunks)
        self.evaluations += 1
        return float(out[0]), out[1:]

    def hvp(self, theta: np.ndarray, vector: np.ndarray) -> np.ndarray:
        if self.kernel.second_order is None:
            raise OptionError("this kernel has no hvp(): compile the model with "
                              "symgrad.compile(model, order=2) for jvp, hvp and hessian")
        return self.run("hvp", theta, np.ascontiguousarray(vector, self.theta.dtype))[1:]

    def hessian(self, theta: np.ndarray, sparse: bool | None):
        m = self.module
        return m.hessian_from_products(lambda v: self.hvp(theta, v), theta.shape[0],
                                       m.HESSIAN_PATTERN, m.HESSIAN_COLORS, sparse)

    def params(self, theta: np.ndarray) -> dict:
        return self.module._unpack(np.asarray(theta, dtype=self.theta.dtype), self.given)


def loss(kernel, params, data, client=None) -> float:
    problem = ClusterProblem(kernel, params, data, client)
    return float(problem.run("loss", problem.theta)[0])


def loss_and_grad(kernel, params, data, client=None):
    problem = ClusterProblem(kernel, params, data, client)
    f, g = problem.loss_and_grad(problem.theta)
    return f, problem.params(g)


def jvp(kernel, params, tangent, data, client=None) -> tuple[float, float]:
    problem = ClusterProblem(kernel, params, data, client)
    v, _ = kernel.module._pack(tangent, "tangent")
    out = problem.run("jvp", problem.theta, v)
    return float(out[0]), float(out[1])


def hvp(kernel, params, vector, data, client=None) -> dict:
    problem = ClusterProblem(kernel, params, data, client)
    v, _ = kernel.module._pack(vector, "vector")
    return problem.params(problem.hvp(problem.theta, v))


def hessian(kernel, params, data, sparse=None, client=None):
    problem = ClusterProblem(kernel, params, data, client)
    return problem.hessian(problem.theta, sparse)


def train_step(kernel, params, data, optimizer, steps, state, client=None,
               chunks_per_step: int | None = None, callback=None):
    """(new params, loss before each step, state): the registry's optimizers step on the
    client with the module's own update functions (the same bits as the jitted loop);
    Newton and L-BFGS run symgrad/solvers.py on the cluster's loss and gradient.
    `chunks_per_step`: minibatches of that many chunks, taken in chunk order round the
    data (step s starts at chunk s * chunks_per_step); None: the full batch.
    `callback(step, loss)` runs after each step."""
    from symgrad import solvers
    from symgrad.kernel import _is_stepper

    problem = ClusterProblem(kernel, params, data, client)
    n_chunks = len(problem.rows.sizes)
    if chunks_per_step is not None:
        if isinstance(chunks_per_step, bool) or not isinstance(chunks_per_step, int) \
                or not 1 <= chunks_per_step <= n_chunks:
            raise OptionError(f"chunks_per_step must be an int in 1..{n_chunks} (the "
                              f"data's row chunks), got {chunks_per_step!r}")
        if _is_stepper(optimizer):
            raise OptionError(f"{type(optimizer).__name__} needs the full batch; "
                              f"chunks_per_step is for SGD, RMSprop, Adam and AdamW")
    if _is_stepper(optimizer):
        return solvers.run(kernel, optimizer, params, None, steps, state, problem=problem,
                           callback=callback)
    module = kernel.module
    if optimizer is None:
        raise OptionError("train needs an optimizer, e.g. symgrad.optim.SGD(lr=0.01)")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise OptionError(f"steps must be a non-negative integer, got {steps!r}")
    kind, hyper = module.optimizer_spec(optimizer)
    update = next(getattr(module, f"{name}_step") for name, (k, _) in
                  module.OPTIMIZERS.items() if k == kind)
    theta = problem.theta.copy()
    if state is None:
        state = {"kind": kind, "step": 0,
                 "buffers": np.zeros((module.N_STATE, theta.shape[0]))}
    elif state.get("kind") != kind or state["buffers"].shape != (module.N_STATE,
                                                                 theta.shape[0]):
        raise OptionError("the optimizer state does not belong to this optimizer and model")
    buffers = state["buffers"].copy()
    history = np.empty(int(steps))
    for s in range(int(steps)):
        step = state["step"] + s
        chunks = None if chunks_per_step is None else [
            (step * chunks_per_step + j) % n_chunks for j in range(chunks_per_step)]
        history[s], grad = problem.loss_and_grad(theta, chunks)
        update(theta, grad, buffers, hyper, step)
        if callback is not None:
            callback(s, float(history[s]))
    new_state = {"kind": kind, "step": state["step"] + int(steps), "buffers": buffers}
    return problem.params(theta), history, new_state
