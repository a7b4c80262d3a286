"""The optimizers, one entry each: name, hyper-parameters, state, and the update written
once, printed as a jitted CPU step and as a CUDA kernel.

Each update mirrors the arithmetic of PyTorch's single-tensor implementation, operation
for operation (`lerp`, `addcmul`, `addcdiv` evaluate left to right), so that a step from
the same state agrees to rounding. An update is Python text over one element k: it reads
the gradient `g`, `theta[k]`, the state rows `state[i, k]`, the hyper-parameters by name,
`step` (counting from 0) and `sqrt`, and the values its `setup` lines compute once per
step. Adding an optimizer is one entry here (and its description in symgrad/optim.py);
the kind of an optimizer is its index in RULES.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from codegen.source import Source


@dataclass(frozen=True)
class Rule:
    name: str
    hyper: dict          # {hyper-parameter: default}, in order; None marks a required value
    state: int           # rows of per-parameter state
    setup: str           # once per step
    update: str          # per element k, after `g = <the gradient of theta[k]>`


SGD = Rule("sgd", {"lr": None, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                   "nesterov": 0.0}, state=1, setup="", update="""\
if weight_decay != 0.0:
    g = g + weight_decay * theta[k]
if momentum != 0.0:
    if step == 0:
        state[0, k] = g
    else:
        state[0, k] = state[0, k] * momentum + (1.0 - dampening) * g
    g = g + momentum * state[0, k] if nesterov != 0.0 else state[0, k]
theta[k] = theta[k] + (-lr) * g
""")

RMSPROP = Rule("rmsprop", {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0,
                           "momentum": 0.0, "centered": 0.0}, state=3,
               setup="wa = 1.0 - alpha\n", update="""\
if weight_decay != 0.0:
    g = g + weight_decay * theta[k]
state[0, k] = state[0, k] * alpha + (1.0 - alpha) * g * g
if centered != 0.0:
    if wa < 0.5:        # torch.lerp(grad_avg, g, 1 - alpha)'s two formulas
        state[2, k] = state[2, k] + wa * (g - state[2, k])
    else:
        state[2, k] = g - (g - state[2, k]) * (1.0 - wa)
    avg = sqrt(state[0, k] + (-1.0) * state[2, k] * state[2, k]) + eps
else:
    avg = sqrt(state[0, k]) + eps
if momentum > 0.0:
    state[1, k] = state[1, k] * momentum + g / avg
    theta[k] = theta[k] + (-lr) * state[1, k]
else:
    theta[k] = theta[k] + (-lr) * g / avg
""")

# Adam's and AdamW's moments and update (torch's _single_tensor_adam serves both).
_ADAM_SETUP = """\
t = step + 1
bias_correction1 = 1.0 - beta1 ** t
bias_correction2 = 1.0 - beta2 ** t
step_size = lr / bias_correction1
bias_correction2_sqrt = sqrt(bias_correction2)
w = 1.0 - beta1
"""
_ADAM_UPDATE = """\
if w < 0.5:     # torch.lerp's two formulas
    state[0, k] = state[0, k] + w * (g - state[0, k])
else:
    state[0, k] = g - (g - state[0, k]) * (1.0 - w)
state[1, k] = state[1, k] * beta2 + (1.0 - beta2) * g * g
denom = sqrt(state[1, k]) / bias_correction2_sqrt + eps
theta[k] = theta[k] + (-step_size) * state[0, k] / denom
"""

ADAM = Rule("adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                     "weight_decay": 0.0}, state=2, setup=_ADAM_SETUP, update="""\
if weight_decay != 0.0:
    g = g + weight_decay * theta[k]
""" + _ADAM_UPDATE)

ADAMW = Rule("adamw", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                       "weight_decay": 0.01}, state=2,
             setup=_ADAM_SETUP + "decay = 1.0 - lr * weight_decay\n", update="""\
theta[k] = theta[k] * decay     # decoupled weight decay, before the moments (torch)
""" + _ADAM_UPDATE)

RULES = (SGD, RMSPROP, ADAM, ADAMW)

# What codegen/optimizers.py checks specs against: name -> (kind, {hyper: default}).
OPTIMIZERS = {rule.name: (kind, dict(rule.hyper)) for kind, rule in enumerate(RULES)}
N_HYPER = max(len(rule.hyper) for rule in RULES)
N_STATE = max(rule.state for rule in RULES)


def constants() -> list[str]:
    """The registry's table as module constants (codegen/optimizers.py reads them)."""
    lines = ["# name -> (kind, {hyper-parameter: default}); None marks a required value.",
             "OPTIMIZERS = {"]
    for name, (kind, hyper) in OPTIMIZERS.items():
        defaults = ", ".join(f"{key}={value!r}" for key, value in hyper.items())
        lines.append(f"    {name!r}: ({kind}, dict({defaults})),")
    return lines + ["}", f"N_HYPER = {N_HYPER}", f"N_STATE = {N_STATE}", "", ""]


def _unpack_hyper(rule: Rule) -> list[str]:
    return [f"{name} = hyper[{i}]" for i, name in enumerate(rule.hyper)]


def cpu_steps(src: Source) -> None:
    """`<name>_step(theta, grad, state, hyper, step)` for each rule: one update in place."""
    src.line("# ---- Optimizer updates (symgrad's codegen/optimizer_rules.py) ----")
    src.lines(constants())
    for rule in RULES:
        _print(src, rule, "@numba.njit(cache=True)",
               f"def {rule.name}_step(theta, grad, state, hyper, step):",
               [f'"""One {rule.name} update of theta in place (PyTorch\'s arithmetic); step '
                f'counts from 0."""'],
               "for k in range(theta.shape[0]):", "grad[k]", "math.sqrt")


def cuda_kernels(src: Source) -> None:
    """`_<name>_kernel(theta, out, state, hyper, step, history, s)` for each rule: one
    update of the device vector theta from the gradient in out[1:], in a grid-stride
    loop; thread 0 records out[0] (the loss before the step) in history[s]. Then
    OPTIMIZER_KERNELS, by kind."""
    src.line("# ---- Optimizer updates (symgrad's codegen/optimizer_rules.py) ----")
    for rule in RULES:
        _print(src, rule, "@cuda.jit",
               f"def _{rule.name}_kernel(theta, out, state, hyper, step, history, s):",
               ["if cuda.grid(1) == 0:", "    history[s] = out[0]"],
               "for k in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):", "out[1 + k]",
               "_sqrt")
    src.line(f"OPTIMIZER_KERNELS = ({''.join(f'_{rule.name}_kernel, ' for rule in RULES)})")
    src.line()
    src.line()


def _print(src: Source, rule: Rule, decorator: str, header: str, preamble: list[str],
           loop: str, gradient: str, sqrt: str) -> None:
    """One rule as a function of a target: its preamble, the hyper-parameters, the setup,
    then the update in `loop` with g = `gradient`."""
    src.line(decorator)
    with src.block(header):
        src.lines(preamble)
        src.lines(_unpack_hyper(rule))
        src.lines(_body(rule.setup, sqrt))
        with src.block(loop):
            src.line(f"g = {gradient}")
            src.lines(_body(rule.update, sqrt))
    src.line()
    src.line()


def kernel_names() -> list[str]:
    return [f"_{rule.name}_kernel" for rule in RULES]


def _body(text: str, sqrt: str) -> list[str]:
    import re
    return re.sub(r"\bsqrt\(", f"{sqrt}(", textwrap.dedent(text)).splitlines()
