"""Differentiate a model by either method into the outputs the backends compile."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from symgrad import direct
from symgrad.errors import OptionError
from symgrad.ir import Node, count_ops, dump, graph_hash
from symgrad.model import Model
from symgrad.passes.stabilize import stabilize
from symgrad.reverse import reverse_mode

METHODS = ("reverse", "symbolic")


@dataclass(frozen=True)
class Derivation:
    """A model's per-sample loss and penalty and their gradients, as IR.

    The total loss is `reduce(sample_loss) + penalty`; the gradient of param k is
    `reduce(sample_grads[k]) + penalty_grads[k]`. None stands for zero.
    """

    method: str
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    reduction: str
    sample_loss: Node
    penalty: Node | None
    sample_grads: tuple[Node | None, ...]
    penalty_grads: tuple[Node | None, ...]
    seconds: float = field(default=0.0, compare=False)
    rewrites: tuple[tuple[str, int], ...] = ()     # stability rewrites applied, with counts

    def roots(self, with_grads: bool = True) -> list[Node]:
        nodes = [self.sample_loss, self.penalty]
        if with_grads:
            nodes += [*self.sample_grads, *self.penalty_grads]
        return [n for n in nodes if n is not None]

    def dump(self) -> str:
        """IR text of every output, labelled (the graph's identity)."""
        roots, labels = [], []
        for label, n in self._labelled():
            if n is not None:
                roots.append(n)
                labels.append(label)
        return dump(roots, labels)

    def hash(self) -> str:
        roots, labels = zip(*[(n, lab) for lab, n in self._labelled() if n is not None])
        return graph_hash(list(roots), list(labels))

    def sizes(self) -> dict[str, int]:
        forward = count_ops(self.roots(with_grads=False))
        total = count_ops(self.roots())
        return {"forward_ops": forward, "total_ops": total, "backward_ops": total - forward}

    def _labelled(self) -> list[tuple[str, Node | None]]:
        out = [("loss", self.sample_loss), ("penalty", self.penalty)]
        out += [(f"d loss/d {p}", g) for p, g in zip(self.params, self.sample_grads)]
        out += [(f"d penalty/d {p}", g) for p, g in zip(self.params, self.penalty_grads)]
        return out


def derive(model: Model, method: str = "reverse") -> Derivation:
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    start = time.perf_counter()
    (sample_loss, penalty), fired = stabilize(model.forward)
    if method == "reverse":
        wrt = list(model.param_nodes)
        sample_grads = reverse_mode(sample_loss, wrt)
        penalty_grads = [None] * len(wrt) if penalty is None else reverse_mode(penalty, wrt)
    else:
        low = model.lowering(zero_deltas=True)
        sample_grads = direct.lower_gradients(
            low, direct.symbolic_gradients(model.loss, model.real_params))
        penalty_grads = [None] * len(model.params) if penalty is None else \
            direct.lower_gradients(low, direct.symbolic_gradients(model.penalty,
                                                                  model.real_params))
    grads, fired_after = stabilize([*sample_grads, *penalty_grads])
    fired.update(fired_after)
    k = len(sample_grads)
    return Derivation(method, model.param_names, model.input_names, model.reduction,
                      sample_loss, penalty, tuple(grads[:k]), tuple(grads[k:]),
                      seconds=time.perf_counter() - start,
                      rewrites=tuple(sorted(fired.items())))
