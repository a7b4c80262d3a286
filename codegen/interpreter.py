"""Large scalar models as a program for one fixed interpreter, instead of unrolled code.

Numba's compile time grows with the code it is given: about 2 ms per straight-line
statement, more for calls and guarded (branch-region) statements, which reverse mode nests
(a chain of 200 relu layers, 1,600 statements, took 11 s; 1,000 layers several minutes).
Past `INTERPRET_ABOVE` (see `cost`), a scalar model's chunk function does not contain its
statements: it hands the program, encoded as an integer array, to `_vm_run`, a loop over
instructions whose cases are each a vectorized loop over a block of samples. The
interpreter's text depends only on the math mode and FASTMATH, so its compile cost is the
same for every model (and symgrad compiles it once per cache directory: `shared_source`);
the model adds only its program arrays (data, not code). Only `_vm_run` is jitted: Numba
re-optimizes every callee linked into a caller, so jitted drivers would pay its compile
again at each level; the drivers are plain Python, a few calls per block.

The cases are printed by the same printer as the unrolled statements (operands `x[k]`,
`y[k]`, `w[k]` for the unrolled code's names), the blocks and sums are the same
(`BLOCK` samples, `add_block_sums`), and guarded statements are computed everywhere and
then set to 0 where their guard is false (the unrolled code skips that work instead).
So with the same math mode the two give the same bits: tests/test_interpreter.py
checks it for every op. Registers: rows of a (registers, columns) array, columns 256, 128
or 64 samples so that the file stays near 1 MiB; params, inputs,
constants and values computed once per call (the prologue, run over one column and
then broadcast) keep their rows, per-sample temporaries reuse the rows of values no
longer needed (so the file holds the live values, not every value).
"""

from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass
from functools import cache

from codegen.printer import ScalarMathPrinter, scalar_math_printer
from codegen.source import Source
from symgrad.errors import OptionError
from symgrad.ir import Op
from symgrad.program import Assign, Guard, Operand, Program

# Unrolled code's estimated compile cost, in units of a plain arithmetic statement (about
# 2 ms of Numba, cold, one core): a call of a transcendental function costs CALL_WEIGHT
# units, a guarded statement or a relu, max or min (their NaN handling branches)
# BRANCHY_WEIGHT. Fitted to benchmarks/results/compile_scaling_*.txt: a 1,000-node random
# DAG's gradient (700 plain statements, 330 calls) compiled in 5.7 s, its 5,000-node loss
# (985 plain, 887 calls) in 8.9 s; a 200-deep relu chain's loss (400 plain, 200 relu) in
# 4.9 s, a 100-deep chain's gradient (603 plain, 100 guarded, 100 relu) in 5.5 s. The
# interpreter costs 3.5-4.5 s the first time in a cache directory and 0.4 s to load after
# that, and runs in 1.1-1.6x the unrolled code's time on those DAGs, 1.7-3x on shallow
# relu chains (their ops are too cheap to hide the register traffic), and faster on deep
# ones. Past INTERPRET_ABOVE units (about 6 s of unrolled compile) the interpreter runs.
CALL_WEIGHT = 4
BRANCHY_WEIGHT = 8
CALL_OPS = frozenset({Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P, Op.SQRT, Op.SIN, Op.COS, Op.TAN,
                      Op.TANH, Op.SIGMOID, Op.SOFTPLUS})
BRANCHY_OPS = frozenset({Op.RELU, Op.MAX, Op.MIN})
INTERPRET_ABOVE = 3000

# Pseudo-ops of the instruction set beyond the IR's: x ** n for an integer constant n in
# 0..64 (the unrolled code prints such powers as `x ** 3`, which Numba multiplies out;
# `x ** n` with an int64 n gives the same bits), and the two kinds of guard.
POWI, GUARD, GUARD_NOT = "powi", "guard", "guard_not"

OPCODES: tuple = (
    Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.POW, POWI, Op.EXP, Op.EXPM1, Op.LOG,
    Op.LOG1P, Op.SQRT, Op.SIN, Op.COS, Op.TAN, Op.TANH, Op.ABS, Op.SIGN, Op.SIGMOID,
    Op.RELU, Op.SOFTPLUS, Op.HEAVISIDE, Op.MAX, Op.MIN, Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ,
    Op.NE, Op.AND, Op.OR, Op.NOT, Op.TANH_BACKWARD, Op.WHERE, GUARD, GUARD_NOT)
CODE = {op: i for i, op in enumerate(OPCODES)}

# Operand positions holding booleans (0.0 or 1.0 in a register; the printer's code
# expects Python bools there).
_BOOL_ARGS = {Op.AND: (0, 1), Op.OR: (0, 1), Op.NOT: (0,), Op.WHERE: (0,)}
_NAMES = ("x", "y", "w")


def cost(program: Program) -> int:
    """The unrolled chunk function's estimated compile cost, in plain statements."""
    def units(s: Assign) -> int:
        if s.guard is not None or s.node.op in BRANCHY_OPS:
            return BRANCHY_WEIGHT
        return CALL_WEIGHT if s.node.op in CALL_OPS else 1

    return sum(units(s) for s in (*program.prologue, *program.body) if isinstance(s, Assign))


def unsupported_ops(program: Program) -> list[str]:
    """The ops of `program` the interpreter has no instruction for (the special and
    inverse functions: their programs compile unrolled)."""
    ops = {s.node.op for s in (*program.prologue, *program.body) if isinstance(s, Assign)}
    return sorted(op.name for op in ops if op not in CODE)


def interpreted(program: Program, interpret: bool | None) -> bool:
    """Whether `program`'s chunk function runs on the interpreter: `interpret` True or
    False forces the choice, None (automatic) chooses it above INTERPRET_ABOVE for a
    program whose every op has an instruction."""
    if interpret is None:
        return cost(program) > INTERPRET_ABOVE and not unsupported_ops(program)
    if interpret and (missing := unsupported_ops(program)):
        raise OptionError(f"interpret=True: the interpreter has no instruction for "
                          f"{', '.join(missing)}; compile this model with interpret=None "
                          f"or False")
    return bool(interpret)


def _case(op, printer: ScalarMathPrinter) -> str:
    """The right-hand side computing one element k of an instruction with opcode `op`."""
    if op in (GUARD, GUARD_NOT):
        cond = "(x[k] != 0.0)" if op == GUARD else "(not (x[k] != 0.0))"
        return f"select(y_live, (y[k] != 0.0) & {cond}, {cond})"
    if op == POWI:
        return printer.expr(Op.POW, ("x[k]", "n"))
    bools = _BOOL_ARGS.get(op, ())
    arity = {Op.WHERE: 3, Op.HEAVISIDE: 1}.get(op, 2 if op in _BINARY else 1)
    args = tuple(f"({_NAMES[i]}[k] != 0.0)" if i in bools else f"{_NAMES[i]}[k]"
                 for i in range(arity))
    return printer.expr(op, args, "w[k]" if op is Op.HEAVISIDE else None)


_BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN, Op.LT, Op.LE,
                     Op.GT, Op.GE, Op.EQ, Op.NE, Op.AND, Op.OR, Op.TANH_BACKWARD})

JIT = '@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)'

_DRIVER = '''\
def _vm_chunk(vm, params, data, lo, hi, row):
    """Like an unrolled chunk function: row[j] = the sum over samples lo..hi-1 of output
    j of the program vm = (prologue, body, constants, held, outputs, registers, columns).
    Registers are rows of `columns` samples (fewer than BLOCK when there are many, so
    that they stay in cache): params, then inputs, then constants, then the rest; held
    rows (prologue values the body reads) are broadcast to all columns. Plain Python
    around _vm_run: a block of a program this large takes far longer than the few NumPy
    calls per block."""
    prologue, body, constants, held, outputs, registers, columns = vm
    R = np.zeros((registers, columns))
    first = params.shape[0] + len(data)
    R[:params.shape[0]] = params[:, None]
    R[first:first + constants.shape[0]] = constants[:, None]
    _vm_run(prologue, R, 1, _NO_OUTPUTS, R[:0], 0, row[:0])
    R[held, 1:] = R[held, :1]
    buf = np.empty((outputs.shape[0], BLOCK))
    sums = np.zeros(outputs.shape[0])
    for start in range(lo, hi, BLOCK):
        m = min(hi - start, BLOCK)
        for part in range(0, m, columns):
            w = min(m - part, columns)
            for j, column in enumerate(data):
                R[params.shape[0] + j, :w] = column[start + part:start + part + w]
            # the block's last part adds the block to sums
            _vm_run(body, R, w, outputs, buf, part, sums if part + w == m else sums[:0])
    row[:] = sums


_NO_OUTPUTS = np.zeros(0, dtype=np.int64)


def _vm_once(vm, params, n_inputs):
    """The outputs of vm's prologue (values that read no input: penalties, and every
    value of a model without inputs), run once, on one column."""
    prologue, body, constants, held, outputs, registers, columns = vm
    r = np.zeros(registers)
    r[:params.shape[0]] = params
    first = params.shape[0] + n_inputs
    r[first:first + constants.shape[0]] = constants
    _vm_run_one(prologue, r)
    return r[outputs]


def _vm_partials(chunk, params, data, width, parallel):
    """(chunks, width): each chunk's sums, from `chunk(params, *data, lo, hi, row)` over
    chunks of CHUNK samples; when `parallel`, in threads (_vm_run releases the GIL),
    each writing its own row, so the result does not depend on the thread count."""
    n = data[0].shape[0]
    partial = np.zeros(((n + CHUNK - 1) // CHUNK, width))

    def one(c):
        chunk(params, *data, c * CHUNK, min(n, (c + 1) * CHUNK), partial[c])

    if parallel and partial.shape[0] > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(numba.get_num_threads()) as pool:
            list(pool.map(one, range(partial.shape[0])))
    else:
        for c in range(partial.shape[0]):
            one(c)
    return partial'''


def _scalar_run(src: Source, printer: ScalarMathPrinter) -> None:
    """`_vm_run_one(code, r)`: the same instructions on one register vector (one sample:
    the prologue of `_vm_once`), each operand a scalar read only where the case uses it,
    so a program that runs once (a model without inputs) pays no per-instruction views
    and loops; the same expressions as `_vm_run`'s, so the same bits."""
    src.line(JIT)
    with src.block("def _vm_run_one(code, r):"):
        src.line('"""Run the instructions of `code` once, on the registers r (see _vm_run)."""')
        with src.block("for i in range(code.shape[0]):"):
            src.line("op = code[i, 0]")
            src.line("x = r[code[i, 2]]")
            for i, op in enumerate(OPCODES):
                name = op if isinstance(op, str) else op.value
                with src.block(f"{'if' if i == 0 else 'elif'} op == {i}:   # {name}"):
                    if op in (GUARD, GUARD_NOT):
                        src.lines(["y_live = code[i, 3] >= 0",
                                   "y = r[code[i, 3]] if y_live else 0.0"])
                    elif op == POWI:
                        src.line("n = code[i, 4]")
                    else:
                        arity = {Op.WHERE: 3, Op.HEAVISIDE: 1}.get(op, 2 if op in _BINARY
                                                                     else 1)
                        if arity >= 2:
                            src.line("y = r[code[i, 3]]")
                        if op in (Op.WHERE, Op.HEAVISIDE):
                            src.line("w = r[code[i, 4]]")
                    value = _case(op, printer).replace("x[k]", "x").replace(
                        "y[k]", "y").replace("w[k]", "w")
                    src.line(f"r[code[i, 1]] = {value}")
            src.line("g = code[i, 5]")
            with src.block("if g >= 0:"):
                src.line("r[code[i, 1]] = select(r[g] != 0.0, r[code[i, 1]], 0.0)")
    src.line()
    src.line()


def interpreter_functions(src: Source, math: str) -> None:
    """Emit `_vm_run` (the instruction loop, its cases printed for `math`; the only
    jitted function) and its Python drivers: the same text for every model with this
    math mode."""
    printer = scalar_math_printer(math)
    src.line("# ---- The program interpreter for large models (symgrad's codegen/interpreter.py) "
             "----")
    src.line(f"VM_MATH = {math!r}")
    src.line(JIT)
    with src.block("def _vm_run(code, R, m, outputs, buf, offset, sums):"):
        src.line('"""Run each instruction (op, dest, a, b, c, guard) of `code` on columns')
        src.line("0..m-1 of the register rows R: R[dest] = op(R[a], R[b], R[c]), then 0 where")
        src.line("R[guard] is 0 (guard >= 0); c is the exponent of powi, the value at 0 of")
        src.line("heaviside, and booleans are 0.0 and 1.0. Then the rows `outputs` go to buf")
        src.line("from column `offset` on, and if sums is not empty (the block is complete),")
        src.line('add_block_sums adds buf to it."""')
        with src.block("for i in range(code.shape[0]):"):
            src.line("op = code[i, 0]")
            src.lines(["z = R[code[i, 1]]", "x = R[code[i, 2]]", "y = R[code[i, 3]]",
                       "w = R[code[i, 4]]", "y_live = code[i, 3] >= 0"])
            for i, op in enumerate(OPCODES):
                name = op if isinstance(op, str) else op.value
                with src.block(f"{'if' if i == 0 else 'elif'} op == {i}:   # {name}"):
                    if op == POWI:
                        src.line("n = code[i, 4]")
                    with src.block("for k in range(m):"):
                        src.line(f"z[k] = {_case(op, printer)}")
            src.line("g = code[i, 5]")
            with src.block("if g >= 0:"):
                src.line("mask = R[g]")
                with src.block("for k in range(m):"):
                    src.line("z[k] = select(mask[k] != 0.0, z[k], 0.0)")
        # Element loops, not `buf[j, :m] = ...`: Numba's slice assignment compiles its
        # shape-mismatch message, about 2 s of string code on the first use per process.
        with src.block("for j in range(outputs.shape[0]):"):
            src.line("x = R[outputs[j]]")
            with src.block("for k in range(m):"):
                src.line("buf[j, offset + k] = x[k]")
        with src.block("if sums.shape[0] > 0:"):
            src.line("add_block_sums(buf, offset + m, sums)")
    src.line()
    src.line()
    _scalar_run(src, printer)
    src.lines(_DRIVER.splitlines())
    src.line("# ---- end of the interpreter ----")
    src.line()
    src.line()


@dataclass(frozen=True)
class Encoded:
    """A program as the interpreter's arrays, with each instruction's statement (printed
    as its comment by `printer`, only where the program is listed)."""
    prologue: list[tuple[tuple[int, ...], Assign | Guard]]
    body: list[tuple[tuple[int, ...], Assign | Guard]]
    constants: list[float]
    held: list[int]
    outputs: list[int]
    registers: int
    printer: ScalarMathPrinter

    @property
    def columns(self) -> int:
        """Samples per register row: all of a block while the register file fits in
        about 1 MiB (L2), fewer (at least 64) for larger ones."""
        columns = 256
        while columns > 64 and self.registers * columns * 8 > 1 << 20:
            columns //= 2
        return columns


def _key(value: float) -> bytes:
    return struct.pack("<d", value)    # -0.0 and 0.0 differ; each NaN is itself


def encode(program: Program, batched: list[int], printer: ScalarMathPrinter,
           with_body: bool = True) -> Encoded:
    """Registers and instructions for the chunk function of `program` that sums the
    outputs `batched` (the prologue statements that they and the body need only);
    `with_body=False`: the prologue alone, for outputs that read no input (`_vm_once`)."""
    from codegen.numba_cpu import _needed, _reads

    body = program.body if with_body else []
    reads = [program.outputs[k] for k in batched] + _reads(body)
    prologue = _needed(program.prologue, reads)
    reg: dict[str, int] = {f"p{i}": i for i in range(len(program.params))}
    reg.update({f"x{j}": len(program.params) + j for j in range(len(program.inputs))})
    constants: dict[bytes, int] = {}    # each constant's row, after params and inputs
    values: list[float] = []
    operands = [a for s in (*prologue, *body) for a in _operands(s)]
    for a in operands + [program.outputs[k] for k in batched]:
        if isinstance(a, float) and _key(a) not in constants:
            constants[_key(a)] = len(reg) + len(values)
            values.append(a)
    top = len(reg) + len(values)

    def lookup(a: Operand | None) -> int:
        if a is None:
            return -1
        return constants[_key(a)] if isinstance(a, float) else reg[a]

    pro_code = []
    for s in prologue:
        reg[s.name] = top
        top += 1
        pro_code.append((_instruction(s, lookup), s))
    once = {s.name for s in prologue}
    held = sorted({reg[a] for a in reads if isinstance(a, str) and a in once})

    # Body: each temporary takes the lowest free row; a row is freed after the last
    # statement that reads it (never before its own statement's result is written, so an
    # instruction's result row differs from its operands' rows).
    last: dict[str, int] = {}
    for i, s in enumerate(body):
        for a in _reads([s]):
            if isinstance(a, str):
                last[a] = i
    for k in batched:
        if isinstance(program.outputs[k], str):
            last[program.outputs[k]] = len(body)
    temporaries = {s.name for s in body}
    free: list[int] = []
    body_code = []
    for i, s in enumerate(body):
        if free:
            reg[s.name] = heapq.heappop(free)
        else:
            reg[s.name] = top
            top += 1
        body_code.append((_instruction(s, lookup), s))
        for a in {a for a in _reads([s]) if isinstance(a, str)}:
            if last.get(a) == i and a in temporaries:
                heapq.heappush(free, reg[a])
        if last.get(s.name, -1) < i:    # never read: its row is free at once
            heapq.heappush(free, reg[s.name])
    return Encoded(prologue=pro_code, body=body_code, constants=values, held=held,
                   outputs=[lookup(program.outputs[k]) for k in batched], registers=max(top, 1),
                   printer=printer)


def _operands(s) -> tuple:
    """The operands of a statement, with the value at 0 of a heaviside (a register)."""
    if isinstance(s, Guard):
        return (s.cond,)
    return (*s.args, float(s.node.attr)) if s.node.op is Op.HEAVISIDE else s.args


def _instruction(s: Assign | Guard, lookup) -> tuple[int, ...]:
    """(op, dest, a, b, c, guard) of one statement, its operands looked up as rows."""
    if isinstance(s, Guard):
        op = GUARD if s.branch else GUARD_NOT
        return (CODE[op], lookup(s.name), lookup(s.cond), lookup(s.parent), -1, -1)
    op, args = s.node.op, list(s.args)
    if op not in CODE:
        raise NotImplementedError(f"the interpreter has no instruction for {op.name}")
    c = -1
    if op is Op.POW and isinstance(args[1], float) and args[1].is_integer() \
            and 0 <= args[1] <= 64:
        op, c, args = POWI, int(args[1]), args[:1]
    elif op is Op.HEAVISIDE:
        c = lookup(float(s.node.attr))
    elif op is Op.WHERE:
        c = lookup(args.pop())
    rows = [lookup(a) for a in args] + [-1] * (2 - len(args))
    return (CODE[op], lookup(s.name), *rows, c, lookup(s.guard))


# Programs longer than this are printed as one compressed array instead of one commented
# line per instruction (a 10^4-param model's Hessian program has ~10^5 instructions:
# tens of MB of text as lines, a few as a blob).
LISTED_INSTRUCTIONS = 20000


def program_constant(src: Source, name: str, encoded: Encoded) -> None:
    """Emit `name = (prologue, body, constants, held, outputs, registers, columns)`: the arrays
    `_vm_chunk` runs, one instruction per line with the statement it computes (or, past
    LISTED_INSTRUCTIONS, zlib-compressed int32 rows in base64)."""
    listed = len(encoded.prologue) + len(encoded.body) <= LISTED_INSTRUCTIONS
    src.line(f"# {name}: the program `_vm_chunk` runs (the interpreter is at the end); each")
    src.line("# instruction is (op, dest, a, b, c, guard) over register rows"
             + (", then the statement it computes" if listed else
                f"; {len(encoded.prologue) + len(encoded.body)} instructions, compressed "
                f"(`symgrad grad --steps` prints the program)"))
    for label, rows in (("prologue", encoded.prologue), ("body", encoded.body)):
        if listed:
            with src.block(f"{name}_{label.upper()} = np.array(["):
                for code, statement in rows:
                    src.line(f"({', '.join(map(str, code))}),   "
                             f"# {encoded.printer.statement(statement)}")
            src.line("], dtype=np.int64).reshape(-1, 6)")
        else:
            src.line("import base64, zlib  # noqa: E401,E402  (the compressed program)")
            src.line(f"{name}_{label.upper()} = np.frombuffer(zlib.decompress(base64.b64decode(")
            src.lines(f"    {chunk!r}" for chunk in _blob([code for code, _ in rows]))
            src.line(')), dtype="<i4").astype(np.int64).reshape(-1, 6)')
    from codegen.printer import literal
    src.line(f"{name} = ({name}_PROLOGUE, {name}_BODY,")
    src.line(f"    np.array([{', '.join(literal(v) for v in encoded.constants)}], "
             f"dtype=np.float64),")
    src.line(f"    np.array([{', '.join(map(str, encoded.held))}], dtype=np.int64),")
    src.line(f"    np.array([{', '.join(map(str, encoded.outputs))}], dtype=np.int64),")
    src.line(f"    {encoded.registers}, {encoded.columns})")
    src.line()
    src.line()


def _blob(rows: list[tuple[int, ...]]) -> list[str]:
    """Instruction rows as base64 of zlib-compressed little-endian int32, in lines of 76
    characters (deterministic: a fixed compression level)."""
    import base64
    import zlib

    import numpy as np

    raw = np.asarray(rows, dtype="<i4").reshape(-1, 6).tobytes()
    text = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
    return [text[i:i + 76] for i in range(0, len(text), 76)] or [""]


def chunk_function(src: Source, name: str, program: Program, batched: list[int],
                   math: str) -> None:
    """Emit the program's arrays and `name(params, d0, ..., lo, hi, row)`, the same
    entry as numba_cpu.chunk_function's, running the program on the interpreter."""
    table = f"{name.upper()}_VM"
    program_constant(src, table, encode(program, batched, scalar_math_printer(math)))
    data_args = [f"d{j}" for j in range(len(program.inputs))]
    with src.block(f"def {name}({', '.join(['params', *data_args, 'lo', 'hi', 'row'])}):"):
        src.line(f'"""Sums over samples lo..hi-1 of the batched outputs: {table} on the '
                 f'interpreter."""')
        src.line(f"_vm_chunk({table}, params, ({''.join(d + ', ' for d in data_args)}), lo, hi, "
                 f"row)")
    src.line()
    src.line()


@cache
def shared_source(math: str, fastmath_line: str) -> str:
    """A module of its own holding the interpreter for `math` and the module's FASTMATH
    line, with the support code it calls: the text is the same for every model, so
    symgrad loads it once per cache directory and hands its compiled `_vm_run` to each
    module (symgrad/kernel.py), and Numba compiles the interpreter once per machine
    instead of once per model. A module used without symgrad compiles its own copy."""
    import codegen.block_sums
    import codegen.scalar_math
    import codegen.vector_math
    from codegen.numba_cpu import BLOCK, CHUNK
    from codegen.source import support_block

    src = Source()
    src.lines([
        "# Generated by symgrad: the interpreter of codegen/interpreter.py, shared by the",
        "# modules of every model that runs on it (their own copy is the same text).",
        "import numba", "import numpy as np", "", f"CHUNK = {CHUNK}", f"BLOCK = {BLOCK}",
        fastmath_line, "",
        *support_block(codegen.scalar_math, codegen.block_sums,
                       *([codegen.vector_math] if math == "vector" else []))])
    interpreter_functions(src, math)
    return src.text()
