"""benchmarks/peers.py at tiny sizes: the table, the JSON keys, peers that cannot run.

The smoke run needs no peer: torch and jax are hidden behind modules that fail
to import, so their rows must say so, and NumPy (always there) is the one peer
that runs, from the same initial params and data as symgrad. No timing is
asserted: only that the columns, notes and targets are there.
"""

import importlib.util
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
    # as some machines do: the benchmark must take them out of its children's environment
    env = {**os.environ, "PYTHONPATH": str(hidden), "OPENBLAS_CORETYPE": "Haswell",
           "OPENBLAS_L2_SIZE": "1048576"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--quick", "--workloads", "a,c",
         "--json", str(out), "--text", str(text)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for expected in ("(a) cubic fit, GD", "(c) 1000-100-10 ReLU, SGD", "symgrad",
                     "NumPy by hand", "PyTorch eager", "JAX jit", "import failed: ImportError",
                     "peer/symgrad", "rel diff", "agree to", "cold s", "warm s",
                     "peak memory of training (c)", "load average", "us/step", "cpu us",
                     "dtype", " f64 ", " f32 ", "pinned: ", "; BLAS: ",
                     "note: OpenBLAS: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the",
                     "\ntargets (verdicts on wall-clock ratios", "(d4096) symgrad 2 threads >= 1.7x faster than 1 thread"):
        assert expected in table, expected
    assert "(b) Linear" not in table
    # the targets block comes last
    assert table.rstrip().splitlines()[-1].startswith("  (c) peak training memory")
    assert text.read_text() == table
    assert "[compile c]" in proc.stderr                  # progress goes to stderr

    result = json.loads(out.read_text())
    assert set(result) == {"meta", "compile", "runs", "memory", "targets"}
    meta = result["meta"]
    assert meta["quick"] and meta["threads"] == [1] and meta["repeats"] == 2
    assert meta["dtypes"] == ["float64", "float32"]
    assert {"versions", "load_average_start", "load_average_end", "notes", "cpus", "openblas",
            "pinned", "core"} <= set(meta)
    openblas = meta["openblas"]
    assert openblas["parent_env"] == {"OPENBLAS_CORETYPE": "Haswell",
                                      "OPENBLAS_L2_SIZE": "1048576"}
    assert openblas["children_env"] == {} and not openblas["kept"]
    assert openblas["note"].startswith("OpenBLAS: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset "
                                       "in the benchmark's children; kernel: ")
    assert isinstance(meta["versions"]["blas"], list)
    if importlib.util.find_spec("threadpoolctl") is not None:
        libs = {e["lib"]: e for e in meta["versions"]["blas"]}
        assert "numpy" in libs and libs["numpy"]["num_threads"] == 1
        assert {"internal_api", "architecture", "version"} <= set(libs["numpy"])
        assert "kernel: unknown" not in openblas["note"]
    else:
        assert "threadpoolctl not installed" in openblas["note"]

    f64, f32 = result["runs"]
    assert (f64["threads"], f64["dtype"], f32["threads"], f32["dtype"]) == (
        1, "float64", 1, "float32")
    for run in (f64, f32):
        assert set(run["workloads"]) == {"a", "c"}
        assert run["openblas_env"] == {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
        if hasattr(os, "sched_setaffinity"):
            assert run["cpus"] == [meta["core"]]        # one thread: one pinned CPU
    # float32: no scalar kernel for (a), so nothing to compare; (c) runs like float64
    a32 = f32["workloads"]["a"]["impls"]
    assert a32["symgrad"]["status"].startswith("n/a")
    assert a32["numpy"]["status"].startswith("skipped")
    c32 = f32["workloads"]["c"]["impls"]
    assert c32["symgrad"]["status"] == "ok" and c32["numpy"]["status"] == "ok"
    assert IMPL_KEYS <= set(c32["numpy"]) and c32["numpy"]["rel_loss_diff"] < 1e-4
    assert f32["workloads"]["c"]["spec"]["dtype"] == "float32"
    for key, w in f64["workloads"].items():
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
    assert len(verdicts) == len(result["targets"])
    assert all(v in ("met", "missed") or v.startswith("n/a (") for v in verdicts.values())
    assert verdicts["(a) >= 40x faster than PyTorch eager, default mode, float64, 1 CPU"
                    ].startswith("n/a (torch import failed")
    assert verdicts["(b) >= 2.5x faster than JAX jit, default mode, float64, 1 CPU"
                    ] == "n/a ((b) float64 at 1 thread not run)"
    assert verdicts["(c) >= 1.2x faster than JAX jit, float64, 1 CPU"].startswith("n/a (jax")
    assert verdicts["(d) >= 1.2x faster than NumPy by hand, float32, 1 pinned CPU"
                    ].startswith("n/a (")
    assert verdicts["(d4096) symgrad 2 threads >= 1.7x faster than 1 thread, float64"
                    ].startswith("n/a (")
    assert verdicts["(c) derive+emit+JIT warm < 0.5 s"] in ("met", "missed")
    assert verdicts["(c) peak training memory <= 2x the arrays it must hold"] in (
        "met", "missed")


def test_missing_peer_is_reported_not_installed(monkeypatch):
    monkeypatch.setitem(peer_impls.PEER_MODULES, "jax", "no_such_module_for_symgrad_tests")
    assert peers._peer_status("jax") == "not installed"
    assert peers._peer_status("numpy") is None


def test_arguments(capsys):
    args = peers.parse_args(["--quick", "--peers", "none", "--workloads", "d"])
    assert (args.threads, args.repeats, args.peers, args.workloads) == ([1], 2, [], ["d"])
    args = peers.parse_args([])
    assert args.threads == [1, 2] and args.repeats == 5 and args.peers == list(peers.PEERS)
    assert args.dtypes == ["float64", "float32"] and not args.keep_openblas_env
    assert args.workloads == ["a", "b", "c", "d", "d4096"]
    args = peers.parse_args(["--dtypes", "float32", "--keep-openblas-env"])
    assert args.dtypes == ["float32"] and args.keep_openblas_env
    for bad in (["--workloads", "e"], ["--threads", "0"], ["--peers", "tensorflow"],
                ["--repeats", "0"], ["--dtypes", "float16"], ["--dtypes", "none"],
                ["--core", "100000"]):
        with pytest.raises(SystemExit):
            peers.parse_args(bad)
    capsys.readouterr()


def test_plan_runs_d4096_at_one_and_two_threads_float64_only():
    args = peers.parse_args(["--threads", "1", "--workloads", "a,d,d4096"])
    assert peers.plan_runs(args) == [(1, "float64", ["a", "d", "d4096"]),
                                     (2, "float64", ["d4096"]), (1, "float32", ["a", "d"])]
    args = peers.parse_args(["--threads", "1,2", "--workloads", "c", "--dtypes", "float64"])
    assert peers.plan_runs(args) == [(1, "float64", ["c"]), (2, "float64", ["c"])]


def test_thread_env_unsets_openblas_env_and_pins_in_the_child_only(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    allowed = peers.allowed_cpus()
    core = allowed[-1] if allowed else None
    env = peers.thread_env(1, "/nonexistent", core=core)
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["OMP_NUM_THREADS"] == "1" and env["SYMGRAD_CACHE_DIR"] == "/nonexistent"
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"     # the parent's is untouched
    if allowed:
        assert env[peers.PIN_ENV] == str(core)
        assert peers.pin_cpus(len(allowed) + 1, core) is None
    kept = peers.thread_env(1, "/nonexistent", core=core, keep_openblas=True)
    assert kept["OPENBLAS_CORETYPE"] == "Haswell" and kept["OPENBLAS_L2_SIZE"] == "1048576"


def test_blas_info_degrades_without_threadpoolctl(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)    # import fails
    blas, note = peers.blas_info()
    assert blas == [] and "threadpoolctl not installed" in note
    meta = peers.openblas_meta(False, [{"openblas_env": {}, "blas": blas, "blas_note": note}])
    assert meta["kernel"] is None
    assert meta["note"].startswith("OpenBLAS: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in "
                                   "the benchmark's children; kernel: unknown (threadpoolctl")
    assert peers.blas_text({"blas": blas}, meta) == "unknown"
    assert peers._package_of("/v/lib/python3.11/site-packages/numpy.libs/"
                             "libscipy_openblas64_-32a4b2a6.so") == "numpy"


def test_targets_say_which_peer_is_missing():
    def impls(**ratios):
        out = {"symgrad": {"status": "ok", "us_per_step": 10.0, "ratio": 1.0}}
        for peer, ratio in ratios.items():
            out[peer] = ({"status": ratio} if isinstance(ratio, str)
                         else {"status": "ok", "ratio": ratio})
        return {"impls": out}
    run = {"threads": 1, "dtype": "float64", "cpus": [1],
           "workloads": {"a": impls(pytorch=50.0, jax="not installed", numpy=3.0),
                         "d4096": {"impls": {"symgrad": {"status": "ok", "us_per_step": 9.0}}}}}
    two = {"threads": 2, "dtype": "float64", "cpus": [0, 1],
           "workloads": {"d4096": {"impls": {"symgrad": {"status": "ok", "us_per_step": 5.0}}}}}
    result = {"meta": {"fastmath": False}, "compile": {}, "memory": None, "runs": [run, two]}
    rows = {t["target"]: t for t in peers.targets(result)}
    a = "default mode, float64, 1 CPU"
    assert rows[f"(a) >= 2.5x faster than JAX jit, {a}"]["verdict"] == "n/a (jax not installed)"
    assert rows[f"(a) >= 40x faster than PyTorch eager, {a}"]["verdict"] == "met"
    assert rows[f"(a) >= 40x faster than PyTorch eager, {a}"]["measured"] == 50.0
    d4096 = rows["(d4096) symgrad 2 threads >= 1.7x faster than 1 thread, float64"]
    assert d4096["verdict"] == "met" and abs(d4096["measured"] - 1.8) < 1e-12
    assert d4096["measured_cpu"] is None
    assert rows["(d) >= 1.2x faster than JAX jit, float32, 1 pinned CPU"]["verdict"] == (
        "n/a ((d) float32 at 1 thread not run)")
    result["meta"]["fastmath"] = True
    rows = {t["target"]: t for t in peers.targets(result)}
    assert rows[f"(a) >= 40x faster than PyTorch eager, {a}"]["verdict"].startswith(
        "n/a (ran with --fastmath")


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
    f32 = peer_impls.arrays_to_hold(peer_impls.spec("c", dtype="float32"))
    assert f32["gradient"] == 4 * n_params


def test_float32_specs_cast_floats_not_labels():
    s = peer_impls.spec("d", quick=True, dtype="float32")
    data = peer_impls.make_data(s)
    assert data["X"].dtype == np.float32 and data["Y"].dtype.kind == "i"
    init = peer_impls.make_init(s, peer_impls.build_net(s))
    assert all(np.asarray(v).dtype == np.float32 for v in init.values())
    assert all(W.dtype == np.float32 for W, _ in peer_impls.layer_params(s, init))
    with pytest.raises(ValueError):
        peer_impls.spec("d", dtype="float16")
