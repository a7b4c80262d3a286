"""Expression printer shared by the backends: one IR op to one Python expression.

Operands are variable names or constants, so an expression never nests and
precedence never matters beyond parenthesised negative literals. `ExprPrinter`
prints NumPy functions (not `math`) because they follow IEEE rules in both
worlds: compiled by Numba, and run as plain Python (NUMBA_DISABLE_JIT=1 or a
core's `.py_func`), where `math.log(0.0)` would raise instead of giving -inf.
`ScalarMathPrinter` prints the names of codegen/scalar_math.py for the long
straight-line bodies of scalar models: `math` functions when compiled (half the
compile time of NumPy's scalar ufuncs), and `select` for WHERE and heaviside.

Each `a if c else b` is a branch, and Numba's SSA pass costs time quadratic in the
branches of a function (a 5,000-node body compiled in 30 s with branchy sigmoids,
7 s without). So sigmoid and softplus print as branch-free forms that give the same
bits as the branchy stable forms (and run faster). In the scalar bodies, conditional
expressions remain only for guarded statements whose work is worth skipping
(transcendental functions, powers); elsewhere (cores, matrix loops, run as `.py_func`
by tests) also for WHERE, heaviside and guards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

from symgrad.ir import Op
from symgrad.program import Assign, Guard, Operand


def literal(value: float | str) -> str:
    if isinstance(value, str):    # a name standing for a value known at run time
        return value
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "(-np.inf)"
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


def _exponent(value: Operand) -> str:
    # Numba turns small integer powers into multiplications; a negative integer power
    # would raise ZeroDivisionError at 0 even with error_model="numpy", so it stays a
    # float power (IEEE pow: 0.0 ** -2.0 == inf).
    if isinstance(value, float) and value.is_integer() and 0 <= value <= 64:
        return str(int(value))
    return operand(value)


def operand(value: Operand) -> str:
    return value if isinstance(value, str) else literal(value)


_Rule = Callable[..., str]


# math="vector": ops printed as one call to codegen/vector_math.py (pasted into the
# module), branch-free arithmetic that LLVM vectorizes in a loop, in place of libm calls
# and of the stable forms below.
VECTOR_CALLS: dict[Op, str] = {
    Op.EXP: "vexp", Op.EXPM1: "vexpm1", Op.LOG: "vlog", Op.LOG1P: "vlog1p",
    Op.TANH: "vtanh", Op.SIGMOID: "vsigmoid", Op.SOFTPLUS: "vsoftplus"}


# Functions NumPy lacks, printed as calls of codegen/special_math.py's names (pasted into
# a module that calls one); polygamma's order is printed as its first argument.
SPECIAL_CALLS: dict[Op, str] = {
    Op.ERF: "erf", Op.ERFC: "erfc", Op.GAMMA: "gamma", Op.LGAMMA: "lgamma",
    Op.POLYGAMMA: "polygamma"}


def calls_special_math(lines: list[str], names=tuple(SPECIAL_CALLS.values())) -> bool:
    """Whether generated code (comment lines aside) calls one of `names`."""
    import re
    call = re.compile(rf"(?<![\w.])({'|'.join(map(re.escape, names))})\(")
    return any(call.search(line) for line in lines if not line.lstrip().startswith("#"))


class ExprPrinter:
    # Ops printed as a call of one named function before any other rule (VECTOR_CALLS).
    CALLS: ClassVar[dict[Op, str]] = {}
    FUNCS: ClassVar[dict[Op, str]] = {
        Op.EXP: "np.exp", Op.EXPM1: "np.expm1", Op.LOG: "np.log", Op.LOG1P: "np.log1p",
        Op.SQRT: "np.sqrt", Op.SIN: "np.sin", Op.COS: "np.cos", Op.TAN: "np.tan",
        Op.TANH: "np.tanh", Op.ABS: "np.abs", Op.SIGN: "np.sign",
        Op.MAX: "np.maximum", Op.MIN: "np.minimum",
        Op.ASIN: "np.arcsin", Op.ACOS: "np.arccos", Op.ATAN: "np.arctan", Op.SINH: "np.sinh",
        Op.COSH: "np.cosh", Op.ASINH: "np.arcsinh", Op.ACOSH: "np.arccosh",
        Op.ATANH: "np.arctanh", Op.FLOOR: "np.floor", Op.CEIL: "np.ceil",
        Op.ATAN2: "np.arctan2", Op.MOD: "np.mod",
        **SPECIAL_CALLS,
    }
    INFIX: ClassVar[dict[Op, str]] = {
        Op.ADD: "+", Op.SUB: "-", Op.MUL: "*", Op.DIV: "/",
        Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">=", Op.EQ: "==", Op.NE: "!=",
        Op.AND: "and", Op.OR: "or",
    }

    def choose(self, cond: str, a: str, b: str) -> str:
        """`a` where cond holds, else `b` (both already computed)."""
        return f"{a} if {cond} else {f'({b})' if ' if ' in b else b}"

    def expr(self, op: Op, args: tuple[Operand, ...], attr=None) -> str:
        if (call := self.CALLS.get(op)) is not None:
            return f"{call}({operand(args[0])})"
        if op in _STABLE:
            return _STABLE[op](operand(args[0]), self.FUNCS)
        if op is Op.WHERE:
            return self.choose(*map(operand, args))
        if op is Op.HEAVISIDE:
            a = operand(args[0])      # NaN stays NaN
            return self.choose(f"{a} > 0.0", "1.0", self.choose(
                f"{a} < 0.0", "0.0", self.choose(f"{a} == 0.0", literal(attr), a)))
        if (fn := self.FUNCS.get(op)) is not None:
            if op is Op.POLYGAMMA:
                return f"{fn}({attr}, {operand(args[0])})"
            return f"{fn}({', '.join(map(operand, args))})"
        if (sym := self.INFIX.get(op)) is not None:
            a, b = map(operand, args)
            return f"{a} {sym} {b}"
        rule = _RULES.get(op)
        if rule is None:
            raise NotImplementedError(f"{type(self).__name__} cannot print {op.name}")
        return rule(*map(operand, args), attr=attr) if op is not Op.POW else \
            rule(operand(args[0]), _exponent(args[1]), attr=attr)

    def assign(self, s: Assign) -> str:
        rhs = self.expr(s.node.op, s.args, s.node.attr)
        if s.guard is not None:
            rhs = self.guarded(s, rhs, "False" if s.node.is_bool else "0.0")
        return f"{s.name} = {rhs}"

    def guarded(self, s: Assign, rhs: str, zero: str) -> str:
        """The value of a guarded statement: rhs where its guard holds, else zero, with
        rhs evaluated only then."""
        return f"({rhs}) if {s.guard} else {zero}"

    def guard(self, g: Guard) -> str:
        cond = g.cond if g.branch else f"not {g.cond}"
        return f"{g.name} = {cond}" if g.parent is None else f"{g.name} = {g.parent} and {cond}"

    def statement(self, s: Assign | Guard) -> str:
        return self.assign(s) if isinstance(s, Assign) else self.guard(s)


def _neg(a, attr):
    return f"-{a}"


def _pow(a, b, attr):
    return f"{a} ** {b}"


def _not(a, attr):
    return f"not {a}"


def _tanh_backward(g, y, attr):
    return f"{g} * (1.0 - {y} * {y})"


def _sigmoid(a, fn):
    # e = exp(-|a|) never overflows: 1/(1 + e) for a >= 0, e/(1 + e) below, chosen by
    # multiplying with the comparisons (0 or 1; NaN stays NaN). LLVM computes e once.
    e = f"{fn[Op.EXP]}(-{fn[Op.ABS]}({a}))"
    return f"(({a} >= 0.0) + ({a} < 0.0) * {e}) / (1.0 + {e})"


def _softplus(a, fn):
    # log(1 + e^a) = max(a, 0) + log1p(e^-|a|): finite and exact for large |a|.
    return f"{fn[Op.MAX]}({a}, 0.0) + {fn[Op.LOG1P]}({fn[Op.EXP]}(-{fn[Op.ABS]}({a})))"


def _relu(a, attr):
    return f"np.maximum({a}, 0.0)"


_STABLE: dict[Op, Callable[[str, dict[Op, str]], str]] = {
    Op.SIGMOID: _sigmoid, Op.SOFTPLUS: _softplus}

_RULES: dict[Op, _Rule] = {
    Op.NEG: _neg, Op.POW: _pow, Op.NOT: _not, Op.RELU: _relu,
    Op.TANH_BACKWARD: _tanh_backward,
}


class ScalarMathPrinter(ExprPrinter):
    """The names of codegen/scalar_math.py (bare `exp`, `log`, ..., `select` for WHERE
    and heaviside), for code that only ever runs compiled or under NUMBA_DISABLE_JIT
    (never as a `.py_func` with JIT on: `select` is a Numba intrinsic there)."""

    FUNCS: ClassVar[dict[Op, str]] = {
        **ExprPrinter.FUNCS, Op.EXP: "exp", Op.EXPM1: "expm1", Op.LOG: "log",
        Op.LOG1P: "log1p", Op.SQRT: "sqrt", Op.SIN: "sin", Op.COS: "cos", Op.TAN: "tan",
        Op.TANH: "tanh", Op.ABS: "abs"}
    # `&` and `|`, not `and` and `or`, which short-circuit: a branch each.
    INFIX: ClassVar[dict[Op, str]] = {**ExprPrinter.INFIX, Op.AND: "&", Op.OR: "|"}

    # Guarded statements with these ops run whatever the guard and are selected: they
    # cost about as much as the branch they spare, and cannot fail (IEEE arithmetic), so
    # the result is the same. Transcendental functions and powers stay behind the guard.
    CHEAP: ClassVar[frozenset[Op]] = frozenset({
        Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE,
        Op.AND, Op.OR, Op.NOT, Op.WHERE, Op.MAX, Op.MIN, Op.ABS, Op.SIGN, Op.RELU,
        Op.HEAVISIDE, Op.TANH_BACKWARD})

    def guarded(self, s: Assign, rhs: str, zero: str) -> str:
        return self.choose(s.guard, rhs, zero) if s.node.op in self.CHEAP else \
            super().guarded(s, rhs, zero)

    def guard(self, g: Guard) -> str:
        # `&`, not `and`: `and` short-circuits, which is a branch.
        cond = g.cond if g.branch else f"(not {g.cond})"
        return f"{g.name} = {cond}" if g.parent is None else f"{g.name} = {g.parent} & {cond}"

    def choose(self, cond: str, a: str, b: str) -> str:
        return f"select({cond}, {a}, {b})"


class VectorExprPrinter(ExprPrinter):
    """ExprPrinter with codegen/vector_math.py's functions (math="vector")."""

    CALLS = VECTOR_CALLS


class VectorF32ExprPrinter(ExprPrinter):
    """VectorExprPrinter for float32 loops: the `_f32` functions, which compute in float32
    (16 lanes in a zmm register instead of 8; each converts its argument first)."""

    CALLS = {op: f"{name}_f32" for op, name in VECTOR_CALLS.items()}


class VectorScalarMathPrinter(ScalarMathPrinter):
    """ScalarMathPrinter with codegen/vector_math.py's functions (math="vector")."""

    CALLS = VECTOR_CALLS


def expr_printer(math: str, dtype: str = "float64") -> ExprPrinter:
    if math != "vector":
        return ExprPrinter()
    return VectorF32ExprPrinter() if dtype == "float32" else VectorExprPrinter()


def scalar_math_printer(math: str) -> ScalarMathPrinter:
    return VectorScalarMathPrinter() if math == "vector" else ScalarMathPrinter()
