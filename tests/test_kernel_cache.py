"""The on-disk kernel cache: an unchanged model reuses Numba's machine code in a new
process; a changed model never gets a stale kernel. (Times: benchmarks/compile_cache.py.)"""

import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys
import sympy as sp
import symgrad
x, a, b = sp.symbols("x a b", real=True)
loss = eval(sys.argv[1], {"sp": sp, "x": x, "a": a, "b": b})
kernel = symgrad.compile(symgrad.Model(loss, [a, b], [x]))
value, grads = kernel.loss_and_grad({"a": 0.5, "b": -1.5}, {"x": [0.25, 2.0, -1.0]})
core = kernel.module._loss_and_grad_core
print(json.dumps({"loss": value, "grads": grads, "file": kernel.module.__file__,
                  "hits": sum(core.stats.cache_hits.values()),
                  "misses": sum(core.stats.cache_misses.values())}))
"""


def run(loss_text, cache):
    env = {**os.environ, "SYMGRAD_CACHE_DIR": str(cache), "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, loss_text], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unchanged_model_loads_from_cache_in_a_new_process(tmp_path):
    first = run("(a*x + b)**2", tmp_path)
    second = run("(a*x + b)**2", tmp_path)
    assert first["misses"] == 1 and first["hits"] == 0
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["file"] == first["file"]
    assert (second["loss"], second["grads"]) == (first["loss"], first["grads"])


def test_changed_model_never_gets_a_stale_kernel(tmp_path):
    before = run("(a*x + b)**2", tmp_path)
    after = run("(a*x - b)**2", tmp_path)
    assert after["file"] != before["file"]
    xs = [0.25, 2.0, -1.0]
    assert after["loss"] == sum((0.5 * x + 1.5) ** 2 for x in xs)
    assert after["misses"] == 1 and after["hits"] == 0


def test_unwritable_cache_dir_falls_back_to_a_temporary_one(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run("(a*x + b)**2", blocker / "cache")
    assert not result["file"].startswith(str(blocker))
