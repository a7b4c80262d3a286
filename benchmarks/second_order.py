"""Benchmark: second order. The HVP's cost on the peers' networks, and the chained
Rosenbrock function's sparse Hessian against JAX's dense one and CasADi's sparse one.

    python benchmarks/second_order.py [--n 10000] [--workloads c,d] [--json out.json]
    python benchmarks/second_order.py --quick          # small sizes, a smoke run

Rows:
- (c) and (d) of benchmarks/peers.py (the 1000-100-10 ReLU net with MSE, the
  784-256-256-10 tanh MLP with softmax cross-entropy), float64, one thread: one loss,
  one loss_and_grad and one HVP of symgrad's order-2 kernel, medians; the HVP in loss
  evaluations (target: <= 5, the cheap-gradient principle at second order).
- the chained Rosenbrock function of n params: symgrad's sparse Hessian (3 colours, one
  HVP each) in HVPs (target: under 50) and in seconds, JAX's jax.hessian (dense, jitted)
  and CasADi's sparse Hessian (SX, its own colouring), each after a warm-up, medians.
  Peers that are not installed are skipped with a note.

The table goes to stdout, progress to stderr. Everything runs pinned to one core with
one thread (NUMBA_NUM_THREADS, OMP/OpenBLAS threads and XLA's set before the imports).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_ENABLE_X64", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import peer_impls  # noqa: E402
from symgrad.bench.second_order import median_seconds  # noqa: E402


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def network_row(key: str, quick: bool, repeats: int) -> dict:
    import symgrad

    s = peer_impls.spec(key, quick)
    model, net = peer_impls.build_model(s)
    data, params = peer_impls.make_data(s), peer_impls.make_init(s, net)
    rng = np.random.default_rng(2)
    vector = {k: rng.standard_normal(np.shape(v)) for k, v in params.items()}
    start = time.perf_counter()
    kernel = symgrad.compile(model, order=2)
    kernel.hvp(params, vector, data)
    compile_s = time.perf_counter() - start
    loss = median_seconds(lambda: kernel.loss(params, data), repeats)
    grad = median_seconds(lambda: kernel.loss_and_grad(params, data), repeats)
    hvp = median_seconds(lambda: kernel.hvp(params, vector, data), repeats)
    return {"workload": s["title"], "batch": s["batch"], "loss_s": loss,
            "loss_and_grad_s": grad, "hvp_s": hvp, "hvp_over_loss": hvp / loss,
            "grad_over_loss": grad / loss, "compile_with_hvp_s": compile_s}


def rosenbrock_row(n: int, repeats: int) -> dict:
    sys.path.insert(0, str(ROOT / "examples"))
    import rosenbrock_newton as example

    import symgrad

    start = time.perf_counter()
    kernel = symgrad.compile(example.rosenbrock(n), order=2)
    kernel.hessian(example.start(n))
    row = {"n": n, "symgrad_build_s": time.perf_counter() - start}
    rng = np.random.default_rng(0)
    x = {p: float(v) for p, v in zip(kernel.param_names, rng.uniform(-1.0, 2.0, n))}
    theta, _ = kernel.module._pack(x)
    direction = rng.standard_normal(n)
    row["colors"] = kernel.second_order.sparsity.n_colors
    row["hvp_s"] = median_seconds(lambda: kernel.hvp(x, x), repeats)
    row["hessian_s"] = median_seconds(lambda: kernel.hessian(x), repeats)
    row["hessian_in_hvps"] = row["hessian_s"] / row["hvp_s"]
    # the flat cores (no dict conversion of 10^4 names)
    row["flat_hvp_s"] = median_seconds(
        lambda: kernel.module._flat_hvp(theta, direction, ()), repeats)
    row["flat_hessian_s"] = median_seconds(lambda: kernel.module.hessian_from_products(
        lambda v: kernel.module._flat_hvp(theta, v, ()), n, kernel.module.HESSIAN_PATTERN,
        kernel.module.HESSIAN_COLORS, True), repeats)
    row["flat_hessian_in_hvps"] = row["flat_hessian_s"] / row["flat_hvp_s"]
    reference = kernel.hessian(x)
    row.update(_jax_hessian(theta, repeats, reference))
    row.update(_casadi_hessian(theta, repeats, reference))
    return row


def _jax_hessian(theta: np.ndarray, repeats: int, reference) -> dict:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {"jax": "not installed"}

    def f(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    hessian = jax.jit(jax.hessian(f))
    x = jnp.asarray(theta)
    start = time.perf_counter()
    h = np.asarray(hessian(x).block_until_ready())
    first = time.perf_counter() - start
    seconds = median_seconds(lambda: hessian(x).block_until_ready(), repeats)
    diff = float(np.abs(h - reference.toarray()).max())
    return {"jax": jax.__version__, "jax_hessian_s": seconds, "jax_first_call_s": first,
            "jax_max_abs_diff": diff}


def _casadi_hessian(theta: np.ndarray, repeats: int, reference) -> dict:
    try:
        import casadi
    except ImportError:
        return {"casadi": "not installed (pip install casadi)"}
    n = theta.shape[0]
    x = casadi.SX.sym("x", n)
    f = casadi.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    start = time.perf_counter()
    h, _ = casadi.hessian(f, x)
    function = casadi.Function("hessian", [x], [h])
    build = time.perf_counter() - start
    seconds = median_seconds(lambda: function(theta), repeats)
    got = function(theta).sparse()
    diff = float(abs(got - reference).max())
    return {"casadi": casadi.__version__, "casadi_hessian_s": seconds,
            "casadi_build_s": build, "casadi_nnz": int(got.nnz), "casadi_max_abs_diff": diff}


def table(rows: dict) -> str:
    lines = ["HVP cost on the peers' networks (float64, one thread, medians)",
             f"{'workload':<34} {'batch':>6} {'loss ms':>9} {'grad ms':>9} {'HVP ms':>9} "
             f"{'grad/loss':>9} {'HVP/loss':>9}"]
    for r in rows["networks"]:
        lines.append(f"{r['workload']:<34} {r['batch']:>6} {r['loss_s'] * 1e3:>9.3f} "
                     f"{r['loss_and_grad_s'] * 1e3:>9.3f} {r['hvp_s'] * 1e3:>9.3f} "
                     f"{r['grad_over_loss']:>9.2f} {r['hvp_over_loss']:>9.2f}")
    r = rows.get("rosenbrock")
    if r:
        lines += ["", f"chained Rosenbrock, n = {r['n']}: the Hessian ({r['colors']} colours)",
                  f"{'method':<44} {'ms':>10} {'in HVPs':>8}",
                  f"{'symgrad HVP (kernel.hvp, dicts)':<44} {r['hvp_s'] * 1e3:>10.2f}",
                  f"{'symgrad sparse Hessian (kernel.hessian)':<44} "
                  f"{r['hessian_s'] * 1e3:>10.2f} {r['hessian_in_hvps']:>8.1f}",
                  f"{'symgrad HVP, flat core':<44} {r['flat_hvp_s'] * 1e3:>10.2f}",
                  f"{'symgrad sparse Hessian, flat cores':<44} "
                  f"{r['flat_hessian_s'] * 1e3:>10.2f} {r['flat_hessian_in_hvps']:>8.1f}"]
        for peer, label, key in (("jax", "jax.hessian (dense, jit)", "jax_hessian_s"),
                                 ("casadi", "hessian (SX, sparse)", "casadi_hessian_s")):
            if key not in r:
                lines.append(f"{peer}: {r[peer]}")
                continue
            title = f"{'JAX' if peer == 'jax' else 'CasADi'} {r[peer]} {label}"
            lines.append(f"{title:<44} {r[key] * 1e3:>10.2f} {r[key] / r['flat_hvp_s']:>8.1f}")
        lines.append("in HVPs: divided by symgrad's HVP of the same kind (the JAX and CasADi "
                     "rows by the flat one); all agree with symgrad's Hessian to "
                     f"{max(r.get('jax_max_abs_diff', 0), r.get('casadi_max_abs_diff', 0)):.1e}"
                     " (max abs)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="Rosenbrock params (default 10000)")
    p.add_argument("--workloads", default="c,d")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="n = 300, small nets, 3 repeats")
    p.add_argument("--json", metavar="OUT.json")
    args = p.parse_args(argv)
    n = args.n or (300 if args.quick else 10_000)
    repeats = args.repeats or (3 if args.quick else 7)
    rows = {"networks": []}
    for key in [k for k in args.workloads.split(",") if k]:
        log(f"workload {key} ...")
        rows["networks"].append(network_row(key, args.quick, repeats))
    log(f"chained Rosenbrock, n = {n} ...")
    rows["rosenbrock"] = rosenbrock_row(n, repeats)
    print(table(rows))
    if args.json:
        from symgrad.files import write_atomic
        write_atomic(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
