"""Second order: the directional derivative (JVP) and the Hessian-vector product (HVP)
of a model's loss, as IR, by either method.

Reverse (the default): forward mode over the derivation's graph, seeded with one
direction leaf per param (`direction_name`). The loss's tangent is the JVP (pure
forward mode, no backward pass); the gradients' tangents are H v (forward-over-reverse).
Symbolic: `sympy.diff` twice, H v = sum_j d(d loss/d p_i)/d p_j v_j per param, lowered
into the same IR (the lecture's contrast again, at second order).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp

from symgrad import direct
from symgrad.derivation import Derivation
from symgrad.errors import OptionError
from symgrad.forward import forward_mode
from symgrad.frontend import Lowering, with_derivatives_evaluated
from symgrad.ir import Node, count_ops, param
from symgrad.model import Model
from symgrad.passes.stabilize import stabilize
from symgrad.sparsity import HessianSparsity, analyse


def direction_name(param_name: str) -> str:
    """The name of the leaf holding a param's entry of the direction vector."""
    return f"v[{param_name}]"


@dataclass(frozen=True)
class SecondOrder:
    """Per-sample and penalty parts of the JVP and of each param's HVP entry (None:
    zero). The total is `reduce(sample) + penalty`, as for the loss and gradient."""

    directions: tuple[str, ...]
    sample_jvp: Node | None
    penalty_jvp: Node | None
    sample_hvps: tuple[Node | None, ...]
    penalty_hvps: tuple[Node | None, ...]
    sparsity: HessianSparsity | None = field(default=None, compare=False)   # None: dense
    seconds: float = field(default=0.0, compare=False)

    def roots(self) -> list[Node]:
        return [n for n in (self.sample_jvp, self.penalty_jvp, *self.sample_hvps,
                            *self.penalty_hvps) if n is not None]

    def total_ops(self, first: Derivation) -> int:
        """Nodes of loss, gradient, JVP and H v together, after interning."""
        return count_ops(first.roots() + self.roots())


def derive_second(model: Model, first: Derivation) -> SecondOrder:
    """The JVP and HVP of `model` by `first`'s method (`first` is its derivation)."""
    start = time.perf_counter()
    names = tuple(direction_name(p) for p in model.param_names)
    clash = set(names) & {*model.param_names, *model.input_names}
    if clash:
        raise OptionError(f"order=2 names the direction of each param v[<name>], and the "
                          f"model already has a symbol named {sorted(clash)[0]!r}; rename it")
    if first.method == "reverse":
        seeds = {p: param(name, p.shape) for p, name in zip(model.param_nodes, names)}
        k = len(names)
        t = forward_mode([first.sample_loss, first.penalty, *first.sample_grads,
                          *first.penalty_grads], seeds)
        sample_jvp, penalty_jvp, hvps = t[0], t[1], t[2:]
    else:
        sample_jvp, penalty_jvp, hvps = _symbolic(model, names)
        k = len(names)
    out, _ = stabilize([sample_jvp, penalty_jvp, *hvps])
    return SecondOrder(names, out[0], out[1], tuple(out[2:2 + k]), tuple(out[2 + k:]),
                       sparsity=analyse(model), seconds=time.perf_counter() - start)


def _symbolic(model: Model, names: tuple[str, ...]):
    """sympy.diff twice: the JVP sum_i g_i v_i and H v, lowered with the direction
    symbols as params."""
    vs = [sp.Symbol(name, real=True) for name in names]
    low = Lowering({**dict(zip(model.real_params, model.param_names)),
                    **dict(zip(vs, names))},
                   dict(zip(model.real_inputs, model.input_names)), zero_deltas=True,
                   sizes={s: s.name for s in model.sizes})

    def parts(expr):
        if expr is None:
            return None, [None] * len(vs)
        grads = [with_derivatives_evaluated(g)
                 for g in direct.symbolic_gradients(expr, model.real_params)]
        jvp = sp.Add(*[g * v for g, v in zip(grads, vs)])
        hvps = [sp.Add(*[h * v for h, v in zip(direct.symbolic_gradients(g, model.real_params),
                                                vs)]) for g in grads]
        return direct.lower_gradients(low, [jvp])[0], direct.lower_gradients(low, hvps)

    sample_jvp, sample_hvps = parts(model.loss)
    penalty_jvp, penalty_hvps = parts(model.penalty)
    return sample_jvp, penalty_jvp, [*sample_hvps, *penalty_hvps]
