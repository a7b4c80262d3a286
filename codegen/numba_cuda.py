"""CUDA layout of a scalar model, and the pieces both CUDA layouts share.

The statements are the CPU's (`ExprPrinter`, subclassed only where the device's
math differs); the layout is CUDA's. One kernel runs the per-sample body over the
batch with a grid-stride loop and a bounds guard: each thread sums its samples'
outputs in local scalars, each block adds its threads' sums by a tree in shared
memory and writes one row of `partial` (blocks x outputs). A second kernel adds
those rows in block order. Partial sums, not `cuda.atomic.add`: atomics finish in whatever order the
hardware schedules them, so the floating-point total would change from run to
run; with a grid that depends only on n, the same inputs give the same bits.
Statements that read no input (the schedule's prologue) run in every thread
(they are few and cheap); global thread 0 writes the once-per-batch terms
(penalties) into `fixed` for the second kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from codegen.numba_cpu import Term, sample_body
from codegen.printer import ExprPrinter, operand
from codegen.source import Source
from symgrad.ir import Op
from symgrad.program import Operand, Program

F64 = "float64"
_HOST_ARRAY = re.compile(r"\b[APD][0-9]+p?\b")     # params, data, temporaries, partials


@dataclass(frozen=True)
class Launch:
    """Launch shapes, fixed when the module is generated (kernels see them as constants).

    The defaults suit a GPU; tests under the simulator, which runs every thread as a
    Python thread, use tiny ones.
    """
    block: int = 256            # threads of a 1-D kernel (a power of 2)
    max_blocks: int = 1024      # grid cap of 1-D kernels; grid-stride loops do the rest
    loop_threads: int = 256     # threads of a 2-D elementwise loop block (a power of 2)
    max_row_blocks: int = 1024  # grid cap along rows of a 2-D loop
    tile_threads: int = 16      # matmul: threads along each side of a block
    micro: int = 4              # matmul: outputs per thread along each side
    tile_k: int = 16            # matmul: depth of a shared-memory tile
    max_tiles: int = 512        # matmul: grid cap along each side
    split_target: int = 256     # matmul: blocks to aim for by splitting the inner dim
    split_min_depth: int = 256  # matmul: inner-dim elements per split at least

    def __post_init__(self):
        for name in ("block", "loop_threads"):
            value = getattr(self, name)
            assert value > 0 and value & (value - 1) == 0, f"{name} must be a power of 2"
        assert (self.tile_threads * self.micro * self.tile_k) % (self.tile_threads ** 2) == 0


DEFAULT_LAUNCH = Launch()


def array_type(dtype: str, ndim: int) -> str:
    return f"{dtype}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"


# Functions printed as codegen/cuda_special.py's names (pasted into a module that calls one).
CUDA_SPECIAL: dict[Op, str] = {
    Op.FLOOR: "_floor", Op.CEIL: "_ceil", Op.MOD: "_mod", Op.ERF: "_erf", Op.ERFC: "_erfc",
    Op.GAMMA: "_gamma", Op.LGAMMA: "_lgamma", Op.POLYGAMMA: "_polygamma_dev"}


class CudaExprPrinter(ExprPrinter):
    """The CPU printer with the device's math: `_exp`, `_sqrt`, ... (see cuda_support)
    where Numba's CUDA target has no NumPy ufunc; `np.log`, `np.tanh`, `np.maximum`
    ... where it has one (they follow IEEE rules in the simulator too)."""

    FUNCS: ClassVar[dict[Op, str]] = {
        **ExprPrinter.FUNCS, Op.EXP: "_exp", Op.EXPM1: "_expm1", Op.LOG1P: "_log1p",
        Op.SQRT: "_sqrt", Op.ABS: "abs", **CUDA_SPECIAL}
    # NumPy functions Numba's CUDA target cannot type (measured with Numba 0.68)
    NOT_ON_DEVICE: ClassVar[tuple[str, ...]] = (
        "np.exp(", "np.expm1(", "np.log1p(", "np.sqrt(", "np.abs(", "np.sign(", "np.isfinite(")

    def expr(self, op: Op, args: tuple[Operand, ...], attr=None) -> str:
        a = [operand(x) for x in args]
        if op is Op.SIGN:
            return f"1.0 if {a[0]} > 0.0 else (-1.0 if {a[0]} < 0.0 else {a[0]} + 0.0)"
        if op is Op.POW:
            b = args[1]
            if not (isinstance(b, float) and b.is_integer() and abs(b) <= 64):
                # Python's ** turns a negative base into a complex number in the simulator
                return f"_pow({a[0]}, {a[1]})"
        return super().expr(op, args, attr)


@dataclass
class KernelSet:
    """The module's kernels, each emitted once: identical kernels (the loss core and the
    gradient core often share loops) get one name. `signatures` lists the argument
    types each kernel is launched with, for ahead-of-time compiles and PTX tests."""
    texts: dict[str, str] = field(default_factory=dict)        # text -> name
    order: list[tuple[str, str]] = field(default_factory=list)  # (name, text)
    signatures: dict[str, list[str]] = field(default_factory=dict)

    def add(self, stem: str, args: list[tuple[str, str | None]], body: Source,
            local: bool = False) -> str:
        """Register `def NAME(args): body` and return its name; with every arg's type
        given, also the signature (else the caller adds it with `sign`). `local`: rename
        the host's array names (A3, P0, D1, A7p) to v0, v1, ... in argument order, so
        that the same loop in two cores is one kernel."""
        text = body.text()
        if local:
            arrays = [a for a, _ in args if _HOST_ARRAY.fullmatch(a)]
            rename = {a: f"v{k}" for k, a in enumerate(arrays)}
            text = _HOST_ARRAY.sub(lambda m: rename.get(m.group(0), m.group(0)), text)
            args = [(rename.get(a, a), t) for a, t in args]
        header = f"def {{name}}({', '.join(a for a, _ in args)}):"
        text = "\n".join(["@cuda.jit", header, *("    " + line if line else line
                                                    for line in text.splitlines())])
        name = self.texts.get(text)
        if name is None:
            name = f"_k{len(self.order)}_{stem}"
            self.texts[text] = name
            self.order.append((name, text))
        if all(t is not None for _, t in args):
            self.sign(name, [t for _, t in args])
        return name

    def sign(self, name: str, types: list[str]) -> None:
        sig = f"void({', '.join(types)})"
        if sig not in self.signatures.setdefault(name, []):
            self.signatures[name].append(sig)

    def emit(self, src: Source) -> None:
        for name, text in self.order:
            src.lines(text.replace("{name}", name, 1).splitlines())
            src.line()
            src.line()

    def table(self) -> list[str]:
        lines = ["KERNEL_SIGNATURES = {"]
        for name in sorted(self.signatures, key=_kernel_order(self.order)):
            lines.append(f"    {name!r}: (")
            lines += [f"        {sig!r}," for sig in self.signatures[name]]
            lines.append("    ),")
        return lines + ["}"]


def _kernel_order(order):
    rank = {name: i for i, (name, _) in enumerate(order)}
    return lambda name: (rank.get(name, len(rank)), name)


def tree_reduce(src: Source, shared: str, index: str, size: int, cond: str | None = None
                ) -> None:
    """Emit an in-place tree sum of `shared[...index...]` over `size` (a power of 2)
    positions; every thread of the block must run it (it synchronises)."""
    src.line(f"step = {size // 2}")
    with src.block("while step > 0:"):
        with src.block(f"if {index} < step{'' if cond is None else ' and ' + cond}:"):
            src.line(shared.format(i=index) + " += " + shared.format(i=f"{index} + step"))
        src.line("cuda.syncthreads()")
        src.line("step //= 2")


# ---------------------------------------------------------------- scalar models

SHARED_DOUBLES = 4096    # float64 values of shared memory a block reduction uses (32 KB)


def scalar_core(kernels: KernelSet, host: Source, name: str, program: Program, doc: str,
                results: list[list[Term]], launch: Launch) -> None:
    """Emit the host function `name(params, d0, ..., out)` and its kernels; out[r] is the
    sum of the terms of results[r], as in numba_cpu.core_function."""
    printer = CudaExprPrinter()
    data = [f"d{j}" for j in range(len(program.inputs))]
    if not program.inputs:
        kernel = _whole_kernel(kernels, program, printer, results)
        with host.block(f"def {name}(params, out):"):
            host.line(f'"""{doc}"""')
            host.line(f"{kernel}[1, 1](params, out)")
        host.line()
        host.line()
        return
    batched = sorted({k for terms in results for k, how in terms if how != "once"})
    once = sorted({k for terms in results for k, how in terms if how == "once"})
    body = _body_kernel(kernels, program, printer, batched, once, launch)
    finish = _finish_kernel(kernels, results, batched, once, launch)
    with host.block(f"def {name}(params, {''.join(d + ', ' for d in data)}out):"):
        host.line(f'"""{doc}"""')
        host.line("n = d0.shape[0]")
        host.line("blocks = blocks_for(n, BLOCK, MAX_BLOCKS)")
        host.line(f"partial, fixed = workspace({name!r}, (((blocks, {len(batched)}), "
                  f"np.float64), (({max(1, len(once))},), np.float64)))")
        host.line(f"{body}[blocks, BLOCK](params, {''.join(d + ', ' for d in data)}n, "
                  f"partial, fixed)")
        host.line(f"{finish}[blocks_for({len(results)}, BLOCK, MAX_BLOCKS), BLOCK]"
                  f"(partial, fixed, out, np.float64(n))")
    host.line()
    host.line()


def _params_and_prologue(src: Source, program: Program, printer: CudaExprPrinter) -> None:
    for i in range(len(program.params)):
        src.line(f"p{i} = params[{i}]")
    src.lines(printer.statement(s) for s in program.prologue)


def _whole_kernel(kernels: KernelSet, program: Program, printer: CudaExprPrinter,
                  results: list[list[Term]]) -> str:
    """A model without inputs: one thread computes everything."""
    body = Source()
    with body.block("if cuda.grid(1) == 0:"):
        _params_and_prologue(body, program, printer)
        body.lines(printer.statement(s) for s in program.body)
        for r, terms in enumerate(results):
            parts = [operand(program.outputs[k]) for k, _ in terms]
            body.line(f"out[{r}] = {' + '.join(parts) if parts else '0.0'}")
    vec = array_type(F64, 1)
    return kernels.add("whole", [("params", vec), ("out", vec)], body)


def _body_kernel(kernels: KernelSet, program: Program, printer: CudaExprPrinter,
                 batched: list[int], once: list[int], launch: Launch) -> str:
    width = len(batched)
    assert width > 0, "a batched core sums at least the loss"
    data = [f"d{j}" for j in range(len(program.inputs))]
    body = Source()
    _params_and_prologue(body, program, printer)
    if once:
        with body.block("if cuda.grid(1) == 0:"):
            for q, k in enumerate(once):
                body.line(f"fixed[{q}] = {operand(program.outputs[k])}")
    for q in range(width):
        body.line(f"s{q} = 0.0")
    with body.block("for i in range(cuda.grid(1), n, cuda.gridsize(1)):"):
        sample_body(body, printer, program, data, batched)
    # The block's sums, GROUP outputs at a time: one tree (and one set of barriers) per
    # group, within 32 KB of shared memory.
    group = max(1, min(width, SHARED_DOUBLES // launch.block))
    body.line(f"sh = cuda.shared.array(({launch.block}, {group}), numba.float64)")
    body.line("tid = cuda.threadIdx.x")
    for start in range(0, width, group):
        size = min(group, width - start)
        for g in range(size):
            body.line(f"sh[tid, {g}] = s{start + g}")
        body.line("cuda.syncthreads()")
        body.line(f"step = {launch.block // 2}")
        with body.block("while step > 0:"):
            with body.block("if tid < step:"), body.block(f"for g in range({size}):"):
                body.line("sh[tid, g] += sh[tid + step, g]")
            body.line("cuda.syncthreads()")
            body.line("step //= 2")
        with body.block("if tid == 0:"), body.block(f"for g in range({size}):"):
            body.line(f"partial[cuda.blockIdx.x, {start} + g] = sh[0, g]")
        body.line("cuda.syncthreads()")
    vec, mat = array_type(F64, 1), array_type(F64, 2)
    args = [("params", vec), *[(d, vec) for d in data], ("n", "int64"), ("partial", mat),
            ("fixed", vec)]
    return kernels.add("batch", args, body)


def _finish_kernel(kernels: KernelSet, results: list[list[Term]], batched: list[int],
                   once: list[int], launch: Launch) -> str:
    """out[r] = (sum of partial rows in block order) [/ n] [+ fixed term], one thread per r."""
    columns, fixed, mean = [], [], []
    for terms in results:
        col = [batched.index(k) for k, how in terms if how != "once"]
        fix = [once.index(k) for k, how in terms if how == "once"]
        assert len(col) <= 1 and len(fix) <= 1, "one batched and one once term per result"
        columns.append(col[0] if col else -1)
        fixed.append(fix[0] if fix else -1)
        mean.append(any(how == "mean" for _, how in terms))
    body = Source()
    with body.block(f"for r in range(cuda.grid(1), {len(results)}, cuda.gridsize(1)):"):
        body.line("k = r" if columns == list(range(len(results))) else
                  f"k = {_int_tuple(columns)}[r]")
        if any(q >= 0 for q in fixed):
            body.line(f"q = {_int_tuple(fixed)}[r]")
        body.line("v = 0.0")
        with body.block("if k >= 0:"):
            body.line("s = 0.0")
            with body.block("for b in range(partial.shape[0]):"):
                body.line("s += partial[b, k]")
            if all(mean) or not any(mean):
                body.line("v = s / nf" if any(mean) else "v = s")
            else:
                body.line(f"v = s / nf if {_int_tuple([int(m) for m in mean])}[r] else s")
            if any(q >= 0 for q in fixed):
                with body.block("if q >= 0:"):
                    body.line("v = v + fixed[q]")
        if any(q >= 0 for q in fixed):
            with body.block("elif q >= 0:"):
                body.line("v = fixed[q]")
        body.line("out[r] = v")
    vec, mat = array_type(F64, 1), array_type(F64, 2)
    return kernels.add("finish", [("partial", mat), ("fixed", vec), ("out", vec),
                                  ("nf", F64)], body)


def _int_tuple(values: list[int]) -> str:
    return "(" + ", ".join(map(str, values)) + ("," if len(values) == 1 else "") + ")"

