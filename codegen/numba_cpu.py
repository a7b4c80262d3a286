"""CPU layout: one jitted core per entry point, one fused pass over the batch.

A chunk function computes every output of each sample (loss and all gradients)
from local scalars in one fused pass over a range of samples, and returns their
sums. Chunks have a fixed size; the cores call the chunk function per chunk, the
parallel core under `prange`, and add the chunk sums in order: race-free, and
bitwise the same whatever the thread count, serial or parallel. Callers use the
serial core for batches of one chunk (a parallel region costs more than such a
batch). Keeping the body out of the `prange` function also keeps Numba's
parallel pass (which is slow on large bodies) away from it.
Statements that read no input were hoisted by the schedule and run once.
"""

from __future__ import annotations

from codegen.printer import VECTOR_CALLS, ExprPrinter, operand, scalar_math_printer
from codegen.source import Source
from symgrad.program import Assign, Program

# error_model="numpy": IEEE results (1/0 = inf) instead of ZeroDivisionError.
JIT = '@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH{})'
CHUNK = 4096
BLOCK = 256     # samples per block of stored outputs (codegen/block_sums.add_block_sums)


Term = tuple[int, str]   # (program output index, "sum" | "mean" | "once")


def chunk_function(src: Source, name: str, program: Program, batched: list[int],
                   math: str = "vector") -> None:
    """Emit `name(params, d0, ..., lo, hi, row)`: samples lo..hi-1 in one fused pass,
    row[j] = the sum of output batched[j] over them. All the per-sample code lives here,
    once; the serial and the parallel core only call it per chunk. It calls the names
    of codegen/scalar_math.py (pasted into the module), as it never runs as a `.py_func`.

    Sums in a fixed order that vectorizes (strict IEEE arithmetic, no reassociation): the
    sample loop runs over blocks of BLOCK samples and stores each sample's outputs in a
    row of `buf` (no loop-carried sum, so LLVM vectorizes a branch-free body), then
    `add_block_sums` adds each row in 32 fixed lanes of explicit vector adds and a fixed
    tree into `sums`, block after block. The order depends only on the sample index, so
    the result is bitwise the same for any thread count, run and machine.
    """
    printer = scalar_math_printer(chunk_math(program, math))
    data_args = [f"d{j}" for j in range(len(program.inputs))]
    width = len(batched)
    src.line(JIT.format(""))
    with src.block(f"def {name}({', '.join(['params', *data_args, 'lo', 'hi', 'row'])}):"):
        src.line('"""Sums over samples lo..hi-1 of the batched outputs."""')
        _load_params(src, program)
        reads = [program.outputs[k] for k in batched] + _reads(program.body)
        src.lines(printer.statement(s) for s in _needed(program.prologue, reads))
        src.line(f"buf = np.empty(({width}, BLOCK))")
        src.line(f"sums = np.zeros({width})")
        with src.block("for start in range(lo, hi, BLOCK):"):
            src.line("m = min(hi - start, BLOCK)")
            # Slices, indexed by the loop's own counter: Numba then knows the index is not
            # negative and drops its wraparound select, which would turn vector loads
            # into gathers.
            for j, d in enumerate(data_args):
                src.line(f"col{j} = {d}[start:start + m]")
            with src.block("for k in range(m):"):
                sample_body(src, printer, program, [f"col{j}" for j in range(len(data_args))],
                            batched, "buf[{j}, k] = {value}", index="k")
            src.line("add_block_sums(buf, m, sums)")
        _each_column(src, width, "row[{j}] = sums[{j}]")
    src.line()
    src.line()


def sample_body(src: Source, printer: ExprPrinter, program: Program, data_args: list[str],
                batched: list[int], sink: str = "s{j} += {value}", index: str = "i") -> None:
    """One sample: load x0, x1, ... from the data arrays at `index`, run the body, and
    hand each output batched[j] to `sink` (by default: add it to the running sum s<j>)."""
    for j, d in enumerate(data_args):
        src.line(f"x{j} = {d}[{index}]")
    src.lines(printer.statement(s) for s in program.body)
    for j, k in enumerate(batched):
        src.line(sink.format(j=j, value=operand(program.outputs[k])))


# Each vector_math call site costs about 0.03 s of compile (the functions compile once
# per module and LLVM inlines them: benchmarks/vector_math_compile.py), some 25 plain
# statements' worth; past this many call sites a chunk function calls libm instead, so
# that a very long body's compile stays bounded.
VECTOR_CALL_LIMIT = 64


def vector_calls(program: Program) -> int:
    """How many calls to codegen/vector_math.py `program`'s chunk function would make."""
    return sum(isinstance(s, Assign) and s.node.op in VECTOR_CALLS
               for s in (*program.prologue, *program.body))


def chunk_math(program: Program, math: str) -> str:
    """The math mode of `program`'s chunk function under compile(math=...)."""
    return "vector" if math == "vector" and vector_calls(program) <= VECTOR_CALL_LIMIT \
        else "libm"


def calls_vector_math(program: Program, math: str) -> bool:
    """Whether `program`'s chunk function calls codegen/vector_math.py (so it is pasted)."""
    return chunk_math(program, math) == "vector" and vector_calls(program) > 0


def batched_outputs(results: list[list[Term]]) -> list[int]:
    """The program outputs summed over the batch (the rest are added once)."""
    return sorted({k for terms in results for k, how in terms if how != "once"})


def once_outputs(program: Program, results: list[list[Term]]) -> list[int]:
    """The program outputs added once, not summed over the batch (penalties; every output
    of a model without inputs)."""
    return sorted({k for terms in results for k, how in terms
                   if how == "once" or not program.inputs})


def core_function(src: Source, name: str, program: Program, doc: str,
                  results: list[list[Term]], chunk: str | None = None,
                  parallel: bool = False, jit: bool = True,
                  once_table: str | None = None) -> None:
    """Emit `name(params, d0, ..., out)`; out[r] is the sum of the terms of results[r].

    A term reduces one program output over the batch ("sum" or "mean", through the
    chunk function `chunk`), or adds it once ("once": penalties, which read no input).
    `jit=False`: a plain Python function over a chunk function on the interpreter
    (codegen/interpreter.py), parallel in threads; its once-added outputs come from the
    interpreter too (`once_table`, the prologue that computes them), not from statements.
    """
    printer = ExprPrinter()
    data_args = [f"d{j}" for j in range(len(program.inputs))]
    batched = batched_outputs(results)
    once = any(how == "once" for terms in results for _, how in terms)
    parallel = parallel and bool(program.inputs)
    if jit:
        src.line(JIT.format(", parallel=True" if parallel else ""))
    with src.block(f"def {name}({', '.join(['params', *data_args, 'out'])}):"):
        src.line(f'"""{doc}"""')
        once_rows = once_outputs(program, results)
        if once_table is not None:
            src.line(f"once = _vm_once({once_table}, params, {len(program.inputs)})")
        elif once or not program.inputs:
            _load_params(src, program)
            reads = [program.outputs[k] for k in once_rows]
            src.lines(printer.statement(s) for s in _needed(program.prologue, reads))
        if program.inputs:
            _chunk_loop(src, chunk, data_args, len(batched), parallel, jit)
        for r, terms in enumerate(results):
            parts = []
            for k, how in terms:
                value = operand(program.outputs[k])
                if how == "once" or not program.inputs:
                    assert how != "once" or not program.output_varies[k], "penalty reads data"
                    parts.append(value if once_table is None else
                                 f"once[{once_rows.index(k)}]")
                else:
                    total = f"total[{batched.index(k)}]"
                    parts.append(f"{total} / n" if how == "mean" else total)
            src.line(f"out[{r}] = {' + '.join(parts) if parts else '0.0'}")
    src.line()


def _reads(statements) -> list:
    """Every operand the statements read (names and constants)."""
    out: list = []
    for s in statements:
        if isinstance(s, Assign):
            out += [*s.args, s.guard]
        else:
            out += [s.parent, s.cond]
    return out


def _needed(prologue, reads) -> list:
    """The prologue statements that the given operands depend on, in order: the chunk
    function needs none of the penalty's, the cores none of the per-sample values'."""
    wanted = {r for r in reads if isinstance(r, str)}
    kept = []
    for s in reversed(prologue):
        if s.name in wanted:
            kept.append(s)
            wanted.update(r for r in _reads([s]) if isinstance(r, str))
    return kept[::-1]


def _load_params(src: Source, program: Program) -> None:
    for i in range(len(program.params)):
        src.line(f"p{i} = params[{i}]")


def _chunk_loop(src: Source, chunk: str, data_args: list[str], width: int,
                parallel: bool, jit: bool = True) -> None:
    data = "".join(f"{d}, " for d in data_args)
    src.line(f"n = {data_args[0]}.shape[0]")
    if jit:
        src.line("n_chunks = (n + CHUNK - 1) // CHUNK")
        src.line(f"partial = np.zeros((n_chunks, {width}))")
        with src.block(f"for c in {'numba.prange' if parallel else 'range'}(n_chunks):"):
            src.line(f"{chunk}(params, {data}c * CHUNK, min(n, (c + 1) * CHUNK), partial[c])")
    else:
        src.line(f"partial = _vm_partials({chunk}, params, ({data}), {width}, {parallel})")
        src.line("n_chunks = partial.shape[0]")
    src.line(f"total = np.zeros({width})")
    with src.block("for c in range(n_chunks):"):  # in chunk order: deterministic
        _each_column(src, width, "total[{j}] += partial[c, {j}]")


def _each_column(src: Source, width: int, statement: str) -> None:
    """`statement` for j in 0..width-1: a loop, or one line when width is 1."""
    if width == 1:
        src.line(statement.format(j=0))
    else:
        with src.block(f"for j in range({width}):"):
            src.line(statement.format(j="j"))
