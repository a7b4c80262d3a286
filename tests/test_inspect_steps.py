"""The adjoint program step by step: the lecture graph to the number, agreement with
the interpreter, symbolic steps, untaken branches, and point checking."""

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.derivation import derive
from symgrad.errors import OptionError
from symgrad.inspect.point import parse_point
from symgrad.inspect.steps import adjoint_steps
from symgrad.interpret import loss_and_grad
from symgrad.modelfile import load_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LECTURE_POINT = {"x": -2.0, "y": 5.0, "z": -4.0}


@pytest.fixture(scope="module")
def lecture():
    return load_model(EXAMPLES / "lecture_graph.py")


def test_lecture_graph_steps_to_the_number(lecture):
    # By hand: q = x + y = 3, f = q z = -12; df/dq = z = -4, df/dz = q = 3,
    # df/dx = df/dy = df/dq * 1 = -4.
    steps = adjoint_steps(lecture, LECTURE_POINT)
    assert steps.values == {"x": -2.0, "y": 5.0, "z": -4.0, "v1": 3.0, "f": -12.0}
    assert steps.gradients == {"f": 1.0, "v1": -4.0, "x": -4.0, "y": -4.0, "z": 3.0}
    assert [(name, d) for name, d, _, _ in steps.forward] == [("v1", "x + y"), ("f", "v1*z")]
    first, second = steps.backward
    assert (first.name, first.g) == ("f", 1.0)
    assert [(c.arg, c.local, c.local_value, c.value) for c in first.contributions] == [
        ("z", "v1", 3.0, 3.0), ("v1", "z", -4.0, -4.0)]
    assert (second.name, second.g) == ("v1", -4.0)
    assert [(c.arg, c.local, c.value) for c in second.contributions] == [
        ("x", "1", -4.0), ("y", "1", -4.0)]
    assert steps.final == {"x": "-4", "y": "-4", "z": "3"}


def test_lecture_graph_steps_read_as_a_hand_derivation(lecture):
    text = str(adjoint_steps(lecture, LECTURE_POINT))
    for line in ["  v1 = x + y = 3",
                 "  f = v1*z = -12",
                 "  df/df = 1",
                 "    df/dz = df/df * v1 = 1 * 3 = 3",
                 "    df/dv1 = df/df * z = 1 * (-4) = -4",
                 "  v1 = x + y   with df/dv1 = -4:",
                 "    df/dx = df/dv1 * 1 = (-4) * 1 = -4",
                 "    df/dy = df/dv1 * 1 = (-4) * 1 = -4",
                 "Gradients: df/dx = -4, df/dy = -4, df/dz = 3"]:
        assert line in text.splitlines(), line


def test_symbolic_steps_name_the_intermediates(lecture):
    steps = symgrad.grad(lecture).steps()
    text = steps.text()
    assert steps.values == {} and steps.gradients == {}
    assert "  f = v1*z" in text.splitlines()
    assert "    df/dz = df/df * v1" in text.splitlines()
    assert steps.final == {"x": "df/dv1", "y": "df/dv1", "z": "df/df * v1"}


def test_chain_rule_steps_accumulate_to_18x_plus_12():
    model = load_model(EXAMPLES / "chain_rule.py")
    for x in (-2.0, 0.5, 3.0):
        steps = adjoint_steps(model, {"x": x})
        assert steps.gradients["x"] == pytest.approx(18 * x + 12, rel=1e-14)
        assert steps.values["f"] == pytest.approx(9 * x**2 + 12 * x + 3, rel=1e-14)
    assert "df/dx += " in steps.text()     # x is used twice: its gradient has two terms


@pytest.mark.parametrize("example", ["polynomial_sin", "hinge_two_layer"])
def test_steps_agree_with_the_interpreter_for_one_sample(example):
    model = load_model(EXAMPLES / f"{example}.py")
    rng = np.random.default_rng(3)
    names = (*model.param_names, *model.input_names)
    point = dict(zip(names, rng.standard_normal(len(names)).tolist()))
    steps = adjoint_steps(model, point)
    data = {k: np.array([point[k]]) for k in model.input_names}
    loss, grads = loss_and_grad(derive(model), {p: point[p] for p in model.param_names}, data)
    assert steps.values[steps.output] == pytest.approx(loss, rel=1e-13)
    for p in model.param_names:
        assert steps.gradients.get(p, 0.0) == pytest.approx(grads[p], rel=1e-12, abs=1e-15)


def test_untaken_branch_passes_zero():
    w, x = sp.symbols("w x", real=True)
    model = symgrad.Model(sp.Piecewise((sp.log(w * x), w * x > 1), (w**2, True)),
                          params=[w], inputs=[x])
    low = adjoint_steps(model, {"w": 0.5, "x": 1.0})      # w x = 0.5: the w^2 branch
    assert low.gradients["w"] == pytest.approx(1.0)      # d(w^2)/dw = 2w
    assert "(in a branch not taken)" in low.text()
    assert "(branch not taken: passes 0)" in low.text()
    high = adjoint_steps(model, {"w": 3.0, "x": 1.0})     # log(w x): d/dw = 1/w
    assert high.gradients["w"] == pytest.approx(1 / 3)
    assert "v3 if v2 else v4" in high.text()


def test_point_errors_are_option_errors(lecture):
    with pytest.raises(OptionError, match="unknown name.*q.*params and inputs are x, y, z"):
        adjoint_steps(lecture, {"x": 1, "y": 2, "z": 3, "q": 4})
    with pytest.raises(OptionError, match="missing: z"):
        adjoint_steps(lecture, {"x": 1, "y": 2})
    with pytest.raises(OptionError, match="name=value"):
        parse_point("x=1,y")
    with pytest.raises(OptionError, match="not a number"):
        parse_point("x=abc")
    with pytest.raises(OptionError, match="twice"):
        parse_point("x=1,x=2")
    assert parse_point(" x=-2, y=5e0 ") == {"x": -2.0, "y": 5.0}
