"""`symgrad grad` and `symgrad graph` on the shipped examples, run in-process."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from symgrad.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LECTURE = str(EXAMPLES / "lecture_graph.py")
AT = "x=-2,y=5,z=-4"


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_grad_prints_every_formula(capsys, method):
    assert main(["grad", LECTURE, "--method", method]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-3:] == ["df/dx = z", "df/dy = z", "df/dz = x + y"]
    expected = "reverse mode" if method == "reverse" else "sympy.diff"
    assert f"symgrad: deriving 3 gradients by {expected}..." in err


def test_grad_steps_at_a_point(capsys):
    assert main(["grad", LECTURE, "--steps", "--at", AT]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  v1 = x + y = 3" in lines and "  f = v1*z = -12" in lines
    assert "    df/dx = df/dv1 * 1 = (-4) * 1 = -4" in lines
    assert lines[-1] == "Gradients: df/dx = -4, df/dy = -4, df/dz = 3"


def test_grad_at_without_steps_adds_the_values(capsys):
    assert main(["grad", str(EXAMPLES / "chain_rule.py"), "--at", "x=2"]) == 0
    out = capsys.readouterr().out
    assert "df/dx = 6*(3*x + 1) + 6" in out
    assert out.splitlines()[-2:] == ["At x=2:", "  df/dx = 48"]      # 18 * 2 + 12


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_grad_latex_of_the_hinge_model(capsys, method):
    assert main(["grad", str(EXAMPLES / "hinge_two_layer.py"), "--latex",
                 "--method", method]) == 0
    out = capsys.readouterr().out
    assert out.startswith("% Gradients of hinge_two_layer.py")
    assert "\\begin{align*}" in out and out.endswith("\\end{align*}\n")
    assert out.count("\\frac{\\partial L}{\\partial w_{") == 15
    assert "\\sum_{i=1}^{n}" in out and "0.02 w_{2 3}" in out


def test_grad_pretty_of_the_polynomial(capsys):
    assert main(["grad", str(EXAMPLES / "polynomial_sin.py"), "--pretty"]) == 0
    out = capsys.readouterr().out
    assert "∂L/∂a" in out and "h₃ = 2⋅(a + b⋅x + c⋅h₁ + d⋅h₂ - y)" in out


@pytest.mark.parametrize("ext", ["svg", "png", "dot"])
def test_graph_writes_each_format(capsys, tmp_path, ext):
    path = tmp_path / f"graph.{ext}"
    assert main(["graph", LECTURE, "--at", AT, "-o", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote {path}: 5 nodes, 4 edges\n"
    data = path.read_bytes()
    if ext == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif ext == "svg":
        assert ET.fromstring(data).tag.endswith("svg")
    else:
        assert b"digraph symgrad" in data and b"-12" in data


def test_graph_dot_on_stdout_and_the_cut_note(capsys):
    assert main(["graph", str(EXAMPLES / "hinge_two_layer.py"), "--format", "dot"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("// hinge_two_layer.py: computational graph\n")
    assert "note: showing the 60 nodes nearest the output, of 97" in err


@pytest.mark.parametrize("argv, message", [
    (["graph", LECTURE, "--at", "x=1,y=2,z=3,q=4", "-o", "g.svg"], "unknown name(s)"),
    (["graph", LECTURE, "-o", "graph.jpg"], "cannot tell the picture format"),
    (["graph", LECTURE, "--format", "png"], "PNG is binary"),
    (["grad", LECTURE, "--steps", "--at", "x=1,y"], "name=value"),
    (["grad", LECTURE, "--steps", "--method", "symbolic"], "--method reverse"),
    (["grad", LECTURE, "--steps", "--latex"], "--steps prints text"),
])
def test_bad_options_are_reported_as_errors(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "symgrad: error: OptionError:" in err and message in err
    assert list(tmp_path.iterdir()) == []


# ---- second order: grad --order 2 and the hessian command ----

def test_grad_order_2_prints_the_hvp_program_and_the_hessian_at_a_point(capsys):
    assert main(["grad", LECTURE, "--order", "2", "--at", "x=-2,y=5,z=-4"]) == 0
    out = capsys.readouterr().out
    # f = (x + y) z: H = [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    assert "(H v)[x] = v[z]\n(H v)[y] = v[z]\n(H v)[z] = v[x] + v[y]\n" in out
    rows = [line.split() for line in out.splitlines()[-3:]]
    assert rows == [["x", "0", "0", "1"], ["y", "0", "0", "1"], ["z", "1", "1", "0"]]


def test_grad_order_2_symbolic_prints_sympy_hessian_entries(capsys):
    assert main(["grad", str(EXAMPLES / "chain_rule.py"), "--order", "2", "--method",
                 "symbolic"]) == 0
    out = capsys.readouterr().out
    assert "by sympy.hessian" in out and "d2f/dx dx = 18" in out


def test_grad_order_2_names_shared_intermediates(capsys):
    assert main(["grad", str(EXAMPLES / "hinge_two_layer.py"), "--order", "2"]) == 0
    out = capsys.readouterr().out
    assert "h1 = " in out and "(H v)[w2_1] = sum_i(" in out
    assert "0.02*v[w1_11]" in out       # the L2 penalty's Hessian: 2 lam v


def test_hessian_command_pattern_values_and_picture(capsys, tmp_path):
    path = tmp_path / "pattern.png"
    point = ",".join(f"x{i}=1" for i in range(10))
    assert main(["hessian", str(EXAMPLES / "rosenbrock_newton.py"), "--at", point,
                 "--spy", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Hessian pattern 28 entries" in out and "3 colours" in out
    assert "3 HVPs instead of 10" in out and "any colouring (a clique of the pattern): 2" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["x1"]
               and len(line.split()) == 11)
    assert row[1:4] == ["-400", "1002", "-400"]     # at x = 1
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grad_order_2_option_errors(capsys):
    assert main(["grad", LECTURE, "--order", "2", "--steps"]) == 2
    assert "--order 2 prints text formulas" in capsys.readouterr().err
