"""The direct method for matrix models, at small sizes: expand into scalars.

SymPy's own matrix calculus fails on typical networks (ShapeError with concrete
shapes, silently wrong results in some cases; see docs/numba-facts.md), so the
lecture's "differentiate the whole formula" is done on the scalar expansion
instead: one sample's loss (the batch size set to 1) written entrywise, each
matrix entry a scalar symbol. That is exact when the loss is a sum (or mean) of
per-sample terms, which `expand_to_scalars` checks numerically on a batch of
two before trusting it. `ExpandedKernel` keeps the matrix model's calling
convention (arrays in, arrays out) around the scalar kernel.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from symgrad.errors import InvalidModelError, OptionError
from symgrad.kernel import Kernel
from symgrad.model import Model

MAX_SCALARS = 2000


def _entry_name(name: str, i: int, j: int, shape) -> str:
    if shape[0] == 1 or shape[1] == 1:
        return f"{name}[{max(i, j)}]"
    return f"{name}[{i},{j}]"


class Expansion:
    """A matrix model written with scalar symbols, and the maps between the two."""

    def __init__(self, model: Model):
        if not model.is_matrix:
            raise OptionError("expand_to_scalars is for matrix models")
        if len(model.sizes) != 1:
            raise InvalidModelError("expanding into scalars needs one batch dimension")
        self.model = model
        (self.n,) = model.sizes
        self.param_entries = {p.name: self._entries(p, per_sample=False) for p in model.params}
        self.input_entries = {x.name: self._entries(x, per_sample=True) for x in model.inputs}
        count = sum(len(e) for e in self.param_entries.values())
        if count > MAX_SCALARS:
            raise OptionError(f"the scalar expansion would have {count} params (more than "
                              f"{MAX_SCALARS}); differentiate this model with method='reverse'")
        mapping = {}
        for p in model.params:
            mapping.update({MatrixElement(p, i, j): s
                            for (i, j), s in self.param_entries[p.name].items()})
        for x in model.inputs:
            one_row = x.subs(self.n, 1)     # X (n, k) becomes X (1, k) in the n = 1 loss
            mapping.update({MatrixElement(one_row, 0, j): s
                            for (i, j), s in self.input_entries[x.name].items()})
        mean = _reads_as_scalar(model.loss, self.n)     # e.g. mse(..., reduction="mean")
        per_sample = self._explicit(model.loss, mapping)
        penalty = None if model.penalty is None else self._explicit(model.penalty, mapping)
        params = [s for entries in self.param_entries.values() for s in entries.values()]
        inputs = [s for entries in self.input_entries.values() for s in entries.values()]
        self.scalar_model = Model(per_sample, params, inputs, penalty=penalty,
                                  reduction="mean" if mean else "sum",
                                  name=f"{model.name or 'model'} (scalar expansion)")

    def _entries(self, sym: sp.MatrixSymbol, per_sample: bool) -> dict:
        rows, cols = sym.shape
        rows = 1 if per_sample else int(rows)
        return {(i, j): sp.Symbol(_entry_name(sym.name, i, j, (rows, int(cols))), real=True)
                for i in range(rows) for j in range(int(cols))}

    def _explicit(self, expr, mapping) -> sp.Expr:
        try:
            one = expr.subs(self.n, 1)
            if getattr(one, "is_Matrix", False) or isinstance(one, sp.MatrixExpr):
                one = one.as_explicit()[0, 0]
        except TypeError as e:
            # SymPy applies a Lambda whose body compares (a Piecewise) to a whole
            # matrix when it rebuilds the expression: "Invalid comparison of non-real X*W".
            raise OptionError(
                f"SymPy cannot write this matrix model entrywise for method='symbolic' "
                f"({e}); differentiate it with method='reverse'") from None
        return one.xreplace(mapping)

    def scalar_params(self, params) -> dict[str, float]:
        out = {}
        for name, entries in self.param_entries.items():
            shape = self.model.param_nodes[self.model.param_names.index(name)].shape
            arr = np.asarray(params[name], dtype=np.float64).reshape(shape)
            out.update({s.name: float(arr[i, j]) for (i, j), s in entries.items()})
        return out

    def scalar_data(self, data) -> dict[str, np.ndarray]:
        """One array per input entry, after the checks (and the conversions: class labels
        to one-hot rows, vectors to one-column arrays) of the matrix module's own."""
        from codegen.runtime import check_arrays
        from symgrad.kernel import is_dask_data

        if is_dask_data(data):
            raise OptionError("method='symbolic' matrix kernels (a scalar expansion) run "
                              "on data in memory; for dask arrays compile with "
                              "method='reverse'")
        nodes = self.model.input_nodes
        arrays, _ = check_arrays(data, self.model.input_names, [x.shape for x in nodes],
                                 str(self.n))
        out = {}
        for x, arr in zip(self.model.inputs, arrays):
            arr = arr.reshape(arr.shape[0], -1)
            out.update({s.name: np.ascontiguousarray(arr[:, j])
                        for (_, j), s in self.input_entries[x.name].items()})
        return out

    def matrix_values(self, values: dict[str, float], params) -> dict[str, np.ndarray]:
        """Per-entry values (gradients, or params after training) as arrays of the
        shapes the params were given in."""
        out = {}
        for name, entries in self.param_entries.items():
            given = np.asarray(params[name])
            shape = self.model.param_nodes[self.model.param_names.index(name)].shape
            g = np.empty(shape)
            for (i, j), s in entries.items():
                g[i, j] = values[s.name]
            out[name] = g.reshape(given.shape)
        return out


def _reads_as_scalar(expr: sp.Basic, symbol: sp.Symbol) -> bool:
    """Whether `symbol` appears in expr other than as a matrix dimension."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if e == symbol:
            return True
        if not isinstance(e, (sp.MatrixSymbol, sp.OneMatrix, sp.ZeroMatrix, sp.Identity)):
            stack.extend(e.args)
    return False


def expand_to_scalars(model: Model) -> Expansion:
    """The scalar expansion, after checking on random data that it is exact."""
    expansion = Expansion(model)
    _check_separable(expansion)
    return expansion


def _check_separable(e: Expansion) -> None:
    from symgrad import interpret
    from symgrad.derivation import derive

    rng = np.random.default_rng(0)
    params = {p: rng.uniform(-1, 1, node.shape)
              for p, node in zip(e.model.param_names, e.model.param_nodes)}
    data = {x: rng.uniform(-1, 1, tuple(2 if isinstance(d, str) else d for d in node.shape))
            for x, node in zip(e.model.input_names, e.model.input_nodes)}
    roots = [r for r in e.model.forward if r is not None]
    values = interpret.evaluate_tensor(roots, params, data)
    matrix_loss = sum(float(values[r]) for r in roots)
    scalar_loss, _ = interpret.loss_and_grad(derive(e.scalar_model, "reverse"),
                                             e.scalar_params(params), e.scalar_data(data))
    if not np.isclose(matrix_loss, scalar_loss, rtol=1e-9, atol=1e-12):
        raise InvalidModelError(
            "this matrix model's loss is not a sum (or mean) of per-sample terms, so it "
            f"cannot be expanded one sample at a time ({matrix_loss!r} != {scalar_loss!r} "
            "on a test batch); pass terms on params alone (L2) as penalty=, or use "
            "method='reverse'")


class ExpandedKernel(Kernel):
    """A scalar kernel behind a matrix model's calling convention: arrays in, arrays out,
    the same entry points as any Kernel (predict refuses: the expansion has the loss
    only)."""

    def __init__(self, expansion: Expansion, kernel: Kernel):
        self.expansion, self.kernel = expansion, kernel
        self.source, self.derivation, self.timings = kernel.source, kernel.derivation, \
            kernel.timings
        self.second_order = kernel.second_order
        self.module = kernel.module
        self.params, self.inputs = expansion.model.param_names, expansion.model.input_names

    def loss(self, params, data=None, *, check_finite=False) -> float:
        e = self.expansion
        return self.kernel.loss(e.scalar_params(params), e.scalar_data(data),
                                check_finite=check_finite)

    def loss_and_grad(self, params, data=None, *, check_finite=False):
        e = self.expansion
        loss, grads = self.kernel.loss_and_grad(e.scalar_params(params), e.scalar_data(data),
                                                check_finite=check_finite)
        return loss, e.matrix_values(grads, params)

    def jvp(self, params, tangent, data=None, *, check_finite=False):
        e = self.expansion
        return self.kernel.jvp(e.scalar_params(params), e.scalar_params(tangent),
                               e.scalar_data(data), check_finite=check_finite)

    def hvp(self, params, vector, data=None, *, check_finite=False):
        e = self.expansion
        return e.matrix_values(self.kernel.hvp(e.scalar_params(params), e.scalar_params(vector),
                                               e.scalar_data(data), check_finite=check_finite),
                               params)

    def hessian(self, params, data=None, sparse=None, *, check_finite=False):
        # The expansion's scalar params are the matrix params' entries in the same flat
        # (PARAMS, row-major) order, so its Hessian is the matrix model's.
        e = self.expansion
        return self.kernel.hessian(e.scalar_params(params), e.scalar_data(data), sparse,
                                   check_finite=check_finite)

    def predict(self, params, data=None, *, check_finite=False):
        raise OptionError("predict is not available for a matrix model compiled with "
                          "method='symbolic' (its scalar expansion covers the loss only); "
                          "compile it with method='reverse' to predict")

    def train(self, params, data=None, optimizer=None, steps=1, *, check_finite=False):
        new_params, history, _ = self.train_step(params, data, optimizer, steps,
                                                 check_finite=check_finite)
        return new_params, history

    def train_step(self, params, data=None, optimizer=None, steps=1, state=None, *,
                   check_finite=False):
        e = self.expansion
        new, history, state = self.kernel.train_step(e.scalar_params(params),
                                                     e.scalar_data(data), optimizer, steps,
                                                     state, check_finite=check_finite)
        return e.matrix_values(new, params), history, state

    def save(self, path):
        return self.kernel.save(path)

    def warmup(self, optimizer=None, *, parallel=False):
        return self.kernel.warmup(optimizer, parallel=parallel)

    def warmup_loss(self):
        return self.kernel.warmup_loss()


def sympy_matrix_calculus(model: Model) -> dict[str, str]:
    """What SymPy's own matrix calculus makes of d(loss)/d(param), per matrix param:
    "ok" or the error it raised (a contrast row for the benchmarks, never a crash)."""
    report = {}
    for p in model.params:
        try:
            sp.diff(model.loss, p)
            report[p.name] = "ok"
        except Exception as exc:     # SymPy raises ShapeError, TypeError, ... here
            report[p.name] = f"{type(exc).__name__}: {exc}"[:200]
    return report
