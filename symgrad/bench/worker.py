"""One (model, method) measurement of the benchmark, run in a fresh process.

The parent (symbolic_vs_reverse.py) starts this script once per row and method,
so every Numba compile is cold and a derivation that explodes can be killed. It
reports each step as a JSON line on its standard output:

    {"kind": "start", "step": "derive", "value": allowance_s}
    {"kind": "done", "step": "derive", "value": {...measurements...}}
    {"kind": "error", "step": "derive", "value": "message"}

Methods: "reverse" (derive, compile, run) and "symbolic" (derive, compile, run,
trees, cse): `derive()` and the kernel `symgrad.compile` would build from it;
for the tree count and CSE the `sympy.diff` trees are made again, with SymPy's
cache cleared first (derive() keeps its trees to itself).

    python -m symgrad.bench.worker '{"spec": {...}, "method": "reverse", "budget": 60,
                                  "samples": 100000, "repeats": 5, "seed": 0}'
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Iterator

from sympy.core.cache import clear_cache

STEPS = {"reverse": ("derive", "compile", "run"),
         "symbolic": ("derive", "compile", "run", "trees", "cse")}


def kernel_of(model, derivation):
    """The Kernel `symgrad.compile(model, derivation.method)` builds for a scalar model,
    from a derivation made here (so that its time is measured alone)."""
    import codegen
    import symgrad
    from symgrad.options import CompileOptions

    start = time.perf_counter()
    source = codegen.generate(derivation, CompileOptions(method=derivation.method), model,
                              version=symgrad.__version__)
    timings = {"derive": derivation.seconds, "emit": time.perf_counter() - start}
    return symgrad.Kernel(source, derivation, timings)


def _warm_up() -> None:
    """Run every step once on a tiny model, so one-time costs (lazy imports, first
    calls) are not charged to the first measurement; then forget SymPy's cache."""
    import sympy as sp

    from symgrad.bench import models
    from symgrad import measure
    from symgrad.derivation import derive

    for model in (models.tanh_network(1, width=1, inputs=1), models.hinge_network(1, 1)):
        for method in ("reverse", "symbolic"):
            derive(model, method)
        sample, penalty = measure.direct_trees(model)
        measure.tree_ops(sample + penalty)
        measure.cse_ops(sample + penalty)
    sp.count_ops(sp.Symbol("x") + 1)
    clear_cache()


def steps(job: dict) -> Iterator[tuple[str, str, object]]:
    """The events of one job (see the module docstring).

    *_cpu_s entries are this process's CPU seconds, steadier than wall-clock on a
    shared machine.
    """
    from symgrad.bench import models
    from symgrad import measure
    from symgrad.derivation import derive

    _warm_up()
    model = models.build(job["spec"])
    budget, method = float(job["budget"]), job["method"]
    data = models.batch(model, int(job["samples"]), seed=int(job["seed"]))
    params = models.point(model, seed=int(job["seed"]) + 1)

    yield "start", "derive", budget
    clear_cache()
    cpu = time.process_time()
    derivation = derive(model, method)
    cpu = time.process_time() - cpu
    kernel = kernel_of(model, derivation)
    sizes = derivation.sizes()
    yield "done", "derive", {"seconds": derivation.seconds, "cpu_s": cpu,
                             "emit_s": kernel.timings["emit"], "params": len(model.params),
                             "forward_ops": sizes["forward_ops"], "dag_ops": sizes["total_ops"],
                             "source_lines": len(kernel.source.splitlines())}

    # Kernel.warmup() compiles the variants for small batches; the first call at
    # this batch size compiles the one it uses (the parallel one past 4096 samples).
    yield "start", "compile", budget
    start, cpu = time.perf_counter(), time.process_time()
    jit = kernel.warmup()
    first = time.perf_counter()
    kernel.loss_and_grad(params, data)
    yield "done", "compile", {"compile_s": time.perf_counter() - start,
                              "compile_cpu_s": time.process_time() - cpu, "jit_s": jit,
                              "first_call_s": time.perf_counter() - first}

    yield "start", "run", budget
    times, cpu_times = [], []
    for _ in range(int(job["repeats"])):
        start, cpu = time.perf_counter(), time.process_time()
        loss, grads = kernel.loss_and_grad(params, data)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
    yield "done", "run", {"kernel_s": statistics.median(times), "runs_s": times,
                          "kernel_cpu_s": statistics.median(cpu_times), "loss": loss,
                          "grads": [grads[p] for p in model.param_names]}

    if method != "symbolic":
        return
    # derive() keeps its sympy.diff trees to itself: make them again, cold.
    yield "start", "trees", budget
    clear_cache()
    start, cpu = time.perf_counter(), time.process_time()
    sample, penalty = measure.direct_trees(model)
    t_diff, cpu_diff = time.perf_counter() - start, time.process_time() - cpu
    yield "done", "trees", {"diff_s": t_diff, "diff_cpu_s": cpu_diff,
                            "tree_ops": measure.tree_ops(sample + penalty)}

    yield "start", "cse", max(budget - t_diff, 0.0)
    start, cpu = time.perf_counter(), time.process_time()
    ops = measure.cse_ops(sample + penalty)
    t_cse, cpu_cse = time.perf_counter() - start, time.process_time() - cpu
    yield "done", "cse", {"seconds": t_diff + t_cse, "cse_s": t_cse, "cse_ops": ops,
                          "cpu_s": cpu_diff + cpu_cse}


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    # Events go to the real stdout; anything else printed (Numba, warnings) to stderr.
    events = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    step = "setup"
    try:
        for kind, step, value in steps(job):
            events.write(json.dumps({"kind": kind, "step": step, "value": value}) + "\n")
            events.flush()
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"[:500]
        events.write(json.dumps({"kind": "error", "step": step, "value": message}) + "\n")
        events.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
