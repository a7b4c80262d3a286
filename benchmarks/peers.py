"""Benchmark: symgrad's training loops against PyTorch eager, JAX and hand-written NumPy.

    python benchmarks/peers.py [--threads 1,2] [--workloads a,b,c,d,d4096]
                               [--dtypes float64,float32] [--json out.json]
    python benchmarks/peers.py --quick            # tiny sizes, a CI smoke run

Workloads (benchmarks/peer_impls.py): (a) the cubic fit by gradient descent,
(b) Linear(3,1) + Flatten with RMSprop, (c) the 1000-100-10 ReLU net with SGD,
(d) a 784-256-256-10 tanh MLP with softmax cross-entropy and SGD, and (d4096),
(d) at batch 4096, run at 1 and 2 threads (float64). Each thread count and dtype
runs in its own child process, pinned to as many CPUs as it has threads and with
the thread variables set before numpy, numba, torch or jax are imported; the
children run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (which force an
OpenBLAS kernel) unless --keep-openblas-env. Compile children start from a fresh
kernel cache, so that symgrad's compile is cold; a second child then compiles
again from Numba's cache (warm), and a third measures peak memory of training
(c). Peers that are not installed are skipped with a note. The table goes to
stdout, progress to stderr; the targets block comes last.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PIN_ENV = "SYMGRAD_PEERS_CPUS"      # set by the parent in a child's environment only


def _pin_from_env() -> None:
    """In a child: pin this process (and the threads it starts later) to its CPUs,
    before numpy, numba, torch or jax is imported and sizes its thread pools."""
    cpus = os.environ.get(PIN_ENV)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


_pin_from_env()

import numpy as np  # noqa: E402 -- after the pinning

from benchmarks import peer_impls  # noqa: E402

PEERS = ("pytorch", "jax", "numpy")
# Variables that force OpenBLAS's kernel choice (CORETYPE) or its blocking (L2_SIZE);
# some machines set them for everything: the benchmark's children run without them.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MULTI_THREAD_WORKLOADS = {"d4096": (1, 2)}    # always run at these thread counts too
FLOAT64_ONLY = {"d4096"}
COMPILE_SAME_AS = {"d4096": "d"}             # the same model, so the same kernel
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
CHILD_TIMEOUT_S = 3600
AGREE_RTOL = {"float64": 1e-9, "float32": 1e-4}    # per-step losses "agree", relative

NOTES = [
    ("us/step: wall-clock time of the whole training loop divided by its steps, median over "
     "the repeats (contenders interleaved within each repeat); cpu us/step: the same "
     "contender's loop in CPU time of the process (all its threads), measured around that "
     "loop alone. On one pinned CPU it cannot exceed us/step; well below us/step, another "
     "process took the CPU. Each contender ran once before timing (JIT compiles, caches)."),
    ("dtype f32: params, data and each contender's arithmetic in float32 (symgrad: "
     "compile(..., dtype='float32'), SGEMM with float64 sums inside its fused loops); "
     "agree to then means agreement to 1e-4 relative. Scalar models (a) have no float32 "
     "kernel. (d4096) runs in float64 only."),
    "peer/symgrad: the peer's us/step over symgrad's; above 1 means symgrad is faster.",
    ("compile: float64 only; (d4096) is the model of (d), so the same kernel, and has no "
     "compile row."),
    ("final loss: the loss of the last step, before its update (Kernel.train's history[-1]); "
     "rel diff: |peer - symgrad| / |symgrad| of it, from the same initial params and data. "
     "agree to: in an extra untimed run recording every step's loss, the number of leading "
     "steps whose losses agree with symgrad's to 1e-9 relative (float64; all: every step); "
     "'!' marks a disagreement within the first tenth of the steps, i.e. a different "
     "computation. "
     "Later divergence is rounding amplified by the dynamics (RMSprop near its optimum "
     "moves each weight by about lr times the sign of its gradient)."),
    ("PyTorch eager: loss.backward() and torch.optim (SGD, RMSprop) each step. JAX: jax.jit "
     "of lax.fori_loop over value_and_grad and the update (hand-written, same formulas as "
     "torch). NumPy: hand-written gradients, in-place updates, BLAS for products."),
    ("compile: symgrad's model -> kernels in a child process with an empty kernel cache "
     "(cold) and again in a new process with the same cache (warm, Numba cache hit): "
     "derive + emit + import, then the JIT of loss, loss_and_grad and train (a 1-step call). "
     "cpu s: the same in CPU seconds of the process. "
     "model: building the SymPy model and lowering it, not part of the compile. warm hits: "
     "Numba cache hits / jitted functions called in the warm process (src diff!: the "
     "generated source changed between the two processes, so the warm run compiled anew)."),
    ("threads: OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS, torch.set_num_threads and XLA_FLAGS "
     "(xla_cpu_multi_thread_eigen, intra_op_parallelism_threads) set before any import, "
     "one child process per thread count and dtype, pinned with sched_setaffinity to as "
     "many CPUs as it has threads (1 thread: one CPU, --core), before numpy, torch or jax "
     "is imported, so that no contender (JAX's runtime threads) uses a second CPU."),
]


# ------------------------------------------------------------ child side


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


FASTMATH_ENV = "SYMGRAD_PEERS_FASTMATH"     # set by --fastmath; children inherit it


def compile_symgrad(s: dict) -> tuple[object, dict, dict, dict]:
    """(kernel, init, data, timings): build, compile and JIT every entry point used."""
    import symgrad
    from symgrad import optim

    start = time.perf_counter()
    model, net = peer_impls.build_model(s)
    model_s = time.perf_counter() - start
    init, data = peer_impls.make_init(s, net), peer_impls.make_data(s)
    cpu = time.process_time()
    start = time.perf_counter()
    kernel = symgrad.compile(model, fastmath=os.environ.get(FASTMATH_ENV) == "1",
                             dtype=s.get("dtype", "float64"))
    compile_s = time.perf_counter() - start
    jit = kernel.warmup()
    kernel.warmup_loss()
    train_jit = None
    if getattr(kernel.module, "train", None) is not None:
        start = time.perf_counter()
        optimizer = optim.SGD(lr=0.0) if s["optimizer"] == "sgd" else optim.RMSprop(lr=0.0)
        kernel.train(init, data, optimizer, 1)
        train_jit = time.perf_counter() - start
    cpu_until = time.process_time()
    timings = {"model_s": model_s, "derive_s": kernel.timings["derive"],
               "emit_s": kernel.timings["emit"],
               "import_s": compile_s - kernel.timings["derive"] - kernel.timings["emit"],
               "jit_loss_s": kernel.timings["jit_loss"],
               "jit_loss_and_grad_s": jit["jit_loss_and_grad"],
               "jit_train_s": train_jit}
    timings["total_s"] = sum(v for k, v in timings.items() if k != "model_s" and v)
    timings["total_cpu_s"] = cpu_until - cpu     # steadier than wall-clock on a loaded machine
    timings["source_lines"] = len(kernel.source.splitlines())
    timings["module"] = kernel.module.__name__
    timings["numba_cache"] = _cache_stats(kernel.module)
    return kernel, init, data, timings


def _cache_stats(module) -> dict[str, int]:
    """Numba cache hits and misses over the module's jitted functions (a miss compiles)."""
    hits = misses = 0
    for value in vars(module).values():
        stats = getattr(value, "stats", None)
        if hasattr(stats, "cache_hits"):
            hits += sum(stats.cache_hits.values())
            misses += sum(stats.cache_misses.values())
    return {"hits": hits, "misses": misses}


def _time_runs(runners: dict, steps: int, repeats: int) -> dict:
    """Interleaved repeats of every runner; {name: {runs_s, cpu_s, final_loss}}."""
    out = {name: {"runs_s": [], "cpu_s": [], "final_loss": None} for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            gc.collect()
            start, cpu = time.perf_counter(), time.process_time()
            loss = run()
            out[name]["runs_s"].append(time.perf_counter() - start)
            out[name]["cpu_s"].append(time.process_time() - cpu)
            out[name]["final_loss"] = loss
    for rec in out.values():
        rec["us_per_step"] = statistics.median(rec["runs_s"]) / steps * 1e6
        rec["cpu_us_per_step"] = statistics.median(rec["cpu_s"]) / steps * 1e6
    return out


def _peer_status(peer: str) -> str | None:
    """None when the peer can run here, else why not."""
    module = peer_impls.PEER_MODULES[peer]
    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:
        imported = __import__(module)
    except Exception as exc:  # noqa: BLE001 -- a broken install: report it, go on
        return f"import failed: {type(exc).__name__}: {exc}"[:200]
    if peer == "pytorch":
        threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
        imported.set_num_threads(threads)
        try:
            imported.set_num_interop_threads(1)
        except RuntimeError:
            pass
    return None


def child_measure(job: dict) -> dict:
    """Every contender's training at one thread count and dtype; symgrad's float64
    kernels load from the (warm) kernel cache, float32 ones compile here."""
    from symgrad.errors import OptionError

    dtype = job.get("dtype", "float64")
    specs = {k: peer_impls.spec(k, job["quick"], dtype) for k in job["workloads"]}
    workloads, kernels = {}, {}
    for key, s in specs.items():
        workloads[key] = {"spec": s, "impls": {}}
        try:
            kernel, init, data, _ = compile_symgrad(s)
        except OptionError as exc:      # e.g. float32 for a scalar model: no row to compare
            workloads[key]["impls"]["symgrad"] = {"status": f"n/a: {exc}"[:300]}
            continue
        kernels[key] = (kernel, init, data)
    status = {peer: _peer_status(peer) for peer in job["peers"]}
    for key, s in specs.items():
        if key not in kernels:
            for peer in job["peers"]:
                workloads[key]["impls"][peer] = {"status": "skipped (no symgrad kernel)"}
            continue
        kernel, init, data = kernels[key]
        runners, impls = {}, workloads[key]["impls"]
        run, how = peer_impls.symgrad_trainer(kernel, s, init, data)
        runners["symgrad"] = run
        impls["symgrad"] = {"status": "ok", "note": how}
        for peer in job["peers"]:
            if status[peer] is not None:
                impls[peer] = {"status": status[peer]}
                continue
            try:
                runners[peer] = peer_impls.TRAINERS[peer](s, init, data)
                impls[peer] = {"status": "ok"}
            except Exception as exc:  # noqa: BLE001 -- a peer's failure is a row, not a crash
                impls[peer] = {"status": f"failed: {type(exc).__name__}: {exc}"[:300]}
        if s["kind"] == "mlp" and len(s["widths"]) > 2:
            runners[peer_impls.FLOOR] = peer_impls.gemm_floor(s, init, data)
            impls[peer_impls.FLOOR] = {"status": "ok"}
        for name, run in list(runners.items()):
            start = time.perf_counter()
            try:
                run()
            except Exception as exc:
                if name == "symgrad":
                    raise
                impls[name] = {"status": f"failed: {type(exc).__name__}: {exc}"[:300]}
                del runners[name]
                continue
            impls[name]["first_call_s"] = time.perf_counter() - start
        for name, rec in _time_runs(runners, s["steps"], job["repeats"]).items():
            impls[name].update(rec)
        histories = {name: np.asarray(run(record=True), dtype=float)
                     for name, run in runners.items()}
        ref = impls["symgrad"]
        for name, rec in impls.items():
            if name == peer_impls.FLOOR and rec.get("us_per_step") is not None:
                rec["ratio"] = rec["us_per_step"] / ref["us_per_step"]
            elif rec.get("us_per_step") is not None:
                rec["ratio"] = rec["us_per_step"] / ref["us_per_step"]
                rec["rel_loss_diff"] = (abs(rec["final_loss"] - ref["final_loss"])
                                        / max(abs(ref["final_loss"]), 1e-300))
                rec.update(_agreement(histories[name], histories["symgrad"],
                                      AGREE_RTOL[dtype]))
    blas, blas_note = blas_info()
    return {"workloads": workloads, "versions": _versions(job["peers"], status),
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None,
            "openblas_env": {var: os.environ.get(var) for var in OPENBLAS_ENV},
            "blas": blas, "blas_note": blas_note}


def blas_info() -> tuple[list[dict], str | None]:
    """([{lib, internal_api, version, architecture, num_threads, filepath}], note): the
    BLAS libraries loaded in this process (numpy's, scipy's, ...), from threadpoolctl,
    with the kernel OpenBLAS chose for this CPU ('architecture'); note says why the
    list is empty when threadpoolctl is missing."""
    try:
        import threadpoolctl
    except ImportError:
        return [], "threadpoolctl not installed: BLAS kernel unknown (pip install threadpoolctl)"
    try:
        import scipy.linalg  # noqa: F401 -- loads scipy's own OpenBLAS, so it is listed
    except ImportError:
        pass
    out = []
    for entry in threadpoolctl.threadpool_info():
        if entry.get("user_api") != "blas":
            continue
        out.append({"lib": _package_of(entry.get("filepath", "")),
                    "internal_api": entry.get("internal_api"),
                    "version": entry.get("version"),
                    "architecture": entry.get("architecture"),
                    "num_threads": entry.get("num_threads"),
                    "filepath": entry.get("filepath")})
    out.sort(key=lambda e: ({"numpy": 0, "scipy": 1}.get(e["lib"], 2), e["lib"]))
    return out, None if out else "threadpoolctl found no BLAS library"


def _package_of(path: str) -> str:
    """'numpy' for .../site-packages/numpy.libs/libscipy_openblas64_.so, and so on."""
    parts = Path(path).parts
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            return parts[i + 1].split(".")[0]
    return Path(path).name or "?"


def _agreement(history, reference, rtol: float = AGREE_RTOL["float64"]) -> dict:
    """How far two per-step loss histories agree (see AGREE_RTOL)."""
    if history.shape != reference.shape:
        return {"agree_steps": 0, "max_rel_diff_history": None}
    rel = np.abs(history - reference) / np.maximum(np.abs(reference), 1e-300)
    bad = np.flatnonzero(~(rel <= rtol))
    return {"agree_steps": int(bad[0]) if bad.size else int(rel.size),
            "max_rel_diff_history": float(rel.max()) if rel.size else 0.0}


def child_compile(job: dict) -> dict:
    """One workload's compile in this fresh process: cold or warm, as the cache is."""
    return compile_symgrad(peer_impls.spec(job["workload"], job["quick"]))[3]


def child_memory(job: dict) -> dict:
    """Peak RSS of training (c) above the RSS before its params and data exist (second run).

    Runs with MALLOC_MMAP_THRESHOLD_ fixed at 64 KiB, so large arrays are mapped
    on allocation and unmapped on free, and resident memory follows live arrays;
    the peak is VmHWM after resetting it through /proc/self/clear_refs. Numba's
    arrays come from malloc too (tracemalloc would miss them).
    """
    s = peer_impls.spec(job["memory_workload"], job["quick"])
    kernel, init, data, _ = compile_symgrad(s)
    contenders = {"symgrad": lambda i, d: peer_impls.symgrad_trainer(kernel, s, i, d)[0],
                  "numpy": lambda i, d: peer_impls.numpy_trainer(s, i, d)}
    del init, data
    must = peer_impls.arrays_to_hold(s)
    out = {"workload": s["key"], "method": "VmHWM - VmRSS (KiB), MALLOC_MMAP_THRESHOLD_=65536",
           "arrays_to_hold_bytes": must, "impls": {}}
    net = peer_impls.build_net(s)
    for name, make in contenders.items():
        for measured in (False, True):  # a first run sets up BLAS buffers and caches
            gc.collect()
            before = _rss_kib("VmRSS")
            init, data = peer_impls.make_init(s, net), peer_impls.make_data(s)
            trainer = make(init, data)
            if not _reset_peak_rss():
                return {**out, "status": "cannot reset the peak RSS (/proc/self/clear_refs)"}
            trainer()
            peak = _rss_kib("VmHWM")
            del init, data, trainer
        out["impls"][name] = {"peak_bytes": (peak - before) * 1024,
                              "ratio": (peak - before) * 1024 / sum(must.values())}
    out["status"] = "ok"
    return out


def _versions(peers, status) -> dict:
    import numba
    import numpy
    import sympy

    import symgrad

    out = {"python": platform.python_version(), "numpy": numpy.__version__,
           "numba": numba.__version__, "sympy": sympy.__version__,
           "symgrad": symgrad.__version__}
    for peer in peers:
        if status.get(peer) is None:
            out[peer] = sys.modules[peer_impls.PEER_MODULES[peer]].__version__
    return out


CHILDREN = {"measure": child_measure, "compile": child_compile, "memory": child_memory}


def child_main(job: dict) -> int:
    # The result goes to the real stdout; anything printed on the way (Numba, JAX) to stderr.
    result_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    result = CHILDREN[job["mode"]](job)
    result_out.write(json.dumps(result) + "\n")
    result_out.flush()
    return 0


# ------------------------------------------------------------ parent side


def allowed_cpus() -> list[int] | None:
    """The CPUs this process may run on; None where the OS cannot pin (not Linux)."""
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def pin_cpus(threads: int, core: int | None) -> list[int] | None:
    """The CPUs a child with `threads` threads is pinned to: `core` and, past one
    thread, the lowest other allowed CPUs; None (not pinned) without affinity
    support or with fewer allowed CPUs than threads."""
    allowed = allowed_cpus()
    if allowed is None or core is None or threads > len(allowed):
        return None
    return sorted([core, *[c for c in allowed if c != core][:threads - 1]])


def thread_env(threads: int, cache_dir: str, extra: dict | None = None, *,
               core: int | None = None, keep_openblas: bool = False) -> dict:
    """A child's environment: its thread counts, its CPUs (PIN_ENV, applied by the
    child before any numeric import) and, unless keep_openblas, no OPENBLAS_ENV.
    The parent's own environment is left as it is."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'}"
                        f" intra_op_parallelism_threads={threads}")
    env["JAX_PLATFORMS"] = "cpu"
    env["SYMGRAD_CACHE_DIR"] = cache_dir
    env.pop("NUMBA_CACHE_DIR", None)    # Numba's cache then lives beside the kernel module
    if not keep_openblas:
        for var in OPENBLAS_ENV:
            env.pop(var, None)
    env.pop(PIN_ENV, None)
    cpus = pin_cpus(threads, core)
    if cpus is not None:
        env[PIN_ENV] = ",".join(str(c) for c in cpus)
    env.update(extra or {})
    return env


def run_child(job: dict, env: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                           json.dumps(job)], env=env, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"child {job['mode']} failed (exit {proc.returncode}):\n{tail}")
    log(f"  ({job['mode']} child: {time.perf_counter() - start:.1f} s)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan_runs(args) -> list[tuple[int, str, list[str]]]:
    """(threads, dtype, workloads) of each measuring child, in order: every workload
    at --threads, (d4096) also at 1 and 2 threads; float32 without FLOAT64_ONLY."""
    plan = []
    for dtype in args.dtypes:
        counts = set(args.threads)
        for key in args.workloads:
            counts |= set(MULTI_THREAD_WORKLOADS.get(key, ()))
        for threads in sorted(counts):
            keys = [k for k in args.workloads
                    if (threads in args.threads or threads in MULTI_THREAD_WORKLOADS.get(k, ()))
                    and (dtype == "float64" or k not in FLOAT64_ONLY)]
            if keys:
                plan.append((threads, dtype, keys))
    return plan


def run_benchmark(args) -> dict:
    load_start = os.getloadavg()
    started = time.time()
    job = {"quick": args.quick, "workloads": args.workloads, "peers": args.peers,
           "repeats": args.repeats}
    first = args.threads[0]
    cache = tempfile.mkdtemp(prefix="symgrad-peers-")
    compiles, runs, memory = {}, [], None

    def env(threads, extra=None):
        return thread_env(threads, cache, extra, core=args.core,
                          keep_openblas=args.keep_openblas_env)
    try:
        for key in args.workloads:
            if key in COMPILE_SAME_AS:
                continue
            log(f"[compile {key}] cold, then warm, one new process each ...")
            compile_job = {**job, "mode": "compile", "workload": key}
            compiles[key] = {"cold": run_child(compile_job, env(first)),
                             "warm": run_child(compile_job, env(first))}
        for threads, dtype, keys in plan_runs(args):
            log(f"[threads {threads}, {dtype}] training {','.join(keys)} ...")
            measure_job = {**job, "mode": "measure", "workloads": keys, "dtype": dtype}
            runs.append({"threads": threads, "dtype": dtype,
                         **run_child(measure_job, env(threads))})
        if args.memory in args.workloads:
            log(f"[threads {first}] peak memory of training ({args.memory}) ...")
            memory = run_child({**job, "mode": "memory", "memory_workload": args.memory},
                               env(first, {"MALLOC_MMAP_THRESHOLD_": "65536"}))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    versions = dict(runs[0]["versions"]) if runs else {}
    if runs:
        versions["blas"] = [{k: e[k] for k in ("lib", "internal_api", "version", "architecture",
                                               "num_threads")} for e in runs[0]["blas"]]
    meta = {"quick": args.quick, "threads": args.threads, "dtypes": args.dtypes,
            "repeats": args.repeats, "fastmath": bool(args.fastmath),
            "workloads": args.workloads, "peers": args.peers, "cpus": os.cpu_count(),
            "allowed_cpus": allowed_cpus(), "core": args.core,
            "pinned": {str(r["threads"]): r.get("cpus") for r in runs},
            "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
            "wall_s": time.time() - started, "machine": platform.machine(),
            "versions": versions, "openblas": openblas_meta(args.keep_openblas_env, runs),
            "notes": NOTES}
    result = {"meta": meta, "compile": compiles, "runs": runs, "memory": memory}
    result["targets"] = targets(result)
    return result


def openblas_meta(keep: bool, runs: list[dict]) -> dict:
    """What the children's OpenBLAS environment was, the kernel it chose, and the note."""
    parent = {var: os.environ[var] for var in OPENBLAS_ENV if var in os.environ}
    first = runs[0] if runs else {}
    children = {k: v for k, v in first.get("openblas_env", {}).items() if v is not None}
    chosen = {e["lib"]: e["architecture"] for e in first.get("blas", [])
              if e["internal_api"] == "openblas"}
    if not first:
        kernel = None
    elif not first.get("blas"):
        kernel = None
    elif not chosen:
        kernel = "no OpenBLAS loaded"
    elif len(set(chosen.values())) == 1:
        kernel = next(iter(chosen.values()))
    else:
        kernel = ", ".join(f"{arch} ({lib})" for lib, arch in chosen.items())
    shown = kernel or f"unknown ({first.get('blas_note') or 'no training run'})"
    if not keep:
        note = "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the benchmark's children"
        tail = (f" (this shell sets {', '.join(f'{k}={v}' for k, v in parent.items())}; "
                "--keep-openblas-env keeps them)" if parent else "")
    else:
        note = (", ".join(f"{k}={v}" for k, v in children.items()) + " kept in the "
                "benchmark's children (--keep-openblas-env)" if children else
                "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE not set, none to keep "
                "(--keep-openblas-env)")
        tail = ""
    return {"kept": keep, "parent_env": parent, "children_env": children, "kernel": kernel,
            "note": f"OpenBLAS: {note}; kernel: {shown}{tail}"}


# ------------------------------------------------------------ targets and table


def _run(result: dict, threads: int, dtype: str, key: str) -> dict | None:
    return next((r for r in result["runs"] if r["threads"] == threads
                 and r.get("dtype", "float64") == dtype and key in r["workloads"]), None)


def _speedup(result: dict, key: str, peer: str, dtype: str = "float64",
             threads: int = 1, over: str = "symgrad") -> tuple[float | None, str | None]:
    """(peer's us/step over symgrad's (or `over`'s), None), or (None, why there is none)."""
    run = _run(result, threads, dtype, key)
    if run is None:
        return None, f"({key}) {dtype} at {threads} thread{'s' * (threads > 1)} not run"
    impls = run["workloads"][key]["impls"]
    mine = impls.get(over, {})
    if mine.get("status") != "ok":
        return None, f"{over} {mine.get('status', 'not run')}"[:60]
    name = peer_impls.PEER_MODULES[peer]
    rec = impls.get(peer)
    if rec is None:
        return None, f"{name} not run"
    if rec.get("ratio") is None:
        return None, f"{name} {rec['status']}"[:60]
    if over == "symgrad":
        return rec["ratio"], None
    return rec["us_per_step"] / mine["us_per_step"], None


def _cpu_speedup(result: dict, key: str, peer: str, dtype: str = "float64",
                 threads: int = 1) -> float | None:
    """The same ratio in CPU time (steadier than wall-clock when others share the CPU)."""
    run = _run(result, threads, dtype, key)
    if run is None:
        return None
    impls = run["workloads"][key]["impls"]
    mine, rec = impls.get("symgrad", {}), impls.get(peer, {})
    if not mine.get("cpu_us_per_step") or rec.get("cpu_us_per_step") is None:
        return None
    return rec["cpu_us_per_step"] / mine["cpu_us_per_step"]


def targets(result: dict) -> list[dict]:
    """The goals, each with its measured value and verdict (met, missed or n/a (why))."""
    if not result["runs"]:
        return []
    meta = result["meta"]
    fastmath = meta.get("fastmath")
    rows = []

    def add(text, value, why, ok, unit="x", cpu=None, **extra):
        shown = "-" if value is None else f"{value:.3g}{unit}"
        verdict = f"n/a ({why})" if value is None else "met" if ok(value) else "missed"
        if value is None:
            cpu = None
        rows.append({"target": text, "measured": value, "shown": shown, "verdict": verdict,
                     "measured_cpu": cpu, "shown_cpu": "-" if cpu is None else f"{cpu:.3g}x",
                     **extra})

    def pinned(threads, dtype, key):
        run = _run(result, threads, dtype, key)
        return None if run is None else run.get("cpus")

    label = {"pytorch": "PyTorch eager", "jax": "JAX jit", "numpy": "NumPy by hand"}
    suffix = ", fastmath" if fastmath else ""
    for dtype in ("float64", "float32"):
        for peer in ("jax", "numpy"):
            value, why = _speedup(result, "d", peer, dtype)
            add(f"(d) >= 1.2x faster than {label[peer]}, {dtype}, 1 pinned CPU{suffix}",
                value, why, lambda v: v >= 1.2, threshold=1.2,
                cpu=_cpu_speedup(result, "d", peer, dtype), cpus=pinned(1, dtype, "d"),
                floor=_speedup(result, "d", peer, dtype, over=peer_impls.FLOOR)[0])
    for key in ("a", "b"):
        for peer, goal in (("jax", 2.5), ("pytorch", 40)):
            value, why = _speedup(result, key, peer)
            if fastmath:
                value, why = None, "ran with --fastmath; the target is for the default mode"
            add(f"({key}) >= {goal:g}x faster than {label[peer]}, default mode, float64, "
                "1 CPU", value, why, lambda v, goal=goal: v >= goal, threshold=goal,
                cpu=_cpu_speedup(result, key, peer), cpus=pinned(1, "float64", key))
    value, why = _speedup(result, "c", "jax")
    add(f"(c) >= 1.2x faster than JAX jit, float64, 1 CPU{suffix}", value, why,
        lambda v: v >= 1.2, threshold=1.2, cpu=_cpu_speedup(result, "c", "jax"),
        cpus=pinned(1, "float64", "c"))
    one, two = _run(result, 1, "float64", "d4096"), _run(result, 2, "float64", "d4096")
    value, why = None, "(d4096) at 1 and 2 threads not run"
    if one and two:
        us = [r["workloads"]["d4096"]["impls"]["symgrad"].get("us_per_step") for r in (one, two)]
        if None in us:
            why = "symgrad (d4096) failed"
        else:
            value, why = us[0] / us[1], None
    add(f"(d4096) symgrad 2 threads >= 1.7x faster than 1 thread, float64{suffix}", value,
        why, lambda v: v >= 1.7, threshold=1.7,
        cpus={"1": one and one.get("cpus"), "2": two and two.get("cpus")})
    if "c" in result["compile"]:
        c = result["compile"]["c"]
        add("(c) derive+emit+JIT cold < 5 s", c["cold"]["total_s"], None, lambda v: v < 5,
            " s", threshold=5)
        add("(c) derive+emit+JIT warm < 0.5 s", c["warm"]["total_s"], None,
            lambda v: v < 0.5, " s", threshold=0.5)
    memory = result.get("memory") or {}
    if memory.get("status") == "ok":
        add(f"({memory['workload']}) peak training memory <= 2x the arrays it must hold",
            memory["impls"]["symgrad"]["ratio"], None, lambda v: v <= 2, threshold=2)
    return rows


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.2e}"


DTYPE_LABELS = {"float64": "f64", "float32": "f32"}
TRAIN_COLUMNS = [("workload", 32), ("thr", 3), ("dtype", 5), ("contender", 13),
                 ("us/step", 9), ("cpu us/step", 11), ("peer/symgrad", 12), ("final loss", 12),
                 ("rel diff", 9), ("agree to", 9)]
COMPILE_COLUMNS = [("workload", 32), ("", 0), ("lines", 6), ("model s", 8), ("derive s", 8),
                   ("emit s", 7), ("import s", 8), ("jit s", 7), ("cold s", 7), ("cpu s", 6),
                   ("warm s", 7), ("cpu s", 6), ("warm hits", 9)]


def _row(cells, columns, left: int = 3) -> str:
    return " ".join(f"{c:<{w}}" if i < left else f"{c:>{w}}"
                    for i, (c, (_, w)) in enumerate(zip(cells, columns))).rstrip()


def _header(columns, left: int = 3) -> list[str]:
    line = _row([h for h, _ in columns], columns, left)
    return [line, "-" * len(line)]


def compile_lines(result: dict) -> list[str]:
    lines = _header(COMPILE_COLUMNS)
    for key, both in result["compile"].items():
        c, warm = both["cold"], both["warm"]
        jit = sum(c[k] or 0.0 for k in ("jit_loss_s", "jit_loss_and_grad_s", "jit_train_s"))
        cache = warm["numba_cache"]
        hits = f"{cache['hits']}/{cache['hits'] + cache['misses']}"
        if warm["module"] != c["module"]:
            hits = "src diff!"
        lines.append(_row([peer_impls.WORKLOADS[key][0], "", str(c["source_lines"]),
                           _fmt(c["model_s"]), _fmt(c["derive_s"]), _fmt(c["emit_s"]),
                           _fmt(c["import_s"]), _fmt(jit), _fmt(c["total_s"]),
                           _fmt(c["total_cpu_s"]), _fmt(warm["total_s"]),
                           _fmt(warm["total_cpu_s"]), hits], COMPILE_COLUMNS))
    return lines


def memory_lines(memory: dict | None) -> list[str]:
    if not memory:
        return []
    if memory["status"] != "ok":
        return [f"memory: {memory['status']}", ""]
    must = memory["arrays_to_hold_bytes"]
    parts = ", ".join(f"{k} {v / 1024:.0f}" for k, v in must.items() if v)
    lines = [f"peak memory of training ({memory['workload']}), {memory['method']}:",
             f"  arrays it must hold: {sum(must.values()) / 1024:.0f} KiB ({parts})"]
    for name, rec in memory["impls"].items():
        lines.append(f"  {peer_impls.PEER_LABELS[name]}: peak {rec['peak_bytes'] / 1024:.0f}"
                     f" KiB = {rec['ratio']:.2f}x")
    return lines + [""]


def blas_text(versions: dict, openblas: dict) -> str:
    """'numpy openblas 0.3.31 SkylakeX 1 thread, scipy ...' or why unknown."""
    blas = versions.get("blas")
    if not blas:
        return f"unknown ({openblas.get('note', '')})" if blas is None else "unknown"
    return ", ".join(f"{e['lib']} {e['internal_api']} {e['version']} "
                     f"{e['architecture'] or '-'} {e['num_threads']} "
                     f"thread{'s' * (e['num_threads'] != 1)}" for e in blas)


def pinning_text(result: dict) -> str:
    seen = {}
    for run in result["runs"]:
        seen.setdefault(run["threads"], run.get("cpus"))
    parts = [f"{t} thread{'s' * (t > 1)} on CPU{'s' * (len(c or []) > 1)} "
             f"{','.join(map(str, c))}" if c else f"{t} threads not pinned"
             for t, c in sorted(seen.items())]
    return "; ".join(parts)


def table(result: dict) -> str:
    meta = result["meta"]
    quick = " (QUICK: tiny sizes)" if meta["quick"] else ""
    dtypes = " and ".join(meta.get("dtypes", ["float64"]))
    title = (f"symgrad vs peers: training loops, {dtypes}, median of {meta['repeats']} repeats"
             + ("; symgrad with fastmath=True" if meta.get("fastmath") else ""))
    lines = [title + quick, ""]
    lines += _header(TRAIN_COLUMNS, 4)
    notes: list[str] = []
    for run in result["runs"]:
        dtype = DTYPE_LABELS[run.get("dtype", "float64")]
        for w in run["workloads"].values():
            first = True
            for name in ("symgrad", *meta["peers"], peer_impls.FLOOR):
                rec = w["impls"].get(name)
                if rec is None:
                    continue
                label = peer_impls.PEER_LABELS[name]
                head = [w["spec"]["title"], str(run["threads"]), dtype] if first else [""] * 3
                head.append(label)
                first = False
                if rec["status"] != "ok":
                    lines.append(_row(head + [textwrap.shorten(rec["status"], 60,
                                                               placeholder=" ...")],
                                      TRAIN_COLUMNS, 4))
                    if len(rec["status"]) > 60:
                        notes.append(f"{w['spec']['title']}, {dtype}, {label}: {rec['status']}")
                    if name == "symgrad":      # nothing to compare the peers with
                        break
                    continue
                if name == peer_impls.FLOOR:
                    lines.append(_row(head + [_fmt(rec["us_per_step"]),
                                              _fmt(rec["cpu_us_per_step"]),
                                              f"{rec['ratio']:.2f}", "-", "-", "-"],
                                      TRAIN_COLUMNS, 4))
                    continue
                steps, agree = w["spec"]["steps"], rec["agree_steps"]
                agree_text = "all" if agree == steps else f"{agree}" + (
                    "!" if agree < steps / 10 else "")
                lines.append(_row(head + [_fmt(rec["us_per_step"]), _fmt(rec["cpu_us_per_step"]),
                                          "1" if name == "symgrad" else f"{rec['ratio']:.2f}",
                                          f"{rec['final_loss']:.6g}",
                                          "ref" if name == "symgrad" else
                                          f"{rec['rel_loss_diff']:.1e}",
                                          "ref" if name == "symgrad" else agree_text],
                                  TRAIN_COLUMNS, 4))
                if name == "symgrad" and rec.get("note", "kernel.train") != "kernel.train":
                    notes.append(f"{w['spec']['title']}: symgrad timed as a {rec['note']}")
        lines.append("")
    lines += compile_lines(result) + [""] + memory_lines(result.get("memory"))
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if k != "blas")
    openblas = meta.get("openblas", {})
    lines.append(f"versions: {versions}; BLAS: {blas_text(meta['versions'], openblas)}")
    lines.append(f"machine: {meta['cpus']} CPUs, shared; 1-minute load average "
                 f"{meta['load_average_start'][0]:.2f} at the start, "
                 f"{meta['load_average_end'][0]:.2f} at the end; {meta['wall_s']:.0f} s in all; "
                 f"pinned: {pinning_text(result)}")
    for note in [openblas.get("note")] + notes + meta["notes"]:
        if note:
            lines += textwrap.wrap(note, width=100, initial_indent="note: ",
                                   subsequent_indent="  ")
    if result["targets"]:
        lines += ["", "targets (verdicts on wall-clock ratios; cpu: the ratio in CPU time, "
                  "steadier when other processes share the CPU):"]
        for t in result["targets"]:
            cpu = "" if t.get("measured_cpu") is None else f"cpu {t['shown_cpu']}"
            floor = "" if t.get("floor") is None else \
                f" (GEMMs alone: {t['floor']:.3g}x, the most a faster rest can give)"
            lines.append(f"  {t['target']:<72} {t['shown']:>8} {cpu:>11}  {t['verdict']}"
                         + floor)
    return "\n".join(lines)


# ------------------------------------------------------------ command line


def _list(choices):
    def parse(text: str) -> list[str]:
        items = [] if text.strip() in ("", "none") else [t.strip() for t in text.split(",")]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {list(choices)}")
        return items
    return parse


def _threads(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"threads must be integers like 1,2, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("threads must be >= 1")
    return values


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and steps (CI)")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="thread counts, one child process each (default 1,2; quick: 1); "
                             "(d4096) runs at 1 and 2 threads in any case")
    parser.add_argument("--workloads", type=_list(tuple(peer_impls.WORKLOADS)),
                        default=list(peer_impls.WORKLOADS))
    parser.add_argument("--dtypes", type=_list(peer_impls.DTYPES),
                        default=list(peer_impls.DTYPES),
                        help="float64,float32 (default both); one child process each")
    parser.add_argument("--peers", type=_list(PEERS), default=list(PEERS),
                        help="comma-separated peers or 'none'")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats of each training loop (default 5; quick: 2)")
    parser.add_argument("--memory", default="c", choices=("b", "c", "d", "none"),
                        help="workload whose peak training memory is measured")
    parser.add_argument("--fastmath", action="store_true",
                        help="compile symgrad's kernels with fastmath=True (reassociated sums)")
    parser.add_argument("--core", type=int, default=None,
                        help="the CPU one-thread children are pinned to (default: the last "
                             "one this process may use)")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the children "
                             "(by default they are unset there, so OpenBLAS picks its kernel)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--text", help="also write the table here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = [1] if args.quick else [1, 2]
    if not args.dtypes:
        parser.error("--dtypes needs float64, float32 or both")
    if args.fastmath:
        os.environ[FASTMATH_ENV] = "1"
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    allowed = allowed_cpus()
    if args.core is None:
        args.core = allowed[-1] if allowed else None
    elif allowed is not None and args.core not in allowed:
        parser.error(f"--core {args.core} is not one of the CPUs allowed here: {allowed}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        return child_main(json.loads(args.child))
    result = run_benchmark(args)
    text = table(result)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.text:
        Path(args.text).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
