"""`compile`: model -> derivation -> module source -> an importable, callable `Kernel`.

The module is written to a content-addressed file in the kernel cache
(`$SYMGRAD_CACHE_DIR`, default `~/.cache/symgrad`) and imported from there, so
Numba's `cache=True` works: an unchanged model in a new process loads its
machine code instead of compiling it again, and a changed model, whose source
differs, can never pick up a stale kernel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import symgrad
from symgrad.derivation import Derivation, derive
from symgrad.errors import OptionError
from symgrad.model import Model
from symgrad.second_order import SecondOrder, derive_second


from symgrad.options import CompileOptions, default_math


def cache_dir() -> Path:
    configured = os.environ.get("SYMGRAD_CACHE_DIR")
    base = Path(configured) if configured else Path.home() / ".cache" / "symgrad"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"symgrad-{os.getuid()}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


class Kernel:
    """Compiled loss and gradient of one model.

    `loss(params, data=None) -> float`; `loss_and_grad(params, data=None) ->
    (float, {param name: float})`; `source` is the module text and `save(path)`
    writes it. Numba compiles each entry point on its first call (or `warmup()`).
    """

    def __init__(self, source: str, derivation: Derivation, timings: dict[str, float],
                 second: SecondOrder | None = None):
        self.source = source
        self.derivation = derivation
        self.second_order = second
        self.timings = dict(timings)
        self.module = _load(source)
        self.params = self.module.PARAMS
        self.inputs = self.module.INPUTS
        self.model: Model | None = None              # set by compile_with
        self.options: CompileOptions | None = None
        self._cluster = None                         # symgrad.distributed, on first use
        self._background = None                      # symgrad.precompile's worker

    # check_finite=True (every entry point): a NonFiniteError names the first sample of
    # the data holding a NaN or an inf, instead of a NaN loss (one pass over the data).
    # Data as dask arrays (row chunks) run on a dask.distributed Client: the active one,
    # or `client=` (symgrad/distributed.py, docs/scale-out.md).
    def loss(self, params, data=None, *, check_finite: bool = False, client=None) -> float:
        if is_dask_data(data):
            return self._distributed().loss(self, params, data, client)
        return self.module.loss(params, data, check_finite)

    def loss_and_grad(self, params, data=None, *, check_finite: bool = False, client=None
                      ) -> tuple[float, dict[str, float]]:
        if is_dask_data(data):
            return self._distributed().loss_and_grad(self, params, data, client)
        return self.module.loss_and_grad(params, data, check_finite)

    def predict(self, params, data=None, *, check_finite: bool = False):
        """Matrix models built with predict=: the prediction for each sample (data needs
        only the inputs the prediction reads)."""
        return self._entry("predict")(params, data, check_finite)

    def train(self, params, data=None, optimizer=None, steps=1, *,
              check_finite: bool = False, client=None, chunks_per_step=None,
              callback=None):
        """(new params, loss history): `steps` optimizer updates in one jitted loop (or,
        for optim.Newton and optim.LBFGS, in Python around the compiled cores). Dask
        data: one distributed gradient per step, `chunks_per_step` row chunks of it per
        minibatch (None: the full batch), `callback(step, loss)` after each step."""
        if _is_stepper(optimizer) or is_dask_data(data):
            return self.train_step(params, data, optimizer, steps,
                                   check_finite=check_finite, client=client,
                                   chunks_per_step=chunks_per_step, callback=callback)[:2]
        _in_memory_only(chunks_per_step=chunks_per_step, callback=callback)
        return self._entry("train")(params, data, optimizer, steps, None, check_finite)

    def train_step(self, params, data=None, optimizer=None, steps=1, state=None, *,
                   check_finite: bool = False, client=None, chunks_per_step=None,
                   callback=None):
        """(new params, loss history, optimizer state to pass to the next call)."""
        if is_dask_data(data):
            return self._distributed().train_step(self, params, data, optimizer, steps,
                                                  state, client, chunks_per_step, callback)
        _in_memory_only(chunks_per_step=chunks_per_step)
        if _is_stepper(optimizer):
            from symgrad import solvers
            return solvers.run(self, optimizer, params, data, steps, state, check_finite,
                               callback=callback)
        _in_memory_only(callback=callback)
        return self._entry("train_step")(params, data, optimizer, steps, state, check_finite)

    def jvp(self, params, tangent, data=None, *, check_finite: bool = False, client=None
            ) -> tuple[float, float]:
        """(total loss, its derivative along `tangent`, a dict shaped like params): one
        forward-mode pass. Needs compile(..., order=2)."""
        entry = self._second_order("jvp")
        if is_dask_data(data):
            return self._distributed().jvp(self, params, tangent, data, client)
        return entry(params, tangent, data, check_finite)

    def hvp(self, params, vector, data=None, *, check_finite: bool = False, client=None
            ) -> dict:
        """The Hessian of the total loss times `vector` (shaped like params), shaped like
        params: forward mode over the gradient's graph. Needs compile(..., order=2)."""
        entry = self._second_order("hvp")
        self.await_background(data)
        if is_dask_data(data):
            return self._distributed().hvp(self, params, vector, data, client)
        return entry(params, vector, data, check_finite)

    def hessian(self, params, data=None, sparse: bool | None = None, *,
                check_finite: bool = False, client=None):
        """The P x P Hessian over the flat params (`param_names` order, entries
        row-major): numpy array, or scipy.sparse.csr_matrix with sparse=True (None: by
        the structural density; see symgrad.hessian_sparsity). Needs order=2."""
        entry = self._second_order("hessian")
        self.await_background(data)
        if is_dask_data(data):
            return self._distributed().hessian(self, params, data, sparse, client)
        return entry(params, data, sparse, check_finite)

    def await_background(self, data=None) -> None:
        """Wait while the worker process compiling this order-2 kernel's HVP cores into
        Numba's cache (symgrad/precompile.py) has not yet saved the core that a call on
        `data` runs (the parallel one for batches of more than one chunk)."""
        worker = self._background
        if worker is None:
            return
        from symgrad import precompile
        m = self.module
        rows = len(next(iter(data.values()))) if isinstance(data, dict) and data else 0
        parallel = m._hvp_core_par is not m._hvp_core and rows > getattr(m, "CHUNK", rows)
        precompile.wait(worker, m.__file__, "_hvp_core_par" if parallel else "_hvp_core")
        if worker.poll() is not None:
            self._background = None

    @staticmethod
    def _distributed():
        from symgrad import distributed
        return distributed

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params)

    def _second_order(self, name: str):
        entry = getattr(self.module, name, None)
        if entry is None:
            raise OptionError(f"this kernel has no {name}(): compile the model with "
                              f"symgrad.compile(model, order=2) for jvp, hvp and hessian")
        return entry

    def _entry(self, name: str):
        entry = getattr(self.module, name, None)
        if entry is None:
            raise OptionError(f"this kernel has no {name}(); it exists for matrix models")
        return entry

    def save(self, path: str | os.PathLike) -> Path:
        from symgrad.files import write_atomic
        return write_atomic(path, self.source)

    def warmup(self, optimizer=None, *, parallel: bool = False) -> dict[str, float]:
        """JIT-compile (or load from Numba's cache) what a training run calls; return the
        seconds each took: `loss_and_grad`, the training loop of `optimizer` when one is
        given (an optim.SGD, RMSprop, Adam, AdamW or its dict: the loop of that kind;
        Newton and L-BFGS run in Python), `predict` where the model has one, and `hvp`
        for order=2 (what Newton calls). `loss`, `jvp` and the parallel core, which
        batches of more than one chunk (4096 samples) run, compile on their first call,
        or here: `loss` by `warmup_loss()`, the parallel core by parallel=True. Each costs
        about a second of Numba: nothing is compiled that the run will not call."""
        params, data = _sample_arguments(self.module)
        self._timed("jit_loss_and_grad", self.module.loss_and_grad, params, data)
        if optimizer is not None and not _is_stepper(optimizer) \
                and getattr(self.module, "train", None) is not None:
            self._timed("jit_train", self.module.train, params, data, optimizer, 1)
        if hasattr(self.module, "_predict_core"):
            self._timed("jit_predict", self.module.predict, params, data)
        if hasattr(self.module, "hvp"):
            self.await_background()
            self._timed("jit_hvp", self.module.hvp, params, params, data)
        parallel_core = getattr(self.module, "_loss_and_grad_core_par", None)
        if parallel and parallel_core is not None \
                and parallel_core is not self.module._loss_and_grad_core:
            import numpy as np
            theta, _ = self.module._pack(params)
            self._timed("jit_loss_and_grad_parallel", parallel_core, theta,
                        *self.module._columns(data), np.empty(1 + theta.shape[0]))
        return {k: v for k, v in self.timings.items() if k.startswith("jit_")}

    def warmup_loss(self) -> float:
        """JIT-compile (or load) `loss`, which training does not call; return seconds."""
        params, data = _sample_arguments(self.module)
        return self._timed("jit_loss", self.module.loss, params, data)

    def _timed(self, key: str, call, *args) -> float:
        start = time.perf_counter()
        call(*args)
        self.timings[key] = time.perf_counter() - start
        return self.timings[key]

    def __repr__(self) -> str:
        d = self.derivation
        return (f"<symgrad.Kernel method={d.method} params={list(self.params)} "
                f"inputs={list(self.inputs)}>")


def is_dask_array(value) -> bool:
    """Whether `value` is a dask array (without importing dask)."""
    return type(value).__module__.startswith("dask.array") and hasattr(value, "chunks")


def is_dask_data(data) -> bool:
    """Whether a data argument holds dask arrays."""
    return isinstance(data, dict) and any(is_dask_array(v) for v in data.values())


def _in_memory_only(**given) -> None:
    """Refuse the options that exist for dask data only."""
    for name, value in given.items():
        if value is not None:
            raise OptionError(f"{name}= is for dask arrays as data (symgrad.distributed); "
                              f"this call's data are in memory")


def _is_stepper(optimizer) -> bool:
    from symgrad import optim
    return isinstance(optimizer, optim.STEPPERS)


def _sample_flat(module):
    """(theta, data columns) of `_sample_arguments`, as the cores take them."""
    params, data = _sample_arguments(module)
    return module._pack(params)[0], module._columns(data)


def _sample_arguments(module):
    """Small valid arguments (batch of 2) for a generated module, to trigger the JIT."""
    import numpy as np

    shapes = getattr(module, "PARAM_SHAPES", None) or [()] * len(module.PARAMS)
    params = {name: np.full(shape, 0.5) if shape else 0.5
              for name, shape in zip(module.PARAMS, shapes)}
    input_shapes = getattr(module, "INPUT_SHAPES", None) or [("n",)] * len(module.INPUTS)
    data = {name: np.full(tuple(2 if isinstance(d, str) else d for d in shape), 0.5)
            for name, shape in zip(module.INPUTS, input_shapes)}
    return params, (data or None)


def compile(model: Model, method: str = "reverse", target: str = "cpu",
            dtype: str = "float64", fastmath: bool = False, math: str | None = None,
            interpret: bool | None = None, order: int = 1) -> Kernel:
    """Differentiate `model` by `method` ("reverse" or "symbolic") and build its kernels
    for `target` "cpu" or "cuda" (codegen/cuda_module.py: the same entry points on a GPU).

    `dtype` "float32" (matrix models) keeps params, data and the arrays between
    kernels in single precision, so the products run as SGEMM; scalar arithmetic
    inside the fused loops and all sums stay in float64. `fastmath=True` lets LLVM
    reassociate sums and contract to FMA (vectorised reductions; results change in the
    last bits, repeatably); NaN and inf are still handled exactly. `math` "vector" (the
    default) computes exp, log, tanh, sigmoid, ... in the CPU loops with
    codegen/vector_math.py (branch-free, vectorized by LLVM, within 1-4 ulp: see
    docs/conventions.md), "libm" with the C library's functions (one call per element);
    the CUDA target always uses the device's libm.

    `interpret` (scalar models on the CPU): True runs the per-sample program on a fixed
    interpreter (codegen/interpreter.py: the same bits, a compile cost that does not grow
    with the model, slower to run), False unrolls it into compiled code, None (the
    default) interprets only programs too large to compile in reasonable time.

    `order=2` also builds `jvp`, `hvp` and `hessian` (forward mode, forward-over-reverse
    Hessian-vector products, dense or star-coloured sparse Hessians; target "cpu").

    The arguments become one `symgrad.options.CompileOptions`, validated here and printed
    in the module's header.
    """
    if not isinstance(model, Model):
        raise OptionError(f"compile() needs a symgrad.Model, got {type(model).__name__}; "
                          f"wrap the loss: symgrad.Model(loss, params=[...], inputs=[...])")
    options = CompileOptions(method=method, target=target, dtype=dtype, fastmath=fastmath,
                             math=default_math() if math is None else math,
                             interpret=interpret, order=order)
    options.check(model)
    return compile_with(model, options)


def compile_with(model: Model, options: CompileOptions) -> Kernel:
    """`compile` with its options already made (and checked against `model`)."""
    if model.is_matrix and options.method == "symbolic":
        # SymPy's matrix calculus fails on networks (ShapeError, wrong results): the
        # direct method differentiates the scalar expansion instead (small models only).
        from symgrad.expand import ExpandedKernel, expand_to_scalars
        expansion = expand_to_scalars(model)
        return ExpandedKernel(expansion, compile_with(expansion.scalar_model, options))
    source, derivation, second, timings = generate_source(model, options)
    kernel = Kernel(source, derivation, timings, second)
    kernel.model, kernel.options = model, options
    if second is not None and options.target == "cpu":
        from symgrad import precompile
        kernel._background = precompile.start(kernel.module.__file__)
    return kernel


def generate_source(model: Model, options: CompileOptions
                    ) -> tuple[str, Derivation, SecondOrder | None, dict[str, float]]:
    """(module source, derivation, second order or None, seconds per stage) of a model
    with no symbolic matrix expansion: what `compile_with` loads."""
    # Imported here: codegen imports symgrad.ir, so importing codegen first would
    # otherwise reach this module while codegen is half-initialised.
    import codegen

    derivation = derive(model, options.method)
    second = derive_second(model, derivation) if options.order == 2 else None
    codegen.load_writer(options, model)     # an import, not emission: outside the timing
    start = time.perf_counter()
    source = codegen.generate(derivation, options, model, version=symgrad.__version__,
                              second=second)
    timings = {"derive": derivation.seconds, "emit": time.perf_counter() - start}
    if second is not None:
        timings["derive_second_order"] = second.seconds
    return source, derivation, second, timings


def _load(source: str, prefix: str = "_symgrad_kernel") -> ModuleType:
    """Import `source` from a file named by its hash in the cache directory (Numba's
    cache lives beside it); a module on the interpreter gets the shared one's `_vm_run`."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    name = f"{prefix}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        from symgrad.files import write_atomic
        write_atomic(path, source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Numba's cache needs the module registered before its functions run.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    if hasattr(module, "VM_MATH") and prefix != _SHARED_VM:
        _share_interpreter(module)
    return module


_SHARED_VM = "_symgrad_vm"


def _share_interpreter(module: ModuleType) -> None:
    """Run `module`'s programs on the interpreter module shared by every model (the same
    text as the module's own copy), compiled or loaded from Numba's cache once."""
    from codegen import interpreter, training

    fastmath = training.fastmath_line(bool(module.FASTMATH))
    shared = _load(interpreter.shared_source(module.VM_MATH, fastmath), _SHARED_VM)
    module._vm_run, module._vm_run_one = shared._vm_run, shared._vm_run_one
