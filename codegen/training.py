"""The training entry points shared by every layout: a whole loop in one jitted
function, over the `_loss_and_grad_core(theta, *data, out)` convention
(out[0] the loss, out[1:] the flat gradient)."""

from __future__ import annotations

from codegen.optimizer_rules import RULES
from codegen.source import Source

JIT = '@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)'
# Reassociation (vectorised sums) and FMA contraction, but no assumptions about NaN or
# inf, so checks for them keep working (measured: docs/numba-facts.md).
FASTMATH_FLAGS = ("contract", "nsz", "reassoc")


def fastmath_line(fastmath: bool) -> str:
    flags = ", ".join(f'"{f}"' for f in FASTMATH_FLAGS)
    return f"FASTMATH = {{{flags}}}" if fastmath else "FASTMATH = False   # strict IEEE order"


def train_core(src: Source, n_data: int, suffix: str = "", jit: bool = True) -> None:
    """Emit `_train_core{suffix}(theta, data, kind, hyper, state, first_step, steps,
    history)`, which calls `_loss_and_grad_core{suffix}`: one jitted loop per optimizer of
    codegen/optimizer_rules.py, each compiled only when first used, behind a Python
    function choosing by kind (`jit=False`: plain Python loops, around a core on the
    interpreter)."""
    data = "".join(f"d{j}, " for j in range(n_data))
    for rule in RULES:
        if jit:
            src.line(JIT)
        with src.block(f"def _train_{rule.name}{suffix}(theta, {data}hyper, state, first_step, "
                       f"steps, history):"):
            src.line(f'"""steps {rule.name} updates of theta in place; history[s] = loss '
                     f'before step s."""')
            src.line("out = np.empty(1 + theta.shape[0])")
            with src.block("for s in range(steps):"):
                src.line(f"_loss_and_grad_core{suffix}(theta, {data}out)")
                src.line("history[s] = out[0]")
                src.line(f"{rule.name}_step(theta, out[1:], state, hyper, first_step + s)")
        src.line()
        src.line()
    loops = "".join(f"_train_{rule.name}{suffix}, " for rule in RULES)
    with src.block(f"def _train_core{suffix}(theta, data, kind, hyper, state, first_step, steps, "
                   f"history):"):
        src.line(f"loop = ({loops})[kind]     # kinds: OPTIMIZERS")
        src.line("loop(theta, *data, hyper, state, first_step, steps, history)")
    src.line()
    src.line()


