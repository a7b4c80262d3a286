"""One (model, method) measurement of the benchmark, run in a fresh process.

The parent (symbolic_vs_reverse.py) starts this script once per row and method,
so every Numba compile is cold and a derivation that explodes can be killed. It
reports each step as a JSON line on its standard output:

    {"kind": "start", "step": "derive", "value": allowance_s}
    {"kind": "done", "step": "derive", "value": {...measurements...}}
    {"kind": "error", "step": "derive", "value": "message"}

Methods: "reverse" (derive, compile, run) and "symbolic" (derive, tree_ops,
compile, run, cse): one `sympy.diff` serves the tree count, the kernel and CSE.

    python benchmarks/worker.py '{"spec": {...}, "method": "reverse", "budget": 60,
                                  "samples": 100000, "repeats": 5, "seed": 0}'
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STEPS = {"reverse": ("derive", "compile", "run"),
         "symbolic": ("derive", "tree_ops", "compile", "run", "cse")}


def kernel_of(model, derivation):
    """A Kernel of an existing derivation, built as symgrad.compile builds one."""
    import numba

    import symgrad
    from codegen.module import generate

    start = time.perf_counter()
    source = generate(derivation, version=symgrad.__version__,
                      numba_version=numba.__version__, model_name=model.name, target="cpu")
    timings = {"derive": derivation.seconds, "emit": time.perf_counter() - start}
    return symgrad.Kernel(source, derivation, timings)


def steps(job: dict) -> Iterator[tuple[str, str, object]]:
    """The events of one job (see the module docstring)."""
    from benchmarks import models
    from symgrad import measure
    from symgrad.derivation import derive

    model = models.build(job["spec"])
    budget, method = float(job["budget"]), job["method"]

    # *_cpu_s: this process's CPU seconds, steadier than wall-clock on a shared machine
    yield "start", "derive", budget
    cpu = time.process_time()
    if method == "reverse":
        derivation = derive(model, "reverse")
        t_diff = 0.0
        derived = {"seconds": derivation.seconds}
    else:
        start = time.perf_counter()
        sample, penalty = measure.direct_trees(model)
        t_diff = time.perf_counter() - start
        cpu_diff = time.process_time() - cpu
        derivation = measure.direct_derivation(model, sample, penalty, diff_seconds=t_diff)
        derived = {"seconds": derivation.seconds, "diff_s": t_diff,
                   "lower_s": derivation.seconds - t_diff, "diff_cpu_s": cpu_diff}
    derived["cpu_s"] = time.process_time() - cpu
    sizes = derivation.sizes()
    yield "done", "derive", {**derived, "params": len(model.params),
                             "forward_ops": sizes["forward_ops"],
                             "dag_ops": sizes["total_ops"]}

    if method == "symbolic":
        yield "start", "tree_ops", budget
        yield "done", "tree_ops", {"tree_ops": measure.tree_ops(sample + penalty)}

    yield "start", "compile", budget
    cpu = time.process_time()
    kernel = kernel_of(model, derivation)
    jit = kernel.warmup()
    yield "done", "compile", {"source_lines": len(kernel.source.splitlines()),
                              "emit_s": kernel.timings["emit"],
                              "compile_s": sum(jit.values()), "jit_s": jit,
                              "compile_cpu_s": time.process_time() - cpu}

    yield "start", "run", budget
    data = models.batch(model, int(job["samples"]), seed=int(job["seed"]))
    params = models.point(model, seed=int(job["seed"]) + 1)
    times, cpu_times = [], []
    for _ in range(int(job["repeats"])):
        start, cpu = time.perf_counter(), time.process_time()
        loss, grads = kernel.loss_and_grad(params, data)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
    yield "done", "run", {"kernel_s": statistics.median(times), "runs_s": times,
                          "kernel_cpu_s": statistics.median(cpu_times), "loss": loss,
                          "grads": [grads[p] for p in model.param_names]}

    if method == "symbolic":
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
