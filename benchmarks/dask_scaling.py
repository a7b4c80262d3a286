"""Benchmark: data-parallel gradients on Dask (symgrad/distributed.py).

    python benchmarks/dask_scaling.py [--rows 10000000] [--net-rows 100000] [--json out.json]
    python benchmarks/dask_scaling.py --quick          # small sizes, a smoke run

Rows, float64, medians of --repeats calls after a warm-up:
- logistic regression, 20 features, --rows synthetic rows (each column a dask array of
  chunks of 10^6 rows, generated on the workers and persisted there): one full-batch
  loss_and_grad in memory (one thread; the parallel core on two), on a LocalCluster of
  1 worker and of 2 (one process each, one thread);
- the 1000-100-10 ReLU net with MSE (benchmarks/peers.py's (c)) on --net-rows rows;
- per-step overhead: one training step (SGD, full batch) on tiny data (2 chunks of 100
  rows, persisted on the workers), beside Dask's own floor on the same cluster: client.map of 8 trivial tasks
  plus gather, and a single submit + result round trip.
Throughput is rows per second of the gradient. The table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from symgrad.bench.second_order import median_seconds  # noqa: E402

CHUNK_ROWS = 1_000_000


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def logistic(features: int):
    from symgrad.bench.models import logistic_regression

    model = logistic_regression(features)
    return model, {p: 0.01 * (i - features / 2) for i, p in enumerate(model.param_names)}


def logistic_columns(rows: int, features: int, seed: int, chunk: int):
    """{name: dask array}: standard normal features, labels from a fixed weight."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    cols = {f"x{j}": rng.standard_normal(rows, chunks=chunk) for j in range(features)}
    z = sum(0.3 * (j % 3 - 1) * cols[f"x{j}"] for j in range(features))
    cols["label"] = (z > rng.standard_normal(rows, chunks=chunk)).astype(np.float64)
    return cols


def net(rows: int, seed: int, chunk: int):
    import dask.array as da

    from benchmarks import peer_impls

    s = peer_impls.spec("c")
    model, module = peer_impls.build_model(s)
    params = peer_impls.make_init(s, module)
    rng = da.random.default_rng(seed)
    data = {"X": rng.standard_normal((rows, 1000), chunks=(chunk, 1000)),
            "Y": rng.standard_normal((rows, 10), chunks=(chunk, 10))}
    return model, params, data


def cluster_rows(kernel, params, data, workers: int, repeats: int) -> dict:
    """Seconds per full-batch gradient on a LocalCluster of `workers` processes."""
    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", memory_limit=0) as cluster, \
            distributed.Client(cluster) as client:
        persisted = dict(zip(data, client.persist(list(data.values()))))
        distributed.wait(list(persisted.values()))
        start = time.perf_counter()
        kernel.loss_and_grad(params, persisted)
        first = time.perf_counter() - start
        seconds = median_seconds(lambda: kernel.loss_and_grad(params, persisted), repeats)
        return {"seconds": seconds, "first_call_s": first}


def overhead(kernel, params, repeats: int) -> dict:
    """A training step on tiny data against Dask's floor, on a 2-worker cluster."""
    import dask.array as da
    import distributed

    import symgrad

    tiny = {k: v[:200].rechunk(100) for k, v in logistic_columns(200, 20, 3, 100).items()}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        tiny = {k: da.from_array(v.compute(), chunks=100) for k, v in tiny.items()}
        tiny = dict(zip(tiny, client.persist(list(tiny.values()))))
        sgd = symgrad.optim.SGD(lr=0.1)
        steps = 20
        kernel.train(params, tiny, sgd, 2)
        step = median_seconds(lambda: kernel.train(params, tiny, sgd, steps), 3) / steps
        map8 = median_seconds(lambda: client.gather(client.map(
            _inc, range(8), pure=False)), repeats * 4)
        one = median_seconds(lambda: client.submit(_inc, 1, pure=False).result(),
                             repeats * 4)
    return {"step_s": step, "map8_gather_s": map8, "round_trip_s": one,
            "step_over_map8": step / map8}


def _inc(x):
    return x + 1


def row(name: str, model, params, data, repeats: int) -> dict:
    import numba

    import symgrad

    kernel = symgrad.compile(model)
    n = int(next(iter(data.values())).shape[0])
    log(f"{name}: {n:,} rows in memory...")
    memory = {k: v.compute() for k, v in data.items()}
    out = {"model": name, "rows": n}
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        out[f"memory_{threads}t_s"] = median_seconds(
            lambda: kernel.loss_and_grad(params, memory), repeats)
    memory = None     # free it before the clusters start
    for workers in (1, 2):
        log(f"{name}: {workers} worker(s)...")
        r = cluster_rows(kernel, params, data, workers, repeats)
        out[f"workers_{workers}_s"] = r["seconds"]
        out[f"workers_{workers}_first_s"] = r["first_call_s"]
    out["speedup_2_over_1"] = out["workers_1_s"] / out["workers_2_s"]
    out["rows_per_s_2"] = n / out["workers_2_s"]
    return out, kernel


def table(rows: list[dict], over: dict) -> str:
    head = (f"{'model':<28} {'rows':>11} {'memory 1t s':>11} {'2t s':>7} {'1 worker s':>10} "
            f"{'2 workers s':>11} {'2 vs 1':>7} {'rows/s (2)':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<28} {r['rows']:>11,} {r['memory_1t_s']:>11.3f} "
                     f"{r['memory_2t_s']:>7.3f} {r['workers_1_s']:>10.3f} "
                     f"{r['workers_2_s']:>11.3f} {r['speedup_2_over_1']:>7.2f} "
                     f"{r['rows_per_s_2']:>11.3g}")
    lines += ["", "per-step overhead (2 workers, logistic regression, 2 chunks of 100 rows):",
              f"  symgrad training step          {over['step_s'] * 1e3:8.1f} ms",
              f"  dask client.map(8) + gather    {over['map8_gather_s'] * 1e3:8.1f} ms",
              f"  dask single task round trip    {over['round_trip_s'] * 1e3:8.1f} ms",
              f"  step / map(8)+gather           {over['step_over_map8']:8.2f}",
              "", "memory: in-memory kernel in this process (1 and 2 Numba threads); workers: "
              "LocalCluster processes of one thread each, data persisted on them; medians "
              "of full-batch loss_and_grad calls."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--net-rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="10^5 rows, 4,000 net rows")
    p.add_argument("--json", metavar="OUT.json")
    args = p.parse_args(argv)
    rows, net_rows = (100_000, 4_000) if args.quick else (args.rows, args.net_rows)
    chunk = max(1, min(CHUNK_ROWS, rows // 10))
    model, params = logistic(20)
    results = []
    r, kernel = row("logistic regression, 20 feat", model, params,
                    logistic_columns(rows, 20, 0, chunk), args.repeats)
    results.append(r)
    m, p_net, d_net = net(net_rows, 1, max(1, net_rows // 10))
    results.append(row("1000-100-10 ReLU, MSE", m, p_net, d_net, args.repeats)[0])
    log("per-step overhead...")
    over = overhead(kernel, params, args.repeats)
    print(table(results, over))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": results, "overhead": over},
                                              indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
