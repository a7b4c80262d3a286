"""The IR: an interned DAG of scalar operations.

A `Node` is `(op, args, attr)`. Nodes are made only through `node()` (or the
smart constructors below, which fold constants and drop identities first), and
`node()` returns the existing node when an identical one exists. So each
distinct subexpression exists once: common-subexpression elimination is free,
and "DAG size" is a real, countable number.

Every node has a `shape`: () for a scalar, or two dims for a matrix, each an
int or the name of a symbolic size (the batch, "n"). Elementwise ops broadcast
like NumPy. Scalar models use shape () throughout and are lifted over the
batch by the backend; matrix models carry the batch as a dim. Values are
floats, except comparisons and the logical ops, which are booleans and appear
only as the condition of `WHERE` (or of another logical op). `WHERE(c, a, b)` is lazy: the schedule evaluates `a` only
where `c` holds and `b` only where it does not (see `passes/regions.py`).

Traversals are iterative, so graphs of any depth work.
"""

from __future__ import annotations

import enum
import hashlib
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from symgrad import special


class Op(enum.Enum):
    # leaves
    CONST = "const"          # attr: float
    PARAM = "param"          # attr: name (str); shared by every sample
    INPUT = "input"          # attr: name (str); per sample (scalar models) or batched
    SIZE = "size"            # attr: name of a symbolic dim; its value at run time
    # arithmetic
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    NEG = "neg"
    POW = "pow"              # x ** y, y any node (often a CONST)
    # elementwise functions
    EXP = "exp"
    EXPM1 = "expm1"
    LOG = "log"
    LOG1P = "log1p"
    SQRT = "sqrt"
    SIN = "sin"
    COS = "cos"
    TAN = "tan"
    TANH = "tanh"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    SINH = "sinh"
    COSH = "cosh"
    ASINH = "asinh"
    ACOSH = "acosh"
    ATANH = "atanh"
    ERF = "erf"
    ERFC = "erfc"
    GAMMA = "gamma"
    LGAMMA = "lgamma"        # log|gamma(x)|
    POLYGAMMA = "polygamma"  # attr: the order n (int >= 0); n = 0 is digamma
    FLOOR = "floor"
    CEIL = "ceil"
    ATAN2 = "atan2"          # (y, x), as sympy.atan2 and np.arctan2
    MOD = "mod"              # (x, y): x - y floor(x / y), the sign of y (np.mod, sympy.Mod)
    ABS = "abs"
    SIGN = "sign"
    SIGMOID = "sigmoid"
    RELU = "relu"
    SOFTPLUS = "softplus"
    HEAVISIDE = "heaviside"  # attr: value at 0 (float)
    MAX = "max"
    MIN = "min"
    # booleans (conditions)
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"
    # derivatives read from the forward output, one op each (PyTorch's tanh_backward)
    TANH_BACKWARD = "tanh_backward"    # (g, out): g * (1 - out^2)
    # selection
    WHERE = "where"          # (cond, if_true, if_false), lazy in both branches
    # matrix ops
    MATMUL = "matmul"
    TRANSPOSE = "transpose"
    BROADCAST = "broadcast"  # attr: target shape
    SUM = "sum"              # attr: axis (None: all, giving (); 0 or 1: kept as size 1)
    LOGSUMEXP = "logsumexp"  # attr: axis (1: per row); stable, max shifted out

    def __repr__(self) -> str:
        return f"Op.{self.name}"


LEAVES = frozenset({Op.CONST, Op.PARAM, Op.INPUT, Op.SIZE})
STRUCTURAL = frozenset({Op.MATMUL, Op.TRANSPOSE, Op.BROADCAST, Op.SUM, Op.LOGSUMEXP})
COMPARISONS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE})
LOGICAL = frozenset({Op.AND, Op.OR, Op.NOT})
BOOLEAN = COMPARISONS | LOGICAL

ARITY: dict[Op, int] = {op: 1 for op in Op}
ARITY.update({op: 0 for op in LEAVES})
ARITY.update({op: 2 for op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN,
                               Op.ATAN2, Op.MOD, Op.AND, Op.OR, Op.MATMUL, Op.TANH_BACKWARD,
                               *COMPARISONS)})
BACKWARD_ONLY = frozenset({Op.TANH_BACKWARD})   # made by VJP rules, never by the front end
ARITY[Op.WHERE] = 3


@dataclass(frozen=True, eq=False, slots=True, weakref_slot=True)
class Node:
    """One operation in the DAG. Equality is identity: interning makes it structural."""

    op: Op
    args: tuple[Node, ...] = ()
    attr: Hashable = None
    shape: Shape = ()

    @property
    def is_bool(self) -> bool:
        return self.op in BOOLEAN

    # Arithmetic reads like math in the VJP rules; `==` stays identity.
    def __add__(self, other): return add(self, lift(other))
    def __radd__(self, other): return add(lift(other), self)
    def __sub__(self, other): return sub(self, lift(other))
    def __rsub__(self, other): return sub(lift(other), self)
    def __mul__(self, other): return mul(self, lift(other))
    def __rmul__(self, other): return mul(lift(other), self)
    def __truediv__(self, other): return div(self, lift(other))
    def __rtruediv__(self, other): return div(lift(other), self)
    def __pow__(self, other): return pow_(self, lift(other))
    def __neg__(self): return neg(self)
    def __lt__(self, other): return node(Op.LT, self, lift(other))
    def __le__(self, other): return node(Op.LE, self, lift(other))
    def __gt__(self, other): return node(Op.GT, self, lift(other))
    def __ge__(self, other): return node(Op.GE, self, lift(other))

    def __repr__(self) -> str:
        if self.op in LEAVES:
            return f"{self.op.name}({self.attr!r})"
        return f"<{self.op.name} node, {len(self.args)} args>"


Dim = int | str
Shape = tuple[Dim, ...]


class ShapeMismatch(ValueError):
    """Two shapes that an op cannot combine; the front end adds where it happened."""

    def __init__(self, op: Op, shapes: Sequence[Shape], why: str):
        self.op, self.shapes = op, tuple(shapes)
        super().__init__(f"{op.name} cannot combine shapes "
                         f"{' and '.join(map(format_shape, shapes))}: {why}")


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(op: Op, shapes: Sequence[Shape]) -> Shape:
    """NumPy broadcasting of scalars and matrices; a symbolic dim only meets itself or 1."""
    result: Shape = ()
    for shape in shapes:
        if not shape:
            continue
        if not result:
            result = shape
            continue
        if len(shape) != len(result):
            raise ShapeMismatch(op, [result, shape], "different numbers of dims")
        dims = []
        for a, b in zip(result, shape):
            if a == b or b == 1:
                dims.append(a)
            elif a == 1:
                dims.append(b)
            else:
                raise ShapeMismatch(op, [result, shape], f"dims {a} and {b} differ")
        result = tuple(dims)
    return result


def infer_shape(op: Op, args: Sequence[Node], attr: Hashable) -> Shape:
    if op in LEAVES:
        return ()
    if op is Op.MATMUL:
        (r, k1), (k2, c) = args[0].shape, args[1].shape
        if k1 != k2:
            raise ShapeMismatch(op, [args[0].shape, args[1].shape], f"inner dims {k1} != {k2}")
        return (r, c)
    if op is Op.TRANSPOSE:
        return tuple(reversed(args[0].shape))
    if op is Op.BROADCAST:
        broadcast_shapes(op, [args[0].shape, attr])
        return attr
    if op in (Op.SUM, Op.LOGSUMEXP):
        shape = args[0].shape
        if attr is None:
            return ()
        return tuple(1 if i == attr else d for i, d in enumerate(shape))
    return broadcast_shapes(op, [a.shape for a in args])


_interned: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _attr_key(attr: Hashable) -> Hashable:
    # float.hex keeps 0.0 and -0.0 apart and makes NaN equal to itself.
    return ("f", attr.hex()) if isinstance(attr, float) else attr


def node(op: Op, *args: Node, attr: Hashable = None, shape: Shape | None = None) -> Node:
    """The unique node for (op, args, attr, shape); no folding. The shape is inferred
    from the args (and must be given for PARAM and INPUT leaves that are not scalars)."""
    if shape is None:
        shape = infer_shape(op, args, attr)
    key = (op, args, _attr_key(attr), shape)
    found = _interned.get(key)
    if found is None:
        found = Node(op, args, attr, shape)
        _interned[key] = found
    return found


# ---------------------------------------------------------------- semantics

def _stable_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _stable_softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sum(x, axis):
    return np.sum(x) if axis is None else np.sum(x, axis=axis, keepdims=True)


def _logsumexp(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if axis is not None else out.reshape(())


def _heaviside(x, at_zero):
    return np.where(x > 0, 1.0, np.where(x < 0, 0.0, np.where(x == 0, at_zero, x)))


# Reference semantics of every non-leaf op, in NumPy (elementwise, IEEE).
# Used for constant folding and by the interpreter; codegen must agree with it.
SEMANTICS: dict[Op, Callable] = {
    Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.divide,
    Op.NEG: np.negative, Op.POW: np.power,
    Op.EXP: np.exp, Op.EXPM1: np.expm1, Op.LOG: np.log, Op.LOG1P: np.log1p,
    Op.SQRT: np.sqrt, Op.SIN: np.sin, Op.COS: np.cos, Op.TAN: np.tan, Op.TANH: np.tanh,
    Op.ASIN: np.arcsin, Op.ACOS: np.arccos, Op.ATAN: np.arctan, Op.SINH: np.sinh,
    Op.COSH: np.cosh, Op.ASINH: np.arcsinh, Op.ACOSH: np.arccosh, Op.ATANH: np.arctanh,
    Op.ERF: special.erf, Op.ERFC: special.erfc, Op.GAMMA: special.gamma,
    Op.LGAMMA: special.lgamma, Op.POLYGAMMA: special.polygamma,
    Op.FLOOR: np.floor, Op.CEIL: np.ceil, Op.ATAN2: np.arctan2, Op.MOD: np.mod,
    Op.ABS: np.abs, Op.SIGN: np.sign, Op.SIGMOID: _stable_sigmoid,
    Op.RELU: lambda x: np.maximum(x, 0.0), Op.SOFTPLUS: _stable_softplus,
    Op.HEAVISIDE: _heaviside, Op.MAX: np.maximum, Op.MIN: np.minimum,
    Op.LT: np.less, Op.LE: np.less_equal, Op.GT: np.greater, Op.GE: np.greater_equal,
    Op.EQ: np.equal, Op.NE: np.not_equal,
    Op.AND: np.logical_and, Op.OR: np.logical_or, Op.NOT: np.logical_not,
    Op.WHERE: np.where,
    Op.TANH_BACKWARD: lambda g, out: g * (1.0 - out * out),
    Op.MATMUL: np.matmul, Op.TRANSPOSE: np.transpose, Op.SUM: _sum, Op.LOGSUMEXP: _logsumexp,
}
ATTR_OPS = frozenset({Op.HEAVISIDE, Op.SUM, Op.LOGSUMEXP, Op.POLYGAMMA})   # ops whose SEMANTICS take attr as a last argument


def apply(op: Op, values: Sequence, attr: Hashable = None):
    """Evaluate one op on NumPy values with IEEE semantics (no warnings)."""
    with np.errstate(all="ignore"):
        if op in ATTR_OPS:
            return SEMANTICS[op](*values, attr)
        return SEMANTICS[op](*values)


# ------------------------------------------------------- smart constructors

def const(value: float) -> Node:
    return node(Op.CONST, attr=float(value))


def lift(value) -> Node:
    return value if isinstance(value, Node) else const(value)


def param(name: str, shape: Shape = ()) -> Node:
    return node(Op.PARAM, attr=name, shape=tuple(shape))


def input_(name: str, shape: Shape = ()) -> Node:
    return node(Op.INPUT, attr=name, shape=tuple(shape))


def _is_const(n: Node, value: float | None = None) -> bool:
    return n.op is Op.CONST and (value is None or n.attr == value)


def make(op: Op, *args: Node, attr: Hashable = None) -> Node:
    """Build a node, folding it when every argument is a constant.

    Only float results are folded; boolean constants do not exist in the IR, so
    a condition on constants is resolved by `where` instead.
    """
    if op not in BOOLEAN and args and all(_is_const(a) for a in args):
        return const(float(apply(op, [a.attr for a in args], attr)))
    return node(op, *args, attr=attr)


def add(x: Node, y: Node) -> Node:
    if _is_const(y, 0.0):
        return x
    if _is_const(x, 0.0):
        return y
    if y.op is Op.NEG:
        return sub(x, y.args[0])
    return make(Op.ADD, x, y)


def sub(x: Node, y: Node) -> Node:
    if _is_const(y, 0.0):
        return x
    if _is_const(x, 0.0):
        return neg(y)
    return make(Op.SUB, x, y)


def _is_ones_for(x: Node, other: Node) -> bool:
    """x is 1 (or a broadcast 1) and multiplying by it leaves `other` as it is."""
    if x.op is Op.BROADCAST and _is_const(x.args[0], 1.0):
        return broadcast_shapes(Op.MUL, [x.shape, other.shape]) == other.shape
    return _is_const(x, 1.0)


def mul(x: Node, y: Node) -> Node:
    # x * 0 is not folded: inf * 0 is NaN in IEEE arithmetic.
    if _is_ones_for(x, y):
        return y
    if _is_ones_for(y, x):
        return x
    if _is_const(x, -1.0):
        return neg(y)
    if _is_const(y, -1.0):
        return neg(x)
    return make(Op.MUL, x, y)


def div(x: Node, y: Node) -> Node:
    if _is_const(y, 1.0):
        return x
    return make(Op.DIV, x, y)


def neg(x: Node) -> Node:
    if x.op is Op.NEG:
        return x.args[0]
    return make(Op.NEG, x)


def pow_(x: Node, y: Node) -> Node:
    if _is_const(y, 1.0):
        return x
    if _is_const(y, 0.0):
        return const(1.0)          # as IEEE pow: x ** 0 == 1 for every x, NaN included
    if _is_const(y, 0.5):
        return make(Op.SQRT, x)
    return make(Op.POW, x, y)


def where(cond: Node, if_true: Node, if_false: Node) -> Node:
    if if_true is if_false:
        return if_true
    if not cond.is_bool:
        raise TypeError(f"WHERE needs a boolean condition, got {cond.op.name}")
    return node(Op.WHERE, cond, if_true, if_false)


def unary(op: Op, x: Node, attr: Hashable = None) -> Node:
    return make(op, x, attr=attr)


# --------------------------------------------------------------- traversal

def toposort(roots: Iterable[Node], extra_deps: Callable[[Node], Iterable[Node]] | None = None
             ) -> list[Node]:
    """Every node reachable from `roots`, each after its args; deterministic.

    Iterative depth-first post-order, args visited left to right. `extra_deps`
    adds ordering edges (the schedule uses it to put a branch after its condition).
    """
    order: list[Node] = []
    done: set[Node] = set()
    if extra_deps is None:
        # The fast path, same order. Nodes are immutable and built from existing
        # nodes, so args alone cannot form a cycle (verify() checks forged nodes).
        append, mark = order.append, done.add
        for root in roots:
            if root in done:
                continue
            path: list[tuple[Node, Iterable[Node]]] = [(root, iter(root.args))]
            while path:
                n, it = path[-1]
                for dep in it:
                    if dep not in done:
                        path.append((dep, iter(dep.args)))
                        break
                else:
                    path.pop()
                    mark(n)
                    append(n)
        return order
    on_stack: set[Node] = set()
    for root in roots:
        if root in done:
            continue
        stack: list[tuple[Node, Iterable[Node]]] = [(root, iter(_deps(root, extra_deps)))]
        on_stack.add(root)
        while stack:
            n, it = stack[-1]
            for dep in it:
                if dep not in done:
                    if dep in on_stack:
                        raise ValueError("cycle in graph")
                    on_stack.add(dep)
                    stack.append((dep, iter(_deps(dep, extra_deps))))
                    break
            else:
                stack.pop()
                on_stack.discard(n)
                done.add(n)
                order.append(n)
    return order


def _deps(n: Node, extra_deps) -> list[Node]:
    if extra_deps is None:
        return list(n.args)
    return [*n.args, *extra_deps(n)]


def users(order: Sequence[Node]) -> dict[Node, list[Node]]:
    """For each node in `order`, the nodes in `order` that use it (each once)."""
    result: dict[Node, list[Node]] = {n: [] for n in order}
    for n in order:
        for a in dict.fromkeys(n.args):
            result[a].append(n)
    return result


def depends_on_inputs(order: Sequence[Node]) -> dict[Node, bool]:
    """Whether each node varies per sample (reads an INPUT somewhere below it)."""
    varying: dict[Node, bool] = {}
    for n in order:
        varying[n] = n.op is Op.INPUT or any(varying[a] for a in n.args)
    return varying


# ------------------------------------------------------------- dump, verify

def format_const(value: float) -> str:
    return repr(float(value))


def dump(roots: Sequence[Node], names: Sequence[str] | None = None) -> str:
    """Readable SSA text: `%3 = MUL %1 %2`; output lines last."""
    order = toposort(roots)
    ids = {n: i for i, n in enumerate(order)}
    lines = []
    for n in order:
        if n.op is Op.CONST:
            rhs = f"CONST {format_const(n.attr)}"
        elif n.op in (Op.PARAM, Op.INPUT, Op.SIZE):
            rhs = f"{n.op.name} {ascii(n.attr)}"
        else:
            rhs = " ".join([n.op.name, *(f"%{ids[a]}" for a in n.args)])
            if n.attr is not None:
                rhs += f" [{n.attr!r}]"
        if n.shape:
            rhs += f" : {format_shape(n.shape)}"
        lines.append(f"%{ids[n]} = {rhs}")
    for i, root in enumerate(roots):
        label = names[i] if names is not None else f"out{i}"
        lines.append(f"return {ascii(label)} %{ids[root]}")
    return "\n".join(lines) + "\n"


def graph_hash(roots: Sequence[Node], names: Sequence[str] | None = None) -> str:
    return hashlib.sha256(dump(roots, names).encode()).hexdigest()


def verify(roots: Sequence[Node]) -> None:
    """Check arity, leaf attributes and operand kinds; raise ValueError naming the node."""
    # extra_deps selects toposort's checked walk, which finds cycles in forged nodes.
    for n in toposort(roots, extra_deps=lambda n: ()):
        if len(n.args) != ARITY[n.op]:
            raise ValueError(f"{n.op.name} takes {ARITY[n.op]} args, got {len(n.args)}")
        if n.op is Op.CONST and not (isinstance(n.attr, float)):
            raise ValueError(f"CONST needs a float attr, got {n.attr!r}")
        if n.op in (Op.PARAM, Op.INPUT, Op.SIZE) and not isinstance(n.attr, str):
            raise ValueError(f"{n.op.name} needs a str name, got {n.attr!r}")
        if n.op not in (Op.PARAM, Op.INPUT) and n.shape != infer_shape(n.op, n.args, n.attr):
            raise ValueError(f"{n.op.name} has shape {format_shape(n.shape)}, its args give "
                             f"{format_shape(infer_shape(n.op, n.args, n.attr))}")
        if n.op is Op.WHERE:
            wanted = (True, False, False)
        elif n.op in LOGICAL:
            wanted = (True,) * len(n.args)
        else:
            wanted = (False,) * len(n.args)
        for a, want_bool in zip(n.args, wanted):
            if a.is_bool != want_bool:
                kind = "boolean" if want_bool else "float"
                raise ValueError(f"{n.op.name} needs a {kind} operand, got {a.op.name}")


def count_ops(roots: Sequence[Node]) -> int:
    """Number of non-leaf nodes reachable from roots (the DAG size in operations)."""
    return sum(1 for n in toposort(roots) if n.op not in LEAVES)


# ------------------------------------------------------------ matrix builders

def matmul(a: Node, b: Node) -> Node:
    return node(Op.MATMUL, a, b)


def transpose(x: Node) -> Node:
    if not x.shape:
        return x
    if x.op is Op.TRANSPOSE:
        return x.args[0]
    if x.op is Op.MATMUL:       # (A B)^T = B^T A^T: no transposed copy of a product
        return matmul(transpose(x.args[1]), transpose(x.args[0]))
    if x.op is Op.BROADCAST and x.args[0].op is Op.CONST:
        return broadcast_to(x.args[0], tuple(reversed(x.shape)))
    return node(Op.TRANSPOSE, x)


def broadcast_to(x: Node, shape: Shape) -> Node:
    shape = tuple(shape)
    return x if x.shape == shape else node(Op.BROADCAST, x, attr=shape)


def sum_(x: Node, axis: int | None = None) -> Node:
    if not x.shape or (axis is not None and x.shape[axis] == 1):
        return x
    while axis is None and x.op is Op.SUM:   # a total of partial sums is the total
        x = x.args[0]
    return node(Op.SUM, x, attr=axis)


def fit_shape(x: Node, shape: Shape) -> Node:
    """Sum x over the axes it was broadcast along, or broadcast it up, to get `shape`."""
    if x.shape == tuple(shape):
        return x
    if not shape:
        return sum_(x)
    if not x.shape:
        return broadcast_to(x, shape)
    for axis, (have, want) in enumerate(zip(x.shape, shape)):
        if want == 1 and have != 1:
            x = sum_(x, axis)
    return broadcast_to(x, shape)
