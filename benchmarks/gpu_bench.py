"""symgrad's CUDA target on a real GPU: agreement with the CPU module and timings
against PyTorch CUDA. Run by benchmarks/gpu_check.sh (from the source tree).

    python benchmarks/gpu_bench.py --check     # CUDA vs CPU on the lecture's networks
    python benchmarks/gpu_bench.py --time      # loss_and_grad timings, table last
    python benchmarks/gpu_bench.py --quick     # tiny sizes: a smoke run of this script
                                               # (also under NUMBA_ENABLE_CUDASIM=1)

Timings call the module's `_loss_and_grad_core(theta, X, Y, out)` with everything
already on the device (as PyTorch's `autograd.grad` gets it), and synchronise after
each batch of calls: each number includes Python's launch overhead. Columns: the
module's own tiled products, the same module with products through cuBLAS (CuPy,
when installed), and PyTorch eager (float32 without TF32).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import symgrad
from symgrad import losses, nn, optim
from symgrad.modelfile import load_namespace, model_from


def _example(name: str):
    path = ROOT / "examples" / f"{name}.py"
    namespace = load_namespace(path)
    return model_from(namespace, path), namespace


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1e-300, float(np.max(np.abs(b)))) if b.size else 1.0
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def _grads_rel(got: dict, want: dict) -> float:
    return max(_rel(got[k], want[k]) for k in want) if want else 0.0


# ---------------------------------------------------------------- --check

def _first(data, rows: int | None):
    return data if data is None or rows is None else {k: v[:rows] for k, v in data.items()}


def check(quick: bool = False) -> int:
    """loss_and_grad and short training runs, CUDA module vs CPU module, per example."""
    rows, worst = [], 0.0
    limit, steps = (16, 2) if quick else (None, 200)
    names = ["lecture_graph", "chain_rule", "polynomial_sin", "hinge_two_layer",
             "linear_rmsprop"] + ([] if quick else ["two_layer_net"])
    for name in names:
        model, ns = _example(name)
        cpu, gpu = symgrad.compile(model), symgrad.compile(model, target="cuda")
        if name in ("lecture_graph", "chain_rule"):
            params = ns.get("POINT") or {"x": 0.7}
            data, runs = None, []
        elif name in ("polynomial_sin", "hinge_two_layer"):
            params = ns["initial_params"]()
            data = _first(ns["data"](), limit)
            runs = [(optim.SGD(lr=1e-6 if name == "polynomial_sin" else 0.01), steps)]
        else:
            params, data = ns["params"](), _first(ns["data"](), limit)
            runs = [(optim.SGD(lr=1e-4 if name == "two_layer_net" else 1e-6), steps)]
            if name == "linear_rmsprop":
                runs.append((optim.RMSprop(lr=1e-3), steps))
        (l_gpu, g_gpu), (l_cpu, g_cpu) = (gpu.loss_and_grad(params, data),
                                          cpu.loss_and_grad(params, data))
        diff = max(_rel(l_gpu, l_cpu), _grads_rel(g_gpu, g_cpu))
        rows.append((name, "loss_and_grad", diff))
        worst = max(worst, diff)
        for optimizer, steps in runs:
            (p_gpu, h_gpu), (p_cpu, h_cpu) = (gpu.train(params, data, optimizer, steps),
                                              cpu.train(params, data, optimizer, steps))
            label = f"train {type(optimizer).__name__} x{steps}"
            rows.append((name, label, max(_rel(h_gpu, h_cpu), _grads_rel(p_gpu, p_cpu))))
    print(f"{'workload':<18} {'what':<22} {'max rel. diff CUDA vs CPU':>26}")
    for name, what, diff in rows:
        print(f"{name:<18} {what:<22} {diff:>26.2e}")
    ok = worst < 1e-9
    print(f"loss_and_grad agreement: {'OK' if ok else 'FAILED'} (worst {worst:.2e}, "
          f"limit 1e-9; training runs are reported, sums are ordered differently)")
    return 0 if ok else 1


# ---------------------------------------------------------------- --time

def _mlp(widths, act, loss_kind):
    n = sp.Symbol("n", integer=True, positive=True)
    X = sp.MatrixSymbol("X", n, widths[0])
    Y = sp.MatrixSymbol("Y", n, widths[-1])
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append({"relu": nn.ReLU, "tanh": nn.Tanh}[act]())
    net = nn.Sequential(*layers)
    pred = net(X)
    total = (losses.mse(pred, Y, reduction="sum") if loss_kind == "mse"
             else losses.cross_entropy(pred, Y, reduction="mean"))
    return symgrad.Model(loss=total, params=net.params, inputs=[X, Y], predict=pred), net


def _median_seconds(call, sync, calls: int, repeats: int = 5) -> float:
    for _ in range(min(3, repeats)):
        call()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        sync()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def _torch_time(torch, widths, act, loss_kind, params, x, labels, y, dtype, calls, repeats):
    device = torch.device("cuda")
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU() if act == "relu" else torch.nn.Tanh())
    net = torch.nn.Sequential(*layers).to(device=device, dtype=tdtype)
    net.load_state_dict({k: torch.tensor(v, dtype=tdtype) for k, v in params.items()})
    X = torch.tensor(x, dtype=tdtype, device=device)
    if loss_kind == "ce":
        T = torch.tensor(labels, device=device)
        loss_fn = torch.nn.CrossEntropyLoss(reduction="mean")
    else:
        T = torch.tensor(y, dtype=tdtype, device=device)
        loss_fn = torch.nn.MSELoss(reduction="sum")
    weights = list(net.parameters())

    def step():
        loss = loss_fn(net(X), T)
        return loss, torch.autograd.grad(loss, weights)

    seconds = _median_seconds(step, torch.cuda.synchronize, calls, repeats)
    loss, grads = step()
    named = {k: g.detach().cpu().numpy() for (k, _), g in zip(net.named_parameters(), grads)}
    return seconds, float(loss), named


def timings(quick: bool = False) -> int:
    from numba import cuda
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        have_torch = torch.cuda.is_available()
    except ImportError:
        torch, have_torch = None, False
    try:
        import cupy  # noqa: F401
        have_cupy = True
    except ImportError:
        have_cupy = False
    nets = [("1000-100-10 relu mse", [1000, 100, 10], "relu", "mse"),
            ("784-256-256-10 tanh ce", [784, 256, 256, 10], "tanh", "ce")]
    batches, repeats = (128, 4096), 5
    if quick:
        nets = [("8-6-3 relu mse", [8, 6, 3], "relu", "mse"),
                ("8-6-5-3 tanh ce", [8, 6, 5, 3], "tanh", "ce")]
        batches, repeats = (5, 33), 1
    rows = []
    for label, widths, act, loss_kind in nets:
        model, net = _mlp(widths, act, loss_kind)
        params = net.init(0)
        for dtype in ("float32", "float64"):
            module = symgrad.compile(model, target="cuda", dtype=dtype).module
            for batch in batches:
                rng = np.random.default_rng(batch)
                x = rng.standard_normal((batch, widths[0])).astype(dtype)
                labels = rng.integers(0, widths[-1], batch)
                y = (np.eye(widths[-1])[labels] if loss_kind == "ce"
                     else rng.standard_normal((batch, widths[-1]))).astype(dtype)
                theta, given = module._pack(params)
                X, Y = cuda.to_device(x), cuda.to_device(y)
                out = cuda.device_array(1 + theta.shape[0])
                calls = 1 if quick else 50 if batch == 128 else 10

                def step(module=module, theta=theta, X=X, Y=Y, out=out):
                    module._loss_and_grad_core(theta, X, Y, out)

                tiled = _median_seconds(step, cuda.synchronize, calls, repeats)
                host = out.copy_to_host()
                grads = module.unpack_grads(host[1:], module.PARAMS, given[0])
                cublas = None
                if have_cupy:
                    module.use_cublas(True)
                    cublas = _median_seconds(step, cuda.synchronize, calls, repeats)
                    module.use_cublas(False)
                torch_s, diff = None, None
                if have_torch:
                    torch_s, t_loss, t_grads = _torch_time(torch, widths, act, loss_kind,
                                                           params, x, labels, y, dtype, calls,
                                                           repeats)
                    diff = max(_rel(host[0], t_loss), _grads_rel(grads, t_grads))
                rows.append((label, dtype, batch, tiled, cublas, torch_s, diff))
                print(f"  measured {label} {dtype} batch {batch}", file=sys.stderr)
    if hasattr(cuda, "get_current_device"):
        device = cuda.get_current_device().name
        device = device.decode() if isinstance(device, bytes) else device
    else:
        device = "Numba's CUDA simulator (timings meaningless)"
    print(f"\nloss_and_grad per call, median of {repeats} x N calls, on {device} "
          f"(ms; ratio = symgrad tiled / PyTorch)")
    head = (f"{'network':<24} {'dtype':<8} {'batch':>6} {'tiled':>9} {'cuBLAS':>9} "
            f"{'PyTorch':>9} {'ratio':>7} {'rel.diff':>9}")
    print(head)
    print("-" * len(head))

    def ms(v):
        return f"{v * 1e3:9.3f}" if v is not None else f"{'-':>9}"

    for label, dtype, batch, tiled, cublas, torch_s, diff in rows:
        ratio = f"{tiled / torch_s:7.2f}" if torch_s else f"{'-':>7}"
        rel = f"{diff:9.1e}" if diff is not None else f"{'-':>9}"
        print(f"{label:<24} {dtype:<8} {batch:>6} {ms(tiled)} {ms(cublas)} {ms(torch_s)} "
              f"{ratio} {rel}")
    if not have_torch:
        print("(PyTorch with CUDA not available: no PyTorch column)")
    if not have_cupy:
        print("(CuPy not installed: no cuBLAS column)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="CUDA vs CPU agreement")
    parser.add_argument("--time", action="store_true", help="timings against PyTorch")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = parser.parse_args(argv)
    # Numba warns that one-block grids under-use the GPU; the serial kernels are tiny on purpose.
    warnings.filterwarnings("ignore", message="Grid size")
    from numba import cuda
    if not cuda.is_available():
        print("no CUDA GPU visible to Numba (numba.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    status = 0
    if args.check or not args.time:
        status |= check(args.quick)
    if args.time or not args.check:
        status |= timings(args.quick)
    return status


if __name__ == "__main__":
    sys.exit(main())
