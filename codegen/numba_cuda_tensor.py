"""CUDA layout of a matrix model's `TensorProgram`: one kernel per schedule step.

* `Loop`: a 2-D kernel, threads along columns (x) and rows (y) of the iteration
  space, a grid-stride loop over rows and a bounds guard; the body is the CPU's
  scalar program (shared printer). Its sums are block partials in shared memory:
  column sums and totals accumulate per thread over its rows, then a tree over the
  block; row sums reduce across the threads of a row at each row step. The
  partials (one row per block) are added in block order by a second kernel
  (`cuda_support.sum_columns`/`sum_all`): deterministic, like the CPU's chunks.
  Loops over at most SERIAL_LIMIT elements (scalars, bias-sized rows) run in one
  thread in the CPU's order instead: one launch, no second pass.
* `MatMul`: a tiled shared-memory product, each thread holding a `micro` x `micro`
  tile in registers; a transposed operand is the stored array read with swapped
  indices (four kernel variants), never a copy. A product with a long inner dim and
  few output tiles (a weight gradient, whose inner dim is the batch) is split along
  the inner dim, the slices added in order by a second kernel (`cuda_support.matmul`,
  which can also hand products to cuBLAS). `View` emits nothing.
* `RowLogSumExp`: one thread per row (or column), max shifted out as on the CPU.
* The loss and the flat gradient are gathered into `out` by one last kernel.

Arrays between kernels have the module's DTYPE; sums and scalars are float64 (as on
the CPU, where scalars are Python floats); scalars live in 1-element device arrays.
"""

from __future__ import annotations

import textwrap
from math import prod

from codegen.numba_cuda import F64, CudaExprPrinter, KernelSet, Launch, array_type, tree_reduce
from codegen.printer import operand
from codegen.source import Source
from symgrad.ir import Node, Op, Shape
from symgrad.tensor_program import Loop, MatMul, RowLogSumExp, TensorProgram, View


def _pow2_at_least(k: int) -> int:
    p = 1
    while p < k:
        p *= 2
    return p


def _dim(d) -> str:
    return str(d)


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(map(_dim, shape)) + ("," if len(shape) == 1 else "") + ")"


class _Arrays:
    """Name, dtype and element access of each value held between kernels."""

    def __init__(self, tp: TensorProgram, dtype: str):
        self.dtype = dtype
        self.names: dict[Node, str] = {}
        self.dtypes: dict[Node, str] = {}
        self.views: dict[Node, Node] = {}     # TRANSPOSE node -> the array it reads
        self.wide: set[Node] = set()          # float64 whatever DTYPE: scalars and sums
        for i, p in enumerate(tp.params):
            self.names[p], self.dtypes[p] = f"P{i}", dtype
        for j, x in enumerate(tp.inputs):
            self.names[x], self.dtypes[x] = f"D{j}", dtype
        count = 0
        for kernel in tp.kernels:
            if isinstance(kernel, View):
                self.views[kernel.out] = kernel.out.args[0]
                continue
            if isinstance(kernel, Loop):
                produced = [(m, not m.shape) for m, _ in kernel.stores]
                produced += [(r, True) for r, _ in kernel.accumulates]
            elif isinstance(kernel, RowLogSumExp):
                produced = [(kernel.out, kernel.out.attr is None)]
            else:
                produced = [(kernel.out, False)]
            for n, wide in produced:
                if n not in self.names:
                    self.names[n], self.dtypes[n] = f"A{count}", F64 if wide else dtype
                    if wide:
                        self.wide.add(n)
                    count += 1

    def base(self, n: Node) -> tuple[Node, bool]:
        """The stored array holding n, and whether n is its transpose."""
        if n in self.views:
            return self.views[n], True
        return n, False

    def arg(self, n: Node) -> tuple[str, str]:
        """(name, Numba type) of the array holding n, as a kernel argument."""
        b, _ = self.base(n)
        return self.names[b], array_type(self.dtypes[b], max(1, len(b.shape)))

    def element(self, n: Node, i: str, j: str) -> str:
        """n's element at row i, column j (broadcast: a dim of 1 reads index 0)."""
        if n.op is Op.CONST:
            return operand(n.attr)
        if n.op is Op.SIZE:
            return "nf"
        b, swapped = self.base(n)
        if not b.shape:
            return f"{self.names[b]}[0]"
        ii = "0" if n.shape[0] == 1 else i
        jj = "0" if n.shape[1] == 1 else j
        if swapped:
            ii, jj = jj, ii
        return f"{self.names[b]}[{ii}, {jj}]"

    def reads_array(self, n: Node) -> bool:
        return n.op not in (Op.CONST, Op.SIZE)


class _Core:
    """Accumulates one host function: launch-size lines, workspace arrays, launches."""

    def __init__(self, name: str):
        self.name = name
        self.grids: list[str] = []
        self.allocs: list[tuple[str, str, str]] = []      # (name, shape text, dtype text)
        self.launches: list[str] = []
        self.count = 0

    def grid_name(self) -> str:
        self.count += 1
        return f"g{self.count}"


def param_layout(param_shapes: list[Shape], name: str = "PARAM_LAYOUT") -> list[str]:
    """The module constant PARAM_LAYOUT: (start, stop, shape) of each param in theta (the
    order-2 cores' SECOND_ORDER_LAYOUT: the params, then the direction's entries)."""
    lines, offset = [f"{name} = ("], 0
    for shape in param_shapes:
        lines.append(f"    ({offset}, {offset + prod(shape)}, {tuple(shape)!r}),")
        offset += prod(shape)
    return lines + [")"]


def core_function(kernels: KernelSet, host: Source, name: str, tp: TensorProgram, doc: str,
                  param_shapes: list[Shape], size_source: tuple[int, int] | None,
                  result: str, dtype: str, launch: Launch, layout: str = "PARAM_LAYOUT",
                  out_shapes: list[Shape] | None = None) -> None:
    """Emit the host function `name(theta, D0, ..., out)` (result "loss" or
    "loss_and_grad") or `name(theta, D0, ...)` returning (device array, transposed)
    (result "predict"), and register its kernels. theta holds the params of
    `param_shapes` as `layout` places them; out[1:] the outputs of `out_shapes` (default
    the params': the order-2 cores read a direction after the params)."""
    arrays = _Arrays(tp, dtype)
    printer = CudaExprPrinter()
    core = _Core(name)
    for kernel in tp.kernels:
        if isinstance(kernel, View):
            continue
        if isinstance(kernel, MatMul):
            _matmul(kernels, core, arrays, kernel, launch)
        elif isinstance(kernel, RowLogSumExp):
            _row_logsumexp(kernels, core, arrays, kernel.out, launch)
        else:
            _loop(kernels, core, arrays, printer, kernel, launch)
    data_args = [f"D{j}" for j in range(len(tp.inputs))]
    args = ["theta", *data_args] + ([] if result == "predict" else ["out"])
    with host.block(f"def {name}({', '.join(args)}):"):
        host.line(f'"""{doc}"""')
        if size_source is not None:
            j, axis = size_source
            host.line(f"n = D{j}.shape[{axis}]")
            host.line("nf = np.float64(n)    # IEEE division in the simulator too (1.0 / 0 is inf)")
        if param_shapes:
            names = ", ".join(f"P{i}" for i in range(len(param_shapes)))
            comma = "," if len(param_shapes) == 1 else ""
            host.line(f"{names}{comma} = param_views(theta, {layout})")
        host.lines(core.grids)
        if core.allocs:
            host.line(f"arrays = workspace({name!r}, (")
            for array, shape, kind in core.allocs:
                host.line(f"    ({shape}, {kind}),{' ' * max(1, 40 - len(shape + kind))}"
                          f"# {array}")
            host.line("))")
            names = ", ".join(a for a, _, _ in core.allocs) + ("," if len(core.allocs) == 1
                                                               else "")
            lines = ["(" + line if k == 0 else " " + line
                     for k, line in enumerate(textwrap.wrap(names, 86))]
            lines[-1] += ") = arrays"
            host.lines(lines)
        host.lines(core.launches)
        if result == "predict":
            b, swapped = arrays.base(tp.outputs[0])
            host.line(f"return {arrays.names[b] if arrays.reads_array(b) else None}, "
                      f"{swapped}")
        else:
            outputs = tp.outputs if result == "loss_and_grad" else tp.outputs[:1]
            _gather(kernels, host, arrays, outputs,
                    param_shapes if out_shapes is None else out_shapes, launch)
    host.line()
    host.line()


# ---------------------------------------------------------------- fused loops

# Loops over at most this many elements (no batch dim: scalars, bias-sized rows) run in
# one thread, in the CPU's order: one launch instead of a 2-D kernel plus a second pass.
SERIAL_LIMIT = 64


def _loop_block(loop: Loop, launch: Launch) -> tuple[int, int]:
    rows, cols = loop.shape
    bx = min(launch.loop_threads, _pow2_at_least(cols) if isinstance(cols, int) else 32)
    by = max(1, launch.loop_threads // bx)
    if isinstance(rows, int):
        by = min(by, _pow2_at_least(rows))
    return bx, by


def _alloc(core: _Core, arrays: _Arrays, n: Node) -> None:
    dtype = "np.float64" if n in arrays.wide else "DTYPE"
    core.allocs.append((arrays.names[n], _shape_text(n.shape) if n.shape else "(1,)", dtype))


def _loop(kernels: KernelSet, core: _Core, arrays: _Arrays, printer: CudaExprPrinter,
          loop: Loop, launch: Launch) -> None:
    used: dict[str, str] = {}          # kernel arg name -> type, in first-use order

    def use(n: Node) -> None:
        if arrays.reads_array(n):
            name, typ = arrays.arg(n)
            used.setdefault(name, typ)
        elif n.op is Op.SIZE:
            used.setdefault("nf", F64)

    for a in loop.loads:
        use(a)
    for m, _ in loop.stores:
        use(m)
        _alloc(core, arrays, m)
    for r, _ in loop.accumulates:
        use(r)
        _alloc(core, arrays, r)
    shape = loop.shape or (1, 1)
    if all(isinstance(d, int) for d in shape) and prod(shape) <= SERIAL_LIMIT:
        _serial_loop(kernels, core, arrays, printer, loop, used)
    else:
        _parallel_loop(kernels, core, arrays, printer, loop, used, launch)


def _serial_loop(kernels: KernelSet, core: _Core, arrays: _Arrays, printer: CudaExprPrinter,
                 loop: Loop, used: dict[str, str]) -> None:
    body = Source()
    with body.block("if cuda.grid(1) == 0:"):
        for r, _ in loop.accumulates:
            if r.shape:
                with body.block(f"for i in range({r.shape[0]}):"):
                    with body.block(f"for j in range({r.shape[1]}):"):
                        body.line(f"{arrays.names[r]}[i, j] = 0.0")
            else:
                body.line(f"{arrays.names[r]}[0] = 0.0")
        if loop.shape:
            rows, cols = loop.shape
            with body.block(f"for i in range({rows}):"):
                with body.block(f"for j in range({cols}):"):
                    _element_body(body, printer, arrays, loop, "i", "j")
        else:
            _element_body(body, printer, arrays, loop, "0", "0")
    kname = kernels.add("serial", list(used.items()), body, local=True)
    core.launches.append(f"{kname}[1, 1]({', '.join(used)})")


def _parallel_loop(kernels: KernelSet, core: _Core, arrays: _Arrays, printer: CudaExprPrinter,
                   loop: Loop, used: dict[str, str], launch: Launch) -> None:
    rows, cols = loop.shape
    bx, by = _loop_block(loop, launch)
    if "n" in (rows, cols):
        used = {"n": "int64", **used}
    kinds = {r: ("total" if r.attr is None else "cols" if r.attr == 0 else "rows")
             for r, _ in loop.accumulates}
    grid = core.grid_name()
    gx = f"{-(-cols // bx)}" if isinstance(cols, int) else f"blocks_for({cols}, {bx}, 2**31 - 1)"
    core.grids.append(f"{grid} = ({gx}, blocks_for({rows}, {by}, {launch.max_row_blocks}))")
    partials = {}
    for r, _ in loop.accumulates:
        partials[r] = pname = f"{arrays.names[r]}p"
        shape = {"cols": f"({grid}[1], {cols})", "rows": f"({grid}[0], {rows})",
                 "total": f"({grid}[1], {grid}[0])"}[kinds[r]]
        core.allocs.append((pname, shape, "np.float64"))
        used[pname] = array_type(F64, 2)
    for r, _ in loop.accumulates:
        del used[arrays.names[r]]      # written by the second pass, not by this kernel
    body = Source()
    body.line("tx = cuda.threadIdx.x")
    body.line("ty = cuda.threadIdx.y")
    body.line(f"j = cuda.blockIdx.x * {bx} + tx")
    if loop.accumulates:
        body.line(f"sh = cuda.shared.array(({by}, {bx}), numba.float64)")
    for q, (r, _) in enumerate(loop.accumulates):
        if kinds[r] != "rows":
            body.line(f"c{q} = 0.0")
    with body.block(f"for i0 in range(cuda.blockIdx.y * {by}, {rows}, "
                    f"cuda.gridDim.y * {by}):"):
        body.line("i = i0 + ty")
        for q, (r, _) in enumerate(loop.accumulates):
            if kinds[r] == "rows":
                body.line(f"c{q} = 0.0")
        with body.block(f"if i < {rows} and j < {cols}:"):
            _element_body(body, printer, arrays, loop, "i", "j", sums=False)
            for q, (r, k) in enumerate(loop.accumulates):
                value = operand(loop.body.outputs[k])
                body.line(f"c{q} = {value}" if kinds[r] == "rows" else f"c{q} += {value}")
        for q, (r, _) in enumerate(loop.accumulates):
            if kinds[r] == "rows":
                body.line(f"sh[ty, tx] = c{q}")
                body.line("cuda.syncthreads()")
                tree_reduce(body, "sh[ty, {i}]", "tx", bx)
                with body.block(f"if tx == 0 and i < {rows}:"):
                    body.line(f"{partials[r]}[cuda.blockIdx.x, i] = sh[ty, 0]")
                body.line("cuda.syncthreads()")
    for q, (r, _) in enumerate(loop.accumulates):
        if kinds[r] == "rows":
            continue
        body.line(f"sh[ty, tx] = c{q}")
        body.line("cuda.syncthreads()")
        tree_reduce(body, "sh[{i}, tx]", "ty", by)
        if kinds[r] == "cols":
            with body.block(f"if ty == 0 and j < {cols}:"):
                body.line(f"{partials[r]}[cuda.blockIdx.y, j] = sh[0, tx]")
        else:
            tree_reduce(body, "sh[0, {i}]", "tx", bx, cond="ty == 0")
            with body.block("if tx == 0 and ty == 0:"):
                body.line(f"{partials[r]}[cuda.blockIdx.y, cuda.blockIdx.x] = sh[0, 0]")
        body.line("cuda.syncthreads()")
    kname = kernels.add("loop", list(used.items()), body, local=True)
    core.launches.append(f"{kname}[{grid}, ({bx}, {by})]({', '.join(used)})")
    for r, _ in loop.accumulates:
        finish = "sum_all" if kinds[r] == "total" else "sum_columns"
        core.launches.append(f"{finish}({partials[r]}, {arrays.names[r]})")
        kernels.sign(f"_{finish}", [array_type(F64, 2), array_type(F64, 1)])


def _element_body(body: Source, printer: CudaExprPrinter, arrays: _Arrays, loop: Loop,
                  i: str, j: str, sums: bool = True) -> None:
    """Loads, statements and stores of one element; with `sums`, also `+=` into each
    SUM's array (the serial layout)."""
    for q, a in enumerate(loop.loads):
        body.line(f"x{q} = {arrays.element(a, i, j)}")
    body.lines(printer.statement(s) for s in loop.body.prologue)
    body.lines(printer.statement(s) for s in loop.body.body)
    for m, k in loop.stores:
        body.line(f"{arrays.element(m, i, j)} = {operand(loop.body.outputs[k])}")
    if sums:
        for r, k in loop.accumulates:
            body.line(f"{arrays.element(r, i, j)} += {operand(loop.body.outputs[k])}")


# ---------------------------------------------------------------- matrix products

def _matmul(kernels: KernelSet, core: _Core, arrays: _Arrays, mm: MatMul,
            launch: Launch) -> None:
    (a, ta), (b, tb) = arrays.base(mm.a), arrays.base(mm.b)
    kname = _matmul_kernel(kernels, ta, tb, arrays.dtype, launch)
    kernels.sign(kname, [arrays.arg(mm.a)[1], arrays.arg(mm.b)[1],
                         array_type(arrays.dtype, 3)])
    kernels.sign("_sum_splits", [array_type(arrays.dtype, 3), array_type(arrays.dtype, 2)])
    core.allocs.append((arrays.names[mm.out], _shape_text(mm.out.shape), "DTYPE"))
    out = arrays.names[mm.out]
    core.launches.append(f"matmul({kname}, {arrays.names[a]}, {arrays.names[b]}, {out}, "
                         f"{ta}, {tb}, {(core.name + ':' + out)!r})")


def _matmul_kernel(kernels: KernelSet, ta: bool, tb: bool, dtype: str, launch: Launch) -> str:
    """c[z] = op(a) @ op(b) over the z-th of gridDim.z slices of the inner dim (split-K;
    one slice writes the product itself); op transposes by reading a[k, i] for a[i, k]
    (ta) or b[j, k] for b[k, j] (tb). Each tile load runs along the stored array's
    contiguous axis."""
    tm, r, tk = launch.tile_threads, launch.micro, launch.tile_k
    bt = tm * r
    loads = bt * tk // (tm * tm)
    zero = "0.0" if dtype == F64 else f"numba.{dtype}(0.0)"
    body = Source()
    body.line("rows = c.shape[1]")
    body.line("cols = c.shape[2]")
    body.line(f"depth = a.shape[{0 if ta else 1}]")
    body.line(f"chunk = (depth + cuda.gridDim.z * {tk} - 1) // (cuda.gridDim.z * {tk}) * {tk}")
    body.line("first = cuda.blockIdx.z * chunk")
    # (not min(): on Numba's CUDA target it compiles for the current device, which PTX
    # compiles without a GPU do not have)
    body.line("last = first + chunk if first + chunk < depth else depth")
    # one padding column keeps the transposing stores free of bank conflicts
    body.line(f"sa = cuda.shared.array(({tk}, {bt + 1}), numba.{dtype})")
    body.line(f"sb = cuda.shared.array(({tk}, {bt + 1}), numba.{dtype})")
    body.line("tx = cuda.threadIdx.x")
    body.line("ty = cuda.threadIdx.y")
    body.line(f"tid = ty * {tm} + tx")
    with body.block(f"for bi in range(cuda.blockIdx.y * {bt}, rows, cuda.gridDim.y * {bt}):"):
        with body.block(f"for bj in range(cuda.blockIdx.x * {bt}, cols, "
                        f"cuda.gridDim.x * {bt}):"):
            for u in range(r):
                body.line(" = ".join(f"c{u}_{v}" for v in range(r)) + f" = {zero}")
            with body.block(f"for k0 in range(first, last, {tk}):"):
                with body.block(f"for step in range({loads}):"):
                    body.line(f"e = tid + step * {tm * tm}")
                    body.line(f"kk = e // {bt}" if ta else f"kk = e % {tk}")
                    body.line(f"ii = e % {bt}" if ta else f"ii = e // {tk}")
                    body.line("gi = bi + ii")
                    body.line("gk = k0 + kk")
                    load = "a[gk, gi]" if ta else "a[gi, gk]"
                    body.line(f"sa[kk, ii] = {load} if gi < rows and gk < last else {zero}")
                    body.line(f"kk = e % {tk}" if tb else f"kk = e // {bt}")
                    body.line(f"jj = e // {tk}" if tb else f"jj = e % {bt}")
                    body.line("gj = bj + jj")
                    body.line("gk = k0 + kk")
                    load = "b[gj, gk]" if tb else "b[gk, gj]"
                    body.line(f"sb[kk, jj] = {load} if gj < cols and gk < last else {zero}")
                body.line("cuda.syncthreads()")
                with body.block(f"for kk in range({tk}):"):
                    for u in range(r):
                        body.line(f"a{u} = sa[kk, ty + {u * tm}]")
                    for v in range(r):
                        body.line(f"b{v} = sb[kk, tx + {v * tm}]")
                    for u in range(r):
                        for v in range(r):
                            body.line(f"c{u}_{v} += a{u} * b{v}")
                body.line("cuda.syncthreads()")
            for u in range(r):
                body.line(f"i = bi + ty + {u * tm}")
                with body.block("if i < rows:"):
                    for v in range(r):
                        body.line(f"j = bj + tx + {v * tm}")
                        with body.block("if j < cols:"):
                            body.line(f"c[cuda.blockIdx.z, i, j] = c{u}_{v}")
    stem = f"matmul_{'t' if ta else 'n'}{'t' if tb else 'n'}"
    return kernels.add(stem, [("a", None), ("b", None), ("c", None)], body)


# ---------------------------------------------------------------- log-sum-exp

def _row_logsumexp(kernels: KernelSet, core: _Core, arrays: _Arrays, out: Node,
                   launch: Launch) -> None:
    """Stable log-sum-exp along one axis (or all): shift by the max, replaced by 0 when
    it is infinite, as in ir.SEMANTICS and the CPU layout."""
    x = out.args[0]
    rows, cols = x.shape
    xname, xtype = arrays.arg(x)
    res, rtype = arrays.arg(out)
    _alloc(core, arrays, out)
    args = [(xname, xtype), (res, rtype)] + ([("n", "int64")] if "n" in (rows, cols) else [])
    body = Source()
    if out.attr is None:
        body.line(f"sh = cuda.shared.array({launch.block}, numba.float64)")
        body.line("tid = cuda.threadIdx.x")
        body.line("m = -np.inf")
        with body.block(f"for e in range(tid, {rows} * {cols}, {launch.block}):"):
            body.line(f"m = np.maximum(m, {arrays.element(x, f'e // {cols}', f'e % {cols}')})")
        body.line("sh[tid] = m")
        body.line("cuda.syncthreads()")
        body.line(f"step = {launch.block // 2}")
        with body.block("while step > 0:"):
            with body.block("if tid < step:"):
                body.line("sh[tid] = np.maximum(sh[tid], sh[tid + step])")
            body.line("cuda.syncthreads()")
            body.line("step //= 2")
        body.line("m = sh[0]")
        body.line("m = m if math.isfinite(m) else 0.0")
        body.line("cuda.syncthreads()")
        body.line("acc = 0.0")
        with body.block(f"for e in range(tid, {rows} * {cols}, {launch.block}):"):
            body.line(f"acc += _exp({arrays.element(x, f'e // {cols}', f'e % {cols}')} - m)")
        body.line("sh[tid] = acc")
        body.line("cuda.syncthreads()")
        tree_reduce(body, "sh[{i}]", "tid", launch.block)
        with body.block("if tid == 0:"):
            body.line(f"{res}[0] = m + np.log(sh[0])")
        kname = kernels.add("logsumexp", args, body, local=True)
        core.launches.append(f"{kname}[1, {launch.block}]({', '.join(a for a, _ in args)})")
        return
    outer, inner = (rows, cols) if out.attr == 1 else (cols, rows)
    at = ("r", "c") if out.attr == 1 else ("c", "r")
    with body.block(f"for {at[0]} in range(cuda.grid(1), {outer}, cuda.gridsize(1)):"):
        body.line("m = -np.inf")
        with body.block(f"for {at[1]} in range({inner}):"):
            body.line(f"m = np.maximum(m, {arrays.element(x, 'r', 'c')})")
        body.line("m = m if math.isfinite(m) else 0.0")
        body.line("acc = 0.0")
        with body.block(f"for {at[1]} in range({inner}):"):
            body.line(f"acc += _exp({arrays.element(x, 'r', 'c')} - m)")
        target = f"{res}[r, 0]" if out.attr == 1 else f"{res}[0, c]"
        body.line(f"{target} = m + np.log(acc)")
    kname = kernels.add("logsumexp", args, body, local=True)
    core.launches.append(f"{kname}[blocks_for({outer}, BLOCK, MAX_BLOCKS), BLOCK]"
                         f"({', '.join(a for a, _ in args)})")


# ---------------------------------------------------------------- results

def _gather(kernels: KernelSet, host: Source, arrays: _Arrays, outputs, param_shapes,
            launch: Launch) -> None:
    """out[0] = the loss; out[1:] = each gradient flattened in param order."""
    used: dict[str, str] = {"out": array_type(F64, 1)}
    pieces = []      # (first index, size, shape, node)
    offset = 0
    for k, node in enumerate(outputs):
        shape = () if k == 0 else param_shapes[k - 1]
        size = 1 if k == 0 else prod(shape)
        pieces.append((offset, size, shape, node))
        offset += size
        if arrays.reads_array(node):
            name, typ = arrays.arg(node)
            used.setdefault(name, typ)
        elif node.op is Op.SIZE:
            used.setdefault("nf", F64)
    total = offset
    body = Source()
    with body.block(f"for k in range(cuda.grid(1), {total}, cuda.gridsize(1)):"):
        for q, (first, size, shape, node) in enumerate(pieces):
            if len(pieces) == 1:
                _gather_piece(body, arrays, first, shape, node)
                continue
            last = q == len(pieces) - 1
            header = "else:" if last else f"{'if' if q == 0 else 'elif'} k < {first + size}:"
            with body.block(header):
                _gather_piece(body, arrays, first, shape, node)
    kname = kernels.add("gather", list(used.items()), body, local=True)
    host.line(f"{kname}[blocks_for({total}, BLOCK, MAX_BLOCKS), BLOCK]({', '.join(used)})")


def _gather_piece(body: Source, arrays: _Arrays, first: int, shape: Shape, node: Node) -> None:
    if node.shape and len(shape) == 2:
        body.line(f"e = k - {first}")
        element = arrays.element(node, f"e // {shape[1]}", f"e % {shape[1]}")
    else:
        element = arrays.element(node, "0", "0")
    body.line(f"out[k] = {element}")
