"""Sizes of a model's gradient by each method, with the time each derivation took.

The lecture calls direct symbolic differentiation "extremely inefficient"; this
module measures why. `sympy.diff` gives one expression *tree* per parameter, and
a tree repeats every shared subexpression (tanh(W h) appears inside the derivative
of every weight below it). Reverse mode builds one *DAG*: forward and backward
share every node. Measured here, for one model:

- forward ops: the loss's DAG;
- reverse: the DAG of loss + gradients (forward + backward), and the cheap-gradient
  ratio (forward + backward) / forward, which reverse mode keeps a small constant
  (1.6-2.3 on the benchmark's networks, under 2.5 on scalar tanh chains 100 deep);
- direct trees: `sympy.count_ops` of each `sympy.diff` tree, summed;
- direct + cse: the same trees after `sympy.cse` (replacements + reduced trees);
- direct DAG: the trees lowered into symgrad's interned IR (loss + gradients),
  which shares identical subtrees as the kernels do.

`sizes(model, budget_s)` runs each method in a forked child when given a budget
and reports a method that runs past it as "over budget" instead of hanging.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.concrete.summations import Sum
from sympy.core.cache import clear_cache
from sympy.core.function import Derivative, _coeff_isneg
from sympy.core.operations import LatticeOp
from sympy.integrals.integrals import Integral
from sympy.simplify.radsimp import fraction

from symgrad import direct
from symgrad.derivation import derive
from symgrad.ir import count_ops
from symgrad.model import Model
from symgrad.walk import bottom_up

OK, OVER_BUDGET, FAILED, NOT_RUN = "ok", "over budget", "failed", "not run"

# ------------------------------------------------------------ tree sizes


def _count_ops_step(a: sp.Basic) -> tuple[int, list[sp.Basic]]:
    """What `sympy.count_ops` adds for node `a`, and the subexpressions it then visits.

    A line-by-line copy of the body of count_ops's loop (SymPy 1.13-1.14), with its
    symbolic tally (ADD, SUB, NEG, ...) summed as count_ops finally does.
    """
    if a.is_Rational:
        if a is not sp.S.One:
            return (1 if a.p < 0 else 0) + (1 if a.q != 1 else 0), []
    elif a.is_Mul or a.is_MatMul:
        ops = 0
        if _coeff_isneg(a):
            ops += 1                                          # NEG
            a = a.as_two_terms()[1] if a.args[0] is sp.S.NegativeOne else -a
        n, d = fraction(a)
        if n.is_Integer:
            return ops + 1 + (1 if n < 0 else 0), [d]          # DIV (+ NEG)
        if d is not sp.S.One:
            return ops + 1, ([] if d.is_Integer else [d]) + [n]
        own, visit = _count_ops_tail(a)
        return ops + own, visit
    elif a.is_Add or a.is_MatAdd:
        terms = list(a.args)
        negative = [_coeff_isneg(t) for t in terms]
        visit = [-t if neg else t for t, neg in zip(terms, negative)]
        # one ADD or SUB per term after the first; "-x - y" adds a NEG, and
        # "-x + y" trades an ADD for a SUB (count unchanged).
        return len(terms) - 1 + int(all(negative)), visit
    return _count_ops_tail(a)


def _count_ops_tail(a: sp.Basic) -> tuple[int, list[sp.Basic]]:
    if a.is_Pow and a.exp is sp.S.NegativeOne:
        return 1, [a.base]                                    # DIV
    if a == sp.S.Exp1:
        return 1, []
    if a.is_Pow and a.base == sp.S.Exp1:
        return 1, [a.exp]                                     # EXP
    ops = 0
    if a.is_Mul or isinstance(a, LatticeOp):
        ops = len(a.args) - 1
    elif a.args and (a.is_Pow or a.is_Function or isinstance(a, (Derivative, Integral, Sum))):
        ops = 1
    return ops, ([] if a.is_Symbol else list(a.args))


def tree_ops(exprs: sp.Basic | Sequence[sp.Basic]) -> int:
    """`sympy.count_ops(exprs)`: operations of the expressions *as trees*, summed.

    Equal to SymPy's count, but each distinct subexpression is examined once and its
    count reused, so it takes time in the DAG's size while the number it returns
    grows with the tree's (count_ops itself walks every repeated copy).
    """
    exprs = [exprs] if isinstance(exprs, sp.Basic) else list(exprs)
    total = 0
    memo: dict[sp.Basic, int] = {}
    for expr in exprs:
        expr = sp.sympify(expr)
        if not isinstance(expr, sp.Expr) or expr.is_Relational:
            total += int(sp.count_ops(expr))
            continue
        total += _tree_ops_one(expr, memo)
    return total


def _tree_ops_one(expr: sp.Expr, memo: dict[sp.Basic, int]) -> int:
    steps: dict[sp.Basic, tuple[int, list[sp.Basic]]] = {}

    def step(a: sp.Basic) -> tuple[int, list[sp.Basic]]:
        if a not in steps:
            steps[a] = _count_ops_step(a)
        return steps[a]

    def count(a: sp.Basic) -> int:
        own, visit = steps.pop(a) if a in steps else _count_ops_step(a)
        return own + sum(memo[v] for v in visit)

    return bottom_up(expr, lambda a: step(a)[1], memo, count)


def cse_ops(trees: Sequence[sp.Expr]) -> int:
    """Operations left after `sympy.cse` of all trees together: replacements + reduced."""
    replacements, reduced = sp.cse(list(trees))
    return tree_ops([rhs for _, rhs in replacements] + list(reduced))


# ------------------------------------------------------- direct derivation


def direct_trees(model: Model) -> tuple[list[sp.Expr], list[sp.Expr]]:
    """`sympy.diff` trees of the per-sample loss and of the penalty, one per param."""
    sample = direct.symbolic_gradients(model.loss, model.real_params)
    penalty = [] if model.penalty is None else \
        direct.symbolic_gradients(model.penalty, model.real_params)
    return sample, penalty


# ------------------------------------------------------------ the results


@dataclass(frozen=True)
class Measure:
    """One method's size in operations and its derivation time, or why there is none."""

    ops: int | None = None
    seconds: float | None = None
    status: str = OK
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class Sizes:
    """Sizes of one model's gradient by each method (see the module's docstring)."""

    model: str
    params: int
    forward_ops: int
    reverse: Measure
    direct_trees: Measure
    direct_cse: Measure
    direct_dag: Measure
    budget_s: float | None = None

    @property
    def reverse_ratio(self) -> float | None:
        """(forward + backward) / forward of reverse mode: the cheap-gradient ratio."""
        return _ratio(self.reverse, self.forward_ops)

    @property
    def direct_ratio(self) -> float | None:
        """The same ratio for the direct method's DAG after interning."""
        return _ratio(self.direct_dag, self.forward_ops)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(reverse_ratio=self.reverse_ratio, direct_ratio=self.direct_ratio)
        return out

    def format(self) -> str:
        """A readable table, one method per line."""
        rows = [
            ("forward (loss DAG)", Measure(self.forward_ops), None, "the loss alone"),
            ("reverse mode DAG", self.reverse, self.reverse_ratio, "forward + backward"),
            ("direct: diff trees", self.direct_trees, None,
             "sympy.count_ops of each sympy.diff tree, summed"),
            ("direct: trees + cse", self.direct_cse, None,
             "sympy.cse of all trees: replacements + reduced"),
            ("direct: interned DAG", self.direct_dag, self.direct_ratio,
             "trees lowered into the IR: loss + gradients"),
        ]
        lines = [f"sizes of {self.model}: {self.params} params"
                 + ("" if self.budget_s is None else f"; budget {self.budget_s:g} s per method"),
                 f"{'method':<22} {'ops':>12} {'derive s':>10} {'ratio':>7}  what"]
        for label, m, ratio, what in rows:
            ops = "-" if m.ops is None else f"{m.ops:,}"
            secs = "-" if m.seconds is None else f"{m.seconds:.3f}"
            if not m.ok:
                ops, secs = m.status, "-"
                what = f"{m.status}: {m.detail}" if m.detail else m.status
            rat = "-" if ratio is None else f"{ratio:.2f}"
            lines.append(f"{label:<22} {ops:>12} {secs:>10} {rat:>7}  {what}")
        lines.append("ratio: (forward + backward) / forward ops, the cheap-gradient ratio "
                     "(reverse mode keeps it a small constant, about 2-3)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _ratio(m: Measure, forward_ops: int) -> float | None:
    if not m.ok or m.ops is None or forward_ops == 0:
        return None
    return m.ops / forward_ops


# ------------------------------------------------------------ the steps
#
# A method runs as a generator of events: ("start", step, allowance_s) before a
# step and ("done", step, Measure) after it. In-process or in a forked child,
# the same generator runs; the parent enforces each step's allowance.

Event = tuple[str, str, object]


def _reverse_steps(model: Model, budget_s: float | None) -> Iterator[Event]:
    yield "start", "reverse", budget_s
    d = derive(model, "reverse")
    yield "done", "reverse", Measure(d.sizes()["total_ops"], d.seconds)


def _direct_steps(model: Model, budget_s: float | None) -> Iterator[Event]:
    # derive() keeps its trees to itself, so the trees are made again for counting
    # and cse; SymPy's cache is cleared first, so each sympy.diff runs cold.
    yield "start", "direct_dag", budget_s
    clear_cache()
    d = derive(model, "symbolic")
    yield "done", "direct_dag", Measure(d.sizes()["total_ops"], d.seconds)

    yield "start", "direct_trees", budget_s
    clear_cache()
    start = time.perf_counter()
    sample, penalty = direct_trees(model)
    t_diff = time.perf_counter() - start
    yield "done", "direct_trees", Measure(tree_ops(sample + penalty), t_diff)

    yield "start", "direct_cse", None if budget_s is None else max(budget_s - t_diff, 0.0)
    start = time.perf_counter()
    ops = cse_ops(sample + penalty)
    yield "done", "direct_cse", Measure(ops, t_diff + time.perf_counter() - start)


STEPS = {"reverse": ("reverse",), "direct": ("direct_dag", "direct_trees", "direct_cse")}
STEP_LABELS = {"reverse": "reverse mode", "direct_trees": "sympy.diff",
               "direct_dag": "the symbolic derivation (sympy.diff, lowering)",
               "direct_cse": "sympy.cse"}


def follow(receive: Callable[[float | None], Event], kill: Callable[[], None],
           steps: Sequence[str], on_event: Callable[[Event], None] | None = None,
           labels: dict[str, str] | None = None) -> dict[str, object]:
    """Collect a child's step results, killing it when a step runs past its allowance.

    `receive(timeout)` returns the next event, raises TimeoutError when none came
    in time and EOFError when the child is gone. The step that ran out of time is
    reported as over budget (or the one that broke as failed, with the child's
    message), and the steps after it as not run. `labels` names steps in messages.
    """
    results: dict[str, object] = {}
    current, allowance, deadline = None, None, None
    while len(results) < len(steps):
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            event = receive(timeout)
        except TimeoutError:
            kill()
            why = f"{(labels or {}).get(current, current)} ran past {allowance:.3g} s"
            return _fill(results, steps, Measure(status=OVER_BUDGET, detail=why))
        except EOFError as exc:
            why = str(exc) or "the child process ended without a result"
            return _fill(results, steps, Measure(status=FAILED, detail=why))
        if on_event is not None:
            on_event(event)
        kind, step, value = event
        if kind == "start":
            current, allowance = step, value
            deadline = None if value is None else time.monotonic() + value
        elif kind == "done":
            results[step] = value
            deadline = None
        elif kind == "error":
            return _fill(results, steps, Measure(status=FAILED, detail=str(value)))
    return results


def _fill(results: dict, steps: Sequence[str], why: Measure) -> dict:
    """`why` for the first step without a result (the one that stopped), "not run" after."""
    out: dict[str, object] = {}
    for s in steps:
        if s in results:
            out[s] = results[s]
        elif why is not None:
            out[s], stopped, why = why, s, None
        else:
            out[s] = Measure(status=NOT_RUN, detail=f"stopped earlier, in {stopped}")
    return out


def _run_inline(gen: Iterator[Event], steps: Sequence[str]) -> dict[str, object]:
    results: dict[str, object] = {}
    try:
        for kind, step, value in gen:
            if kind == "done":
                results[step] = value
    except Exception as exc:  # a method that cannot handle the model
        return _fill(results, steps, Measure(status=FAILED, detail=_describe(exc)))
    return results


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _child(make: Callable[[], Iterator[Event]], conn) -> None:
    step = "?"
    try:
        for kind, step, value in make():
            conn.send((kind, step, value))
    except BaseException as exc:  # report, never hang the parent
        conn.send(("error", step, _describe(exc)))
    finally:
        conn.close()


def _run_forked(make: Callable[[], Iterator[Event]], steps: Sequence[str]
                ) -> dict[str, object]:
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(make, sender), daemon=True)
    proc.start()
    sender.close()

    def receive(timeout: float | None) -> Event:
        if not receiver.poll(timeout):
            raise TimeoutError
        return receiver.recv()

    def kill() -> None:
        proc.kill()

    try:
        return follow(receive, kill, steps, labels=STEP_LABELS)
    finally:
        proc.join(timeout=10)
        receiver.close()


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def sizes(model: Model, budget_s: float | None = None) -> Sizes:
    """Sizes of `model`'s gradient by every method, each with its derivation time.

    With `budget_s`, each method runs in a forked child process, and a step that
    takes longer than the budget is stopped and reported as "over budget" (each
    direct step runs sympy.diff: derive, the trees, and the trees + cse, which gets
    what diff left of the budget). Without it everything runs here, to completion.
    """
    budget = None if budget_s is None else float(budget_s)
    if budget is not None and (not math.isfinite(budget) or budget <= 0):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    results: dict[str, object] = {}
    for method, gen in (("reverse", _reverse_steps), ("direct", _direct_steps)):
        steps = STEPS[method]
        if budget is None or not _can_fork():
            results.update(_run_inline(gen(model, budget), steps))
        else:
            results.update(_run_forked(lambda g=gen: g(model, budget), steps))
    stopped = next((results[s] for s in STEPS["direct"] if not results[s].ok), None)
    if stopped is not None and stopped.status == OVER_BUDGET:
        for s in STEPS["direct"]:   # each direct step runs sympy.diff, which ran too long
            if results[s].status == NOT_RUN:
                results[s] = stopped
    try:   # derive() counts the forward graph after its rewrites; ratios use that
        forward = derive(model, "reverse").sizes()["forward_ops"]
    except Exception:
        forward = count_ops([n for n in model.forward if n is not None])
    return Sizes(model=model.name or "<unnamed model>", params=len(model.params),
                 forward_ops=forward, reverse=results["reverse"],
                 direct_trees=results["direct_trees"], direct_cse=results["direct_cse"],
                 direct_dag=results["direct_dag"], budget_s=budget)
