"""Pictures of the computational graph: DOT text, SVG and PNG files, large graphs
cut with a note, and errors for bad output names."""

import functools
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cuda_models as cm
import numpy as np
import pytest

from symgrad.errors import MissingDependencyError, OptionError, OutputPathError
from symgrad.inspect.picture import SYMBOLS, graph_picture, output_format
from symgrad.ir import LEAVES, Op
from symgrad.modelfile import load_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LECTURE_POINT = {"x": -2.0, "y": 5.0, "z": -4.0}


@pytest.fixture(scope="module")
def lecture():
    return load_model(EXAMPLES / "lecture_graph.py")


def test_lecture_picture_has_values_and_gradients(lecture):
    picture = graph_picture(lecture, LECTURE_POINT)
    by_label = {n.label: n for n in picture.nodes}
    # The lecture's figure: x=-2/-4, y=5/-4, z=-4/3, q=3/-4, f=-12/1.
    assert {k: (n.value, n.grad) for k, n in by_label.items()} == {
        "x": ("-2", "-4"), "y": ("5", "-4"), "z": ("-4", "3"),
        "+": ("3", "-4"), "×": ("-12", "1")}
    assert [n.kind for n in picture.nodes].count("param") == 3
    assert [n.label for n in picture.nodes if n.output] == ["×"]
    assert len(picture.edges) == 4 and picture.note is None


def test_dot_is_deterministic_and_contains_the_values(lecture):
    dot = graph_picture(lecture, LECTURE_POINT).dot()
    assert dot == graph_picture(lecture, LECTURE_POINT).dot()
    assert dot.startswith("// lecture_graph.py: computational graph at x=-2, y=5, z=-4\n")
    assert dot.count(" -> ") == 4
    assert 'label=<<font color="#1a7f37">-12</font><br/><b>×</b><br/>' \
           '<font color="#cf222e">1</font>>' in dot
    assert "peripheries=2" in dot and dot.rstrip().endswith("}")
    symbolic = graph_picture(lecture).dot()
    assert "-12" not in symbolic and "<b>+</b>" in symbolic


def test_svg_and_png_files_are_valid(lecture, tmp_path):
    picture = graph_picture(lecture, LECTURE_POINT)
    svg_path = picture.save(tmp_path / "graph.svg")
    root = ET.parse(svg_path).getroot()
    assert root.tag.endswith("svg")
    png = picture.save(tmp_path / "graph.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    dot = picture.save(tmp_path / "graph.gv", format="dot").read_text()
    assert dot == picture.dot()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.gv", "graph.png", "graph.svg"]


def test_large_graph_is_cut_to_the_nodes_nearest_the_output():
    model = load_model(EXAMPLES / "hinge_two_layer.py")
    names = (*model.param_names, *model.input_names)
    point = dict(zip(names, np.random.default_rng(0).standard_normal(len(names)).tolist()))
    picture = graph_picture(model, point)
    assert len(picture.nodes) == 60
    assert "showing the 60 nodes nearest the output, of 97" in picture.note
    assert picture.note in picture.dot()
    assert any(n.output for n in picture.nodes) and any(n.cut for n in picture.nodes)
    assert any(n.label == "0.01×" for n in picture.nodes)      # constants written inline
    small = graph_picture(model, point, max_nodes=5)
    assert len(small.nodes) == 5 and small.nodes[-1].output
    full = graph_picture(model, point, max_nodes=1000)
    assert len(full.nodes) == 97 and full.note is None


def test_every_op_has_a_picture_symbol():
    assert [op for op in Op if op not in LEAVES and op not in SYMBOLS] == []


def test_output_format_errors():
    assert output_format("g.SVG", None) == "svg"
    assert output_format("g.out", "png") == "png"
    with pytest.raises(OptionError, match="cannot tell the picture format"):
        output_format("graph.jpg", None)
    with pytest.raises(OptionError, match="does not match"):
        output_format("graph.svg", "png")
    with pytest.raises(OptionError, match="format must be one of"):
        output_format("graph.svg", "gif")


def test_save_under_a_file_fails_cleanly(lecture, tmp_path):
    picture = graph_picture(lecture)
    (tmp_path / "file.txt").write_text("x")
    for name in ("graph.dot", "graph.png"):
        with pytest.raises(OutputPathError):
            picture.save(tmp_path / "file.txt" / "sub" / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_save_makes_missing_folders(lecture, tmp_path):
    path = graph_picture(lecture).save(tmp_path / "missing" / "graph.dot")
    assert "digraph symgrad {" in path.read_text()


def test_missing_matplotlib_is_a_clear_error_and_dot_still_works(lecture, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # `import matplotlib` now fails
    picture = graph_picture(lecture, LECTURE_POINT)
    with pytest.raises(MissingDependencyError, match="symgrad\\[viz\\]"):
        picture.svg()
    assert "digraph symgrad" in picture.dot()


# ------------------------------------------------------------------ the layout

# Every shipped example's picture (scalar ones also at a point), and an MLP whose targets
# are read only by the loss; built when a test asks (not at collection, in every worker).
PICTURES = [*(path.stem for path in sorted(EXAMPLES.glob("*.py"))),
            *(f"{stem}@point" for stem in cm.SCALAR_EXAMPLES), "mlp ce"]


@functools.cache
def picture_of(name: str):
    if name == "mlp ce":
        return graph_picture(cm.mlp("ce")[0])
    stem, _, at = name.partition("@")
    model = load_model(EXAMPLES / f"{stem}.py")
    if not at:
        return graph_picture(model)
    return graph_picture(model, {n: 0.5 for n in (*model.param_names, *model.input_names)})


@pytest.mark.parametrize("name", PICTURES)
def test_no_edge_passes_through_a_node_box(name):
    from symgrad.inspect.draw import layout_of
    from symgrad.inspect.layout import box_contains_segment
    picture = picture_of(name)
    layout = layout_of(picture)
    assert len(layout.paths) == len(picture.edges)
    for src, dst, points in layout.paths:
        for key, centre in layout.centres.items():
            if key in (src, dst):
                continue
            for a, b in zip(points, points[1:]):
                assert not box_contains_segment(centre, a, b), \
                    f"{name}: edge {src}->{dst} crosses node {key}"
        # each path leaves its source on the right and enters its target from the left
        (sx, sy), (tx, ty) = layout.centres[src], layout.centres[dst]
        assert points[0][0] > sx and points[0][1] == sy
        assert points[-1][0] < tx and points[-1][1] == ty


@pytest.mark.parametrize("name", PICTURES)
def test_leaves_on_the_left_and_the_output_on_the_right(name):
    from symgrad.inspect.draw import layout_of
    picture = picture_of(name)
    layout = layout_of(picture)
    xs = {n.key: layout.centres[n.key][0] for n in picture.nodes}
    leaves = [n for n in picture.nodes if n.kind != "op"]
    (output,) = [n for n in picture.nodes if n.output]
    assert leaves and all(xs[n.key] == 0.0 for n in leaves)
    assert xs[output.key] == max(xs.values()) and \
        sum(x == xs[output.key] for x in xs.values()) == 1


def test_box_check_sees_a_crossing():
    from symgrad.inspect.layout import box_contains_segment
    assert box_contains_segment((1.0, 0.0), (0.0, 0.0), (2.0, 0.0))       # straight through
    assert box_contains_segment((1.0, 0.0), (0.5, -1.0), (1.5, 1.0))      # diagonal
    assert not box_contains_segment((1.0, 0.0), (0.0, 1.0), (2.0, 1.0))   # a lane above
    assert not box_contains_segment((1.0, 0.0), (0.0, 0.0), (0.75, 0.0))  # ends at its side


def test_targets_reach_the_loss_without_crossing_the_first_layer():
    """The MLP's target Y feeds only the loss: its path runs in its own lane (before, a
    straight line drawn from the left column made Y look like an input of layer 1)."""
    from symgrad.inspect.draw import layout_of
    picture = picture_of("mlp ce")
    layout = layout_of(picture)
    (y,) = [n.key for n in picture.nodes if n.label.startswith("Y")]
    users = {dst for src, dst, _ in picture.edges if src == y}
    first_layer = {n.key for n in picture.nodes if n.layer == 1}
    assert not users & first_layer
    (path,) = [points for src, _, points in layout.paths if src == y]
    assert len(path) > 2      # routed through the layers between, not one straight line


def test_legend_promises_values_only_at_a_point(lecture):
    from symgrad.inspect.draw import legend
    assert "value above" in legend(graph_picture(lecture, LECTURE_POINT))
    assert "value" not in legend(graph_picture(lecture))
    assert "gold ring: output" in legend(graph_picture(lecture))


def test_docs_have_a_picture_of_every_example_made_by_make_pictures():
    root = EXAMPLES.parent
    target = (root / "Makefile").read_text().split("\npictures:", 1)[1].split("\n\n", 1)[0]
    for path in sorted(EXAMPLES.glob("*.py")):
        png = root / "docs" / "img" / f"{path.stem}.png"
        assert png.read_bytes().startswith(b"\x89PNG"), png
        assert path.stem in target, f"`make pictures` does not draw {path.stem}"
