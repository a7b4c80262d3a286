"""The symbolic-vs-reverse benchmark at a small size: table, JSON, plot, budgets."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import symgrad
from symgrad.cli import main as cli_main
from symgrad.derivation import derive

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from symgrad.bench import models  # noqa: E402
from symgrad.bench.worker import kernel_of  # noqa: E402
from symgrad.bench.symbolic_vs_reverse import hinge_sizes, int_range, max_rel_diff  # noqa: E402

TIMES = {"derive_s", "derive_cpu_s", "compile_s", "compile_cpu_s", "kernel_s", "kernel_cpu_s"}
METHOD_KEYS = {"naive": TIMES | {"status", "tree_ops", "dag_ops", "ratio", "source_lines",
                                 "max_rel_diff", "grads", "diff_s"},
               "cse": {"status", "derive_s", "derive_cpu_s", "tree_ops", "kernel", "cse_s"},
               "reverse": TIMES | {"status", "dag_ops", "ratio", "source_lines", "grads",
                                   "loss"}}


def test_small_benchmark_through_the_cli(tmp_path, capsys):
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    rc = cli_main(["bench", "symbolic-vs-reverse", "--depth", "1", "--width", "none",
                   "--hinge", "none", "--samples", "1000", "--repeats", "2", "--budget", "120",
                   "--json", str(out), "--plot", str(png)])
    captured = capsys.readouterr()
    assert rc == 0
    table = captured.out
    for text in ("tanh L=1 w=4", "diff trees", "trees+cse", "reverse", "max rel diff",
                 "same interned DAG, source and kernel"):
        assert text in table
    assert "[1/1] tanh L=1 w=4" in captured.err          # progress goes to stderr

    result = json.loads(out.read_text())
    assert set(result) == {"meta", "rows"}
    assert {"samples", "repeats", "threads", "budget_s", "numba", "notes"} <= set(result["meta"])
    assert result["meta"]["samples"] == 1000
    [row] = result["rows"]
    assert row["sweep"] == "depth" and row["spec"] == {"kind": "tanh", "depth": 1, "width": 4}
    for method, keys in METHOD_KEYS.items():
        m = row["methods"][method]
        assert keys <= set(m), (method, keys - set(m))
        assert m["status"] == "ok"
    naive, cse, rev = (row["methods"][k] for k in ("naive", "cse", "reverse"))
    assert naive["max_rel_diff"] < 1e-10
    assert naive["tree_ops"] > cse["tree_ops"] and naive["dag_ops"] > rev["dag_ops"]
    assert rev["dag_ops"] >= row["forward_ops"] and rev["ratio"] <= 3
    assert cse["derive_s"] >= naive["diff_s"]
    assert rev["kernel_s"] > 0 and rev["compile_s"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_over_budget_rows_are_reported_and_bigger_ones_skipped(tmp_path):
    out = tmp_path / "b.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "symbolic_vs_reverse.py"), "--depth", "3..4",
         "--width", "none", "--hinge", "none", "--budget", "0.01", "--samples", "100",
         "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "over budget" in proc.stdout and "skipped" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["tanh L=3 w=4", "tanh L=4 w=4"]
    first, second = (r["methods"] for r in rows)
    assert first["naive"]["status"] == "over budget"
    assert first["naive"]["stopped_at"] == "derive"
    assert first["cse"]["status"] == "over budget"
    assert second["naive"]["status"] == second["cse"]["status"] == "skipped"
    assert first["reverse"]["status"] == "over budget"       # a cold compile takes seconds


def test_kernel_of_builds_what_compile_builds():
    model = models.tanh_network(1, width=2, inputs=1)
    for method in ("reverse", "symbolic"):
        assert kernel_of(model, derive(model, method)).source == \
            symgrad.compile(model, method=method).source


def test_option_parsers():
    assert int_range("1..3,5") == [1, 2, 3, 5]
    assert int_range("none") == [] and int_range("4") == [4]
    assert hinge_sizes("4x3,8X6") == [(4, 3), (8, 6)]
    for bad in ("0..2", "a..b"):
        with pytest.raises(argparse.ArgumentTypeError):
            int_range(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        hinge_sizes("4by3")


def test_named_sweeps_run_alone():
    from symgrad.bench.symbolic_vs_reverse import DEFAULTS, add_arguments, settle, specs

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    only_depth = settle(parser.parse_args(["--depth", "1..3"]))
    assert [spec["depth"] for _, spec in specs(only_depth)] == [1, 2, 3]
    everything = settle(parser.parse_args([]))
    assert len(specs(everything)) == len(DEFAULTS["depth"]) + len(DEFAULTS["width"]) + \
        len(DEFAULTS["hinge"])
    assert settle(parser.parse_args(["--threads", "64"])).jobs == 1


def test_max_rel_diff():
    assert max_rel_diff([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert max_rel_diff([1.1, 2.0], [1.0, 2.0]) == pytest.approx(0.1)
    # a reference component near zero is measured against 1e-8 of the largest one
    assert max_rel_diff([1e-12, 1.0], [0.0, 1.0]) == pytest.approx(1e-4)


def test_unwritable_output_fails_before_running(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    rc = cli_main(["bench", "symbolic-vs-reverse", "--quick",
                   "--json", str(tmp_path / "file.txt" / "out.json")])
    assert rc == 2
    assert "is not a directory" in capsys.readouterr().err


def test_models_build_the_lecture_hinge_network():
    model = models.hinge_network(4, 3)
    reference = models.build({"kind": "hinge", "inputs": 4, "hidden": 3})
    assert derive(model).hash() == derive(reference).hash()
    example = __import__("runpy").run_path(str(ROOT / "examples" / "hinge_two_layer.py"))
    assert len(model.params) == len(example["model"].params) == 15
    data = models.batch(model, 50)
    assert set(data) == set(model.input_names) and set(data["y"]) <= {-1.0, 1.0}


def test_compile_scaling_reports_issue_12_targets():
    from benchmarks.compile_scaling import targets

    met = targets("relu", [{"size": 1000, "total": 6.0}, {"size": 2000, "total": 6.3}])
    assert met == ["relu chain of 1,000 in 6.00 s (target <= 15 s): met",
                   "2,000 vs 1,000: 1.05x (target <= 2.3x): met"]
    missed = targets("dag", [{"size": 5000, "total": 4.0}, {"size": 10000, "total": 9.6}])
    assert missed == ["10,000 vs 5,000: 2.40x (target <= 2.3x): missed"]
    assert targets("relu", [{"size": 200, "total": 4.0}]) == []


def test_second_order_benchmark_sizes(tmp_path, capsys):
    """`symgrad bench second-order`: the HVP DAG stays a small multiple of the forward DAG
    while sympy.hessian's trees outgrow it; both methods' HVPs agree (tests/
    test_second_order.py checks values, this the table and the JSON)."""
    import json

    from symgrad.cli import main
    out = tmp_path / "second.json"
    assert main(["bench", "second-order", "--depth", "1", "--no-hinge", "--no-run",
                 "--budget", "60", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "tanh L=1 w=4" in table and "hessian trees" in table
    (row,) = json.loads(out.read_text())["rows"]
    assert row["params"] == 21 and row["forward_ops"] > 0
    assert row["gradient_ops"] < row["hvp_dag"]["ops"] < 6 * row["forward_ops"]
    assert row["hessian_trees"]["status"] == "ok"
    assert row["hessian_trees"]["ops"] > 50 * row["hvp_dag"]["ops"]
    assert row["hessian_cse"]["ops"] < row["hessian_trees"]["ops"]
