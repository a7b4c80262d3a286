"""Optimizer updates on a flat parameter vector, numerically the same as PyTorch's.

Embedded verbatim in every generated module (after `codegen/runtime.py`, whose
errors it uses), and importable on its own for tests. Each update mirrors the
arithmetic of PyTorch's single-tensor implementation, operation for operation
(`lerp`, `addcmul`, `addcdiv` evaluate left to right), so that a step from the
same state agrees to rounding.
"""

import math

import numba
import numpy as np

from codegen.runtime import ArgumentError  # symgrad: not embedded

# name -> (kind, {hyper-parameter: default}); None marks a required value.
OPTIMIZERS = {
    "sgd": (0, {"lr": None, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": 0.0}),
    "rmsprop": (1, {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0}),
    "adam": (2, {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                 "weight_decay": 0.0}),
}
N_HYPER = 5
N_STATE = 2


def optimizer_spec(optimizer):
    """(kind, hyper-parameter vector) from a symgrad optimizer or a dict such as
    {"name": "sgd", "lr": 0.1}."""
    spec = optimizer.spec() if hasattr(optimizer, "spec") else optimizer
    if not isinstance(spec, dict) or spec.get("name") not in OPTIMIZERS:
        raise ArgumentError(f"optimizer must be symgrad.optim.SGD, RMSprop or Adam, or a dict "
                            f"with 'name' one of {sorted(OPTIMIZERS)}; got {optimizer!r}")
    kind, defaults = OPTIMIZERS[spec["name"]]
    unknown = sorted(set(spec) - set(defaults) - {"name"})
    if unknown:
        raise ArgumentError(f"{spec['name']} has no hyper-parameter(s) {unknown}; "
                            f"it takes {sorted(defaults)}")
    hyper = np.zeros(N_HYPER)
    for i, (key, default) in enumerate(defaults.items()):
        value = spec.get(key, default)
        if value is None:
            raise ArgumentError(f"{spec['name']} needs a value for {key!r}")
        value = float(value)
        if not math.isfinite(value) or value < 0.0:
            raise ArgumentError(f"{spec['name']} {key} must be finite and >= 0, got {value!r}")
        hyper[i] = value
    _check_together(spec["name"], dict(zip(defaults, map(float, hyper))))
    return kind, hyper


def _check_together(name, values):
    """The remaining constraints torch.optim enforces (beta = 1 would divide by 0)."""
    if name == "sgd" and values["nesterov"] != 0.0 and (
            values["momentum"] <= 0.0 or values["dampening"] != 0.0):
        raise ArgumentError(f"sgd nesterov needs momentum > 0 and dampening 0, got momentum "
                            f"{values['momentum']!r}, dampening {values['dampening']!r}")
    for key in ("beta1", "beta2") if name == "adam" else ():
        if values[key] >= 1.0:
            raise ArgumentError(f"adam {key} must be < 1, got {values[key]!r}")


@numba.njit(cache=True)
def sgd_step(theta, grad, state, hyper, step):
    """One SGD update of theta in place; `step` counts from 0; state is (2, len(theta))."""
    _sgd(theta, grad, state[0], hyper, step)


@numba.njit(cache=True)
def rmsprop_step(theta, grad, state, hyper, step):
    _rmsprop(theta, grad, state[0], hyper)


@numba.njit(cache=True)
def adam_step(theta, grad, state, hyper, step):
    _adam(theta, grad, state[0], state[1], hyper, step + 1)



@numba.njit(cache=True)
def _sgd(theta, grad, buf, hyper, step):
    lr, momentum, dampening, weight_decay, nesterov = hyper[0], hyper[1], hyper[2], \
        hyper[3], hyper[4]
    for k in range(theta.shape[0]):
        g = grad[k]
        if weight_decay != 0.0:
            g = g + weight_decay * theta[k]
        if momentum != 0.0:
            if step == 0:
                buf[k] = g
            else:
                buf[k] = buf[k] * momentum + (1.0 - dampening) * g
            g = g + momentum * buf[k] if nesterov != 0.0 else buf[k]
        theta[k] = theta[k] + (-lr) * g


@numba.njit(cache=True)
def _rmsprop(theta, grad, square_avg, hyper):
    lr, alpha, eps, weight_decay = hyper[0], hyper[1], hyper[2], hyper[3]
    for k in range(theta.shape[0]):
        g = grad[k]
        if weight_decay != 0.0:
            g = g + weight_decay * theta[k]
        square_avg[k] = square_avg[k] * alpha + (1.0 - alpha) * g * g
        avg = np.sqrt(square_avg[k]) + eps
        theta[k] = theta[k] + (-lr) * g / avg


@numba.njit(cache=True)
def _adam(theta, grad, exp_avg, exp_avg_sq, hyper, t):
    lr, beta1, beta2, eps, weight_decay = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    bias_correction1 = 1.0 - beta1 ** t
    bias_correction2 = 1.0 - beta2 ** t
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)
    w = 1.0 - beta1
    for k in range(theta.shape[0]):
        g = grad[k]
        if weight_decay != 0.0:
            g = g + weight_decay * theta[k]
        if w < 0.5:     # torch.lerp's two formulas
            exp_avg[k] = exp_avg[k] + w * (g - exp_avg[k])
        else:
            exp_avg[k] = g - (g - exp_avg[k]) * (1.0 - w)
        exp_avg_sq[k] = exp_avg_sq[k] * beta2 + (1.0 - beta2) * g * g
        denom = np.sqrt(exp_avg_sq[k]) / bias_correction2_sqrt + eps
        theta[k] = theta[k] + (-step_size) * exp_avg[k] / denom
