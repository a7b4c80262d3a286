"""CPU layout of a matrix model's kernels: BLAS products, fused loops, row reductions.

Emits one jitted core per entry point from a `TensorProgram`. Arrays between
kernels have the module's DTYPE (float64, or float32 for BLAS's single
precision); accumulators stay in float64, and float32 loops call the `_f32` vector
functions. Params arrive
as one flat vector `theta` (sliced into views, no copies), data as 2-D arrays;
the core writes the loss to out[0] and the flat gradient to out[1:], the
layout the optimizers and the training loops share with scalar models.

A gradient is computed where it belongs: a product (`np.dot(a, b, out=...)`, the
same GEMM call as without `out`), a stored loop array or a column sum whose
result is a param's gradient writes straight into that param's view of `out`,
so nothing is copied into `out` afterwards. In float32 a product or a stored
array is single precision while `out` is float64, so those are written as
before and widened into `out` by one slice assignment.
"""

from __future__ import annotations

from math import prod

from codegen.printer import VECTOR_CALLS, ExprPrinter, expr_printer, operand
from codegen.source import Source
from symgrad.ir import Node, Op, Shape
from symgrad.program import Assign
from symgrad.tensor_program import Loop, MatMul, RowLogSumExp, TensorProgram, View

JIT = '@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)'


def dim(d) -> str:
    return str(d)


def shape_text(shape: Shape) -> str:
    return "(" + ", ".join(map(dim, shape)) + ("," if len(shape) == 1 else "") + ")"


class _Names:
    def __init__(self, tp: TensorProgram):
        self.names: dict[Node, str] = {}
        for i, p in enumerate(tp.params):
            self.names[p] = f"P{i}"
        for j, x in enumerate(tp.inputs):
            self.names[x] = f"D{j}"
        count = 0
        for kernel in tp.kernels:
            produced = [kernel.out] if not isinstance(kernel, Loop) else \
                [m for m, _ in kernel.stores] + [r for r, _ in kernel.accumulates]
            for n in produced:
                if n not in self.names:
                    self.names[n] = f"{'s' if not n.shape else 'A'}{count}"
                    count += 1

    def ref(self, n: Node) -> str:
        if n.op is Op.CONST:
            return operand(n.attr)
        if n.op is Op.SIZE:
            return "nf"
        return self.names[n]


def core_function(src: Source, name: str, tp: TensorProgram, doc: str,
                  param_shapes: list[Shape], size_source: tuple[int, int] | None,
                  result: str, dtype: str = "float64", math: str = "vector",
                  out_shapes: list[Shape] | None = None) -> None:
    """Emit `name(theta, D0, ..., out)`; theta holds the params of `param_shapes`.

    result "loss_and_grad": out[0] = outputs[0], out[1:] = the flat outputs[1:]
    (each of its param's shape, or of `out_shapes`' entry where given: the order-2
    cores read a direction after the params); "loss": out[0] = outputs[0]; "predict": returns a
    copy of outputs[0]. `dtype` is the module's DTYPE (arrays between kernels); `math`
    "vector" calls codegen/vector_math.py for exp, log, tanh, ... in the loops.
    """
    names = _Names(tp)
    out_shapes = param_shapes if out_shapes is None else out_shapes
    dest = (_destinations(tp, out_shapes, dtype) if result == "loss_and_grad" else {})
    printer = expr_printer(math, dtype)
    data_args = [f"D{j}" for j in range(len(tp.inputs))]
    args = ["theta", *data_args] + ([] if result == "predict" else ["out"])
    src.line(JIT)
    with src.block(f"def {name}({', '.join(args)}):"):
        src.line(f'"""{doc}"""')
        if size_source is not None:
            j, axis = size_source
            src.line(f"n = D{j}.shape[{axis}]")
            nf_line = src.mark()
            src.line("nf = float(n)")
        offset = 0
        for i, shape in enumerate(param_shapes):
            size = prod(shape)
            view = f"theta[{offset}:{offset + size}]"
            src.line(f"P{i} = {view}.reshape({shape_text(shape)})" if shape else
                     f"P{i} = theta[{offset}]")
            offset += size
        for kernel in tp.kernels:
            if isinstance(kernel, MatMul) and kernel.out in dest:
                src.line(f"{names.ref(kernel.out)} = {dest[kernel.out]}")
                src.line(f"np.dot({names.ref(kernel.a)}, {names.ref(kernel.b)}, "
                         f"{names.ref(kernel.out)})")
            elif isinstance(kernel, MatMul):
                src.line(f"{names.ref(kernel.out)} = np.dot({names.ref(kernel.a)}, "
                         f"{names.ref(kernel.b)})")
            elif isinstance(kernel, View):
                src.line(f"{names.ref(kernel.out)} = {names.ref(kernel.out.args[0])}.T")
            elif isinstance(kernel, RowLogSumExp):
                _row_logsumexp(src, names, kernel.out, printer)
            else:
                _loop(src, printer, names, kernel, dest)
        if result == "predict":
            src.line(f"return {_prediction(tp, names)}")
        else:
            src.line(f"out[0] = {names.ref(tp.outputs[0])}")
            if result == "loss_and_grad":
                _write_flat(src, names, tp.outputs[1:], out_shapes, dest)
    if size_source is not None:
        src.drop_if_unused(nf_line, "nf")
    src.line()


def vector_calls(tp: TensorProgram) -> int:
    """How many calls to codegen/vector_math.py the core of `tp` makes under math="vector"."""
    loops = [k for k in tp.kernels if isinstance(k, Loop)]
    return (sum(isinstance(s, Assign) and s.node.op in VECTOR_CALLS
                for k in loops for s in (*k.body.prologue, *k.body.body))
            + 2 * sum(isinstance(k, RowLogSumExp) for k in tp.kernels))


def _prediction(tp: TensorProgram, names: _Names) -> str:
    """The predict core's result: an array the core allocated itself (a product or a
    stored loop array) is returned as it is; a view of params or data is copied."""
    n = tp.outputs[0]
    if not n.shape:
        return f"np.full((1, 1), {names.ref(n)}, DTYPE)"
    fresh = any(isinstance(k, MatMul) and k.out is n or
                isinstance(k, Loop) and any(m is n for m, _ in k.stores) for k in tp.kernels)
    return names.ref(n) if fresh else f"{names.ref(n)}.copy()"


def _flat_view(offset: int, shape: Shape) -> str:
    """A param's gradient as a view of `out` (offset counts out[0], the loss)."""
    return f"out[{offset}:{offset + prod(shape)}].reshape({shape_text(shape)})"


def _destinations(tp: TensorProgram, param_shapes, dtype: str) -> dict[Node, str]:
    """The gradients computed straight into their param's view of `out`: a product or a
    stored loop array in DTYPE when that is float64 (out's dtype), and a loop's
    accumulated sum (always float64). A node that is the gradient of two params goes to
    the first; `_write_flat` copies it to the other."""
    writable: set[Node] = set()
    for kernel in tp.kernels:
        if isinstance(kernel, MatMul) and dtype == "float64":
            writable.add(kernel.out)
        elif isinstance(kernel, Loop):
            writable.update(r for r, _ in kernel.accumulates if r.shape)
            if dtype == "float64":
                writable.update(m for m, _ in kernel.stores if m.shape)
    dest: dict[Node, str] = {}
    offset = 1
    for g, shape in zip(tp.outputs[1:], param_shapes):
        if shape and g in writable and g not in dest and tuple(g.shape) == tuple(shape):
            dest[g] = _flat_view(offset, shape)
        offset += prod(shape)
    return dest


def _write_flat(src: Source, names: _Names, grads, param_shapes, dest) -> None:
    """Copy into `out` the gradients not computed there (`dest`): scalars, constants,
    leaves, transposed views, float32 arrays (widened), and repeats."""
    offset = 1
    for g, shape in zip(grads, param_shapes):
        size = prod(shape)
        if not shape:
            src.line(f"out[{offset}] = {names.ref(g)}")
        elif g.op is Op.CONST or not g.shape:
            src.line(f"out[{offset}:{offset + size}] = {names.ref(g)}")
        elif dest.get(g) != _flat_view(offset, shape):
            src.line(f"{_flat_view(offset, shape)}[:, :] = {names.ref(g)}")
        offset += size


def _load(names: _Names, a: Node, blocks=None) -> str:
    """The element of `a` at (i, j) (a row or column of one broadcast); `blocks` maps
    arrays to their slice for the current block of rows."""
    if not a.shape:
        return names.ref(a)
    if a.op is Op.CONST:
        return names.ref(a)
    if blocks and a in blocks:
        return f"{blocks[a]}[k_, {'0' if a.shape[1] == 1 else 'j'}]"
    idx = [("0" if have == 1 else var) for have, var in zip(a.shape, ("i", "j"))]
    return f"{names.ref(a)}[{idx[0]}, {idx[1]}]"


def _accumulator(r: Node) -> str:
    """How a SUM accumulates in its loop: "scalar" (a local for the whole loop: totals,
    and column sums of a one-column loop), "row" (a local reset per row: row sums), or
    "array" (column sums, one array element per column)."""
    if not r.shape or r.shape == (1, 1):
        return "scalar"
    return "row" if r.attr == 1 else "array"


def _loop(src: Source, printer: ExprPrinter, names: _Names, loop: Loop,
          dest: dict[Node, str]) -> None:
    """Emit a fused loop; its stored arrays and sums named in `dest` are views of `out`."""
    body = loop.body
    outputs = body.outputs
    kinds = {r: _accumulator(r) for r, _ in loop.accumulates}
    for m, _ in loop.stores:
        if m in dest:
            src.line(f"{names.ref(m)} = {dest[m]}")
        elif m.shape:
            src.line(f"{names.ref(m)} = np.empty({shape_text(m.shape)}, DTYPE)")
    for r, _ in loop.accumulates:
        if r in dest:
            src.line(f"{names.ref(r)} = {dest[r]}")
            if kinds[r] == "array":
                src.line(f"{names.ref(r)}[:, :] = 0.0")
        elif kinds[r] == "array":
            src.line(f"{names.ref(r)} = np.zeros({shape_text(r.shape)})")
        elif r.shape:
            src.line(f"{names.ref(r)} = np.empty({shape_text(r.shape)})")
        if kinds[r] == "scalar":
            src.line(f"{_local(names, r)} = 0.0")
    src.lines(printer.statement(s) for s in body.prologue)
    if not loop.shape:
        _loop_body(src, printer, names, loop, outputs, kinds)
    elif blocked_sums(loop):
        _blocked_loop(src, printer, names, loop, outputs, kinds)
    else:
        rows, cols = loop.shape
        with src.block(f"for i in range({dim(rows)}):"):
            for r, kind in kinds.items():
                if kind == "row":
                    src.line(f"{_local(names, r)} = 0.0")
            with src.block(f"for j in range({dim(cols)}):"):
                _loop_body(src, printer, names, loop, outputs, kinds)
            for r, kind in kinds.items():
                if kind == "row":
                    src.line(f"{names.ref(r)}[i, 0] = {_local(names, r)}")
    for r, kind in kinds.items():
        if kind == "scalar" and r.shape:
            src.line(f"{names.ref(r)}[0, 0] = {_local(names, r)}")


def blocked_sums(loop: Loop) -> bool:
    """Whether `loop` sums its totals in blocks (codegen/block_sums.py): a loop over
    the rows of one column (per-sample values) with a total to accumulate. A strict
    running total is a chain of dependent adds that keeps the loop scalar; in a loop
    of many columns the totals are rare and the column loop vectorizes anyway."""
    return (bool(loop.shape) and loop.shape[1] == 1 and loop.shape[0] != 1
            and any(_accumulator(r) == "scalar" for r, _ in loop.accumulates))


def _blocked_loop(src, printer, names, loop: Loop, outputs, kinds) -> None:
    """The loop over rows in blocks of BLOCK: each total's values are stored in a row of
    `buf_` and added by `add_block_sums` in its fixed lane order (the same bits on any
    machine), so the body vectorizes. Arrays are read and written through slices of
    the block's rows, indexed by the block loop's own counter: Numba then knows the
    index is not negative and drops its wraparound select (which keeps loads scalar)."""
    totals = [r for r, _ in loop.accumulates if kinds[r] == "scalar"]
    rows = dim(loop.shape[0])
    arrays = [a for a in loop.loads if a.shape and a.op is not Op.CONST and a.shape[0] != 1]
    arrays += [m for m, _ in loop.stores if m.shape]
    blocks = {a: f"b{q}_" for q, a in enumerate(dict.fromkeys(arrays))}
    src.line(f"buf_ = np.empty(({len(totals)}, BLOCK))")
    src.line(f"sums_ = np.zeros({len(totals)})")
    with src.block(f"for start_ in range(0, {rows}, BLOCK):"):
        src.line(f"m_ = min({rows} - start_, BLOCK)")
        for a, b in blocks.items():
            src.line(f"{b} = {names.ref(a)}[start_:start_ + m_]")
        with src.block("for k_ in range(m_):"):
            _loop_body(src, printer, names, loop, outputs, kinds, blocks,
                       {r: q for q, r in enumerate(totals)})
        src.line("add_block_sums(buf_, m_, sums_)")
    for q, r in enumerate(totals):
        src.line(f"{_local(names, r)} = sums_[{q}]")


def _local(names: _Names, r: Node) -> str:
    """The local accumulator of a SUM (its own name when it is a scalar)."""
    return names.ref(r) if not r.shape else f"acc_{names.ref(r)}"


def _loop_body(src, printer, names, loop: Loop, outputs, kinds, blocks=None,
               buffered=None) -> None:
    """One element: loads, the body, stores, and accumulations (`blocks` as in `_load`;
    a SUM in `buffered` stores its value in that row of `buf_` instead)."""
    for j, a in enumerate(loop.loads):
        src.line(f"x{j} = {_load(names, a, blocks)}")
    src.lines(printer.statement(s) for s in loop.body.body)
    for m, k in loop.stores:
        if blocks and m in blocks:
            target = f"{blocks[m]}[k_, 0]"
        else:
            target = f"{names.ref(m)}[i, j]" if m.shape else names.ref(m)
        src.line(f"{target} = {operand(outputs[k])}")
    for r, k in loop.accumulates:
        if buffered and r in buffered:
            src.line(f"buf_[{buffered[r]}, k_] = {operand(outputs[k])}")
            continue
        target = f"{names.ref(r)}[0, j]" if kinds[r] == "array" else _local(names, r)
        src.line(f"{target} += {operand(outputs[k])}")


def _row_logsumexp(src: Source, names: _Names, out: Node, printer: ExprPrinter) -> None:
    """Stable log-sum-exp along one axis (or all): shift by the max, which is
    replaced by 0 when it is infinite, as in ir.SEMANTICS."""
    exp, log = (printer.CALLS.get(op, printer.FUNCS[op]) for op in (Op.EXP, Op.LOG))
    x = out.args[0]
    axis = out.attr
    xs = names.ref(x)
    res = names.ref(out)
    rows, cols = x.shape
    if axis is None:
        outer, inner, at = "1", None, None
    elif axis == 1:
        outer, inner, at = dim(rows), dim(cols), ("r", "c")
    else:
        outer, inner, at = dim(cols), dim(rows), ("c", "r")
    if axis is None:
        src.line("m_ = -np.inf")
        with src.block(f"for i in range({dim(rows)}):"):
            with src.block(f"for j in range({dim(cols)}):"):
                src.line(f"m_ = np.maximum(m_, {xs}[i, j])")
        src.line("m_ = m_ if np.isfinite(m_) else 0.0")
        src.line("acc_ = 0.0")
        with src.block(f"for i in range({dim(rows)}):"):
            with src.block(f"for j in range({dim(cols)}):"):
                src.line(f"acc_ += {exp}({xs}[i, j] - m_)")
        src.line(f"{res} = m_ + {log}(acc_)")
        return
    index = "[r, c]"
    src.line(f"{res} = np.empty({shape_text(out.shape)}, DTYPE)")
    with src.block(f"for {at[0]} in range({outer}):"):
        src.line("m_ = -np.inf")
        with src.block(f"for {at[1]} in range({inner}):"):
            src.line(f"m_ = np.maximum(m_, {xs}{index})")
        src.line("m_ = m_ if np.isfinite(m_) else 0.0")
        src.line("acc_ = 0.0")
        with src.block(f"for {at[1]} in range({inner}):"):
            src.line(f"acc_ += {exp}({xs}{index} - m_)")
        target = f"{res}[r, 0]" if axis == 1 else f"{res}[0, c]"
        src.line(f"{target} = m_ + {log}(acc_)")
