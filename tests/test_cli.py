"""`symgrad compile MODEL.py -o OUT.py`: in-process through `symgrad.cli.main`, and once
through the installed console script. Errors are one line on stderr and exit code 2."""

import importlib.util
import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad
from symgrad.cli import main
from symgrad.modelfile import load_model

ROOT = Path(__file__).resolve().parent.parent
POLY = ROOT / "examples" / "polynomial_sin.py"
PARAMS = {"a": 0.2, "b": 0.9, "c": -0.1, "d": -0.05}


def poly_data():
    xs = np.linspace(-np.pi, np.pi, 2000)
    return {"x": xs, "y": np.sin(xs)}


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def load_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["reverse", "symbolic"])
def test_compile_writes_the_kernels_module(capsys, tmp_path, method):
    out_path = tmp_path / "poly.py"
    rc, out, err = cli(capsys, "compile", POLY, "-o", out_path, "--method", method)
    assert (rc, err) == (0, "")
    assert out.startswith(f"wrote {out_path}") and "forward" in out
    kernel = symgrad.compile(load_model(POLY), method=method)
    source = out_path.read_text(encoding="utf-8")
    assert source == kernel.source
    assert f"method={method}" in source
    # Its cores run uncompiled here (cheap); the real import is the console-script test.
    module = load_file(out_path, f"cli_poly_{method}")
    params = np.array([PARAMS[name] for name in module.PARAMS])
    data = poly_data()
    got = np.empty(1 + len(params))
    module._loss_and_grad_core.py_func(params, data["x"], data["y"], got)
    loss, grads = kernel.loss_and_grad(PARAMS, data)
    assert got.tolist() == pytest.approx([loss, *grads.values()], rel=1e-12)


def test_jit_flag_reports_compile_time(capsys, tmp_path):
    rc, out, err = cli(capsys, "compile", POLY, "-o", tmp_path / "poly.py", "--jit")
    assert (rc, err) == (0, "")
    jit_line = out.splitlines()[-1]
    assert jit_line.startswith("numba compile:")
    assert "loss_and_grad" in jit_line and jit_line.endswith(" s")


def bad_model_file(tmp_path, text):
    path = tmp_path / "model_file.py"
    path.write_text(text)
    return path


ERROR_CASES = {
    "missing-model-file": (lambda t: ["compile", t / "nowhere.py", "-o", t / "k.py"],
                           "ModelFileError", "nowhere.py"),
    "no-model": (lambda t: ["compile", bad_model_file(t, "x = 1\n"), "-o", t / "k.py"],
                 "ModelFileError", "model_file.py"),
    "model-file-raises": (lambda t: ["compile", bad_model_file(t, "raise ValueError('a\\nb')\n"),
                                     "-o", t / "k.py"], "ModelFileError", "ValueError: a b"),
    "bad-method": (lambda t: ["compile", POLY, "-o", t / "k.py", "--method", "bogus"],
                   "OptionError", "'bogus'"),
    "bad-target": (lambda t: ["compile", POLY, "-o", t / "k.py", "--target", "tpu"],
                   "OptionError", "'tpu'"),
    "under-a-file": (lambda t: (t / "file.txt").write_text("x") and
                     ["compile", POLY, "-o", t / "file.txt" / "k.py"],
                     "OutputPathError", "file.txt"),
    "output-is-dir": (lambda t: ["compile", POLY, "-o", t],
                      "OutputPathError", "directory"),
    "under-a-file": (lambda t: ["compile", POLY, "-o", bad_model_file(t, "") / "k.py"],
                     "OutputPathError", "not a directory"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_one_line_and_exit_2(capsys, tmp_path, case):
    argv, error, culprit = ERROR_CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    rc, out, err = cli(capsys, *argv(work))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"symgrad: error: {error}: ")
    assert culprit in err
    assert not (work / "k.py").exists()
    assert [p.name for p in work.iterdir()] in ([], ["model_file.py"], ["file.txt"])


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["compile", str(POLY)])
    assert caught.value.code == 2
    assert "-o" in capsys.readouterr().err


BLOCKED_RUN = r'''
import importlib.abc, importlib.util, json, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("sympy", "symgrad", "codegen"):
            raise ImportError(name)
sys.meta_path.insert(0, Blocked())
import numpy as np
spec = importlib.util.spec_from_file_location("poly_kernels", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["poly_kernels"] = module
spec.loader.exec_module(module)
xs = np.linspace(-np.pi, np.pi, 2000)
loss, grads = module.loss_and_grad(json.loads(sys.argv[2]), {"x": xs, "y": np.sin(xs)})
print(json.dumps([loss.hex(), [g.hex() for g in grads.values()], module.loss(
    json.loads(sys.argv[2]), {"x": xs, "y": np.sin(xs)}).hex(), "sympy" in sys.modules]))
'''


def test_console_script_output_runs_standalone(tmp_path):
    script = Path(sys.executable).with_name("symgrad")
    if not script.exists():
        script = shutil.which("symgrad")
    assert script, "the symgrad console script is not installed"
    out_path = tmp_path / "poly.py"
    done = subprocess.run([str(script), "compile", str(POLY), "-o", str(out_path),
                           "--method", "symbolic"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(out_path), json.dumps(PARAMS)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    loss_hex, grad_hex, plain_hex, had_sympy = json.loads(run.stdout)
    kernel = symgrad.compile(load_model(POLY), method="symbolic")
    loss, grads = kernel.loss_and_grad(PARAMS, poly_data())
    assert (loss_hex, grad_hex) == (loss.hex(), [g.hex() for g in grads.values()])
    assert plain_hex == kernel.loss(PARAMS, poly_data()).hex()
    assert had_sympy is False

    (tmp_path / "file.txt").write_text("x")
    bad = subprocess.run([str(script), "compile", str(POLY), "-o",
                          str(tmp_path / "file.txt" / "k.py")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("symgrad: error: OutputPathError")


# ------------------------------------------------------------------ symgrad train

TRAIN_MODEL = '''
import numpy as np
import sympy as sp
import symgrad

a, b, x, y = sp.symbols("a b x y", real=True)
model = symgrad.Model((a + b * x - y) ** 2, [a, b], inputs=[x, y], reduction="mean")


def data():
    xs = np.linspace(-1.0, 1.0, 64)
    ys = 0.5 + 2.0 * xs
    ys[BAD_ROW] = BAD_VALUE
    return {"x": xs, "y": ys}


def params():
    return {"a": 0.0, "b": 0.0}
'''


def train_file(tmp_path, bad_row=0, bad_value="0.5 + 2.0 * xs[0]"):
    path = tmp_path / "fit.py"
    path.write_text(TRAIN_MODEL.replace("BAD_ROW", str(bad_row)).replace("BAD_VALUE", bad_value))
    return path


def test_train_reports_compile_time_apart_and_labels_the_losses(capsys, tmp_path):
    rc, out, err = cli(capsys, "train", train_file(tmp_path), "--steps", "40", "--lr", "0.1")
    assert rc == 0, err
    assert re.search(r"compiled in [\d.]+ s \([\d.]+ s derive and emit, [\d.]+ s Numba", err)
    bars = re.findall(r"(\d+)/40 loss (\S+) \(before step (\d+)\)", err)
    assert bars and all(done == step for done, _, step in bars) and bars[-1][0] == "40"
    final = float(re.search(r"final loss (\S+) \(after the last update\)", out).group(1))
    assert re.search(r"[\d.]+ us/step steady", out)
    # the bar's last loss is the loss before step 40; the final one after it, and lower
    assert final < float(bars[-1][1])


def test_train_check_finite_names_the_input_and_row(capsys, tmp_path):
    path = train_file(tmp_path, bad_row=17, bad_value="np.nan")
    rc, _, err = cli(capsys, "train", path, "--steps", "5", "--lr", "0.1", "--check-finite")
    assert rc == 2
    assert "NonFiniteError" in err and "input 'y'" in err and "row 17" in err
    # without the check, the NaN reaches the params, and the next call stops on them
    rc, _, err = cli(capsys, "train", path, "--steps", "5", "--lr", "0.1")
    assert rc == 2 and "param 'a' is nan" in err and "row" not in err


@pytest.mark.parametrize("optimizer", ["lbfgs", "newton", "adamw"])
def test_train_with_the_newer_optimizers(capsys, tmp_path, optimizer):
    rc, out, err = cli(capsys, "train", train_file(tmp_path), "--steps", "3", "--optimizer",
                       optimizer)
    assert rc == 0, err
    final = float(re.search(r"final loss (\S+) \(after the last update\)", out).group(1))
    first = float(re.search(r"1/3 loss (\S+) \(before step 1\)", err).group(1))
    assert f"steps of {optimizer}" in out and first > 1.0
    # whole steps with a line search solve a line fit (L-BFGS stops, as torch's, once the
    # loss changes by less than tolerance_change = 1e-9); AdamW's 3 small steps go downhill
    assert final < {"newton": 1e-20, "lbfgs": 1e-8, "adamw": first}[optimizer]


def test_train_optimizer_options_are_checked(capsys, tmp_path):
    rc, _, err = cli(capsys, "train", train_file(tmp_path), "--steps", "3")
    assert rc == 2 and "--lr is needed for sgd" in err
    rc, _, err = cli(capsys, "train", train_file(tmp_path), "--optimizer", "newton", "--lr",
                     "0.1")
    assert rc == 2 and "not used by newton" in err
