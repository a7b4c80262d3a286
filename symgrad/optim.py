"""Optimizers for `Kernel.train`: SGD (with momentum), RMSprop (with momentum, centered),
Adam and AdamW, compiled into every kernel module; and Newton and L-BFGS, which take
whole steps over the flat parameter vector in Python around the compiled cores
(symgrad/solvers.py).

Each is a small description of its hyper-parameters (defaults as in PyTorch);
the update rules themselves live in `codegen/optimizers.py`, compiled into
every kernel module, and follow PyTorch's arithmetic step for step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codegen.optimizers import optimizer_spec
from symgrad.errors import ArgumentError


class _Checked:
    """Hyper-parameters are checked when the optimizer is made, not first at train()."""

    def __post_init__(self):
        optimizer_spec(self.spec())


@dataclass(frozen=True)
class SGD(_Checked):
    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    def spec(self) -> dict:
        return {"name": "sgd", **asdict(self), "nesterov": float(self.nesterov)}


@dataclass(frozen=True)
class RMSprop(_Checked):
    lr: float = 0.01
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False

    def spec(self) -> dict:
        return {"name": "rmsprop", **asdict(self), "centered": float(self.centered)}


@dataclass(frozen=True)
class Adam(_Checked):
    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def spec(self) -> dict:
        return {"name": "adam", "lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1],
                "eps": self.eps, "weight_decay": self.weight_decay}


@dataclass(frozen=True)
class AdamW(_Checked):
    """Adam with decoupled weight decay (params shrink by lr * weight_decay each step,
    outside the moments), as torch.optim.AdamW."""

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01

    def spec(self) -> dict:
        return {"name": "adamw", "lr": self.lr, "beta1": self.betas[0],
                "beta2": self.betas[1], "eps": self.eps, "weight_decay": self.weight_decay}


@dataclass(frozen=True)
class Newton:
    """Damped Newton with a backtracking (Armijo) line search; one step solves
    (H + lam I) p = -g, lam starting at `damping` and raised tenfold until H + lam I is
    positive definite (dense Cholesky) or p descends (sparse solve). `sparse`: the
    Hessian's form (None: by its structural density). Needs compile(..., order=2)."""

    damping: float = 0.0
    sparse: bool | None = None
    c1: float = 1e-4
    max_backtracks: int = 30

    def __post_init__(self):
        _check_nonnegative("Newton", damping=self.damping, c1=self.c1,
                           max_backtracks=self.max_backtracks)


@dataclass(frozen=True)
class LBFGS:
    """torch.optim.LBFGS step for step (one step = up to max_iter iterations), with the
    strong-Wolfe line search by default (line_search=None: fixed steps of lr) and a
    history of 10 updates. Gradients only: any order-1 kernel."""

    lr: float = 1.0
    history: int = 10
    max_iter: int = 20
    max_eval: int | None = None
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9
    line_search: str | None = "strong_wolfe"

    def __post_init__(self):
        _check_nonnegative("LBFGS", lr=self.lr, tolerance_grad=self.tolerance_grad,
                           tolerance_change=self.tolerance_change)
        if not isinstance(self.history, int) or self.history < 1 or \
                not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ArgumentError(f"LBFGS history and max_iter must be ints >= 1, got "
                                f"{self.history!r} and {self.max_iter!r}")
        if self.line_search not in ("strong_wolfe", None):
            raise ArgumentError(f"LBFGS line_search must be 'strong_wolfe' or None, got "
                                f"{self.line_search!r}")


def _check_nonnegative(name: str, **values) -> None:
    import math
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                not math.isfinite(value) or value < 0:
            raise ArgumentError(f"{name} {key} must be finite and >= 0, got {value!r}")


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW,
              "newton": Newton, "lbfgs": LBFGS}
STEPPERS = (Newton, LBFGS)      # run by symgrad/solvers.py, not compiled
