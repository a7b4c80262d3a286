"""Optimizers for `Kernel.train`: SGD (with momentum), RMSprop and Adam.

Each is a small description of its hyper-parameters (defaults as in PyTorch);
the update rules themselves live in `codegen/optimizers.py`, compiled into
every kernel module, and follow PyTorch's arithmetic step for step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codegen.optimizers import optimizer_spec


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

    def spec(self) -> dict:
        return {"name": "rmsprop", **asdict(self)}


@dataclass(frozen=True)
class Adam(_Checked):
    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def spec(self) -> dict:
        return {"name": "adam", "lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1],
                "eps": self.eps, "weight_decay": self.weight_decay}


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}
