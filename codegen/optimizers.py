"""Optimizer specs: `optimizer_spec` checks an optimizer's hyper-parameters.

Embedded verbatim in every generated module (after `codegen/runtime.py`, whose errors it
uses), next to the registry's table and update steps, which codegen/optimizer_rules.py
prints there; importable on its own for symgrad.optim and the tests.
"""

import math

import numpy as np

from codegen.optimizer_rules import N_HYPER, OPTIMIZERS  # symgrad: not embedded
from codegen.runtime import ArgumentError  # symgrad: not embedded


def optimizer_spec(optimizer):
    """(kind, hyper-parameter vector) from a symgrad optimizer or a dict such as
    {"name": "sgd", "lr": 0.1}."""
    spec = optimizer.spec() if hasattr(optimizer, "spec") else optimizer
    if not isinstance(spec, dict) or spec.get("name") not in OPTIMIZERS:
        raise ArgumentError(f"optimizer must be symgrad.optim.SGD, RMSprop, Adam or AdamW, or a dict "
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
    for key in ("beta1", "beta2") if name in ("adam", "adamw") else ():
        if values[key] >= 1.0:
            raise ArgumentError(f"{name} {key} must be < 1, got {values[key]!r}")
