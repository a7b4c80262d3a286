"""`CompileOptions`: every choice besides the model that decides a kernel's text.

`symgrad.compile` builds one from its keyword arguments and validates it once (against
the model too: `check`), `codegen.generate` hands it whole to the scalar, matrix or CUDA
writer, and the module header prints it (`describe`), so a generated module says how it
was made and the options reach every writer by one name instead of five loose arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from symgrad.errors import OptionError

METHODS = ("reverse", "symbolic")
# "cuda": codegen/cuda_module.py, kernels for Numba's CUDA target (see README, "CUDA").
TARGETS = ("cpu", "cuda")
DTYPES = ("float64", "float32")
MATH_MODES = ("vector", "libm")     # codegen/vector_math.py or the C library's functions


def default_math() -> str:
    """"vector", or $SYMGRAD_MATH (`make test-libm` runs the suite with "libm")."""
    return os.environ.get("SYMGRAD_MATH", "vector")


@dataclass(frozen=True)
class CompileOptions:
    """How to build a model's kernels (see `symgrad.compile` for each field's meaning)."""

    method: str = "reverse"
    target: str = "cpu"
    dtype: str = "float64"
    fastmath: bool = False
    math: str = field(default_factory=default_math)
    interpret: bool | None = None     # None: the interpreter for large scalar programs only
    order: int = 1                    # 2: also the JVP, HVP and Hessian entry points

    def __post_init__(self) -> None:
        for name, allowed in (("method", METHODS), ("target", TARGETS), ("dtype", DTYPES),
                              ("math", MATH_MODES)):
            if getattr(self, name) not in allowed:
                raise OptionError(f"{name} must be one of {allowed}, got "
                                  f"{getattr(self, name)!r}")
        if not isinstance(self.fastmath, bool):
            raise OptionError(f"fastmath must be True or False, got {self.fastmath!r}")
        if self.interpret not in (None, True, False):
            raise OptionError(f"interpret must be True, False or None (automatic), got "
                              f"{self.interpret!r}")
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise OptionError(f"order must be 1 (loss and gradient) or 2 (also jvp, hvp and "
                              f"hessian), got {self.order!r}")
        if self.target == "cuda" and self.fastmath:
            raise OptionError("fastmath=True is for target='cpu'; CUDA kernels compile with "
                              "NVVM's defaults (which already contract to FMA)")
        if self.target == "cuda":     # the device's own libm, whatever was asked
            object.__setattr__(self, "math", "libm")

    def check(self, model) -> None:
        """The constraints that depend on the model (a symgrad.Model)."""
        if self.dtype != "float64" and not model.is_matrix:
            raise OptionError("dtype='float32' is for matrix models; scalar models compute in "
                              "float64 (their per-sample loops gain nothing from float32)")
        if self.interpret and (model.is_matrix or self.target != "cpu"):
            raise OptionError("interpret=True is for scalar models on target='cpu'; matrix "
                              "models compile loops over tensors, whose size does not grow "
                              "with the data")
        if model.is_matrix and self.method == "symbolic" and (
                self.dtype != "float64" or self.target != "cpu"):
            raise OptionError("method='symbolic' for a matrix model compiles its scalar "
                              "expansion: float64 on the CPU only")

    def describe(self) -> str:
        """One line for the module header, e.g. `method=reverse target=cpu ...`."""
        interpret = "auto" if self.interpret is None else str(self.interpret)
        return (f"method={self.method} target={self.target} dtype={self.dtype} "
                f"fastmath={self.fastmath} math={self.math} interpret={interpret} "
                f"order={self.order}")
