"""CPU layout: one jitted core per entry point, one fused pass over the batch.

The body computes every output of one sample (loss and all gradients) from
local scalars, and sums them into per-chunk accumulators. Chunks have a fixed
size, the parallel variant runs `prange` over chunks, and the chunk sums are
added in order afterwards: race-free, and bitwise the same whatever the thread
count, and the same as the serial variant, which callers use for batches of one
chunk (a parallel region costs more than such a batch).
Statements that read no input were hoisted by the schedule and run once.
"""

from __future__ import annotations

from codegen.printer import ExprPrinter, operand
from codegen.source import Source
from symgrad.program import Program

# error_model="numpy": IEEE results (1/0 = inf) instead of ZeroDivisionError.
JIT = '@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH{})'
CHUNK = 4096


Term = tuple[int, str]   # (program output index, "sum" | "mean" | "once")


def core_function(src: Source, name: str, program: Program, doc: str,
                  results: list[list[Term]], parallel: bool = False) -> None:
    """Emit `name(params, d0, ..., out)`; out[r] is the sum of the terms of results[r].

    A term reduces one program output over the batch ("sum" or "mean"), or adds
    it once ("once": penalties, which read no input).
    """
    printer = ExprPrinter()
    data_args = [f"d{j}" for j in range(len(program.inputs))]
    batched = sorted({k for terms in results for k, how in terms if how != "once"})
    parallel = parallel and bool(program.inputs)
    src.line(JIT.format(", parallel=True" if parallel else ""))
    with src.block(f"def {name}({', '.join(['params', *data_args, 'out'])}):"):
        src.line(f'"""{doc}"""')
        for i in range(len(program.params)):
            src.line(f"p{i} = params[{i}]")
        src.lines(printer.statement(s) for s in program.prologue)
        if program.inputs:
            _batch_loop(src, printer, program, data_args, batched, parallel)
        for r, terms in enumerate(results):
            parts = []
            for k, how in terms:
                value = operand(program.outputs[k])
                if how == "once" or not program.inputs:
                    assert how != "once" or not program.output_varies[k], "penalty reads data"
                    parts.append(value)
                else:
                    total = f"total[{batched.index(k)}]"
                    parts.append(f"{total} / n" if how == "mean" else total)
            src.line(f"out[{r}] = {' + '.join(parts) if parts else '0.0'}")
    src.line()


def _batch_loop(src: Source, printer: ExprPrinter, program: Program, data_args: list[str],
                batched: list[int], parallel: bool) -> None:
    width = len(batched)
    src.line(f"n = {data_args[0]}.shape[0]")
    src.line(f"n_chunks = (n + {CHUNK} - 1) // {CHUNK}")
    src.line(f"partial = np.zeros((n_chunks, {width}))")
    with src.block(f"for c in {'numba.prange' if parallel else 'range'}(n_chunks):"):
        for j in range(width):
            src.line(f"s{j} = 0.0")
        with src.block(f"for i in range(c * {CHUNK}, min(n, (c + 1) * {CHUNK})):"):
            for j, d in enumerate(data_args):
                src.line(f"x{j} = {d}[i]")
            src.lines(printer.statement(s) for s in program.body)
            for j, k in enumerate(batched):
                src.line(f"s{j} += {operand(program.outputs[k])}")
        for j in range(width):
            src.line(f"partial[c, {j}] = s{j}")
    src.line(f"total = np.zeros({width})")
    with src.block("for c in range(n_chunks):"):  # in chunk order: deterministic
        with src.block(f"for j in range({width}):"):
            src.line("total[j] += partial[c, j]")
