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

import numba

import symgrad
from codegen.module import TARGETS, generate, write_atomic
from symgrad.derivation import Derivation, derive
from symgrad.errors import OptionError
from symgrad.model import Model


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

    def __init__(self, source: str, derivation: Derivation, timings: dict[str, float]):
        self.source = source
        self.derivation = derivation
        self.timings = dict(timings)
        self.module = _load(source)
        self.params = self.module.PARAMS
        self.inputs = self.module.INPUTS

    def loss(self, params, data=None) -> float:
        return self.module.loss(params, data)

    def loss_and_grad(self, params, data=None) -> tuple[float, dict[str, float]]:
        return self.module.loss_and_grad(params, data)

    def save(self, path: str | os.PathLike) -> Path:
        return write_atomic(path, self.source)

    def warmup(self) -> dict[str, float]:
        """JIT-compile (or load from Numba's cache) both entry points; return seconds each."""
        params = {name: 0.5 for name in self.params}
        data = {name: [0.5] for name in self.inputs} if self.inputs else None
        data = None if data is None else {k: _as_floats(v) for k, v in data.items()}
        for entry in ("loss", "loss_and_grad"):
            start = time.perf_counter()
            getattr(self.module, entry)(params, data)
            self.timings[f"jit_{entry}"] = time.perf_counter() - start
        return {k: v for k, v in self.timings.items() if k.startswith("jit_")}

    def __repr__(self) -> str:
        d = self.derivation
        return (f"<symgrad.Kernel method={d.method} params={list(self.params)} "
                f"inputs={list(self.inputs)}>")


def _as_floats(values):
    import numpy as np
    return np.asarray(values, dtype=np.float64)


def compile(model: Model, method: str = "reverse", target: str = "cpu") -> Kernel:
    """Differentiate `model` by `method` ("reverse" or "symbolic") and build its kernels."""
    if not isinstance(model, Model):
        raise OptionError(f"compile() needs a symgrad.Model, got {type(model).__name__}")
    if target not in TARGETS:
        raise OptionError(f"target must be one of {TARGETS}, got {target!r}")
    derivation = derive(model, method)
    start = time.perf_counter()
    source = generate(derivation, version=symgrad.__version__, numba_version=numba.__version__,
                      model_name=model.name, target=target)
    timings = {"derive": derivation.seconds, "emit": time.perf_counter() - start}
    return Kernel(source, derivation, timings)


def _load(source: str) -> ModuleType:
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    name = f"_symgrad_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
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
    return module
