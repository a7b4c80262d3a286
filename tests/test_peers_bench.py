"""benchmarks/peers.py at tiny sizes: the table, the JSON keys, peers that cannot run.

The smoke run needs no peer: torch and jax are hidden behind modules that fail
to import, so their rows must say so, and NumPy (always there) is the one peer
that runs, from the same initial params and data as symgrad.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import peer_impls, peers

IMPL_KEYS = {"status", "us_per_step", "cpu_us_per_step", "runs_s", "cpu_s", "final_loss",
             "ratio", "rel_loss_diff", "first_call_s", "agree_steps", "max_rel_diff_history"}
COMPILE_KEYS = {"model_s", "derive_s", "emit_s", "import_s", "jit_loss_s",
                "jit_loss_and_grad_s", "jit_train_s", "total_s", "source_lines", "module",
                "numba_cache"}


def test_quick_run_table_and_json(tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for name in ("torch", "jax"):
        (hidden / f"{name}.py").write_text('raise ImportError("hidden by the smoke test")\n')
    out, text = tmp_path / "peers.json", tmp_path / "peers.txt"
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--quick", "--workloads", "a,c",
         "--json", str(out), "--text", str(text)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for expected in ("(a) cubic fit, GD", "(c) 1000-100-10 ReLU, SGD", "symgrad",
                     "NumPy by hand", "PyTorch eager", "JAX jit", "import failed: ImportError",
                     "peer/symgrad", "rel diff", "agree to", "cold s", "warm s",
                     "peak memory of training (c)", "targets (1 thread, float64):",
                     "load average"):
        assert expected in table, expected
    assert "(b) Linear" not in table
    assert text.read_text() == table
    assert "[compile c]" in proc.stderr                  # progress goes to stderr

    result = json.loads(out.read_text())
    assert set(result) == {"meta", "compile", "runs", "memory", "targets"}
    meta = result["meta"]
    assert meta["quick"] and meta["threads"] == [1] and meta["repeats"] == 2
    assert {"versions", "load_average_start", "load_average_end", "notes", "cpus"} <= set(meta)
    [run] = result["runs"]
    assert run["threads"] == 1 and set(run["workloads"]) == {"a", "c"}
    for key, w in run["workloads"].items():
        impls = w["impls"]
        assert impls["pytorch"]["status"].startswith("import failed")
        assert impls["jax"]["status"].startswith("import failed")
        for name in ("symgrad", "numpy"):
            assert IMPL_KEYS <= set(impls[name]), (key, name, IMPL_KEYS - set(impls[name]))
            assert len(impls[name]["runs_s"]) == 2 and impls[name]["us_per_step"] > 0
        assert impls["symgrad"]["ratio"] == 1.0 and impls["symgrad"]["rel_loss_diff"] == 0.0
        # like for like: hand-written NumPy gradients give symgrad's loss at every step
        steps = peer_impls.spec(key, quick=True)["steps"]
        assert w["spec"]["steps"] == steps
        assert impls["numpy"]["rel_loss_diff"] < 1e-9, impls["numpy"]
        assert impls["numpy"]["agree_steps"] == steps, impls["numpy"]
        assert impls["symgrad"]["max_rel_diff_history"] == 0.0

        cold, warm = result["compile"][key]["cold"], result["compile"][key]["warm"]
        assert COMPILE_KEYS <= set(cold) and COMPILE_KEYS <= set(warm)
        assert cold["numba_cache"]["misses"] > 0 and cold["numba_cache"]["hits"] == 0
        if warm["module"] == cold["module"]:    # unless the codegen was edited meanwhile
            assert warm["numba_cache"]["misses"] == 0 and warm["numba_cache"]["hits"] > 0

    memory = result["memory"]
    assert memory["status"] == "ok" and memory["workload"] == "c"
    assert set(memory["impls"]) == {"symgrad", "numpy"}
    assert sum(memory["arrays_to_hold_bytes"].values()) > 0
    verdicts = {t["target"]: t["verdict"] for t in result["targets"]}
    assert verdicts["(a) >= 30x faster than PyTorch eager"] == "n/a"
    assert verdicts["(c) at least as fast as NumPy by hand"] in ("met", "MISSED")
    assert verdicts["(c) derive+emit+JIT warm < 0.5 s"] in ("met", "MISSED")


def test_missing_peer_is_reported_not_installed(monkeypatch):
    monkeypatch.setitem(peer_impls.PEER_MODULES, "jax", "no_such_module_for_symgrad_tests")
    assert peers._peer_status("jax") == "not installed"
    assert peers._peer_status("numpy") is None


def test_arguments(capsys):
    args = peers.parse_args(["--quick", "--peers", "none", "--workloads", "d"])
    assert (args.threads, args.repeats, args.peers, args.workloads) == ([1], 2, [], ["d"])
    args = peers.parse_args([])
    assert args.threads == [1, 2] and args.repeats == 5 and args.peers == list(peers.PEERS)
    for bad in (["--workloads", "e"], ["--threads", "0"], ["--peers", "tensorflow"],
                ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            peers.parse_args(bad)
    capsys.readouterr()


def test_agreement_counts_leading_steps():
    reference = np.array([4.0, 3.0, 2.0, 1.0])
    assert peers._agreement(reference.copy(), reference) == {
        "agree_steps": 4, "max_rel_diff_history": 0.0}
    drifted = reference * np.array([1.0, 1.0 + 1e-12, 1.0 + 1e-3, 1.0])
    out = peers._agreement(drifted, reference)
    assert out["agree_steps"] == 2 and abs(out["max_rel_diff_history"] - 1e-3) < 1e-12
    assert peers._agreement(np.array([np.nan, 3.0]), reference[:2])["agree_steps"] == 0
    assert peers._agreement(reference[:3], reference)["agree_steps"] == 0


def test_arrays_to_hold_counts_the_lecture_net():
    held = peer_impls.arrays_to_hold(peer_impls.spec("c"))
    n_params = 1000 * 100 + 100 + 100 * 10 + 10
    assert held["gradient"] == held["params_in"] == 8 * n_params
    assert held["data"] == 8 * 64 * (1000 + 10)
    assert held["activations"] == 8 * 64 * (2 * 100 + 10)
    assert held["optimizer_state"] == 0
