"""Random expression DAGs: reverse mode and the direct method against sympy.diff.

An expression is built from a recipe: a list of steps, each combining earlier
subexpressions (the leaves or earlier steps), so subexpressions are shared as
in real models. Domains are kept safe by construction (log(1 + u^2),
sqrt(1 + u^2), exp(tanh(u)), u / (1 + v^2)), and points within 1e-6 of a kink,
tie or branch switch are skipped, because there the exact derivative and a
float64 evaluation may legitimately take different sides.

Every example is checked through the interpreter (both methods) and through
the generated module (its core's `.py_func`, which calls the compiled chunk
function); a fixed set of drawn expressions also runs through the kernels'
entry points, and test_fuzz_cuda.py runs the same recipes through the CUDA
module under the simulator.
"""

from __future__ import annotations

import os

import numpy as np
import oracle
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, assume, example, given, note, settings
from hypothesis import strategies as st

import symgrad
from symgrad.derivation import derive
from symgrad.interpret import loss_and_grad as interpret_loss_and_grad
from symgrad.interpret import jvp_and_hvp
from symgrad.second_order import derive_second

A, B = sp.symbols("a b", real=True)
X, Y = sp.symbols("x y", real=True)
PARAMS = (A, B)
INPUTS = (X, Y)
LEAVES = (X, Y, B, A)   # the newest first: a param
N_SAMPLES = 3
RTOL = 1e-9
KINK_MARGIN = 1e-6


def _one_plus_square(u):
    return 1 + u**2


# name -> (arity, builder). Each builder keeps its result finite for any real args.
STEPS = {
    "add": (2, lambda u, v: u + v),
    "sub": (2, lambda u, v: u - v),
    "mul": (2, lambda u, v: u * v),
    "div": (2, lambda u, v: u / _one_plus_square(v)),
    "square": (1, lambda u: u**2),
    "cube": (1, lambda u: u**3),
    "inverse_square": (1, lambda u: _one_plus_square(u) ** -2),
    "rational_pow": (1, lambda u: _one_plus_square(u) ** sp.Rational(3, 2)),
    "cube_root_inverse": (1, lambda u: _one_plus_square(u) ** sp.Rational(-1, 3)),
    "exp": (1, lambda u: sp.exp(sp.tanh(u))),
    "log": (1, lambda u: sp.log(_one_plus_square(u))),
    "sqrt": (1, lambda u: sp.sqrt(_one_plus_square(u))),
    "sin": (1, sp.sin),
    "cos": (1, sp.cos),
    "tanh": (1, sp.tanh),
    "sigmoid": (1, symgrad.sigmoid),
    "relu": (1, symgrad.relu),
    "softplus": (1, symgrad.softplus),
    "abs": (1, sp.Abs),
    "max": (2, sp.Max),
    "min": (2, sp.Min),
    "piecewise": (3, lambda c, u, v: sp.Piecewise((u, c > 0), (v, True))),
    "nested_piecewise": (3, lambda c, u, v: sp.Piecewise(
        (u, c > 1), (sp.Piecewise((v, c < -1), (u * v, True)), True))),
}
STEP_NAMES = sorted(STEPS)

Step = tuple[str, int, int, int]


def build(recipe: list[Step]) -> sp.Expr:
    """The expression of a recipe: each step applies its op to earlier entries.

    Operand k picks the k-th entry counting back from the newest (modulo the pool
    size), so small picks chain steps into deep expressions and larger ones
    reuse earlier entries: subexpressions are shared. Any integers are valid.
    """
    pool: list[sp.Expr] = list(LEAVES)
    for name, *picks in recipe:
        arity, make = STEPS[name]
        pool.append(make(*(pool[-1 - k % len(pool)] for k in picks[:arity])))
    # The last two steps, so that more of the DAG matters.
    return pool[-1] + pool[-2] / 3


steps = st.tuples(st.sampled_from(STEP_NAMES), st.integers(0, 63), st.integers(0, 63),
                  st.integers(0, 63))
recipes = st.lists(steps, min_size=4, max_size=10)


def sample_point(seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = {p.name: float(v) for p, v in zip(PARAMS, rng.uniform(-2.0, 2.0, len(PARAMS)))}
    data = {x.name: rng.uniform(-2.0, 2.0, N_SAMPLES) for x in INPUTS}
    return params, data


def far_from_kinks(loss: sp.Expr, params, data) -> bool:
    points = [{**{p: params[p.name] for p in PARAMS}, **{x: data[x.name][i] for x in INPUTS}}
              for i in range(N_SAMPLES)]
    return oracle.distance_to_kinks(loss, points) > KINK_MARGIN


def generated_loss_and_grad(kernel, params, data):
    """The kernel's `_loss_and_grad_core` run as Python (its chunk function compiled)."""
    p = np.array([params[name] for name in kernel.params])
    columns = [np.ascontiguousarray(data[name], dtype=np.float64) for name in kernel.inputs]
    out = np.empty(1 + len(kernel.params))
    kernel.module._loss_and_grad_core.py_func(p, *columns, out)
    return float(out[0]), dict(zip(kernel.params, out[1:].tolist()))


# Each input and param moved by this factor (2 ulps) to test the conditioning.
NUDGE = 1.0 + 2.0 * 2.0**-52


def exact_and_well_conditioned(model: symgrad.Model, params, data):
    """(the exact loss and gradients, whether float64 can be expected to match them).

    Not where the exact results move by more than 1% of the tolerance when every
    input and param moves by 2 ulps: there a correct float64 evaluation, rounding
    each step once, may differ from the exact value by more than RTOL. Example:
    sin((y**6 + 1)**13.5) at y = 1.9, a sine of 8e22 (a float64 ulp there is 1.7e7).
    """
    def exact(params, data):
        return oracle.loss_and_grad(model.loss, model.real_params, model.real_inputs,
                                    params, data)
    want = exact(params, data)
    moved = exact({k: v * NUDGE for k, v in params.items()},
                  {k: v * NUDGE for k, v in data.items()})
    pairs = [(moved[0], want[0]), *((moved[1][k], want[1][k]) for k in want[1])]
    return want, all(abs(m - w) <= 0.01 * RTOL * (1.0 + abs(w)) for m, w in pairs)


def check_against_sympy(loss, params, data, *, generated: bool):
    model = symgrad.Model(loss, PARAMS, INPUTS)
    want, well_conditioned = exact_and_well_conditioned(model, params, data)
    assume(well_conditioned)
    for method in ("reverse", "symbolic"):
        derivation = derive(model, method)
        kernel = symgrad.compile(model, method) if generated else None
        with oracle.strict_floating_point():     # safe domains: no NaN or inf anywhere
            got = interpret_loss_and_grad(derivation, params, data)
            from_source = generated_loss_and_grad(kernel, params, data) if generated else None
        oracle.assert_grads_close(got, want, RTOL, RTOL, f"interpret {method}")
        if generated:
            oracle.assert_grads_close(from_source, want, RTOL, RTOL, f"generated {method}")


# No shrink phase: recipes are short already, and shrinking one failure took minutes.
FUZZ = settings(derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# `make fuzz` runs 5,000 (same seed); `make test` the default 200.
EXAMPLES = int(os.environ.get("SYMGRAD_FUZZ_EXAMPLES", "200"))


@settings(FUZZ, max_examples=EXAMPLES)
@given(recipe=recipes, seed=st.integers(0, 2**32 - 1))
# Shrunk failures from `make fuzz`, kept as regression examples (and see
# test_ill_conditioned_points_are_skipped):
# relu(relu(relu(softplus(a)))) + relu(relu(softplus(a)))/3 broke the oracle's rewrite.
@example(recipe=[("relu", 0, 56, 41), ("softplus", 1, 0, 53), ("relu", 0, 56, 41),
                 ("relu", 0, 56, 41), ("relu", 0, 56, 41)], seed=1_073_741_823)
def test_random_dag_gradients_match_sympy(recipe, seed):
    """Through symgrad's interpreter (no compile: many examples are cheap)."""
    _random_dag_case(recipe, seed, generated=False)


def _random_dag_case(recipe, seed, generated: bool):
    loss = build(recipe)
    note(f"loss = {loss}")
    params, data = sample_point(seed)
    assume(far_from_kinks(loss, params, data))
    check_against_sympy(loss, params, data, generated=generated)


# Second order: the same DAGs' Hessian-vector products, by forward-over-reverse and by
# sympy.diff twice, through the interpreter, against sympy.hessian(loss) @ v at 30 digits.
SECOND_ORDER_EXAMPLES = int(os.environ.get("SYMGRAD_FUZZ_SECOND_ORDER_EXAMPLES", EXAMPLES // 2))


@settings(FUZZ, max_examples=SECOND_ORDER_EXAMPLES)
@given(recipe=recipes, seed=st.integers(0, 2**32 - 1))
def test_random_dag_hvps_match_sympy_hessian(recipe, seed):
    loss = build(recipe)
    note(f"loss = {loss}")
    params, data = sample_point(seed)
    assume(far_from_kinks(loss, params, data))
    model = symgrad.Model(loss, PARAMS, INPUTS)
    vector = {p.name: float(v) for p, v in
              zip(PARAMS, np.random.default_rng(seed).uniform(-1.0, 1.0, len(PARAMS)))}

    def exact(params, data):
        return oracle.jvp_and_hvp(model.loss, model.real_params, model.real_inputs, params,
                                  vector, data)
    want = exact(params, data)
    moved = exact({k: v * NUDGE for k, v in params.items()},
                  {k: v * NUDGE for k, v in data.items()})
    pairs = [(moved[0], want[0]), *((moved[1][k], want[1][k]) for k in want[1])]
    assume(all(abs(m - w) <= 0.01 * RTOL * (1.0 + abs(w)) for m, w in pairs))
    for method in ("reverse", "symbolic"):
        first = derive(model, method)
        second = derive_second(model, first)
        with oracle.strict_floating_point():
            got = jvp_and_hvp(first, second, params, vector, data)
        oracle.assert_grads_close(got, want, RTOL, RTOL, f"hvp {method}")


# A compile costs about 1.6 s a DAG, so fewer of them run through the generated kernel
# (`make fuzz`: 5,000 of each).
COMPILED_EXAMPLES = int(os.environ.get("SYMGRAD_FUZZ_COMPILED_EXAMPLES", EXAMPLES // 4))


@settings(FUZZ, max_examples=COMPILED_EXAMPLES)
@given(recipe=recipes, seed=st.integers(0, 2**32 - 1))
def test_random_dag_kernels_match_sympy(recipe, seed):
    """The same DAGs through the generated module (its chunk function compiled)."""
    _random_dag_case(recipe, seed, generated=True)


# From `make fuzz` (the CUDA half): every float64 path, CPU, CUDA and the interpreter,
# was 5-13% off the exact loss, each differently: the sine of 8e22 is noise.
ILL_CONDITIONED = ([("relu", 3, 31, 7), ("rational_pow", 63, 0, 43), ("cube", 10, 57, 62),
                    ("rational_pow", 63, 0, 43), ("rational_pow", 15, 58, 60),
                    ("cube", 10, 57, 62), ("cube", 10, 57, 62), ("abs", 17, 62, 58),
                    ("sin", 37, 27, 23), ("abs", 36, 56, 36)], 31_164_437)


def test_ill_conditioned_points_are_skipped():
    recipe, seed = ILL_CONDITIONED
    loss = build(recipe)
    assert str(loss) == "sin((y**6 + 1)**(27/2))/3 + Abs(b)"
    params, data = sample_point(seed)
    model = symgrad.Model(loss, PARAMS, INPUTS)
    assert not exact_and_well_conditioned(model, params, data)[1]
    # The same formula where the sine's argument is moderate is kept.
    data = {k: v / 2 for k, v in data.items()}
    assert exact_and_well_conditioned(model, params, data)[1]


# ------------------------------------- singular expressions in shared branches
#
# A subexpression read by several branches lives where any of them may be taken; at a
# sample where none is, its value is discarded and it must not reach the gradient
# either (issue: the cotangent of `1/x` there is 0, and 0 * d(1/x)/dx is NaN at 0).
# These recipes put a singular expression of a leaf (1/u, log u, sqrt u, u**-2) into
# several branches of one Piecewise, of nested ones, and of different Piecewise nodes,
# each branch taken only where u > 1/2; the points make leaves exactly 0 or negative
# often, so the shared expression blows up where its branches are not taken.

SINGULAR = {
    "inverse": lambda u: 1 / u,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "inverse_square": lambda u: u**-2,
}
HALF = sp.Rational(1, 2)


# Conditions read leaves only: SymPy folds a Piecewise inside a relation into ITE
# conditions, which would move the singular expressions into the conditions.
def _shared(s, u, c, v, w):        # s in the first and third branch of one Piecewise
    return sp.Piecewise((s, u > 2), (v, c > 0), (s, u > HALF), (w, True))


def _nested(s, u, c, v, w):        # s in an outer branch and in a nested one
    return sp.Piecewise((s, u > 2), (sp.Piecewise((v, c > 0), (s, u > HALF), (w, True)), True))


def _deep(s, u, c, v, w):          # three levels, s at two of them
    inner = sp.Piecewise((v * w, c < 1), (s, u > HALF), (v, True))
    return sp.Piecewise((w, c < -1), (sp.Piecewise((s, u > 1), (inner, True)), True))


def _two_nodes(s, u, c, v, w):     # s in branches of two different Piecewise nodes
    return (sp.Piecewise((s, u > HALF), (v, True))
            + sp.Piecewise((s * w, u > 1), (w, c > 0), (v, True)))


BRANCH_TEMPLATES = {"shared": _shared, "nested": _nested, "deep": _deep,
                    "two_nodes": _two_nodes}
BRANCHY = {f"{t}_{k}": (BRANCH_TEMPLATES[t], SINGULAR[k])
           for t in BRANCH_TEMPLATES for k in SINGULAR}
BRANCHY_NAMES = sorted(BRANCHY)


def build_branchy(recipe: list[Step]) -> sp.Expr:
    """Like `build`, with branchy steps: (name, u, c, v, w) puts the singular
    expression of leaf number u into the template's branches, with conditions on
    leaves u and c, and v and w picked from the pool like `build`'s operands (so
    branches nest across steps)."""
    pool: list[sp.Expr] = list(LEAVES)
    for name, *picks in recipe:
        if name in BRANCHY:
            template, singular = BRANCHY[name]
            u, c = (LEAVES[k % len(LEAVES)] for k in picks[:2])
            v, w = (pool[-1 - k % len(pool)] for k in picks[2:])
            pool.append(template(singular(u), u, c, v, w))
        else:
            arity, make = STEPS[name]
            pool.append(make(*(pool[-1 - k % len(pool)] for k in picks[:arity])))
    return pool[-1] + pool[-2] / 3


branchy_steps = st.tuples(st.sampled_from(BRANCHY_NAMES), *[st.integers(0, 63)] * 4)
# The plain steps without the Piecewise ones, whose conditions read pool expressions, and
# without kinks of pool expressions: SymPy does not know that sqrt(x) in a branch taken
# only where x > 1/2 is real, so it would differentiate Abs or Max of it as complex.
PLAIN_NAMES = [n for n in STEP_NAMES
               if "piecewise" not in n and n not in ("abs", "max", "min", "relu")]
plain_steps = st.tuples(st.sampled_from(PLAIN_NAMES),
                        *[st.integers(0, 63)] * 3)
branchy_recipes = st.lists(st.one_of(branchy_steps, plain_steps), min_size=3, max_size=8).filter(
    lambda recipe: any(name in BRANCHY for name, *_ in recipe))


def sample_point_with_zeros(seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """`sample_point`, with each value exactly 0 one time in three."""
    params, data = sample_point(seed)
    rng = np.random.default_rng(seed + 1)
    params = {k: 0.0 if rng.random() < 1 / 3 else v for k, v in params.items()}
    data = {k: np.where(rng.random(v.shape) < 1 / 3, 0.0, v) for k, v in data.items()}
    return params, data


def check_branchy_against_sympy(loss, params, data, *, generated: bool):
    """Both methods, through the interpreter or the generated module (compiled). Not
    under strict floating point: a shared expression is computed wherever one of its
    branches may be taken and discarded elsewhere (log(0) may run); only the results
    must be exact."""
    model = symgrad.Model(loss, PARAMS, INPUTS)
    want, well_conditioned = exact_and_well_conditioned(model, params, data)
    assume(well_conditioned)
    for method in ("reverse", "symbolic"):
        if generated:
            got = generated_loss_and_grad(symgrad.compile(model, method), params, data)
        else:
            got = interpret_loss_and_grad(derive(model, method), params, data)
        oracle.assert_grads_close(got, want, RTOL, RTOL,
                                  f"{'generated' if generated else 'interpret'} {method}")


def _branchy_case(recipe, seed):
    loss = build_branchy(recipe)
    note(f"loss = {loss}")
    params, data = sample_point_with_zeros(seed)
    assume(far_from_kinks(loss, params, data))
    return loss, params, data


# The derivation (where the shared-branch gate lives) through the interpreter, and the
# generated CPU module compiled (the CUDA module: test_fuzz_cuda.py).
@settings(FUZZ, max_examples=EXAMPLES)
@given(recipe=branchy_recipes, seed=st.integers(0, 2**32 - 1))
def test_singular_shared_branches_match_sympy(recipe, seed):
    check_branchy_against_sympy(*_branchy_case(recipe, seed), generated=False)


# Each example compiles two modules (seconds): `make test` draws a quarter as many as the
# interpreter test, `make fuzz` 5,000.
@settings(FUZZ, max_examples=COMPILED_EXAMPLES)
@given(recipe=branchy_recipes, seed=st.integers(0, 2**32 - 1))
def test_singular_shared_branches_in_cpu_modules_match_sympy(recipe, seed):
    check_branchy_against_sympy(*_branchy_case(recipe, seed), generated=True)


# --------------------------------------------------- through compiled kernels

COMPILED_GROUPS = 2
PER_GROUP = 11


def drawn_recipe(rng: np.random.Generator) -> list[Step]:
    """A recipe drawn like the hypothesis ones: 4 to 10 steps, mostly recent operands."""
    return [(str(rng.choice(STEP_NAMES)), *(int(k) for k in rng.geometric(0.45, 3) - 1))
            for _ in range(rng.integers(4, 11))]


def compiled_group(seed: int):
    """PER_GROUP drawn expressions, each over its own params a<k>, b<k>, summed.

    The gradient for a<k> or b<k> depends on expression k alone, so one kernel
    checks PER_GROUP expressions (Numba compiles cost seconds each).
    """
    rng = np.random.default_rng(seed)
    data = {x.name: rng.uniform(-2.0, 2.0, N_SAMPLES) for x in INPUTS}
    terms, params, values = [], [], {}
    while len(terms) < PER_GROUP:
        k = len(terms)
        own = sp.symbols(f"a{k} b{k}", real=True)
        expr = build(drawn_recipe(rng))
        point = dict(zip(PARAMS, rng.uniform(-2.0, 2.0, 2)))
        if not (expr.free_symbols & set(PARAMS)) or not far_from_kinks(
                expr, {p.name: v for p, v in point.items()}, data):
            continue
        terms.append(expr.xreplace(dict(zip(PARAMS, own))))
        params += own
        values.update({s.name: float(point[p]) for s, p in zip(own, PARAMS)})
    return sp.Add(*terms), params, values, data


# One test per group and method: each is up to a minute of Numba compiles, and as separate
# tests they spread over the workers instead of ending the run on one. The direct method's
# (sympy.diff of 11 drawn expressions, then their compile) are slow tests: the fast set
# checks that method on every example and in the interpreter's fuzz.
@pytest.mark.parametrize("method", ["reverse", pytest.param("symbolic",
                                                            marks=pytest.mark.slow)])
@pytest.mark.parametrize("seed", range(COMPILED_GROUPS))
def test_drawn_dags_in_compiled_kernels_match_sympy(seed, method):
    loss, params, values, data = compiled_group(seed)
    model = symgrad.Model(loss, params, INPUTS)
    want = oracle.loss_and_grad(model.loss, model.real_params, model.real_inputs, values, data)
    got = symgrad.compile(model, method).loss_and_grad(values, data)
    oracle.assert_grads_close(got, want, RTOL, RTOL, f"compiled {method}")
